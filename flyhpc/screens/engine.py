"""The runner that simulates many experiments, one after another, on one loaded connectome, with any backend.

A backend with the experiment hook (`Backend.reconfigurable()`: native, pytorch) is built once on the bare
connectome (for native: weights, refractory steps, propagator tables, compiled kernels) and runs each experiment
through `Backend.experiment`, which changes the network in place and puts it back. Any other backend builds
(and compiles) each experiment's network through `pipeline.simulate`. Either way trial k's drive is
`drive.experiment_drive` keyed by (seed, round, k) per neuron, so the spikes equal those of `flyhpc run` for the
same experiment. Entry points: `ExperimentRun`, `ScreenRunner`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from flyhpc import backends
from flyhpc.backends.base import env_options, make_options
from flyhpc.data.connectome import Connectome
from flyhpc.drive import experiment_drive, make_drive
from flyhpc.errors import BackendUnavailable
from flyhpc.model import Experiment, Params
from flyhpc.network import build_network
from flyhpc.results.spikes import SpikeTable


@dataclass(frozen=True)
class ExperimentRun:
    """The spikes of one experiment's trials and where its time went (seconds): `drive_s` drawing the drive,
    `prepare_s` resolving and changing the network (and putting it back) or building it, `engine_s` the
    simulator's run, `collect_s` gathering spikes into a table; `driven` and `silenced` the experiment's row
    indices."""

    spikes: SpikeTable
    drive_s: float
    prepare_s: float
    engine_s: float
    collect_s: float
    driven: np.ndarray
    silenced: np.ndarray


class ScreenRunner:
    """`backend` on `conn` for runs of `n_steps`: one build changed per experiment where the backend can, else a
    build per experiment. Not thread-safe: one experiment at a time (its trials on `n_threads` threads, as
    `flyhpc run` does). Close it (or use it as a context manager) to free the built network.

    Raises
    ------
    UnknownBackendError, BackendUnavailable, ConfigError
        Unknown backend, one that cannot run here (the probe's reason), invalid options.
    """

    def __init__(self, backend: str, conn: Connectome, params: Params, n_steps: int, *,
                 options: Mapping[str, Any] | None = None, n_threads: int = 1):
        cls = backends.get(backend)
        probe = cls.probe()
        if not probe.ok:
            raise BackendUnavailable(f"backend {backend!r} cannot run here: {probe.reason}")
        # the caller's options over $FLYHPC_BACKEND_OPTIONS, as `flyhpc run`
        self.options = make_options(cls, {**env_options(backend), **(options or {})})
        self._name, self._conn, self._params, self._n_steps = backend, conn, params, int(n_steps)
        self._threads, self._raw_options = max(1, int(n_threads)), dict(options or {})
        self._cls, self._probe = cls, probe  # probed once for the whole chunk
        self._backend = None
        if cls.reconfigurable():
            self._backend = cls(self.options, n_threads=self._threads, probe=probe)
            self._backend.build(build_network(conn, None, params), self._n_steps)
            self._backend.setup()

    @property
    def in_place(self) -> bool:
        """Whether experiments change one built network (the backend's experiment hook)."""
        return self._backend is not None

    def __enter__(self) -> "ScreenRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Free the built network. Idempotent."""
        if self._backend is not None:
            self._backend.close()

    def run(self, experiment: Experiment, n_run: int, seed: int, round_: int = 1) -> ExperimentRun:
        """Simulate trials 0 .. n_run - 1 of `experiment` (drive keyed by seed and round).

        Raises
        ------
        ConfigError
            Neurons not in the connectome (every one named).
        """
        if self._backend is None:
            return self._run_built(experiment, n_run, seed, round_)
        t0 = time.perf_counter()
        resolved = experiment.resolve(self._conn.flywire_ids)
        drive = experiment_drive(resolved.drive_sets, self._params, self._n_steps, n_run, seed, round_)
        t1 = time.perf_counter()
        with self._backend.experiment(resolved) as backend:
            t2 = time.perf_counter()
            backend.run(drive)
            t3 = time.perf_counter()
            spikes = backend.spikes()
            t4 = time.perf_counter()
        return ExperimentRun(spikes=spikes, drive_s=t1 - t0, prepare_s=(t2 - t1) + (time.perf_counter() - t4),
                             engine_s=t3 - t2, collect_s=t4 - t3, driven=resolved.driven,
                             silenced=resolved.silenced)

    def _run_built(self, experiment: Experiment, n_run: int, seed: int, round_: int) -> ExperimentRun:
        """Build `experiment`'s network and simulate it through `pipeline.simulate` (a backend without the hook)."""
        from flyhpc.pipeline import PhaseTimer, simulate

        t0 = time.perf_counter()
        spec = build_network(self._conn, experiment, self._params)
        t1 = time.perf_counter()
        drive = make_drive(spec, self._n_steps, n_run, base_seed=seed, round_=round_)
        t2 = time.perf_counter()
        timer = PhaseTimer()
        result = simulate(self._cls, spec, drive, timer, n_threads=self._threads, options=self._raw_options,
                          probe=self._probe)
        phases = timer.seconds
        return ExperimentRun(spikes=result.spikes, drive_s=t2 - t1,
                             prepare_s=(t1 - t0) + phases.get("setup", 0.0) + phases.get("build", 0.0),
                             engine_s=phases.get("sim", 0.0), collect_s=phases.get("collect", 0.0),
                             driven=np.sort(np.concatenate([s.indices for s in spec.drive_sets])),
                             silenced=np.asarray(spec.silenced))
