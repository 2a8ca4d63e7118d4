"""Runners that simulate many experiments, one after another, on one loaded connectome.

`NativeRunner` builds the native engine's network once (weights, per-neuron refractory steps, propagator tables,
compiled kernels) and per experiment only changes what the experiment changes, restoring it afterwards: driven
neurons get 0 refractory steps, and a silenced neuron's outgoing weights are set to 0 mV (O(out-degree); exact,
as the engines drop a 0 mV input without touching its target). That is silence_mode "outgoing"; "both" also
zeroes the inputs of the silenced neuron, so it never spikes: the same run with its own spikes left out (nobody
hears them either way, and it is never driven), which spares the search for the edges into it. `BackendRunner` runs any registered backend through `pipeline.simulate`, one network
per experiment. Both draw trial k's drive from `drive.experiment_drive` keyed by (seed, round, k) per neuron:
the spikes equal those of `flyhpc run` for the same experiment. Entry points: `ExperimentRun`, `NativeRunner`,
`BackendRunner`, `make_runner`.
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
from flyhpc.model import Experiment, Params, ResolvedExperiment
from flyhpc.network import build_network
from flyhpc.spikes import SpikeTable


@dataclass(frozen=True)
class ExperimentRun:
    """The spikes of one experiment's trials and where its time went (seconds): `drive_s` drawing the drive,
    `prepare_s` resolving, masking and restoring the network, `engine_s` the simulator's calls, `collect_s`
    gathering spikes into a table; `driven` and `silenced` the experiment's row indices."""

    spikes: SpikeTable
    drive_s: float
    prepare_s: float
    engine_s: float
    collect_s: float
    driven: np.ndarray
    silenced: np.ndarray


def _options(backend: str, options: Mapping[str, Any] | None):
    """The backend's Options (caller's over $FLYHPC_BACKEND_OPTIONS, as `flyhpc run`), once its probe passes."""
    cls = backends.get(backend)
    probe = cls.probe()
    if not probe.ok:
        raise BackendUnavailable(f"backend {backend!r} cannot run here: {probe.reason}")
    return make_options(cls, {**env_options(backend), **(options or {})})


class NativeRunner:
    """The native engine on one network built once; experiments change it in place and put it back.

    Not thread-safe: one experiment at a time (its trials run on `n_threads` threads, as `flyhpc run` does).
    """

    def __init__(self, conn: Connectome, params: Params, n_steps: int, *,
                 options: Mapping[str, Any] | None = None, n_threads: int = 1):
        from flyhpc.backends.native import EngineNetwork, warm_up
        from flyhpc.backends.native.trials import LazySettings

        self.options = _options("native", options)
        self._settings = LazySettings(clock_on=float(self.options.clock_on), clock_off=float(self.options.clock_off))
        self._conn, self._params, self._n_steps, self._threads = conn, params, int(n_steps), max(1, int(n_threads))
        weights = conn.counts.astype(np.float64) * params.w_syn_mv
        refractory = np.full(conn.n_neurons, params.refractory_steps, dtype=np.int64)
        self._net = EngineNetwork.from_arrays(conn.indptr, conn.indices, weights, refractory, params, n_steps)
        warm_up()

    def run(self, experiment: Experiment, n_run: int, seed: int, round_: int = 1) -> ExperimentRun:
        """Simulate trials 0 .. n_run - 1 of `experiment` (drive keyed by seed and round).

        Raises
        ------
        ConfigError
            Neurons not in the connectome (every one named).
        """
        from flyhpc.backends.native import run_trials

        t0 = time.perf_counter()
        resolved = experiment.resolve(self._conn.flywire_ids)
        drive = experiment_drive(resolved.drive_sets, self._params, self._n_steps, n_run, seed, round_)
        t1 = time.perf_counter()
        net, restore = self._prepare(resolved)
        t2 = time.perf_counter()
        try:
            results = run_trials(net, drive.trials, self.options.engine, min(self._threads, n_run), self._settings)
        finally:
            t3 = time.perf_counter()
            restore()
        t4 = time.perf_counter()
        trial = np.concatenate([np.full(r.spike_neurons.size, r.trial, np.int32) for r in results])
        step = np.concatenate([r.spike_steps for r in results])
        neuron = np.concatenate([r.spike_neurons for r in results])
        if resolved.silenced.size and experiment.silence_mode == "both":
            heard = ~np.isin(neuron, resolved.silenced)  # "both": the silenced neuron's inputs are zero too
            trial, step, neuron = trial[heard], step[heard], neuron[heard]
        spikes = SpikeTable.from_arrays(trial, step, neuron)
        return ExperimentRun(spikes=spikes, drive_s=t1 - t0, prepare_s=(t2 - t1) + (t4 - t3), engine_s=t3 - t2,
                             collect_s=time.perf_counter() - t4, driven=resolved.driven, silenced=resolved.silenced)

    def _prepare(self, resolved: ResolvedExperiment):
        """The engine network of `resolved` and the function that puts the shared one back (the shared arrays
        change only once everything that could fail is done)."""
        net, driven, silenced = self._net, resolved.driven, resolved.silenced
        edges = saved = None
        if silenced.size:
            indptr = net.indptr
            edges = np.concatenate([np.arange(indptr[r], indptr[r + 1]) for r in silenced.tolist()])
            saved = net.weights_mv[edges]
            net.weights_mv[edges] = 0.0
        net.refractory_steps[driven] = 0

        def restore() -> None:
            net.refractory_steps[driven] = self._params.refractory_steps
            if edges is not None:
                net.weights_mv[edges] = saved

        return net, restore


class BackendRunner:
    """Any registered backend, through `pipeline.simulate`: the network built (and compiled) per experiment."""

    def __init__(self, backend: str, conn: Connectome, params: Params, n_steps: int, *,
                 options: Mapping[str, Any] | None = None, n_threads: int = 1):
        self.options = _options(backend, options)
        self._backend, self._conn, self._params, self._n_steps = backend, conn, params, int(n_steps)
        self._threads, self._raw_options = int(n_threads), dict(options or {})

    def run(self, experiment: Experiment, n_run: int, seed: int, round_: int = 1) -> ExperimentRun:
        """Build `experiment`'s network and simulate trials 0 .. n_run - 1 (drive keyed by seed and round)."""
        from flyhpc.pipeline import PhaseTimer, simulate

        t0 = time.perf_counter()
        spec = build_network(self._conn, experiment, self._params)
        t1 = time.perf_counter()
        drive = make_drive(spec, self._n_steps, n_run, base_seed=seed, round_=round_)
        t2 = time.perf_counter()
        timer = PhaseTimer()
        result = simulate(self._backend, spec, drive, timer, n_threads=self._threads, options=self._raw_options)
        phases = timer.seconds
        return ExperimentRun(spikes=result.spikes, drive_s=t2 - t1,
                             prepare_s=(t1 - t0) + phases.get("setup", 0.0) + phases.get("build", 0.0),
                             engine_s=phases.get("sim", 0.0), collect_s=phases.get("collect", 0.0),
                             driven=np.sort(np.concatenate([s.indices for s in spec.drive_sets])),
                             silenced=np.asarray(spec.silenced))


def make_runner(backend: str, conn: Connectome, params: Params, n_steps: int, *,
                options: Mapping[str, Any] | None = None, n_threads: int = 1):
    """The runner of `backend`: `NativeRunner` for "native", else `BackendRunner`.

    Raises
    ------
    UnknownBackendError, BackendUnavailable, ConfigError
        Unknown backend, one that cannot run here (the probe's reason), invalid options.
    """
    if backend == "native":
        return NativeRunner(conn, params, n_steps, options=options, n_threads=n_threads)
    return BackendRunner(backend, conn, params, n_steps, options=options, n_threads=n_threads)
