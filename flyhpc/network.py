"""The simulator-neutral network every backend builds from: weights, refractoriness, drive sets.

`build_network` applies an experiment to a connectome: silenced neurons lose every synapse to and
from them (silence_mode "both") or only their outgoing ones ("outgoing"), weights become signed
count x w_syn (mV, float64), and driven neurons get a refractory window of 0 steps. This is the one
place silencing happens, so every backend gets both modes; without an experiment it gives the bare
connectome's network, which a backend with the experiment hook changes in place (`Backend.experiment`).
Backends read only `NetworkSpec`; they never see files or FlyWire ids' origin. Entry points: `NetworkSpec`,
`build_network`, `silenced_edges`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from flyhpc.data.connectome import Connectome, CsrSizes
from flyhpc.errors import ConfigError
from flyhpc.model import SILENCE_MODES, DriveSet, Experiment, Params


@dataclass(frozen=True)
class NetworkSpec(CsrSizes):
    """A network ready to simulate.

    indptr/indices/weights_mv: CSR by presynaptic neuron after silencing (weights in mV, float64;
    `experiment.silence_mode` says which synapses of the silenced neurons were removed).
    refractory_steps: per neuron, 22 (t_ref) or 0 for driven neurons.
    drive_sets: the experiment's two Poisson sets as row indices with their rates (empty, 0 Hz, and
    `experiment` None for the bare connectome's network).
    """

    params: Params
    flywire_ids: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    weights_mv: np.ndarray
    refractory_steps: np.ndarray
    drive_sets: tuple[DriveSet, DriveSet]
    silenced: np.ndarray
    experiment: Experiment | None
    connectome_source: str
    connectome_digest: str

    @property
    def pre_indices(self) -> np.ndarray:
        """Presynaptic row of every edge (COO view of the CSR), int32."""
        return np.repeat(np.arange(self.n_neurons, dtype=np.int32), np.diff(self.indptr))

    def digest(self) -> str:
        """sha256 of everything that shapes the simulated network (keys build caches)."""
        h = hashlib.sha256()
        h.update(repr(sorted(self.params.to_dict().items())).encode())
        for arr in (self.indptr, self.indices, self.weights_mv, self.refractory_steps):
            h.update(np.ascontiguousarray(arr).tobytes())
        for s in self.drive_sets:
            h.update(np.ascontiguousarray(s.indices, dtype=np.int32).tobytes() + repr(s.rate_hz).encode())
        return h.hexdigest()


def silenced_edges(indptr: np.ndarray, indices: np.ndarray, silenced: np.ndarray, mode: str) -> np.ndarray:
    """Boolean mask over the CSR's edges that silencing removes: edges from a silenced neuron, and
    (mode "both") edges into one.

    Raises
    ------
    ConfigError
        For a mode not in `SILENCE_MODES`.
    """
    if mode not in SILENCE_MODES:
        raise ConfigError(f"silence_mode must be one of {', '.join(SILENCE_MODES)}, got {mode!r}")
    n = indptr.shape[0] - 1
    silent = np.zeros(n, dtype=bool)
    silent[silenced] = True
    drop = np.repeat(silent, np.diff(indptr))
    if mode == "both":
        drop |= silent[indices]
    return drop


def build_network(conn: Connectome, experiment: Experiment | None, params: Params = Params()) -> NetworkSpec:
    """Apply `experiment` to `conn`: resolve neurons, silence (by its silence_mode), scale weights. None: the bare
    connectome (every synapse, every refractory window, nothing driven or silenced).

    Raises
    ------
    ConfigError
        If an experiment neuron is not in the connectome (every unknown id is named).
    """
    if experiment is None:
        nothing = DriveSet(np.zeros(0, np.int32), 0.0)
        drive_sets, silenced = (nothing, nothing), np.zeros(0, np.int32)
    else:
        resolved = experiment.resolve(conn.flywire_ids)
        drive_sets, silenced = resolved.drive_sets, resolved.silenced
    indptr, indices, counts = conn.indptr, conn.indices, conn.counts
    if silenced.size:
        keep = ~silenced_edges(indptr, indices, silenced, experiment.silence_mode)
        pre = np.repeat(np.arange(conn.n_neurons), np.diff(indptr))
        indices, counts = indices[keep], counts[keep]
        indptr = np.zeros_like(conn.indptr)
        np.cumsum(np.bincount(pre[keep], minlength=conn.n_neurons), out=indptr[1:])
    refractory = np.full(conn.n_neurons, params.refractory_steps, dtype=np.int32)
    for s in drive_sets:
        refractory[s.indices] = 0
    return NetworkSpec(
        params=params,
        flywire_ids=conn.flywire_ids,
        indptr=indptr,
        indices=indices,
        weights_mv=counts.astype(np.float64) * params.w_syn_mv,
        refractory_steps=refractory,
        drive_sets=drive_sets,
        silenced=silenced,
        experiment=experiment,
        connectome_source=conn.source,
        connectome_digest=conn.digest,
    )
