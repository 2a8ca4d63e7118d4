"""The native backend: flyhpc's own compiled CPU engines (flyhpc.backends.native), trials in parallel threads.

Default engine "lazy" is the exact lazy event-driven scheme (falls back to clock-driven stepping per
trial while activity is high); "clock" is the compiled clock-driven loop. Both are float64 and
bit-identical to each other. It must not draw random numbers, read files or time itself. It implements the
experiment hook (`Backend.experiment`): driven neurons' refractory steps to 0 and silenced neurons' outgoing
weights to 0 mV in place, put back afterwards (O(out-degree); exact, as both engines drop a 0 mV input without
touching its target), so a screen builds the network and compiles the kernels once. Inside the hook each
trial first runs with the driven neurons alone and is kept where `undriven` proves that no undriven neuron
could have fired (most of an atlas), else runs again in full. It streams
(`Backend._run_streamed`): trials finish in drive order per thread and go to the sink as the next ones run.
With fewer trials than threads, a long lazy trial runs on several threads (split_run; the same spikes).
Entry points: `NativeBackend` (key "native"), `NativeOptions`.
"""

from __future__ import annotations

import ctypes
import functools
import ctypes.util
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flyhpc.backends.base import Backend, BuildReport, Capabilities, Probe, RunReport, import_probe
from flyhpc.drive import Drive
from flyhpc.errors import ConfigError
from flyhpc.model import ResolvedExperiment
from flyhpc.network import NetworkSpec
from flyhpc.results.spikes import SpikeTable


@dataclass(frozen=True)
class NativeOptions:
    """Settings of the native backend.

    engine: "lazy" (exact event-driven, default) or "clock" (compiled clock-driven loop).
    clock_on / clock_off: lazy work per step, in units of n_neurons, above which a trial goes
    clock-driven and below which it returns to lazy (clock_on = 0: never switch).
    """

    engine: str = "lazy"
    clock_on: float = 0.5
    clock_off: float = 0.1

    def __post_init__(self) -> None:
        from flyhpc.backends.native.trials import ENGINES

        if self.engine not in ENGINES:
            raise ConfigError(f"native: engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        for label in ("clock_on", "clock_off"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"native: {label} must be a number >= 0, got {value!r}")
        if self.clock_on and self.clock_off > self.clock_on:
            raise ConfigError(f"native: clock_off ({self.clock_off}) must not exceed clock_on ({self.clock_on})")


class NativeBackend(Backend):
    """flyhpc's numba engines: one trial per thread (or one on several, `threads_per_trial`), spikes kept in
    memory until `spikes()` (or handed to a sink trial by trial: `run(drive, sink)`)."""

    name: ClassVar[str] = "native"
    Options: ClassVar[type] = NativeOptions
    caps: ClassVar[Capabilities] = Capabilities(
        device="cpu", batching="parallel", drive="events", precisions=("float64",), compiles=True,
        deterministic=True, image="flyhpc-base", verified_here="yes", display_name="native (CPU)")

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        self._net = None
        self._results = None
        self._undo = None  # what `_restore` puts back: (driven, their refractory steps, edges, their weights)
        self._sink = None  # a streamed run's sink, for `_drain`
        self._scratch = None  # `_run_driven_first`'s per-neuron scratch arrays
        self.driven_only = [0, 0]  # trials run driven-only first, and of those kept (no full run needed)

    @classmethod
    def probe(cls) -> Probe:
        """numba importable (the engines' compiler), with numpy's and numba's versions; never raises."""
        return import_probe("numpy", "numba")

    def _build(self, spec: NetworkSpec, n_steps: int, probe: Probe) -> BuildReport:
        """Convert the CSR network to the engine's dtypes and tables; compile (or load) the kernels.

        Raises
        ------
        ConfigError, UnsupportedFeature
            For a delay under one step, or parameters the engines do not model.
        """
        from flyhpc.backends.native import EngineNetwork, warm_up

        self._net = EngineNetwork.from_spec(spec, n_steps)
        warm_up()
        return BuildReport(cached=False, work_dir="", versions=probe.versions)

    def _run(self, drive: Drive) -> RunReport:
        """Simulate every trial of `drive`, min(n_threads, n_trials) trials at a time (lazy: a trial on several
        threads when there are fewer trials than threads).

        Raises
        ------
        ConfigError
            If an event names a step or neuron outside the network.
        """
        return self._run_trials(drive, None)

    def _run_streamed(self, drive: Drive, sink) -> RunReport:
        """`_run`, each finished trial's spikes to `sink` as a one-trial table while later trials run."""
        stats = []

        def hand_over(result) -> None:
            stats.append(result.stats)
            sink(_trial_table(result))

        self._sink = sink
        return self._run_trials(drive, hand_over, stats)

    def _run_trials(self, drive: Drive, hand_over, stats=None) -> RunReport:
        from flyhpc.backends.native.trials import LazySettings, run_trials, threads_per_trial

        opts = self.options
        settings = LazySettings(clock_on=float(opts.clock_on), clock_off=float(opts.clock_off))
        threads = max(1, min(self.n_threads, drive.n_trials))
        threads *= threads_per_trial(self._net, drive.n_trials, self.n_threads, opts.engine, settings)
        if hand_over is None and self._undo is not None:
            self._results = self._run_driven_first(drive, opts.engine, self.n_threads, settings)
        else:
            self._results = run_trials(self._net, drive.trials, opts.engine, self.n_threads, settings, hand_over)
        stats = (stats or []) + [r.stats for r in self._results]
        notes = {"engine": opts.engine, "dtype": self.precision, "device": "cpu", "threads": str(threads)}
        for key in ("clock_steps", "switches", "max_queue", "synaptic_events"):
            values = [s[key] for s in stats if key in s]
            if values:
                notes[key] = ",".join(str(v) for v in values)
        return RunReport(inner_s=None, notes=notes)

    def _run_driven_first(self, drive: Drive, engine: str, threads: int, settings) -> list:
        """An experiment's trials: those whose kicks forecast that no undriven neuron fires run with the driven
        neurons alone (`undriven`) and are kept where their spikes prove it; the others run in full."""
        from flyhpc.backends.native import undriven
        from flyhpc.backends.native.trials import _check_drive, run_trials

        net, driven = self._net, self._undo[0]  # sorted, no repeats (Experiment refuses a neuron in both sets)
        if not driven.size:
            return run_trials(net, drive.trials, engine, threads, settings)
        kicks = [_check_drive(net, trial) for trial in drive.trials]  # the forecast reads them: checked first
        if self._scratch is None:
            n = net.n_neurons
            self._scratch = (np.zeros(n, np.uint8), np.full(n, -1, np.int64), np.zeros(n))
        is_driven, slot, acc = self._scratch
        edges = undriven.outgoing_to_others(net.indptr, net.indices, driven, is_driven)
        if edges.size * sum(steps.size for steps, _ in kicks) < undriven.MIN_SKIPPED * len(kicks):
            return run_trials(net, drive.trials, engine, threads, settings)  # too few deliveries to skip: no gain
        t = net.tables

        def quiet(test, neurons, steps) -> bool:
            return test(neurons, steps, driven, slot, net.indptr, net.indices, net.weights_mv, net.weight_unit_mv,
                        edges, t.pow_a, t.pow_b, t.coef_c, t.coef_c_max, t.u_th_mv, acc)

        alone = [k for k, (steps, neurons) in enumerate(kicks) if quiet(undriven.undriven_stay_below, neurons, steps)]
        results = [None] * drive.n_trials
        if alone:
            weights = net.weights_mv[edges]
            net.weights_mv[edges] = 0
            try:
                tried = run_trials(net, [drive.trials[k] for k in alone], engine, threads, settings)
            finally:
                net.weights_mv[edges] = weights
            for k, result in zip(alone, tried):
                if quiet(undriven.spikes_stay_below, result.spike_neurons, result.step_starts):
                    results[k] = result
        full = [k for k, result in enumerate(results) if result is None]
        self.driven_only[0] += len(alone)
        self.driven_only[1] += drive.n_trials - len(full)
        if full:
            for k, result in zip(full, run_trials(net, [drive.trials[k] for k in full], engine, threads, settings)):
                results[k] = result
        return results

    def _drain(self) -> None:
        """The trials finished when the streamed sim ended, to its sink (each let go of once handed over)."""
        results, self._results = self._results or [], None
        for k in range(len(results)):
            result, results[k] = results[k], None
            self._sink(_trial_table(result))

    def _collect(self) -> SpikeTable:
        """The per-trial results as one table (and let go of them, each once copied): columns allocated once and
        filled trial by trial, without per-trial temporaries. Each trial's spikes come in order (steps ascending,
        neurons ascending within a step), so with trial ids ascending the table is sorted as it stands."""
        results, self._results = self._results, None
        if len(results) == 1:  # one trial (a screen's usual run): its own arrays, no copy
            return _trial_table(results[0])
        total = sum(r.spike_neurons.size for r in results)
        ids = [r.trial for r in results]
        trial, step, neuron = np.empty(total, np.int32), np.empty(total, np.int64), np.empty(total, np.int32)
        lo = freed = freed_total = 0
        for k, r in enumerate(results):
            hi = lo + r.spike_neurons.size
            trial[lo:hi] = r.trial
            _fill_steps(step[lo:hi], r.step_starts)
            neuron[lo:hi] = r.spike_neurons
            lo = hi
            freed += r.spike_neurons.nbytes + r.step_starts.nbytes
            results[k] = r = None  # freed as the table's pages fill: peak ~ the table, not table + results
            if freed > TRIM_BYTES:
                freed_total += freed
                _return_freed_memory()
                freed = 0
        if freed_total:  # a large run: the rest too (a screen's small runs skip the trim, ~ms each)
            _return_freed_memory()
        if all(a < b for a, b in zip(ids, ids[1:])):
            return SpikeTable(trial, step, neuron)
        return SpikeTable.from_arrays(trial, step, neuron)

    @classmethod
    def screen_costs(cls) -> str:
        """"calibrated": `flyhpc.screens.cost`'s per-experiment model, measured on this engine."""
        return "calibrated"

    def _apply(self, resolved: ResolvedExperiment) -> None:
        """Driven neurons: 0 refractory steps; silenced neurons: outgoing weights 0 mV (the shared arrays change
        only once the edges are found)."""
        net, driven, silenced = self._net, resolved.driven, resolved.silenced
        edges = weights = None  # no silenced neuron (an atlas): no weight to touch
        if silenced.size:
            indptr = net.indptr
            edges = np.concatenate([np.arange(indptr[r], indptr[r + 1]) for r in silenced.tolist()])
            weights = net.weights_mv[edges]
            net.weights_mv[edges] = 0.0
        self._undo = (driven, net.refractory_steps[driven], edges, weights)
        net.refractory_steps[driven] = 0

    def _restore(self) -> None:
        driven, refractory, edges, weights = self._undo
        self._undo = None
        self._net.refractory_steps[driven] = refractory
        if edges is not None:
            self._net.weights_mv[edges] = weights

    def _close(self) -> None:
        """Drop the network and the recorded spikes."""
        self._net = None
        self._results = None
        self._undo = None
        self._sink = None
        self._scratch = None


STEP_CHUNK = 1 << 16
SPARSE_STEPS = 16  # under one spike per 16 steps `_fill_steps` searches (O(spikes log steps)) rather than walks
TRIM_BYTES = 64 << 20  # freed result bytes between two returns to the OS


def _return_freed_memory() -> None:
    """Hand the freed per-trial results back to the OS: glibc keeps freed heap pages of this size (its mmap
    threshold adapts upwards) and the process would hold results and table at once (~0.5 GB of 2.3 GB on the
    paper's 32 x 100 s task). malloc_trim(0) returns them; a no-op where the C library has none."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """The C library's malloc_trim, looked up once (find_library runs ldconfig), or None."""
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def _trial_table(result) -> SpikeTable:
    """One trial's spikes as a table (in order: steps ascending, neurons ascending within a step)."""
    n = result.spike_neurons.size
    step = np.empty(n, np.int64)
    _fill_steps(step, result.step_starts)
    return SpikeTable(np.full(n, result.trial, np.int32), step, result.spike_neurons)


def _fill_steps(out: np.ndarray, step_starts: np.ndarray) -> None:
    """Write the step of every spike of one trial into `out` (spikes of step s at step_starts[s]..[s + 1]),
    STEP_CHUNK steps at a time so that no temporary grows with the trial; a trial with few spikes for its steps
    (an atlas trial: ~140 spikes in 10,000 steps) looks each spike's step up instead of walking every step."""
    base = step_starts[0]
    if out.shape[0] * SPARSE_STEPS < step_starts.shape[0]:  # spike i is of the last step s with starts[s] <= i
        out[:] = np.searchsorted(step_starts, np.arange(base, base + out.shape[0]), side="right") - 1
        return
    for first in range(0, step_starts.shape[0] - 1, STEP_CHUNK):
        bounds = step_starts[first:first + STEP_CHUNK + 1]
        out[bounds[0] - base:bounds[-1] - base] = np.repeat(np.arange(first, first + bounds.shape[0] - 1),
                                                           np.diff(bounds))
