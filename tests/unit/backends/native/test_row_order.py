"""State rows ordered apart from neuron ids (row_order): the same spikes, step starts and final states as rows
by id, bit for bit, lazy and through clock-driven stretches; the pilot's order puts the most reached neurons
first; run_trials orders rows only for long runs, from the first trial's first steps, with the same results
wherever the trials pause to move to it."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from flyhpc.drive import TrialDrive
from flyhpc.backends.native import trials as trials_module
from flyhpc.backends.native.row_order import RowOrder, order_by_inputs
from flyhpc.backends.native.trials import EngineNetwork, LazySettings, SharedPilot, run_trial, run_trials
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


def _recording(monkeypatch, make=order_by_inputs):
    """order_by_inputs in trials replaced by `make`, each call's spikes and order recorded."""
    calls = []

    def recorded(indptr, indices, spike_neurons):
        calls.append((spike_neurons.copy(), make(indptr, indices, spike_neurons)))
        return calls[-1][1]
    monkeypatch.setattr(trials_module, "order_by_inputs", recorded)
    return calls


def test_the_order_comes_from_the_first_trials_first_steps_most_reached_first(net, monkeypatch):
    calls = _recording(monkeypatch)
    trials = [poisson_drive(range(20), net.n_steps, 200.0, seed=s, trial=s) for s in (2, 3)]
    run_trials(net, trials, "lazy", 2, LazySettings(order_min_steps=0, pilot_steps=1000))
    [(spikes, order)] = calls
    first = run_trial(net, trials[0], "lazy")
    assert spikes.size > 100
    assert np.array_equal(spikes, first.spike_neurons[:first.step_starts[1000]])
    fired, counts = np.unique(spikes, return_counts=True)
    inputs = np.zeros(net.n_neurons)
    for j, c in zip(fired, counts):
        np.add.at(inputs, net.indices[net.indptr[j]:net.indptr[j + 1]], c)
    assert inputs[order.owner[0]] == inputs.max() > 0
    assert np.all(np.diff(inputs[order.owner]) <= 0)


def test_a_pilot_without_spikes_keeps_rows_by_id(net):
    pilot = SharedPilot(net, 1000)
    pilot.publish(np.empty(0, np.int32))
    assert pilot.wait().identity


@pytest.mark.parametrize("threads", [1, 2])
def test_run_trials_orders_rows_for_long_runs_with_the_same_results(net, threads, monkeypatch):
    calls = _recording(monkeypatch)
    trials = [poisson_drive(range(20), net.n_steps, 200.0, seed=s, trial=s) for s in range(3)]
    by_id = run_trials(net, trials, "lazy", threads, LazySettings(order_min_steps=10 ** 9))
    assert not calls
    ordered = run_trials(net, trials, "lazy", threads, LazySettings(order_min_steps=3 * net.n_steps // threads,
                                                                    pilot_steps=500))
    assert len(calls) == 1 and not calls[0][1].identity
    assert all(same_state(a, b) and a.trial == b.trial and a.stats == b.stats for a, b in zip(by_id, ordered))


@pytest.mark.parametrize("settings", [PURE_LAZY, FLAPPY], ids=["lazy", "flappy"])
def test_trials_paused_anywhere_go_on_in_the_new_rows_alike(net, settings, monkeypatch):
    """The first trials of both threads pause after pilot_steps steps (before the first, in a quiet stretch, mid
    clock-driven, at the last step, after the end) and move to a random order: the same trials as rows by id."""
    _recording(monkeypatch, lambda *a: _random_order(net, 9))
    trials = [poisson_drive(range(20), net.n_steps, 200.0, seed=s, trial=s) for s in range(3)]
    by_id = run_trials(net, trials, "lazy", 2, replace(settings, order_min_steps=10 ** 9))
    if settings is FLAPPY:
        assert by_id[0].stats["clock_steps"] > 0 and by_id[0].stats["switches"] >= 2
    for pause in (0, 1, 17, 18, 401, 1234, 2222, net.n_steps - 1, net.n_steps, 10 ** 6):
        moved = run_trials(net, trials, "lazy", 2, replace(settings, order_min_steps=0, pilot_steps=pause))
        assert all(same_state(a, b) and a.stats == b.stats for a, b in zip(by_id, moved)), pause


def test_a_failed_pilot_fails_every_waiting_trial_instead_of_hanging(net, monkeypatch):
    def broken(*args):
        raise RuntimeError("no order")
    monkeypatch.setattr(trials_module, "order_by_inputs", broken)
    trials = [poisson_drive(range(20), net.n_steps, 200.0, seed=s, trial=s) for s in range(3)]
    outcome = []

    def run():
        try:
            run_trials(net, trials, "lazy", 2, LazySettings(order_min_steps=0, pilot_steps=500))
        except RuntimeError as exc:
            outcome.append(exc)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "run_trials hangs after its pilot failed"
    assert [str(e) for e in outcome] == ["no order"]
    assert same_state(run_trial(net, trials[1], "lazy"), run_trials(net, trials[1:2], "lazy")[0])


def test_wrapped_stamps_translate_rows_again(net, monkeypatch):
    """Stamps wrapping every second trial: a row translated under an earlier order is never read as current."""
    monkeypatch.setattr(trials_module, "STAMP_MAX", 2)
    trial = poisson_drive(range(20), net.n_steps, 200.0, seed=4)
    by_id = run_trial(net, trial, "lazy", PURE_LAZY)
    for seed in (5, 6, 7, 8):
        assert same_state(by_id, run_trial(net, trial, "lazy", PURE_LAZY, order=_random_order(net, seed)))
