"""Tiny hand-made networks and drives for the contract tests: NetworkSpec built directly, no files.

`tiny_spec` takes an edge list (pre, post, w_mv) and the driven neurons; `hand_drive` turns
{trial: [(step, neuron), ...]} into a Drive; `contract_spec` is the multi-scenario network of
the backend contract, with the hand-derived spikes in `HAND_SPIKES`. `backend_key` parametrizes
over every registered backend and skips (with probe().reason) those that cannot run here.
Nothing here imports a simulator.
"""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc import backends
from flyhpc.drive import Drive, TrialDrive
from flyhpc.model import DriveSet, Experiment, Params
from flyhpc.network import NetworkSpec

PARAMS = Params()


def tiny_spec(n_neurons: int, edges: list[tuple[int, int, float]] = (), driven: tuple[int, ...] = (),
              driven2: tuple[int, ...] = (), rate_hz: float = 200.0, rate2_hz: float = 0.0,
              params: Params = PARAMS) -> NetworkSpec:
    """A NetworkSpec with `n_neurons`, edges (pre, post, w_mv) and driven neurons (refractory 0)."""
    pre = np.array([e[0] for e in edges], dtype=np.int64)
    post = np.array([e[1] for e in edges], dtype=np.int64)
    w = np.array([e[2] for e in edges], dtype=np.float64)
    order = np.lexsort((post, pre))
    pre, post, w = pre[order], post[order], w[order]
    indptr = np.zeros(n_neurons + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre, minlength=n_neurons), out=indptr[1:])
    refractory = np.full(n_neurons, params.refractory_steps, dtype=np.int32)
    all_driven = np.array(sorted(set(driven) | set(driven2)), dtype=np.int32)
    refractory[all_driven] = 0
    ids = np.arange(1000, 1000 + n_neurons, dtype=np.int64)
    experiment = Experiment(name="tiny", activate=tuple(int(ids[k]) for k in driven) or (int(ids[0]),),
                            rate_hz=rate_hz, activate2=tuple(int(ids[k]) for k in driven2), rate2_hz=rate2_hz)
    return NetworkSpec(
        params=params, flywire_ids=ids, indptr=indptr, indices=post.astype(np.int32), weights_mv=w,
        refractory_steps=refractory,
        drive_sets=(DriveSet(np.array(driven, dtype=np.int32), float(rate_hz)),
                    DriveSet(np.array(driven2, dtype=np.int32), float(rate2_hz))),
        silenced=np.zeros(0, np.int32), experiment=experiment, connectome_source="tiny", connectome_digest="tiny")


def hand_drive(n_steps: int, trials: dict[int, list[tuple[int, int]]]) -> Drive:
    """A Drive from {trial: [(step, neuron), ...]} (sorted here by step, then neuron)."""
    out = []
    for trial, events in sorted(trials.items()):
        events = sorted(events)
        out.append(TrialDrive(trial=trial, steps=np.array([e[0] for e in events], dtype=np.int64),
                              neurons=np.array([e[1] for e in events], dtype=np.int32)))
    return Drive(n_steps=n_steps, base_seed=0, round=1, trials=tuple(out))


def spikes_of(table, trial: int, neuron: int) -> list[int]:
    """Spike steps of one neuron in one trial of a SpikeTable."""
    t = table.of_trial(trial)
    return [int(s) for s in t.step[t.neuron == neuron]]


def _usable_backends() -> list:
    return [pytest.param(key, id=key) for key in backends.names()]


@pytest.fixture(scope="session", params=_usable_backends())
def backend_key(request) -> str:
    """Every registered backend key; skipped with the probe's reason where it cannot run."""
    key = request.param
    try:
        cls = backends.get(key)
    except Exception as exc:  # BackendUnavailable / import error: report, do not fail
        pytest.skip(f"{key}: {exc}")
    probe = cls.probe()
    if not probe.ok:
        pytest.skip(f"{key}: {probe.reason}")
    return key


# ---------------------------------------------------------------------------------------------
# The contract network: independent scenarios side by side in one network, so a compiling
# backend builds once. Neuron roles (row index):
#   0 D0, 1 D1, 2 D2, 3 D3, 4 D4, 7 D7, 8 D8: drive set 1;  5 D5, 6 D6: drive set 2 (own rate)
#   9 B1 <- D0, D7 (5455 syn = 1500.125 mV each): input arriving while refractory is dropped
#  10 B2 <- D0, D8 (5455 each): input arriving at the first non-refractory step is kept
#  11 C  <- D2, D1 (5455 each): a delivery in the step C spikes is lost
#  12 E  <- D2, D1 (90 syn = 24.75 mV each): threshold only through two summed PSPs
#  13 F  <- D4 (5455): 18-step delay
#  14 S  <- D0 (5455), silenced;  15 G <- S (5455): silent because S is silenced
#  16 Z  no input, never spikes
CONTRACT_N = 17
BIG = 5455  # synapses; 5455 x 0.275 = 1500.125 mV: one step of integration crosses threshold
SMALL = 90  # 24.75 mV: one PSP peaks at 3.9 mV, two at 7.8 mV
CONTRACT_EDGES = [(0, 9, BIG), (7, 9, BIG), (0, 10, BIG), (8, 10, BIG), (2, 11, BIG), (1, 11, BIG),
                  (2, 12, SMALL), (1, 12, SMALL), (4, 13, BIG), (0, 14, BIG), (14, 15, BIG)]
CONTRACT_STEPS = 2000  # 0.2 s
SET1, SET2 = (0, 1, 2, 3, 4, 7, 8), (5, 6)
RATE1_HZ, RATE2_HZ = 150.0, 600.0
SILENCED = 14
NEVER_SPIKE = (14, 15, 16)

# Hand-made trials: {trial: [(step, neuron), ...]} and the spikes the contract implies
# (derivations in the docstrings of test_backend_contract.py).
HAND_TRIALS = {
    0: [(0, 0), (10, 0), (1, 1), (0, 2), (30, 3), (31, 3), (32, 3), (33, 3), (34, 3), (100, 4),
        (22, 7), (23, 8)],
    1: [(5, 0), (50, 3), (52, 3), (1999, 4)],
    2: [],
}
HAND_SPIKES = {  # {trial: {neuron: [steps]}}
    0: {0: [1, 11], 1: [2], 2: [1], 3: [31, 33, 35], 4: [101], 7: [23], 8: [24],
        9: [20], 10: [20, 43], 11: [20], 12: [74], 13: [120]},
    1: {0: [6], 3: [51, 53], 9: [25], 10: [25]},
    2: {},
}


def contract_spec():
    """The contract network, built through connectome_from_edges + build_network (silencing applied)."""
    from flyhpc.data.connectome import connectome_from_edges
    from flyhpc.network import build_network

    ids = np.arange(1000, 1000 + CONTRACT_N, dtype=np.int64)
    pre, post, counts = zip(*CONTRACT_EDGES)
    conn = connectome_from_edges(ids, np.array(pre), np.array(post), np.array(counts),
                                 source="contract", digest="contract-v1")
    experiment = Experiment(name="contract", key="contract", activate=tuple(int(ids[k]) for k in SET1),
                            rate_hz=RATE1_HZ, activate2=tuple(int(ids[k]) for k in SET2), rate2_hz=RATE2_HZ,
                            silence=(int(ids[SILENCED]),))
    return build_network(conn, experiment, PARAMS)


def driven_spikes_from_kicks(kick_steps, n_steps: int) -> list[int]:
    """Spikes of a driven neuron without recurrent input, by the contract.

    A kick at step k lifts v from rest to 16.75 mV, so the neuron spikes at k + 1 — unless k is
    itself a spike step, where the reset wipes the kick. Spikes at or after n_steps are not seen.
    """
    spikes: list[int] = []
    for k in sorted(int(x) for x in kick_steps):
        if spikes and k == spikes[-1]:
            continue
        if k + 1 < n_steps:
            spikes.append(k + 1)
    return spikes


@pytest.fixture(scope="session")
def build_root(tmp_path_factory):
    """One build root for the session: a second build of the same network is a cache hit."""
    return tmp_path_factory.mktemp("flyhpc-builds")
