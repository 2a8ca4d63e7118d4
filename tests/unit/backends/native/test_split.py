"""One lazy trial on several threads (split engine): spikes, step starts and final state bit for bit those of
the one-thread lazy engine, whatever the cut, delay, activity (clock fallback), refractoriness or silencing;
the cut, the row layout, run_trials' choice, and a failing worker that stops the others."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from flyhpc.backends.native import split_run
from flyhpc.backends.native.split_run import split_bounds
from flyhpc.backends.native import trials as trials_module
from flyhpc.backends.native.trials import EngineNetwork, LazySettings, run_trial, run_trials, threads_per_trial
from flyhpc.errors import ConfigError
from tests.unit.backends.native.test_engines import P, poisson_drive, random_net, same_state

PURE_LAZY = LazySettings(clock_on=0.0)
FLAPPY = LazySettings(clock_on=0.01, clock_off=0.008, window_steps=8)


def _net(n=400, degree=40, scale=2.0, seed=0, n_steps=2500, delay_ms=1.8, silence=0, sort_rows=False):
    """A busy random network (float64 weights: sums depend on the input order) and its drive."""
    indptr, indices, weights, refractory = random_net(n, degree, scale, seed)
    weights = weights * (1.0 + 1e-3 * np.random.default_rng(seed).random(weights.size))  # never exact multiples
    refractory[n // 2:n // 2 + 20] = 1  # a few neurons that may fire every step
    if silence:
        for pre in range(20, 20 + silence):  # zeroed weights of silenced neurons
            weights[indptr[pre]:indptr[pre + 1]] = 0.0
    if sort_rows:
        order = np.lexsort((indices, np.repeat(np.arange(n), np.diff(indptr))))
        indices, weights = indices[order], weights[order]
    params = dataclasses.replace(P, delay_ms=delay_ms)
    return EngineNetwork.from_arrays(indptr, indices, weights, refractory, params, n_steps)


def _check(net, trial, settings, bounds, min_spikes=200):
    one = run_trial(net, trial, "lazy", settings)
    split = run_trial(net, trial, "lazy", settings, bounds=bounds)
    assert one.spike_neurons.size > min_spikes
    assert same_state(one, split), bounds
    assert np.array_equal(np.sort(one.state_neurons), split.state_neurons)  # every neuron that left rest, by id
    assert split.stats["synaptic_events"] == one.stats["synaptic_events"]
    return one, split


@pytest.mark.parametrize("delay_ms", [0.1, 0.2, 1.8])
@pytest.mark.parametrize("bounds", [[0, 200, 400], [0, 1, 400], [0, 399, 400], [0, 7, 130, 400]])
def test_split_equals_one_thread(delay_ms, bounds):
    net = _net(delay_ms=delay_ms, seed=3)
    assert net.delay_steps == round(delay_ms / 0.1)
    for k, settings in enumerate((LazySettings(), PURE_LAZY, FLAPPY)):
        _check(net, poisson_drive(range(20), net.n_steps, 150.0 + 50 * k, seed=k), settings, bounds)


@pytest.mark.parametrize("seed", [1, 2])
def test_split_through_clock_fallback_silencing_and_refractoriness(seed):
    """Activity that sends parts clock-driven (at different times: each part decides), silenced rows."""
    net = _net(n=600, degree=60, scale=3.0, seed=seed, silence=5, n_steps=2000)
    trial = poisson_drive(range(20), net.n_steps, 200.0, seed=seed)
    one, split = _check(net, trial, LazySettings(), [0, 150, 600])
    assert one.stats["clock_steps"] > 0 and split.stats["clock_steps"] > 0
    _check(net, trial, LazySettings(), [0, 2, 300, 600])
    silenced = np.arange(20, 25)
    assert np.isin(silenced, one.spike_neurons).any()  # silenced neurons still fire


def test_quiet_stretches_and_rows_already_in_part_order():
    """Short bursts with long quiet gaps (the skip across stretches), on rows sorted by target: no copy."""
    net = _net(sort_rows=True, n_steps=3000)
    steps = np.concatenate([np.arange(s, s + 60, 2) for s in (50, 1100, 2500)]).astype(np.int64)
    trial = dataclasses.replace(poisson_drive([0], 10, 0.0, 0), steps=steps, neurons=np.zeros(steps.size, np.int32))
    for bounds in ([0, 200, 400], [0, 10, 20, 400]):
        _check(net, trial, LazySettings(), bounds, min_spikes=50)
        assert net.split_layouts["layouts"][tuple(bounds)].order is None
    unsorted = _net(n_steps=3000)
    _check(unsorted, trial, LazySettings(), [0, 200, 400], min_spikes=50)
    assert unsorted.split_layouts["layouts"][(0, 200, 400)].order is not None  # random rows: stably partitioned


def test_run_trials_splits_when_fewer_trials_than_threads(monkeypatch):
    monkeypatch.setattr(trials_module, "usable_cpus", lambda: 8)
    net = _net(seed=4)
    trials = [poisson_drive(range(20), net.n_steps, 200.0, seed=9 + k, trial=k) for k in range(2)]
    serial = run_trials(net, trials, "lazy", n_threads=1)
    short = run_trials(net, trials[:1], "lazy", n_threads=2)  # 2500 steps: below the default split_min_steps
    assert same_state(serial[0], short[0]) and not net.split_layouts
    settings = LazySettings(split_min_steps=net.n_steps)
    one = run_trials(net, trials[:1], "lazy", n_threads=3, settings=settings)
    assert same_state(serial[0], one[0]) and len(net.split_layouts["layouts"]) == 1
    assert len(next(iter(net.split_layouts["layouts"]))) == 4 and 3 in net.split_layouts["cuts"]  # three parts
    pair = run_trials(net, trials, "lazy", n_threads=4, settings=settings)  # two trials at once, two threads each
    assert all(same_state(s, p) for s, p in zip(serial, pair))
    clock = run_trials(net, trials[:1], "clock", n_threads=2)
    assert same_state(serial[0], clock[0])
    assert threads_per_trial(net, 1, 4, "lazy", settings) == 4 and threads_per_trial(net, 3, 4, "lazy", settings) == 1
    monkeypatch.setattr(trials_module, "usable_cpus", lambda: 1)  # workers never take turns on one CPU
    assert threads_per_trial(net, 1, 4, "lazy", settings) == 1


def test_bounds_balance_in_degree_and_bad_cuts_are_named():
    net = _net(seed=5)
    bounds = split_bounds(net.indptr, net.indices, 3)
    assert bounds[0] == 0 and bounds[-1] == 400 and np.all(np.diff(bounds) > 0)
    load = np.add.reduceat(np.bincount(net.indices, minlength=400) + 1, bounds[:-1])
    assert load.max() < 1.2 * load.mean()
    trial = poisson_drive(range(20), net.n_steps, 200.0, seed=0)
    with pytest.raises(ConfigError, match=r"split bounds \[0, 300, 200, 400\]"):
        run_trial(net, trial, "lazy", bounds=[0, 300, 200, 400])
    with pytest.raises(ConfigError, match="cannot split 400 neurons into 401 parts"):
        split_bounds(net.indptr, net.indices, 401)


def test_a_failing_worker_stops_the_others_and_its_error_is_raised(monkeypatch):
    """Worker 1 raises at once: worker 0 (which would wait for its spikes forever) stops on the abort flag,
    the error reaches the caller, and a later split trial is exact again."""
    net = _net(seed=6)
    trial = poisson_drive(range(20), net.n_steps, 200.0, seed=1)
    expected = run_trial(net, trial, "lazy")
    real = split_run.split_worker

    def failing(w, *args):
        if w == 1:
            raise MemoryError("worker 1 out of memory")
        return real(w, *args)

    monkeypatch.setattr(split_run, "split_worker", failing)
    done = []
    runner = threading.Thread(target=lambda: done.append(_raises(net, trial)))
    runner.start()
    runner.join(timeout=60)
    assert done == ["worker 1 out of memory"]
    monkeypatch.setattr(split_run, "split_worker", real)
    assert same_state(expected, run_trial(net, trial, "lazy", bounds=[0, 200, 400]))


def _raises(net, trial, bounds=(0, 200, 400), error=MemoryError):
    try:
        run_trial(net, trial, "lazy", bounds=bounds)
    except error as exc:
        return str(exc)
    return "no error"


@pytest.mark.parametrize("sort_rows", [False, True])
def test_weights_zeroed_in_place_after_the_layout_is_kept(sort_rows):
    """A screen silences neurons by zeroing their weights in the built network: a kept layout sees it."""
    net = _net(seed=7, sort_rows=sort_rows)
    trial = poisson_drive(range(20), net.n_steps, 200.0, seed=2)
    before = _check(net, trial, LazySettings(), [0, 200, 400])[0]
    for pre in range(20, 30):
        net.weights_mv[net.indptr[pre]:net.indptr[pre + 1]] = 0.0
    after = _check(net, trial, LazySettings(), [0, 200, 400])[0]
    assert not same_state(before, after)


def test_a_thread_that_cannot_start_stops_the_started_ones(monkeypatch):
    """The third worker's thread fails to start: the second (already waiting for it) stops, the error is raised."""
    net = _net(seed=8)
    trial = poisson_drive(range(20), net.n_steps, 200.0, seed=1)
    real = threading.Thread
    started = []

    class Refusing(real):
        def start(self):
            if started:
                raise RuntimeError("can't start new thread")
            started.append(self)
            super().start()

    monkeypatch.setattr(split_run.threading, "Thread", Refusing)
    done = []
    runner = real(target=lambda: done.append(_raises(net, trial, [0, 100, 200, 400], RuntimeError)))
    runner.start()
    runner.join(timeout=60)
    assert done == ["can't start new thread"] and not started[0].is_alive()
