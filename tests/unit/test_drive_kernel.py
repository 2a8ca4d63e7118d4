"""The compiled drive (flyhpc.drive_kernel) against numpy: the Philox stream bit for bit, the gap table, and the
trains against a plain numpy statement of drive version 2 written here, apart from the implementation."""

import math

import numpy as np
import pytest

from flyhpc import drive
from flyhpc.drive import experiment_drive
from flyhpc.drive_kernel import raw
from flyhpc.model import DriveSet, Params

P = 0.05  # CANDIDATE_P: 500 Hz at dt 0.1 ms
EMPTY = np.zeros(0, np.int32)


def _numpy_stream(key, counter, count):
    bits = np.random.Philox(key=key)
    bits.state = {"bit_generator": "Philox", "buffer": np.zeros(4, np.uint64), "buffer_pos": 4, "has_uint32": 0,
                  "uinteger": 0, "state": {"counter": np.array(counter, np.uint64), "key": np.array(key, np.uint64)}}
    return bits.random_raw(count)


def test_the_compiled_philox_is_numpys_including_counter_carries():
    rng = np.random.default_rng(5)
    top = 2**64 - 1
    counters = [[0, 0, 0, 0], [0, 0, 7, 1], [top - 2, 0, 3, 0], [top, top, 5, 1], [top - 1, top, top, 9],
                [top, top, top, top]]  # the last wraps the whole counter to 0
    counters += [rng.integers(0, 2**64, 4, dtype=np.uint64, endpoint=False).tolist() for _ in range(20)]
    for counter in counters:
        key = rng.integers(0, 2**64, 2, dtype=np.uint64)
        count = int(rng.integers(1, 40))
        got = raw(key, np.array(counter, np.uint64), count)
        assert got.dtype == np.uint64 and np.array_equal(got, _numpy_stream(key, counter, count)), counter


def _reference_train(key, neuron, p, n_steps):
    """Drive version 2, plainly: geometric(P) gaps by inversion with marks from stream 0, per-step uniforms in
    [P, 1) from stream 1 above P."""
    def uniforms(stream, count):
        return (_numpy_stream(key, [0, 0, neuron, stream], count) >> np.uint64(11)) * 2.0**-53

    pairs = 4
    while True:
        u = uniforms(0, 2 * pairs)
        candidates = np.cumsum(np.floor(np.log1p(-u[0::2]) / math.log1p(-P)).astype(np.int64) + 1) - 1
        if candidates[-1] >= n_steps:
            break
        pairs *= 2
    inside = candidates < n_steps
    if p <= P:
        return candidates[inside & (u[1::2] * P < p)]
    kicks = uniforms(1, n_steps) < (p - P) / (1 - P)
    kicks[candidates[inside]] = True
    return np.flatnonzero(kicks)


def _reference_trial(sets, n_steps, base_seed, round_, trial):
    key = np.random.SeedSequence([2, base_seed, round_, trial]).generate_state(2, np.uint64)
    steps, neurons = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for indices, rate_hz in sets:
        for neuron in indices:
            train = _reference_train(key, neuron, rate_hz * 1e-4, n_steps) if rate_hz > 0 else np.zeros(0, np.int64)
            steps.append(train)
            neurons.append(np.full(train.size, neuron))
    steps, neurons = np.concatenate(steps), np.concatenate(neurons)
    order = np.lexsort((neurons, steps))
    return steps[order], neurons[order]


@pytest.mark.parametrize("sets", [
    [([17], 200.0)],
    [([3], 5.0), ([], 0.0)],
    [([9, 2, 40_000, 5], 200.0), ([7, 11], 800.0)],  # neurons out of order; set 2 on the per-step path
    [([1, 2, 3], 499.0), ([4], 501.0)],
    [([0, 1], 10_000.0)],  # p = 1: a kick every step
    [([123_456], 0.001)],
])
def test_trains_follow_the_plain_definition(sets):
    drive_sets = tuple(DriveSet(np.array(n, np.int32), r) for n, r in sets)
    for n_steps, base_seed in ((1, 0), (5, 2**40 + 1), (3_000, 7), (40_000, 11)):
        got = experiment_drive(drive_sets, Params(), n_steps, 3, base_seed=base_seed, round_=2, first_trial=4)
        for trial in got.trials:
            steps, neurons = _reference_trial(sets, n_steps, base_seed, 2, trial.trial)
            assert trial.steps.dtype == np.int64 and trial.neurons.dtype == np.int32
            assert np.array_equal(trial.steps, steps) and np.array_equal(trial.neurons, neurons)


def test_the_gap_table_steps_where_numpys_log1p_does():
    """Every uniform up to 200 steps of 2^-53 around each threshold, and a million random ones, get the gap
    numpy's np.log1p gives (so on this machine no uniform would even need the numpy fallback)."""
    thresholds, first_gap = drive._gap_table()
    inner = thresholds[1:-1]
    assert np.all(np.diff(thresholds) >= 0) and thresholds[0] == 0 and inner[-1] == 2**53 - 1
    r = np.concatenate([(inner[:, None] + np.arange(-200, 201)).ravel(),
                        np.random.default_rng(2).integers(0, 2**53, 1_000_000)])
    r = r[(r >= 0) & (r < 2**53)]
    want = drive._gaps(r * 2.0**-53)
    k = np.searchsorted(thresholds, r, side="right") - 1  # the table's gap - 1, as the kernel's lookup finds it
    assert np.array_equal(k + 1, want)
    assert np.array_equal(first_gap, np.searchsorted(thresholds[:-1], np.arange(4096) << 41, side="right") - 1)


def test_uniforms_next_to_a_threshold_are_drawn_by_numpy_with_the_same_trains(monkeypatch):
    """With a window covering every uniform, every trial goes through `_trial_drive` and every neuron through
    `_neuron_steps` (numpy): the trains do not change."""
    sets = (DriveSet(np.array([4, 1, 90], np.int32), 200.0), DriveSet(np.array([6], np.int32), 700.0))
    fast = experiment_drive(sets, Params(), 20_000, 2, base_seed=3)
    calls = []
    monkeypatch.setattr(drive, "_WINDOW", 2**60)
    real = drive._neuron_steps
    monkeypatch.setattr(drive, "_neuron_steps", lambda *a: calls.append(a[1]) or real(*a))
    slow = experiment_drive(sets, Params(), 20_000, 2, base_seed=3)
    assert sorted(calls) == [1, 1, 4, 4, 6, 6, 90, 90]
    for a, b in zip(fast.trials, slow.trials):
        assert np.array_equal(a.steps, b.steps) and np.array_equal(a.neurons, b.neurons) and a.steps.size > 1000



@pytest.mark.parametrize("window", [drive._WINDOW, 2**60])
def test_trials_drawn_on_threads_equal_trials_drawn_in_one_call(monkeypatch, window):
    """Many expected events: consecutive runs of trials are drawn on threads (parts of 2-3 trials here); the
    trials, their numbers and order are those of one call, also where every trial is left to numpy (window)."""
    sets = (DriveSet(np.array([4, 1, 90], np.int32), 200.0), DriveSet(np.array([6], np.int32), 700.0))
    monkeypatch.setattr(drive, "_WINDOW", window)
    monkeypatch.setattr(drive, "usable_cpus", lambda: 1)
    one = experiment_drive(sets, Params(), 20_000, 7, base_seed=3, first_trial=5)
    monkeypatch.setattr(drive, "usable_cpus", lambda: 3)
    monkeypatch.setattr(drive, "DRAW_EVENTS_PER_THREAD", 1000)
    real, parts = drive._kernel().draw_trials, []
    monkeypatch.setattr(drive._kernel(), "draw_trials", lambda keys, *a: parts.append(len(keys)) or real(keys, *a))
    threaded = experiment_drive(sets, Params(), 20_000, 7, base_seed=3, first_trial=5)
    assert sorted(parts) == [2, 2, 3]
    assert [t.trial for t in threaded.trials] == [t.trial for t in one.trials] == list(range(5, 12))
    for a, b in zip(one.trials, threaded.trials):
        assert np.array_equal(a.steps, b.steps) and np.array_equal(a.neurons, b.neurons) and a.steps.size > 1000
