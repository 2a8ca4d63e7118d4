"""The screens' shortcut (flyhpc.backends.native.undriven): a trial run with the driven neurons alone is kept only
where no undriven neuron could have fired, so an experiment's spikes equal those of its own full build.

The network mixes weak neurons (every synapse count 1-3: their targets stay far below threshold) with strong ones
(counts up to 40: their targets fire), so both outcomes of the proof are exercised and counted.
"""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc.backends.native.backend import NativeBackend
from flyhpc.backends.native.tables import make_tables
from flyhpc.backends.native import undriven
from flyhpc.backends.native.undriven import _unit_response_bounds, outgoing_to_others
from flyhpc.data.connectome import connectome_from_edges
from flyhpc.drive import experiment_drive
from flyhpc.model import Experiment, Params
from flyhpc.network import build_network

N = 160
N_STEPS = 4000  # 0.4 s


@pytest.fixture(autouse=True)
def always_try(monkeypatch):
    """These networks are too small for the shortcut to pay (`undriven.MIN_SKIPPED`): try it anyway."""
    monkeypatch.setattr(undriven, "MIN_SKIPPED", 0)


@pytest.fixture(scope="module")
def mixed():
    rng = np.random.default_rng(11)
    pre = np.repeat(np.arange(N), 20)
    post = rng.integers(0, N, pre.size)
    cap = np.array([4, 12, 41])[rng.integers(0, 3, N)]  # per neuron: weak, middling or strong synapses
    counts = rng.integers(1, cap[pre])
    signed = np.where(rng.random(pre.size) < 0.7, counts, -counts)
    post[:3] = pre[:3]  # neuron 0 excites itself (an autapse stays in a driven-only run)
    return connectome_from_edges(np.arange(1000, 1000 + N, dtype=np.int64), pre, post, signed, "mixed", "mixed-v1")


def _full_build(conn, exp, n_run, seed):
    """The experiment's own network, built and run without the hook: the reference spikes."""
    sim = NativeBackend(n_threads=1)
    spec = build_network(conn, exp, Params())
    sim.build(spec, N_STEPS)
    resolved = exp.resolve(conn.flywire_ids)
    sim.run(experiment_drive(resolved.drive_sets, Params(), N_STEPS, n_run, seed))
    spikes = sim.spikes()
    sim.close()
    return spikes


def _experiments(conn):
    ids = conn.flywire_ids
    single = [Experiment(name=f"a{k}", activate=(int(ids[k]),), rate_hz=200.0) for k in range(N)]
    mixed = [
        Experiment(name="pair", activate=(int(ids[5]), int(ids[6])), rate_hz=150.0),
        Experiment(name="two-sets", activate=(int(ids[7]),), rate_hz=200.0, activate2=(int(ids[8]),),
                   rate2_hz=40.0),
        Experiment(name="silenced-other", activate=(int(ids[9]), int(ids[10])), rate_hz=200.0,
                   silence=(int(ids[11]),), silence_mode="outgoing"),
        Experiment(name="silenced-target", activate=(int(ids[0]),), rate_hz=200.0, silence=(int(ids[1]),),
                   silence_mode="both"),
    ]
    return single + mixed


def test_every_experiment_equals_its_own_full_build_and_both_outcomes_occur(mixed):
    sim = NativeBackend(n_threads=2)
    sim.build(build_network(mixed, None, Params()), N_STEPS)
    sim.setup()
    for exp in _experiments(mixed):
        resolved = exp.resolve(mixed.flywire_ids)
        with sim.experiment(resolved):
            sim.run(experiment_drive(resolved.drive_sets, Params(), N_STEPS, 3, 7))
            got = sim.spikes()
        want = _full_build(mixed, exp, 3, 7)
        assert got.equals(want), exp.name
    tried, kept = sim.driven_only
    total = 3 * len(_experiments(mixed))
    print("trials", total, "driven-only tried", tried, "kept", kept)
    assert 0.2 * total < tried < 0.9 * total  # the kicks' forecast sends some trials straight to the full run
    assert 0.9 * tried <= kept <= tried
    sim.close()


def test_a_forecast_the_spikes_disprove_runs_again_in_full():
    """B is driven slowly (its kicks forecast a quiet C) but A, driven fast, makes B fire after each of its spikes:
    B's real train excites C beyond the bound, so the driven-only run is thrown away and the trial runs in full."""
    conn = connectome_from_edges(np.arange(10, 14, dtype=np.int64), np.array([0, 1, 2]), np.array([1, 2, 3]),
                                 np.array([300, 40, 5]), "chain", "chain-v1")
    exp = Experiment(name="chain", activate=(10,), rate_hz=200.0, activate2=(11,), rate2_hz=5.0)
    sim = NativeBackend(n_threads=1)
    sim.build(build_network(conn, None, Params()), N_STEPS)
    resolved = exp.resolve(conn.flywire_ids)
    with sim.experiment(resolved):
        sim.run(experiment_drive(resolved.drive_sets, Params(), N_STEPS, 4, 3))
        spikes = sim.spikes()
    assert sim.driven_only[0] >= 2 and sim.driven_only[1] == 0  # tried, and every one disproved
    want = _full_build(conn, exp, 4, 3)
    assert spikes.equals(want) and (want.neuron == 2).sum() > 0  # C does fire in the full trials
    sim.close()


def test_a_small_gain_is_not_tried(mixed, monkeypatch):
    """20 synapses x ~80 kicks per trial are too few deliveries to skip under the real threshold."""
    tried = {}
    for threshold in (0, 10_000):
        monkeypatch.setattr(undriven, "MIN_SKIPPED", threshold)
        sim = NativeBackend(n_threads=1)
        sim.build(build_network(mixed, None, Params()), N_STEPS)
        for k in range(10):
            resolved = Experiment(name="a", activate=(int(mixed.flywire_ids[k]),), rate_hz=200.0).resolve(
                mixed.flywire_ids)
            with sim.experiment(resolved):
                sim.run(experiment_drive(resolved.drive_sets, Params(), N_STEPS, 2, 1))
        tried[threshold] = sim.driven_only[0]
        sim.close()
    assert tried[0] > 0 and tried[10_000] == 0


def test_a_strongly_driven_set_goes_straight_to_the_full_run(mixed):
    sim = NativeBackend(n_threads=1)
    sim.build(build_network(mixed, None, Params()), N_STEPS)
    strong = Experiment(name="all", activate=tuple(int(i) for i in mixed.flywire_ids[:40]), rate_hz=200.0)
    resolved = strong.resolve(mixed.flywire_ids)
    with sim.experiment(resolved):
        sim.run(experiment_drive(resolved.drive_sets, Params(), N_STEPS, 2, 1))
        spikes = sim.spikes()
    assert sim.driven_only == [0, 0]
    assert spikes.equals(_full_build(mixed, strong, 2, 1))
    sim.close()


def test_outgoing_to_others_lists_exactly_the_synapses_onto_undriven_neurons(mixed):
    spec = build_network(mixed, None, Params())
    driven = np.array([0, 3, 17], np.int64)
    scratch = np.zeros(N, np.uint8)
    edges = outgoing_to_others(spec.indptr, spec.indices, driven, scratch)
    want = [e for d in driven for e in range(spec.indptr[d], spec.indptr[d + 1])
            if spec.indices[e] not in set(driven.tolist())]
    assert edges.tolist() == want and len(want) > 0
    assert not scratch.any()  # the scratch comes back as it went in


def test_the_unit_response_bound_is_above_every_table_value_and_close_to_the_peak():
    """Brute force: a unit-weight target fed by the train, stepped with the clock engine's arithmetic."""
    tabs = make_tables(Params(), 3000)
    rng = np.random.default_rng(2)
    for rate in (0.005, 0.02, 0.2):
        steps = np.flatnonzero(rng.random(3000) < rate)
        bound = _unit_response_bounds(np.zeros(steps.size, np.int32), steps, np.zeros(1, np.int64), tabs.pow_a,
                                      tabs.pow_b, tabs.coef_c, tabs.coef_c_max, 1)[0]
        u = g = peak = 0.0
        arrivals = set(steps.tolist())
        for s in range(3000):
            u, g = u * tabs.pow_a[1] + g * tabs.coef_c[1], g * tabs.pow_b[1]
            peak = max(peak, u)
            if s in arrivals:
                g += 1.0
        assert peak <= bound <= 1.6 * peak + tabs.coef_c_max, rate
