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


def test_zero_rate_set_has_no_events():
    spec = _spec(act2=(106,), rate2=0.0)
    d = trial_drive(spec, 10_000, 0, 1, 0)
    assert 6 not in set(d.neurons.tolist())


def test_the_stream_is_pinned():
    """The events of a fixed key, as every version since the drive was defined drew them (sha256 of
    the little-endian steps and neurons of three trials): a faster drawing must not change one."""
    import hashlib

    spec = _spec(act2=(105, 107), rate2=50.0)
    digest = hashlib.sha256()
    for trial in range(3):
        d = trial_drive(spec, 20_000, 3, 2, trial)
        digest.update(d.steps.astype("<i8").tobytes())
        digest.update(d.neurons.astype("<i4").tobytes())
    assert digest.hexdigest() == "46e189c5c056030704f25dde36c4add0c466e9655c56a244513336e4f637c570"
    assert d.steps.dtype == np.int64 and d.neurons.dtype == np.int32


@pytest.mark.parametrize("chunk", [None, 8])  # 8 gaps never pass 5,000 steps: the wound-back path
def test_neurons_drawn_together_equal_neurons_drawn_one_by_one(chunk):
    from flyhpc.drive import _bernoulli_sets, _bernoulli_steps

    def rng():
        return np.random.Generator(np.random.Philox(np.random.SeedSequence([4, 5, 6])))

    together, alone = rng(), rng()
    steps, counts = _bernoulli_sets(together, 0.02, 7, 5000, chunk)
    parts = [_bernoulli_steps(alone, 0.02, 5000, chunk) for _ in range(7)]
    assert counts.tolist() == [len(p) for p in parts]
    assert np.array_equal(steps, np.concatenate(parts))
    assert together.random() == alone.random()  # both generators are left at the same point
