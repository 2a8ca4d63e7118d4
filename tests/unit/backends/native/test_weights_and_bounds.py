"""The native engines' compact weights (int16 synapse counts x one unit) and the cheapest reject test: both
change nothing — the same trials bit for bit as float64 weights, and no crossing is ever rejected."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flyhpc.backends.native.predict import cannot_cross, quick_bounds, quickly_below
from flyhpc.backends.native.tables import make_tables
from flyhpc.backends.native.trials import EngineNetwork, compact_weights, run_trial
from flyhpc.model import Params

from .test_engines import PURE_LAZY, brute_first_crossing, poisson_drive, random_net, same_state

P = Params()


def test_compact_weights_are_exact_or_refused():
    counts = np.array([0, 1, -1, 7, -250, 32767, -32767])
    weights = counts * P.w_syn_mv
    got = compact_weights(weights, P.w_syn_mv)
    assert got.dtype == np.int16 and np.array_equal(got, counts)
    assert np.array_equal(got * P.w_syn_mv, weights)  # the product the kernels compute
    assert compact_weights(np.append(weights, 0.1), P.w_syn_mv) is None  # not a multiple
    assert compact_weights(np.append(weights, 15 * P.w_syn_mv * 3.0), P.w_syn_mv) is None  # 45 x w_syn but for an ulp
    assert compact_weights(np.append(weights, 40_000 * P.w_syn_mv), P.w_syn_mv) is None  # beyond int16
    assert compact_weights(np.append(weights, np.nan), P.w_syn_mv) is None
    assert compact_weights(weights, 0.0) is None and compact_weights(weights, np.inf) is None


def test_networks_take_compact_weights_only_when_exact():
    arrays = random_net(200, 20, 1.0, seed=4)
    compact = EngineNetwork.from_arrays(*arrays, P, 100)
    assert compact.weights_mv.dtype == np.int16 and compact.weight_unit_mv == P.w_syn_mv
    scaled = random_net(200, 20, 3.0, seed=4)  # count x w_syn x 3 is not always a float64 multiple of w_syn
    wide = EngineNetwork.from_arrays(*scaled, P, 100)
    assert wide.weights_mv.dtype == np.float64 and wide.weight_unit_mv == 1.0
    assert np.array_equal(wide.weights_mv, scaled[2])


@pytest.mark.parametrize("engine", ["lazy", "clock"])
def test_compact_weights_give_the_same_trials_as_float64(engine):
    """An active network (weights count x 0.825 mV) in int16 counts and in float64 mV: identical trials."""
    params = Params(w_syn_mv=3 * P.w_syn_mv)
    indptr, indices, _, refractory = random_net(1000, 50, 1.0, seed=1)
    counts = np.rint(random_net(1000, 50, 1.0, seed=1)[2] / P.w_syn_mv)
    compact = EngineNetwork.from_arrays(indptr, indices, counts * params.w_syn_mv, refractory, params, 2000)
    assert compact.weights_mv.dtype == np.int16
    wide = dataclasses.replace(compact, weights_mv=compact.weights_mv * params.w_syn_mv, weight_unit_mv=1.0)
    trial = poisson_drive(range(20), 2000, 200.0, seed=2)
    a = run_trial(compact, trial, engine, PURE_LAZY)
    b = run_trial(wide, trial, engine, PURE_LAZY)
    assert same_state(a, b)
    assert a.spike_neurons.size > 1000 and np.unique(a.spike_neurons).size > 100


@pytest.mark.parametrize("params", [P, Params(tau_s_ms=30.0)], ids=["tau_s<tau_m", "tau_s>tau_m"])
def test_cheapest_reject_never_drops_a_crossing(params):
    tabs = make_tables(params, 3000)
    assert (tabs.coef_c >= 0.0).all() and tabs.coef_c_max == tabs.coef_c.max() > 0.0
    rng = np.random.default_rng(5)
    u0 = rng.uniform(-30, 9, 4000)
    g0 = rng.uniform(-60, 60, 4000)
    rejected = 0
    for u, g in zip(u0, g0):
        if cannot_cross(u, g, tabs.u_th_mv, tabs.kappa, tabs.coef_c_max):
            rejected += 1
            assert brute_first_crossing(tabs, 0, u, g, 0, 3000) == -1
    assert 500 < rejected < 4000  # both outcomes exercised


@pytest.mark.parametrize("params", [P, Params(tau_s_ms=30.0), Params(v_th_mv=1e4)], ids=["P", "slow", "high"])
def test_the_quick_in_pass_test_passes_only_states_cannot_cross_rules_out(params):
    """quickly_below (the input pass) => cannot_cross (the re-prediction), on wide random states and on states a
    few ulps either side of both limits, where rounding decides: a neuron it rules out is one the full test would."""
    tabs = make_tables(params, 3000)
    u_th, kappa, c_max = tabs.u_th_mv, tabs.kappa, tabs.coef_c_max
    t, lo = quick_bounds(u_th, kappa, c_max)
    rng = np.random.default_rng(7)
    wide = np.column_stack([rng.uniform(-2 * lo, 2 * u_th, 3000), rng.uniform(-2 * lo, 2 * lo, 3000)])
    edges = []
    for limit in (t, u_th - 1e-10 * (1.0 + u_th)):  # the quick limit, about where the full one is (g = 0)
        for g in (0.0, 0.25 * u_th / c_max, -lo, -lo * (1 + 1e-15)):
            u = limit - max(g, 0.0) * c_max
            edges += [(v, g) for v in u + np.spacing(u) * np.arange(-8, 9)]
    def counts(states):  # (states quickly_below passes, states in its range cannot_cross rules out)
        quick = full = 0
        for u, g in states:
            if quickly_below(u, g, t, lo, c_max):
                quick += 1
                assert cannot_cross(u, g, u_th, kappa, c_max), (u, g)
            full += min(u, g) >= -lo and cannot_cross(u, g, u_th, kappa, c_max)
        return quick, full

    quick, full = counts(map(tuple, wide))
    assert 0.99 * full <= quick <= full and quick > 300  # within its range as strong, on states of every kind
    quick, full = counts(edges)
    assert 0 < quick < full  # near the limits: some pass both, some only the full test
    assert quick_bounds(u_th, kappa, 0.0)[0] == -np.inf  # no tables to bound by: nothing passes
