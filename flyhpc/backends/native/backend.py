"""The native backend: flyhpc's own compiled CPU engines (flyhpc.backends.native), trials in parallel threads.

Default engine "lazy" is the exact lazy event-driven scheme (falls back to clock-driven stepping per
trial while activity is high); "clock" is the compiled clock-driven loop. Both are float64 and
bit-identical to each other. It must not draw random numbers, read files or time itself.
Entry points: `NativeBackend` (key "native"), `NativeOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flyhpc.backends.base import Backend, BuildReport, Capabilities, Probe, RunReport
from flyhpc.drive import Drive
from flyhpc.errors import ConfigError
from flyhpc.network import NetworkSpec
from flyhpc.spikes import SpikeTable


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
    """flyhpc's numba engines: one trial per thread, spikes kept in memory until `spikes()`."""

    name: ClassVar[str] = "native"
    Options: ClassVar[type] = NativeOptions
    caps: ClassVar[Capabilities] = Capabilities(
        device="cpu", batching="parallel", drive="events", precisions=("float64",), compiles=True,
        deterministic=True, image="flyhpc-base", verified_here="yes")

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        self._net = None
        self._results = None
        self._spikes: SpikeTable | None = None

    @classmethod
    def probe(cls) -> Probe:
        """numba importable (the engines' compiler); never raises."""
        try:
            import numba
        except Exception as exc:  # ImportError or a broken llvmlite
            return Probe(False, f"numba cannot be imported: {exc}")
        return Probe(True, "", {"numba": numba.__version__, "numpy": np.__version__})

    def build(self, spec: NetworkSpec, n_steps: int) -> BuildReport:
        """Convert the CSR network to the engine's dtypes and tables; compile (or load) the kernels.

        Raises
        ------
        BackendUnavailable
            If numba is missing.
        ConfigError, UnsupportedFeature
            For n_steps < 1, a delay under one step, or parameters the engines do not model.
        """
        probe = self._probe_for_build(n_steps)
        from flyhpc.backends.native import EngineNetwork, warm_up

        self.close()
        self._net = EngineNetwork.from_spec(spec, int(n_steps))
        warm_up()
        return BuildReport(cached=False, work_dir="", versions=probe.versions)

    def run(self, drive: Drive) -> RunReport:
        """Simulate every trial of `drive`, min(n_threads, n_trials) trials at a time.

        Raises
        ------
        ConfigError
            If `build` was not called, the drive's n_steps differs from the build's, the drive has
            no trial, or an event names a step or neuron outside the network.
        """
        from flyhpc.backends.native.trials import LazySettings, run_trials

        if self._net is None:
            raise ConfigError(f"backend {self.name!r}: run() called before build()")
        if drive.n_steps != self._net.n_steps:
            raise ConfigError(f"backend {self.name!r}: drive has {drive.n_steps} steps but the build "
                              f"was made for {self._net.n_steps}")
        if drive.n_trials < 1:
            raise ConfigError(f"backend {self.name!r}: the drive has no trial")
        opts = self.options
        settings = LazySettings(clock_on=float(opts.clock_on), clock_off=float(opts.clock_off))
        threads = max(1, min(self.n_threads, drive.n_trials))
        self._results = run_trials(self._net, drive.trials, opts.engine, threads, settings)
        self._spikes = None
        notes = {"engine": opts.engine, "dtype": self.precision, "device": "cpu", "threads": str(threads)}
        for key in ("clock_steps", "switches", "max_queue", "synaptic_events"):
            values = [r.stats[key] for r in self._results if key in r.stats]
            if values:
                notes[key] = ",".join(str(v) for v in values)
        return RunReport(inner_s=None, notes=notes)

    def spikes(self) -> SpikeTable:
        """Spikes of the last run (trial numbers from the drive), sorted by (trial, step, neuron)."""
        if self._spikes is not None:
            return self._spikes
        if self._results is None:
            raise ConfigError(f"backend {self.name!r}: spikes() called before run()")
        trials = [np.full(r.spike_neurons.size, r.trial, np.int32) for r in self._results]
        steps = [r.spike_steps for r in self._results]
        neurons = [r.spike_neurons for r in self._results]
        self._spikes = SpikeTable.from_arrays(np.concatenate(trials), np.concatenate(steps), np.concatenate(neurons))
        self._results = None
        return self._spikes

    def close(self) -> None:
        """Drop the network and the recorded spikes. Idempotent."""
        self._net = None
        self._results = None
        self._spikes = None
