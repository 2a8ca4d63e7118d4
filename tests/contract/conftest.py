"""Tiny hand-made networks and drives for the contract tests: NetworkSpec built directly, no files.

`tiny_spec` takes an edge list (pre, post, w_mv) and the driven neurons; `hand_drive` turns
{trial: [(step, neuron), ...]} into a Drive; `contract_spec` is the multi-scenario network of
the backend contract, with the hand-derived spikes in `HAND_SPIKES` (these three from `flyhpc.contract`).
`backend_key` parametrizes over every registered backend and skips (with probe().reason) those that cannot
run here.
Nothing here imports a simulator.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from flyhpc import backends
# The contract network, its hand-made trials and the spikes they imply live in the package, so that `flyhpc check`
# runs the same scenarios wherever flyhpc is installed; re-exported here for the tests.
from flyhpc.contract import (BIG, CONTRACT_EDGES, CONTRACT_N, CONTRACT_STEPS, HAND_SPIKES, HAND_TRIALS,  # noqa: F401
                             NEVER_SPIKE, RATE1_HZ, RATE2_HZ, SET1, SET2, SILENCED, SMALL, contract_spec,
                             driven_spikes_from_kicks, hand_drive, spikes_of)
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
    skip_unless_runnable(cls, key)
    return key


def skip_unless_runnable(cls, key: str) -> None:
    """Skip a backend whose probe fails here (a GPU simulator); under FLYHPC_REQUIRE_CPU_BACKENDS=1 (.ci/run) a CPU
    backend that cannot run fails instead, so its contract cannot quietly vanish from a green run."""
    probe = cls.probe()
    if probe.ok:
        return
    if cls.caps.device == "cpu" and os.environ.get("FLYHPC_REQUIRE_CPU_BACKENDS") == "1":
        pytest.fail(f"FLYHPC_REQUIRE_CPU_BACKENDS=1 but the CPU backend {key} cannot run: {probe.reason}")
    pytest.skip(f"{key}: {probe.reason}")


@pytest.fixture(scope="session")
def build_root(tmp_path_factory):
    """One build root for the session: a second build of the same network is a cache hit."""
    return tmp_path_factory.mktemp("flyhpc-builds")
