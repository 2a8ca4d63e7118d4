"""Seeded drive: Bernoulli law, independence from trial order and batching, keyed by its inputs."""

import numpy as np
import pytest

from flyhpc.data.connectome import connectome_from_edges
from flyhpc.drive import make_drive, trial_drive
from flyhpc.model import Experiment
from flyhpc.network import build_network


def _spec(rate=200.0, rate2=0.0, act2=()):
    ids = np.arange(100, 110, dtype=np.int64)
    conn = connectome_from_edges(ids, [0], [1], [1], "test", "d")
    return build_network(conn, Experiment(name="t", activate=(100, 101, 102), rate_hz=rate,
                                          activate2=act2, rate2_hz=rate2))


def test_events_sorted_in_range_and_only_on_driven_neurons():
    spec = _spec(act2=(105,), rate2=50.0)
    d = trial_drive(spec, 5000, base_seed=1, round_=1, trial=0)
    assert np.all(np.diff(d.steps) >= 0)
    same = np.diff(d.steps) == 0
    assert np.all(np.diff(d.neurons)[same] > 0)  # at most one event per neuron and step
    assert d.steps.min() >= 0 and d.steps.max() < 5000
    assert set(np.unique(d.neurons).tolist()) == {0, 1, 2, 5}


def test_rate_follows_bernoulli_per_step():
    spec = _spec(rate=200.0)
    n_steps = 200_000
    d = trial_drive(spec, n_steps, 0, 1, 0)
    counts = np.bincount(d.neurons, minlength=3)[:3]
    p = 200.0 * 1e-4
    expected, sd = n_steps * p, np.sqrt(n_steps * p * (1 - p))
    assert np.all(np.abs(counts - expected) < 5 * sd)
    gaps = np.diff(d.steps[d.neurons == 0])
    assert gaps.mean() == pytest.approx(1 / p, rel=0.05)  # geometric gaps, mean 1/p


def test_trial_does_not_depend_on_batch_or_order():
    spec = _spec()
    batch = make_drive(spec, 3000, n_trials=4, base_seed=7, round_=2)
    alone = trial_drive(spec, 3000, 7, 2, 3)
    assert np.array_equal(batch.trials[3].steps, alone.steps)
    assert np.array_equal(batch.trials[3].neurons, alone.neurons)
    later = make_drive(spec, 3000, n_trials=2, base_seed=7, round_=2, first_trial=2)
    assert np.array_equal(later.trials[1].steps, alone.steps)


def test_every_key_part_changes_the_events():
    spec = _spec()
    base = trial_drive(spec, 3000, 0, 1, 0).steps
    for other in (trial_drive(spec, 3000, 1, 1, 0), trial_drive(spec, 3000, 0, 2, 0),
                  trial_drive(spec, 3000, 0, 1, 1), trial_drive(_spec(rate=201.0), 3000, 0, 1, 0)):
        assert not np.array_equal(base, other.steps)


def test_a_zero_rate_set_has_no_events():
    """Experiments refuse activation at 0 Hz; the drive itself gives such a set no kick."""
    from flyhpc.drive import _trial_drive
    from flyhpc.model import DriveSet

    sets = (DriveSet(np.array([0, 1], np.int32), 200.0), DriveSet(np.array([6], np.int32), 0.0))
    d = _trial_drive(sets, 0.1, 10_000, 0, 1, 0)
    assert set(d.neurons.tolist()) == {0, 1}


def _train(drive, neuron):
    return drive.steps[drive.neurons == neuron]


def test_a_train_depends_only_on_its_neuron_not_on_the_rest_of_the_experiment():
    """Common random numbers (drive version 2): what else is driven or silenced leaves a neuron's train alone."""
    ids = np.arange(100, 110, dtype=np.int64)
    conn = connectome_from_edges(ids, [0, 3], [1, 4], [1, 2], "test", "d")
    alone = build_network(conn, Experiment(name="a", activate=(101,), rate_hz=200.0))
    crowd = build_network(conn, Experiment(name="b", activate=(105, 101, 103), rate_hz=200.0, activate2=(108,),
                                           rate2_hz=50.0, silence=(100, 104), silence_mode="outgoing"))
    for trial in range(3):
        a, b = trial_drive(alone, 4000, 9, 1, trial), trial_drive(crowd, 4000, 9, 1, trial)
        assert np.array_equal(_train(a, 1), _train(b, 1)) and _train(a, 1).size > 40


def test_a_lower_rate_train_is_a_subset_of_a_higher_rate_train():
    """One uniform per step and neuron, a kick where below p: rate sweeps are paired too, across the candidate
    ceiling (CANDIDATE_P = 500 Hz at dt 0.1 ms) and up to a kick every step."""
    trains = [_train(trial_drive(_spec(rate=rate), 20_000, 4, 1, 2), 0) for rate in (10, 100, 200, 499, 501, 2000)]
    for low, high in zip(trains, trains[1:]):
        assert np.isin(low, high).all() and low.size < high.size
    assert _train(trial_drive(_spec(rate=10_000), 500, 4, 1, 2), 0).tolist() == list(range(500))


def test_a_longer_run_extends_a_shorter_one():
    for rate in (200.0, 1500.0):
        short, long = trial_drive(_spec(rate=rate), 3_000, 1, 1, 0), trial_drive(_spec(rate=rate), 50_000, 1, 1, 0)
        inside = long.steps < 3_000
        assert np.array_equal(short.steps, long.steps[inside]) and np.array_equal(short.neurons, long.neurons[inside])


@pytest.mark.parametrize("rate", [200.0, 3000.0])  # below and above the candidate ceiling
def test_rate_follows_bernoulli_per_step_on_both_paths(rate):
    n_steps, p = 200_000, rate * 1e-4
    d = trial_drive(_spec(rate=rate), n_steps, 0, 1, 0)
    counts = np.bincount(d.neurons, minlength=3)[:3]
    assert np.all(np.abs(counts - n_steps * p) < 5 * np.sqrt(n_steps * p * (1 - p)))
    gaps = np.diff(d.steps[d.neurons == 1])
    assert gaps.mean() == pytest.approx(1 / p, rel=0.05)
    # geometric gaps: P(gap = 1) = p
    assert np.mean(gaps == 1) == pytest.approx(p, abs=5 * np.sqrt(p * (1 - p) / gaps.size))


def test_the_stream_is_pinned():
    """The events of a fixed key as drive version 2 defines them (sha256 of the little-endian steps and neurons
    of three trials; set 2 at 600 Hz takes the per-step path): a faster drawing must not change one."""
    import hashlib

    spec = _spec(act2=(105, 107), rate2=600.0)
    digest = hashlib.sha256()
    for trial in range(3):
        d = trial_drive(spec, 20_000, 3, 2, trial)
        digest.update(d.steps.astype("<i8").tobytes())
        digest.update(d.neurons.astype("<i4").tobytes())
    assert digest.hexdigest() == "21659dd51efe510301f8393678201d56c8c0e8c0a749c1cfdc0b29eb88fd74ae"
    assert d.steps.dtype == np.int64 and d.neurons.dtype == np.int32


@pytest.mark.parametrize("rate", [200.0, 800.0])
def test_a_set_drawn_together_equals_its_neurons_drawn_one_by_one(rate):
    from flyhpc.drive import _neuron_steps, _set_steps, _Streams

    neurons = np.array([7, 2, 40_000, 5], np.int32)
    steps, counts = _set_steps(_Streams(4, 5, 6), neurons, rate * 1e-4, 5000)
    parts = [_neuron_steps(_Streams(4, 5, 6), int(n), rate * 1e-4, 5000) for n in neurons]
    assert counts.tolist() == [len(p) for p in parts]
    assert np.array_equal(steps, np.concatenate(parts))


def test_a_short_first_draw_is_extended_with_the_same_numbers(monkeypatch):
    from flyhpc import drive

    want = drive._neuron_steps(drive._Streams(1, 1, 0), 3, 0.02, 5000)
    monkeypatch.setattr(drive, "_candidate_pairs", lambda n_steps: 8)  # 8 candidates never pass 5,000 steps
    assert np.array_equal(drive._neuron_steps(drive._Streams(1, 1, 0), 3, 0.02, 5000), want)
    steps, _ = drive._set_steps(drive._Streams(1, 1, 0), np.array([3], np.int32), 0.02, 5000)
    assert np.array_equal(steps, want)
