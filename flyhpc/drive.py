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


def _bernoulli_steps(rng: np.random.Generator, p: float, n_steps: int) -> np.ndarray:
    """Steps in [0, n_steps) of a Bernoulli(p) process, drawn as geometric gaps."""
    if p <= 0.0 or n_steps <= 0:
        return np.zeros(0, dtype=np.int64)
    if p >= 1.0:
        return np.arange(n_steps, dtype=np.int64)
    out = []
    last = -1
    chunk = max(64, int(n_steps * p * 1.1) + 64)
    while True:
        gaps = rng.geometric(p, size=chunk)
        steps = last + np.cumsum(gaps)
        out.append(steps[steps < n_steps])
        if steps[-1] >= n_steps:
            break
        last = int(steps[-1])
    return np.concatenate(out).astype(np.int64)


def trial_drive(spec: NetworkSpec, n_steps: int, base_seed: int, round_: int, trial: int) -> TrialDrive:
    """The drive events of one trial (same arguments, same events, on any machine)."""
    return _trial_drive(spec.experiment.digest(), spec.drive_sets, spec.params.dt_ms, n_steps, base_seed, round_,
                        trial)


def _trial_drive(digest: str, drive_sets, dt_ms: float, n_steps: int, base_seed: int, round_: int,
                 trial: int) -> TrialDrive:
    rng = _generator(digest, base_seed, round_, trial)
    dt_s = dt_ms / 1000.0
    steps_parts, neuron_parts = [], []
    for drive_set in drive_sets:
        p = drive_set.rate_hz * dt_s
        for idx in drive_set.indices:  # experiment order: stable across backends
            s = _bernoulli_steps(rng, p, n_steps)
            steps_parts.append(s)
            neuron_parts.append(np.full(s.shape, idx, dtype=np.int32))
    if not steps_parts:
        return TrialDrive(trial, np.zeros(0, np.int64), np.zeros(0, np.int32))
    steps = np.concatenate(steps_parts)
    neurons = np.concatenate(neuron_parts)
    order = np.lexsort((neurons, steps))
    return TrialDrive(trial=trial, steps=steps[order], neurons=neurons[order])


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
