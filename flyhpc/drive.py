"""Seeded Poisson drive as data: sorted event steps per driven neuron, one train per trial.

Each step a driven neuron receives a kick with probability p = rate x dt (Brian2's PoissonInput
with N=1). Events are drawn from a Philox generator keyed by (experiment digest, base seed, round,
trial), so a trial's drive does not depend on batch size, backend or execution order. No simulator
is imported here. Entry points: `TrialDrive`, `Drive`, `make_drive`, `experiment_drive`, `trial_drive`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flyhpc.model import DriveSet, Experiment, Params
from flyhpc.network import NetworkSpec


@dataclass(frozen=True)
class TrialDrive:
    """Drive events of one trial, sorted by (step, neuron): neuron `neurons[k]` is kicked at `steps[k]`."""

    trial: int
    steps: np.ndarray  # int64
    neurons: np.ndarray  # int32

    @property
    def n_events(self) -> int:
        return int(self.steps.shape[0])


@dataclass(frozen=True)
class Drive:
    """The drive of a whole run: n_steps, the key it was drawn from, one `TrialDrive` per trial."""

    n_steps: int
    base_seed: int
    round: int
    trials: tuple[TrialDrive, ...]

    @property
    def n_trials(self) -> int:
        return len(self.trials)


def _generator(digest: str, base_seed: int, round_: int, trial: int) -> np.random.Generator:
    digest_words = [int(digest[i:i + 8], 16) for i in range(0, 32, 8)]
    seq = np.random.SeedSequence([int(base_seed), int(round_), int(trial), *digest_words])
    return np.random.Generator(np.random.Philox(seq))


def _chunk(p: float, n_steps: int) -> int:
    """Gaps drawn at a time for one neuron: enough to pass n_steps almost always (about 5 sd to spare)."""
    return max(64, int(n_steps * p * 1.1) + 64)


def _bernoulli_steps(rng: np.random.Generator, p: float, n_steps: int, chunk: int | None = None) -> np.ndarray:
    """Steps in [0, n_steps) of a Bernoulli(p) process, drawn as geometric gaps, `chunk` gaps at a time.

    This defines the stream: the gaps come from `rng` in order, a chunk at a time, until one passes
    n_steps (the rest of that chunk is drawn and discarded). `_bernoulli_sets` draws the same values faster.
    """
    if p <= 0.0 or n_steps <= 0:
        return np.zeros(0, dtype=np.int64)
    if p >= 1.0:
        return np.arange(n_steps, dtype=np.int64)
    out = []
    last = -1
    chunk = chunk or _chunk(p, n_steps)
    while True:
        gaps = rng.geometric(p, size=chunk)
        steps = last + np.cumsum(gaps)
        out.append(steps[steps < n_steps])
        if steps[-1] >= n_steps:
            break
        last = int(steps[-1])
    return np.concatenate(out).astype(np.int64)


def _bernoulli_sets(rng: np.random.Generator, p: float, n_neurons: int, n_steps: int,
                    chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`_bernoulli_steps` of n_neurons neurons one after the other: (steps, counts per neuron), same values.

    One draw of n_neurons chunks serves every neuron whose first chunk passes n_steps (almost always
    all of them); otherwise the generator is wound back and the neurons are drawn one by one.
    """
    if 0.0 < p < 1.0 and n_steps > 0 and n_neurons:
        chunk = chunk or _chunk(p, n_steps)
        state = rng.bit_generator.state
        steps = np.cumsum(rng.geometric(p, size=(n_neurons, chunk)), axis=1) - 1
        if (steps[:, -1] >= n_steps).all():
            inside = steps < n_steps
            return steps[inside].astype(np.int64), inside.sum(axis=1)
        rng.bit_generator.state = state  # a neuron needs a second chunk: draw them in stream order
    parts = [_bernoulli_steps(rng, p, n_steps, chunk) for _ in range(n_neurons)]
    return (np.concatenate(parts) if parts else np.zeros(0, np.int64),
            np.array([len(s) for s in parts], dtype=np.int64))


def trial_drive(spec: NetworkSpec, n_steps: int, base_seed: int, round_: int, trial: int) -> TrialDrive:
    """The drive events of one trial (same arguments, same events, on any machine)."""
    return _trial_drive(spec.experiment.digest(), spec.drive_sets, spec.params.dt_ms, n_steps, base_seed, round_,
                        trial)


def _trial_drive(digest: str, drive_sets, dt_ms: float, n_steps: int, base_seed: int, round_: int,
                 trial: int) -> TrialDrive:
    rng = _generator(digest, base_seed, round_, trial)
    dt_s = dt_ms / 1000.0
    steps_parts, neuron_parts = [], []
    for drive_set in drive_sets:  # neurons in experiment order: stable across backends
        steps, counts = _bernoulli_sets(rng, drive_set.rate_hz * dt_s, len(drive_set.indices), n_steps)
        steps_parts.append(steps)
        neuron_parts.append(np.repeat(np.asarray(drive_set.indices, dtype=np.int32), counts))
    if not steps_parts:
        return TrialDrive(trial, np.zeros(0, np.int64), np.zeros(0, np.int32))
    steps = np.concatenate(steps_parts)
    neurons = np.concatenate(neuron_parts)
    if n_steps >= 2**31:  # beyond what a packed key holds (2^31 steps of 0.1 ms = 59 h)
        order = np.lexsort((neurons, steps))
        return TrialDrive(trial=trial, steps=steps[order], neurons=neurons[order])
    # (step, neuron) order; each neuron's steps are already a sorted run, which a stable (tim)sort merges
    key = np.sort((steps << 32) | neurons.astype(np.int64), kind="stable")
    return TrialDrive(trial=trial, steps=key >> 32, neurons=(key & 0xFFFFFFFF).astype(np.int32))


def make_drive(spec: NetworkSpec, n_steps: int, n_trials: int, base_seed: int = 0, round_: int = 1,
               first_trial: int = 0) -> Drive:
    """Drive for trials first_trial .. first_trial + n_trials - 1 of one round."""
    return experiment_drive(spec.experiment, spec.drive_sets, spec.params, n_steps, n_trials, base_seed, round_,
                            first_trial)


def experiment_drive(experiment: Experiment, drive_sets: tuple[DriveSet, ...], params: Params, n_steps: int,
                     n_trials: int, base_seed: int = 0, round_: int = 1, first_trial: int = 0) -> Drive:
    """`make_drive` without a NetworkSpec: the drive depends only on the experiment (its digest), its
    resolved drive sets and dt, not on the network it drives (screens reuse one network for many experiments)."""
    digest = experiment.digest()
    trials = tuple(_trial_drive(digest, drive_sets, params.dt_ms, n_steps, base_seed, round_, t)
                   for t in range(first_trial, first_trial + n_trials))
    return Drive(n_steps=n_steps, base_seed=int(base_seed), round=int(round_), trials=trials)
