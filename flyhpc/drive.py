"""Seeded Poisson drive as data: sorted event steps per driven neuron, one train per trial.

Each step a driven neuron receives a kick with probability p = rate x dt (Brian2's PoissonInput with N=1).
Drive version 2 (common random numbers): neuron j's train in a trial is read from uniforms u_j(step) that
depend only on (base seed, round, trial, j) — a kick wherever u_j(step) < p — so it does not depend on the rest
of the experiment, the batch size, the backend or the order of execution. Two experiments that drive the same
neurons at the same rates get identical input trains (a screen's base and "the same with neuron k silenced" are
paired trial by trial), and the train at a lower rate is a subset of the train at a higher rate (rate sweeps
are paired too).

The uniforms are not drawn one per step (10,000 per neuron-second): the steps with u < P (P = `CANDIDATE_P`,
500 Hz at dt 0.1 ms) are drawn as geometric gaps, each with its mark u/P, so a neuron costs ~P x n_steps
draws; a rate above P also reads the uniforms of the other steps, from a stream of their own. Both ways give
exactly the law of one uniform per step. Keys: Philox (numpy's Philox4x64), key = SeedSequence((DRIVE_VERSION,
base seed, round, trial)), neuron j's candidate stream starting at counter (0, 0, j, 0) and its per-step stream
at (0, 0, j, 1), so neurons never share numbers and a longer run extends a shorter one. A gap is
floor(log1p(-u) / log1p(-P)) + 1 with numpy's np.log1p (`_gaps`; on AVX512 numpy's log1p is SVML's, which
differs from glibc's in the last bit for ~4 % of arguments). The numpy code here (`_neuron_steps`) states the
definition and draws the rare neuron that the compiled drawing (flyhpc.drive_kernel, loaded on the first draw;
~10 us per neuron-second at 200 Hz; a large batch of trials is split over the usable CPUs) leaves to it. No
simulator is imported here. Entry points: `TrialDrive`, `Drive`, `make_drive`, `experiment_drive`, `trial_drive`,
`DRIVE_VERSION`.
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from flyhpc.model import DriveSet, Params
from flyhpc.network import NetworkSpec
from flyhpc.timing import usable_cpus

DRIVE_VERSION = 2  # 1: one generator per experiment (digest-keyed), unpaired; 2: per neuron, paired (this module)
CANDIDATE_P = 0.05  # per-step probability of the candidate steps; rates above it read the per-step stream too
_LOG_Q = math.log1p(-CANDIDATE_P)
_STREAM_CANDIDATES, _STREAM_STEPS = 0, 1
_UNIT = 1.0 / 9007199254740992.0  # 2^-53: uniform = (64-bit draw >> 11) * 2^-53
# 53-bit uniforms this close to a gap threshold leave their neuron to numpy: an error of e ulp in log1p moves a
# threshold by under 0.75 e uniforms (2^-53), so any log1p within ~500 ulp (glibc, SVML: a few) gives the table's
# gap to every uniform farther away
_WINDOW = 1024
DRAW_EVENTS_PER_THREAD = 2_000_000  # ~0.1 s of drawing: below that a thread costs more than it saves


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
    version: int = DRIVE_VERSION

    @property
    def n_trials(self) -> int:
        return len(self.trials)


@functools.lru_cache(maxsize=1024)
def _trial_key(base_seed: int, round_: int, trial: int) -> np.ndarray:
    """The Philox key of one trial (read-only; a screen's experiments share their trials' keys)."""
    key = np.random.SeedSequence([DRIVE_VERSION, base_seed, round_, trial]).generate_state(2, np.uint64)
    key.flags.writeable = False
    return key


@functools.cache
def _kernel():
    """flyhpc.drive_kernel, imported on the first draw (it imports numba: 0.2 s that a module importing this one
    only for its types should not pay)."""
    from flyhpc import drive_kernel

    return drive_kernel


class _Streams:
    """Neuron j's uniforms of one trial: the Philox4x64 stream of (trial key, counter (0, 0, j, s))."""

    def __init__(self, base_seed: int, round_: int, trial: int):
        self.key = _trial_key(int(base_seed), int(round_), int(trial))

    def uniforms(self, neuron: int, stream: int, count: int) -> np.ndarray:
        """The first `count` uniforms in [0, 1) (53-bit) of `neuron`'s `stream`."""
        bits = _kernel().raw(self.key, np.array([0, 0, neuron, stream], np.uint64), count)
        return (bits >> np.uint64(11)) * _UNIT


def _candidate_pairs(n_steps: int) -> int:
    """(gap, mark) pairs drawn per neuron: enough to pass n_steps almost always (about 6 sd to spare)."""
    mean = n_steps * CANDIDATE_P
    return int(mean + 6.0 * math.sqrt(mean) + 16)


def _gaps(u: np.ndarray) -> np.ndarray:
    """Geometric(P) gaps by inversion of gap uniforms, with numpy's log1p: the definition of a gap."""
    return np.floor(np.log1p(-u) / _LOG_Q).astype(np.int64) + 1


def _candidates(u: np.ndarray) -> np.ndarray:
    """Candidate steps from the gap halves of (gap, mark) uniform pairs (last axis)."""
    return np.cumsum(_gaps(u[..., 0::2]), axis=-1) - 1


@functools.cache
def _gap_table() -> tuple[np.ndarray, np.ndarray]:
    """Where `_gaps` steps, for the compiled draw: (thresholds, first_gap).

    thresholds[k] (k >= 1) is the least r in [0, 2^53) whose uniform r * 2^-53 has a gap above k, found by
    bisection with `_gaps` itself (so with this machine's np.log1p); thresholds[0] = 0 and a last sentinel
    2^62. first_gap[b] is the gap - 1 at r = b * 2^41 (4,096 buckets)."""
    top = int(_gaps(np.array([(2**53 - 1) * _UNIT]))[0]) - 1  # the largest gap - 1 (716 at P = 0.05)
    want = np.arange(1, top + 1)
    lo, hi = np.zeros(top, np.int64), np.full(top, 2**53, np.int64)  # _gaps(lo) <= want < _gaps(hi)
    for _ in range(53):
        mid = (lo + hi) // 2
        past = _gaps(mid * _UNIT) > want
        lo, hi = np.where(past, lo, mid), np.where(past, mid, hi)
    thresholds = np.concatenate([[0], hi, [2**62]]).astype(np.int64)
    first_gap = np.searchsorted(thresholds[:-1], np.arange(4096, dtype=np.int64) << 41, side="right") - 1
    return thresholds, first_gap.astype(np.int32)


def _neuron_steps(streams: _Streams, neuron: int, p: float, n_steps: int) -> np.ndarray:
    """Kick steps of one neuron (probability p per step), sorted: the definition of the train."""
    n = _candidate_pairs(n_steps)
    while True:  # a longer draw has the shorter one as its prefix: redraw longer in the rare short case
        u = streams.uniforms(neuron, _STREAM_CANDIDATES, 2 * n)
        candidates = _candidates(u)
        if candidates[-1] >= n_steps:
            break
        n *= 2
    inside = candidates < n_steps
    if p <= CANDIDATE_P:
        return candidates[inside & (u[1::2] * CANDIDATE_P < p)]
    # every candidate is a kick; the other steps have uniforms in [P, 1): a kick where below p
    other = streams.uniforms(neuron, _STREAM_STEPS, n_steps) < (p - CANDIDATE_P) / (1.0 - CANDIDATE_P)
    other[candidates[inside]] = True
    return np.flatnonzero(other)


def _set_steps(streams: _Streams, neurons: np.ndarray, p: float, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """`_neuron_steps` of every neuron of one set, one after the other: (steps, counts per neuron), same values.

    Compiled (flyhpc.drive_kernel.draw_set: the same streams, gaps looked up in `_gap_table`); a neuron with
    a gap uniform within `_WINDOW` of a threshold (under 2e-10 per gap: 2 x 1,024 of the 2^53 uniforms around
    each of 716 thresholds) is drawn by `_neuron_steps`, so a gap is np.log1p's even where another log1p would
    round across an integer."""
    if p <= 0.0 or n_steps <= 0 or not neurons.size:
        return np.zeros(0, np.int64), np.zeros(neurons.size, np.int64)
    steps, counts, unsure = _kernel().draw_set(streams.key, neurons, p, n_steps, CANDIDATE_P, *_gap_table(),
                                               _WINDOW)
    if not unsure.any():
        return steps, counts
    parts = np.split(steps, np.cumsum(counts)[:-1])
    for row in np.flatnonzero(unsure).tolist():
        parts[row] = _neuron_steps(streams, int(neurons[row]), p, n_steps)
    return np.concatenate(parts), np.array([part.size for part in parts], np.int64)


def trial_drive(spec: NetworkSpec, n_steps: int, base_seed: int, round_: int, trial: int) -> TrialDrive:
    """The drive events of one trial (same arguments, same events, on any machine)."""
    return _trials(spec.drive_sets, spec.params.dt_ms, n_steps, base_seed, round_, trial, 1)[0]


@functools.lru_cache(maxsize=64)
def _trial_keys(base_seed: int, round_: int, first_trial: int, n_trials: int) -> np.ndarray:
    """The Philox keys of trials first_trial .. first_trial + n_trials - 1, one row each (read-only)."""
    keys = np.array([_trial_key(base_seed, round_, t) for t in range(first_trial, first_trial + n_trials)],
                    np.uint64).reshape(n_trials, 2)
    keys.flags.writeable = False
    return keys


def _trials(drive_sets, dt_ms: float, n_steps: int, base_seed: int, round_: int, first_trial: int,
            n_trials: int) -> tuple[TrialDrive, ...]:
    """`_trial_drive` of trials first_trial .. first_trial + n_trials - 1, the same events, all in one compiled
    call (flyhpc.drive_kernel.draw_trials); a trial it leaves unsure is drawn by `_trial_drive`."""
    trials = range(first_trial, first_trial + n_trials)
    dt_s = dt_ms / 1000.0
    sets = [(np.asarray(s.indices, dtype=np.int32), s.rate_hz * dt_s) for s in drive_sets]
    sets = [(neurons, p) for neurons, p in sets if neurons.size and not p <= 0.0]  # `_set_steps`'s test
    if not sets or n_steps <= 0 or n_steps >= 2**31 or n_trials <= 0:  # no events, or past a packed key's room
        return tuple(_trial_drive(drive_sets, dt_ms, n_steps, base_seed, round_, t) for t in trials)
    if len(sets) == 1:
        neurons, p = sets[0][0], np.full(sets[0][0].size, sets[0][1])
    else:
        neurons = np.concatenate([neurons for neurons, _ in sets])
        p = np.concatenate([np.full(neurons.size, p) for neurons, p in sets])
    if neurons.size > 1:  # the kernel takes its rows in ascending neuron order
        order = np.argsort(neurons, kind="stable")
        neurons, p = neurons[order], p[order]
    keys = _trial_keys(int(base_seed), int(round_), int(first_trial), int(n_trials))
    out = []
    for steps, events, ends, unsure in _draw_parts(keys, neurons, p, n_steps):
        lo = 0
        for hi, redraw in zip(ends.tolist(), unsure.tolist()):
            trial = trials[len(out)]
            out.append(_trial_drive(drive_sets, dt_ms, n_steps, base_seed, round_, trial) if redraw
                       else TrialDrive(trial=trial, steps=steps[lo:hi], neurons=events[lo:hi]))
            lo = hi
    return tuple(out)


def _draw_parts(keys: np.ndarray, neurons: np.ndarray, p: np.ndarray, n_steps: int) -> list[tuple]:
    """`draw_trials` of the trials (rows of `keys`), as the results of consecutive runs of trials drawn on up to
    usable_cpus() threads at once (the kernel releases the GIL; a trial's events depend only on its key) when
    they expect DRAW_EVENTS_PER_THREAD events per thread or more (the paper's 32 x 100 s: 13 M events, 0.7 s on
    one thread); one part otherwise."""
    draw, args = _kernel().draw_trials, (neurons, p, n_steps, CANDIDATE_P, *_gap_table(), _WINDOW)
    n_parts = min(keys.shape[0], int(float(p.sum()) * n_steps * keys.shape[0] // DRAW_EVENTS_PER_THREAD))
    if n_parts > 1:  # asked only then: a screen draws ~10^5 small batches
        n_parts = min(n_parts, usable_cpus())
    if n_parts <= 1:
        return [draw(keys, *args)]
    bounds = np.linspace(0, keys.shape[0], n_parts + 1).astype(int).tolist()
    with ThreadPoolExecutor(n_parts, thread_name_prefix="flyhpc-drive") as pool:
        return list(pool.map(lambda lo, hi: draw(keys[lo:hi], *args), bounds[:-1], bounds[1:]))


def _trial_drive(drive_sets, dt_ms: float, n_steps: int, base_seed: int, round_: int, trial: int) -> TrialDrive:
    """One trial, set after set (`_set_steps`), then sorted by (step, neuron)."""
    streams = _Streams(base_seed, round_, trial)
    dt_s = dt_ms / 1000.0
    steps_parts, neuron_parts = [], []
    for drive_set in drive_sets:
        neurons = np.asarray(drive_set.indices, dtype=np.int32)
        if not neurons.size:  # an empty set (an experiment's unused second set) adds nothing
            continue
        steps, counts = _set_steps(streams, neurons, drive_set.rate_hz * dt_s, n_steps)
        steps_parts.append(steps)
        neuron_parts.append(np.repeat(neurons, counts))
    if not steps_parts:
        return TrialDrive(trial, np.zeros(0, np.int64), np.zeros(0, np.int32))
    if len(steps_parts) == 1 and counts.size == 1:  # one neuron (an atlas): its steps are in order already
        return TrialDrive(trial=trial, steps=steps, neurons=neuron_parts[0])
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
    return experiment_drive(spec.drive_sets, spec.params, n_steps, n_trials, base_seed, round_, first_trial)


def experiment_drive(drive_sets: tuple[DriveSet, ...], params: Params, n_steps: int, n_trials: int,
                     base_seed: int = 0, round_: int = 1, first_trial: int = 0) -> Drive:
    """`make_drive` without a NetworkSpec: the drive depends only on the driven neurons (row indices), their
    rates and dt, not on the network it drives (screens reuse one network for many experiments)."""
    trials = _trials(drive_sets, params.dt_ms, n_steps, base_seed, round_, first_trial, n_trials)
    return Drive(n_steps=n_steps, base_seed=int(base_seed), round=int(round_), trials=trials)
