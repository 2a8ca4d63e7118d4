"""State rows ordered apart from neuron ids (row_order): the same spikes, step starts and final states as rows
by id, bit for bit, lazy and through clock-driven stretches; the pilot's order puts the most reached neurons
first; run_trials orders rows only for long runs, with the same results."""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc.drive import TrialDrive
from flyhpc.backends.native import trials as trials_module
from flyhpc.backends.native.row_order import RowOrder, order_by_inputs
from flyhpc.backends.native.trials import EngineNetwork, LazySettings, pilot_order, run_trial, run_trials
from tests.unit.backends.native.test_engines import P, PURE_LAZY, poisson_drive, random_net, same_state
from tests.unit.backends.native.test_split import FLAPPY


@pytest.fixture(scope="module")
def net():
    return EngineNetwork.from_arrays(*random_net(1000, 50, 3.0, seed=1), P, 3000)


def _random_order(net, seed):
    owner = np.random.default_rng(seed).permutation(net.n_neurons).astype(np.int32)
    slot = np.empty_like(owner)
    slot[owner] = np.arange(net.n_neurons, dtype=np.int32)
    return RowOrder(slot=slot, owner=owner, identity=False)


@pytest.mark.parametrize("settings", [PURE_LAZY, LazySettings(), FLAPPY], ids=["lazy", "default", "flappy"])
def test_rows_in_any_order_give_the_same_trial(net, settings):
    trial = poisson_drive(range(20), net.n_steps, 200.0, seed=2)
    by_id = run_trial(net, trial, "lazy", settings)
    assert by_id.spike_neurons.size > 1000
    for seed in (1, 2):
        shuffled = run_trial(net, trial, "lazy", settings, order=_random_order(net, seed))
        assert same_state(by_id, shuffled)
        assert shuffled.stats == by_id.stats
    if settings is FLAPPY:
        assert by_id.stats["clock_steps"] > 0 and by_id.stats["switches"] >= 2


def test_runaway_clock_steps_record_spikes_by_id():
    """x9 weights: most steps clock-driven, many spikers per step, rows shuffled."""
    indptr, indices, w, refractory = random_net(1000, 50, 3.0, seed=1)
    big = EngineNetwork.from_arrays(indptr, indices, 3.0 * w, refractory, P, 1500)
    trial = poisson_drive(range(20), big.n_steps, 200.0, seed=2)
    by_id = run_trial(big, trial, "lazy")
    shuffled = run_trial(big, trial, "lazy", order=_random_order(big, 3))
    assert by_id.stats["clock_steps"] > big.n_steps // 2
    assert same_state(by_id, shuffled)
    steps = np.diff(by_id.step_starts)
    assert steps.max() > 20  # steps with many spikers, recorded ascending by id
    assert all(np.all(np.diff(shuffled.spike_neurons[a:b]) > 0)
               for a, b in zip(shuffled.step_starts[:-1], shuffled.step_starts[1:]) if b - a > 1)


def test_order_by_inputs_counts_each_spike_times_its_row():
    # 0 -> 3, 4 ; 1 -> 4 ; 2 -> 5, 4, 3 (six neurons)
    indptr = np.array([0, 2, 3, 6, 6, 6, 6])
    indices = np.array([3, 4, 4, 5, 4, 3], np.int32)
    order = order_by_inputs(indptr, indices, np.array([0, 0, 1, 2], np.int32))
    # inputs: 3 <- 2 + 1 = 3, 4 <- 2 + 1 + 1 = 4, 5 <- 1; others 0 (ties by id)
    assert order.owner.tolist() == [4, 3, 5, 0, 1, 2]
    assert order.slot[order.owner].tolist() == list(range(6))
    assert not order.identity


def test_pilot_order_puts_the_most_reached_first(net):
    trial = poisson_drive(range(20), net.n_steps, 200.0, seed=2)
    order = pilot_order(net, trial.steps, trial.neurons, LazySettings(pilot_steps=1000))
    keep = trial.steps < 1000
    pilot = run_trial(EngineNetwork.from_arrays(*random_net(1000, 50, 3.0, seed=1), P, 1000),
                      TrialDrive(0, trial.steps[keep], trial.neurons[keep]))
    assert pilot.spike_neurons.size > 100
    fired, counts = np.unique(pilot.spike_neurons, return_counts=True)
    inputs = np.zeros(net.n_neurons)
    for j, c in zip(fired, counts):
        np.add.at(inputs, net.indices[net.indptr[j]:net.indptr[j + 1]], c)
    assert inputs[order.owner[0]] == inputs.max() > 0
    assert np.all(np.diff(inputs[order.owner]) <= 0)
    late = trial.steps >= 1000  # a drive that starts after the pilot: rows stay by id
    assert pilot_order(net, trial.steps[late], trial.neurons[late], LazySettings(pilot_steps=1000)).identity


@pytest.mark.parametrize("threads", [1, 2])
def test_run_trials_orders_rows_for_long_runs_with_the_same_results(net, threads, monkeypatch):
    pilots = []
    monkeypatch.setattr(trials_module, "pilot_order", lambda *a: pilots.append(a) or pilot_order(*a))
    trials = [poisson_drive(range(20), net.n_steps, 200.0, seed=s, trial=s) for s in range(3)]
    by_id = run_trials(net, trials, "lazy", threads, LazySettings(order_min_steps=10 ** 9))
    assert not pilots
    ordered = run_trials(net, trials, "lazy", threads, LazySettings(order_min_steps=3 * net.n_steps // threads,
                                                                    pilot_steps=500))
    assert len(pilots) == 1
    assert all(same_state(a, b) and a.trial == b.trial for a, b in zip(by_id, ordered))


def test_wrapped_stamps_translate_rows_again(net, monkeypatch):
    """Stamps wrapping every second trial: a row translated under an earlier order is never read as current."""
    monkeypatch.setattr(trials_module, "STAMP_MAX", 2)
    trial = poisson_drive(range(20), net.n_steps, 200.0, seed=4)
    by_id = run_trial(net, trial, "lazy", PURE_LAZY)
    for seed in (5, 6, 7, 8):
        assert same_state(by_id, run_trial(net, trial, "lazy", PURE_LAZY, order=_random_order(net, seed)))
