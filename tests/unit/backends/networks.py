"""Small networks and reference spike lists for the backends' unit tests: a random 40-neuron NetworkSpec, a busy
300-neuron connectome, the pytorch backend's spikes on it, and the spikes a compiled host program prints."""

from __future__ import annotations

import subprocess

import numpy as np

from flyhpc.data.connectome import Connectome, connectome_from_edges
from flyhpc.model import DriveSet, Experiment, Params
from flyhpc.network import NetworkSpec


def busy_connectome(source: str, digest: str) -> Connectome:
    """300 neurons, 30 outgoing edges each, lognormal counts, 70 % excitatory: a sixth of it spikes when driven."""
    rng = np.random.default_rng(3)
    n = 300
    pre = np.repeat(np.arange(n), 30)
    post = rng.integers(0, n, pre.size)
    counts = 4 * np.maximum(1, rng.lognormal(0.8, 0.9, pre.size).astype(np.int64))
    signed = np.where(rng.random(pre.size) < 0.7, counts, -counts)
    return connectome_from_edges(np.arange(500, 500 + n, dtype=np.int64), pre, post, signed, source, digest)


def small_spec(n=40, n_edges=300, seed=1, driven=(0, 1, 2)) -> NetworkSpec:
    rng = np.random.default_rng(seed)
    pre, post = rng.integers(0, n, n_edges), rng.integers(0, n, n_edges)
    w = rng.choice([-1.0, 1.0], n_edges, p=[0.3, 0.7]) * rng.integers(1, 12, n_edges) * 0.275 * 3
    order = np.lexsort((post, pre))
    pre, post, w = pre[order], post[order], w[order]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(pre, minlength=n), out=indptr[1:])
    ref = np.full(n, 22, np.int32)
    ref[list(driven)] = 0
    ids = np.arange(100, 100 + n, dtype=np.int64)
    return NetworkSpec(params=Params(), flywire_ids=ids, indptr=indptr, indices=post.astype(np.int32), weights_mv=w,
                       refractory_steps=ref, drive_sets=(DriveSet(np.array(driven, np.int32), 300.0),
                                                         DriveSet(np.zeros(0, np.int32), 0.0)),
                       silenced=np.zeros(0, np.int32),
                       experiment=Experiment(name="small", activate=tuple(int(ids[k]) for k in driven), rate_hz=300.0),
                       connectome_source="test", connectome_digest="test")


def pytorch_reference(spec: NetworkSpec, drive) -> list[tuple[int, int, int]]:
    """Sorted (trial, step, neuron) spikes of the pytorch backend in float64 (the reference here)."""
    from flyhpc.backends.pytorch import PyTorchBackend

    ref = PyTorchBackend(precision="float64")
    ref.build(spec, drive.n_steps)
    ref.setup()
    ref.run(drive)
    table = ref.spikes()
    ref.close()
    assert len(table) > 50  # the network is active
    return sorted(zip(table.trial.tolist(), table.step.tolist(), table.neuron.tolist()))


def program_spikes(binary) -> list[tuple[int, int, int]]:
    out = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    return sorted(tuple(map(int, line.split())) for line in out.splitlines())
