"""Backend contract and capabilities. No Slurm, no result files, no timing of phases.

A backend turns a `NetworkSpec` and a `Drive` into a `SpikeTable`, in explicit stages that the
caller times: `build` (code generation and compilation, cached where possible), `setup`
(network construction and upload), `run` (all trials of the drive; the only timed simulation),
`spikes` (collect off the device), `close`. `Backend` owns that lifecycle (benchopt's pattern): its
concrete stages probe, check the call order and the step counts, cache the spikes, and call the
plug-in's hooks `_build`, `_setup`, `_run`, `_collect`, `_close` (optional pair `_run_streamed` / `_drain`:
`run(drive, sink)` hands trials over while later ones run, `drain()` the rest). A backend that can change its built
network in place implements the optional pair `_apply` / `_restore`: `experiment(resolved)` then runs many
experiments on one build (screens). Backend options (each backend's `Options` dataclass) come from the caller
or from $FLYHPC_BACKEND_OPTIONS, a JSON object {backend: {option: value}} that a site sets in its module or job
environment. Entry points: `Backend`,
`Capabilities`, `Probe`, `import_probe`, `make_options`, `env_options`.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

import numpy as np

from flyhpc.drive import Drive
from flyhpc.errors import BackendUnavailable, ConfigError, UnsupportedFeature
from flyhpc.model import ResolvedExperiment
from flyhpc.network import NetworkSpec
from flyhpc.results.spikes import SpikeTable
from flyhpc.timing import usable_cpus


@dataclass(frozen=True)
class Capabilities:
    """What a backend is and can do; read by the CLI table, the README table, bundles, images and Slurm.

    device: "cpu" or "gpu"; batching: how trials run ("sequential", "parallel", "batched");
    drive: "events" (applies the shared event trains) or "native" (draws its own);
    precisions: state dtypes it supports (first = default); compiles: has a build step;
    deterministic: same drive gives the same spikes; image: the Apptainer image name;
    verified_here: what ran on this project's GPU-less machines: "yes", "CPU mode only" (the simulator's CPU
    code generator passes the contract suite; its GPU path is not run), "code generation only", "build only"
    (built and linked, nothing simulated) or "not run here" (README; `flyhpc check` verifies on a site);
    display_name: the results CSV's `framework` (the seed's names, e.g. "GeNN (GPU)"); "{device}" in it
    becomes "CUDA" or "CPU" after the device a run reports (`framework`);
    needs: partition features (e.g. {"gpu"});
    cpu_fallback_options: backend options that simulate through the simulator's CPU code path, used by the
    images' `flyhpc check` where no GPU is visible (empty: there it only builds);
    image_build_args: `apptainer build --build-arg` values of its image, "{cuda_arch}" filled with
    `flyhpc images build --cuda-arch`;
    gpus: the GPUs one task asks for where a cluster profile has no table for the backend (default: 1 for a
    GPU device, 0 otherwise: a CPU backend never gets a GPU by default).
    """

    device: str
    batching: str
    drive: str
    precisions: tuple[str, ...]
    compiles: bool
    deterministic: bool
    image: str
    verified_here: str
    display_name: str
    needs: frozenset[str] = field(default_factory=frozenset)
    cpu_fallback_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    image_build_args: tuple[str, ...] = ()
    gpus: int | None = None

    def __post_init__(self) -> None:  # a read-only copy: one Capabilities is shared by every instance
        object.__setattr__(self, "cpu_fallback_options", MappingProxyType(dict(self.cpu_fallback_options)))
        if self.gpus is None:
            object.__setattr__(self, "gpus", 1 if self.device == "gpu" else 0)

    def precision(self, asked: str | None) -> str:
        """The state dtype a run asking for `asked` gets: that one, or the default (the first) when none."""
        return asked or self.precisions[0]

    def framework(self, device: str = "") -> str:
        """`display_name` for a run on `device` ("cuda", "cuda:1" or "gpu" give "CUDA", anything else "CPU")."""
        return self.display_name.format(device="CUDA" if device.startswith(("gpu", "cuda")) else "CPU")


@dataclass(frozen=True)
class Probe:
    """Whether a backend can run here, why not, and the versions it found."""

    ok: bool
    reason: str
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildReport:
    """What `build` did: whether it reused a cached build, where, and the simulator's versions."""

    cached: bool = False
    work_dir: str = ""
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunReport:
    """What `run` reports beyond the caller's stopwatch: the simulator's own loop seconds if known."""

    inner_s: float | None = None
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NoOptions:
    """Backends without options."""


def import_probe(*modules: str, tools: Sequence[tuple[str, Callable[[], str | None], str]] = ()) -> Probe:
    """Whether `modules` import here (in order), with their versions, then `tools`; allocates nothing, never raises.

    The first module that fails gives ok=False and "<last module> cannot be imported: <error>" (the last
    module is the simulator; the ones before it are what it is built on). Versions: {module: __version__,
    or "unknown"}. A module that exits the process on import (nestgpu without its library) counts as failing.
    `tools` are the backend's own checks (compilers, tools), in order once every module imports: (versions key,
    or "" to store nothing; a finder returning what it found, e.g. a path, or None; the reason when it finds none).
    """
    versions: dict[str, str] = {}
    for module in modules:
        try:
            imported = importlib.import_module(module)
        except (Exception, SystemExit) as exc:  # ImportError, a broken install, or sys.exit in the module
            detail = str(exc) if isinstance(exc, Exception) else repr(exc)
            return Probe(False, f"{modules[-1]} cannot be imported: {detail}", versions)
        versions[module] = str(getattr(imported, "__version__", "unknown"))
    for key, find, reason in tools:
        found = find()
        if not found:
            return Probe(False, reason, versions)
        if key:
            versions[key] = found
    return Probe(True, "", versions)


class Backend(abc.ABC):
    """One simulator behind the common stages. One instance simulates one network and duration.

    The stages are concrete and own the lifecycle: `build` probes, checks n_steps and closes what an
    earlier build left before `_build`; `setup` and `run` refuse to run before a build, `run` checks the
    drive against the build (and sets up if the caller did not) before `_run`; `spikes` calls `_collect`
    once per run and caches the table; `close` calls `_close` and forgets the build. A backend implements
    `probe`, `_build`, `_run` and `_collect` (and `_setup`, `_close` where it has something to do); the
    hooks may read `self._spec` and `self._n_steps` from `_setup` on. `experiment` changes the built network
    in place for one experiment where the backend implements `_apply` and `_restore` (`reconfigurable()`).
    """

    name: ClassVar[str]
    caps: ClassVar[Capabilities]
    Options: ClassVar[type] = NoOptions

    def __init__(self, options=None, *, n_threads: int | None = None, precision: str | None = None,
                 work_root: Path | None = None, probe: Probe | None = None):
        self._probe = probe  # the caller's `probe()` of this class (pipeline.simulate ran it): not run again
        self.options = options if options is not None else make_options(type(self), env_options(self.name))
        self.n_threads = max(1, n_threads or usable_cpus())
        self.precision = self.caps.precision(precision)
        if self.precision not in self.caps.precisions:
            raise UnsupportedFeature(
                f"backend {self.name!r} does not support precision {self.precision!r}; "
                f"supported: {', '.join(self.caps.precisions)}")
        self.work_root = Path(work_root) if work_root else default_work_root()
        self._spec: NetworkSpec | None = None
        self._n_steps: int | None = None
        self._set_up = False
        self._ran = False
        self._spikes: SpikeTable | None = None
        self._applied: ResolvedExperiment | None = None
        self._streamed = False  # the last run handed its spikes to a sink (`drain`, not `spikes`)

    # -- the plug-in's part ----------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def probe(cls) -> Probe:
        """Import the simulator (allocating nothing) and say whether it can run here; never raises."""

    @classmethod
    def runs_on_gpu(cls, options) -> bool:
        """Whether these options put a CPU-capable backend on a GPU (e.g. pytorch's device "cuda"); default False."""
        return False

    def _probed(self) -> Probe:
        """`probe()`, run once per backend object (or the one its caller handed in)."""
        if self._probe is None:
            self._probe = self.probe()
        return self._probe

    def _build_probe(self) -> Probe:
        """The probe `build` requires (default: `probe()`, once: `_probed`); override to check more."""
        return self._probed()

    @abc.abstractmethod
    def _build(self, spec: NetworkSpec, n_steps: int, probe: Probe) -> BuildReport:
        """Generate and compile what simulating `spec` for `n_steps` (>= 1) needs; `probe` passed `build`'s."""

    def _setup(self) -> None:
        """Construct the network and upload it (after `_build`, before the first `_run`). Default: nothing."""

    @abc.abstractmethod
    def _run(self, drive: Drive) -> RunReport:
        """Simulate every trial of `drive` (>= 1 trial, the build's n_steps) and keep its spikes; return when
        the device is idle. No I/O of ours inside."""

    @abc.abstractmethod
    def _collect(self) -> SpikeTable:
        """Spikes of the last `_run`, trial numbers as in the drive (called once per run)."""

    def _close(self) -> None:
        """Free memory, device state and simulator globals. Idempotent. Default: nothing."""

    def _apply(self, resolved: ResolvedExperiment) -> None:
        """Optional: change the set-up network in place so that it runs as `build_network` would build it for
        `resolved`: the driven neurons' refractory windows 0 steps, no input from a silenced neuron ever delivered
        (its own inputs may stay: `spikes` leaves out its spikes in silence_mode "both"). Validate everything
        before changing anything; keep what `_restore` needs to put the network back bit for bit."""
        raise NotImplementedError  # not called: `experiment` refuses a backend that does not override it

    def _restore(self) -> None:
        """Put back what the last `_apply` changed, exactly (overridden together with `_apply`)."""
        raise NotImplementedError

    def _run_streamed(self, drive: Drive, sink: Callable[[SpikeTable], None]) -> RunReport:
        """Optional: `_run`, handing each trial's spikes to `sink` (a one-trial SpikeTable, drive order, the calling
        thread) while later trials run; keeps those finished when the last one ends for `_drain` (not in the sim)."""
        raise NotImplementedError  # not called: `run` refuses a sink for a backend that does not override it

    def _drain(self) -> None:
        """Hand the trials the last `_run_streamed` kept to its sink, in order (overridden together with it)."""
        raise NotImplementedError

    # -- the lifecycle -----------------------------------------------------------------------------
    def build(self, spec: NetworkSpec, n_steps: int) -> BuildReport:
        """Generate and compile what simulating `spec` for `n_steps` needs (reuse a cached build).

        Raises
        ------
        BackendUnavailable
            If the probe fails here (with its reason).
        ConfigError
            If n_steps < 1; and whatever the backend's `_build` raises (UnsupportedFeature, ...).
        """
        probe = self._build_probe()
        if not probe.ok:
            raise BackendUnavailable(f"backend {self.name!r}: {probe.reason}")
        if int(n_steps) < 1:
            raise ConfigError(f"n_steps must be >= 1, got {n_steps!r}")
        self.close()
        report = self._build(spec, int(n_steps), probe)
        self._spec, self._n_steps = spec, int(n_steps)
        return report

    def setup(self) -> None:
        """Construct the network and upload it (after build, before run; `run` does it if not done).

        Raises
        ------
        ConfigError
            If `build` was not called.
        """
        self._require_build("setup")
        if not self._set_up:
            self._setup()
            self._set_up = True

    def run(self, drive: Drive, sink: Callable[[SpikeTable], None] | None = None) -> RunReport:
        """Simulate every trial of `drive`; return when the device is idle. No I/O of ours inside but what `sink` does. With `sink` (a
        backend that `streams()`), each trial's spikes go to `sink(table)` in drive order while later trials still
        run, and `drain()` hands over those left when the sim ended (not `spikes()`).

        Raises
        ------
        ConfigError
            If `build` was not called, the drive's n_steps differs from the build's, the drive has no
            trial, or (from the backend) an event names a step or neuron outside the network.
        UnsupportedFeature
            For a sink given to a backend that does not stream.
        """
        if sink is not None and not self.streams():
            raise UnsupportedFeature(f"backend {self.name!r} cannot hand over trials while it runs; take spikes()")
        self._require_build("run")
        if drive.n_steps != self._n_steps:
            raise ConfigError(f"backend {self.name!r}: drive has {drive.n_steps} steps but the build "
                              f"was made for {self._n_steps}")
        if drive.n_trials < 1:
            raise ConfigError(f"backend {self.name!r}: the drive has no trial")
        self.setup()
        self._spikes, self._ran, self._streamed = None, False, sink is not None
        if sink is None:
            report = self._run(drive)
        else:
            applied = self._applied
            report = self._run_streamed(drive, lambda table: sink(_heard(table, applied)))
        self._ran = True
        return report

    def drain(self) -> None:
        """The collect stage of a run given a sink: hand the trials still held to it, in order (ConfigError if the
        last run was not given a sink, or did not complete)."""
        if not (self._ran and self._streamed):
            raise ConfigError(f"backend {self.name!r}: drain() without a completed run(drive, sink)")
        self._drain()

    def spikes(self) -> SpikeTable:
        """Spikes of the last `run`, trial numbers as in the drive, sorted by (trial, step, neuron).

        Raises
        ------
        ConfigError
            If no run has completed since the last build.
        """
        if self._spikes is None:
            if not self._ran:
                raise ConfigError(f"backend {self.name!r}: spikes() called before run()")
            if self._streamed:
                raise ConfigError(f"backend {self.name!r}: the last run handed its spikes to a sink (drain())")
            self._spikes = _heard(self._collect(), self._applied)
        return self._spikes

    def close(self) -> None:
        """Free memory and simulator globals and forget the build (build again to reuse). Idempotent."""
        self._applied = None  # the network goes: nothing to put back
        self._close()
        self._spec, self._n_steps = None, None
        self._set_up = self._ran = self._streamed = False
        self._spikes = None

    @classmethod
    def streams(cls) -> bool:
        """Whether `run` can hand trials to a sink while later ones run (implements `_run_streamed`)."""
        return cls._run_streamed is not Backend._run_streamed

    @classmethod
    def reconfigurable(cls) -> bool:
        """Whether the backend changes a built network in place for an experiment (implements `_apply`)."""
        return cls._apply is not Backend._apply

    @classmethod
    def screen_costs(cls) -> str:
        """How screen planning estimates a chunk on this backend (`flyhpc.screens.cost.chunk_costs`): "build-once"
        where it implements the experiment hook (a chunk builds once and changes each experiment in place), else
        "whole-run" (a build per experiment). A backend with its own measured model overrides it (native)."""
        return "build-once" if cls.reconfigurable() else "whole-run"

    @contextlib.contextmanager
    def experiment(self, resolved: ResolvedExperiment) -> Iterator["Backend"]:
        """Inside, `run` and `spikes` simulate `resolved` on the built network, changed in place (its driven
        neurons' refractory windows, its silenced neurons' synapses by its silence_mode); leaving puts the
        network back exactly, also after an error. The build must be of the bare connectome
        (`build_network(conn, None)`), so the spikes are those of a build of `resolved`'s own network.

        Raises
        ------
        UnsupportedFeature
            If the backend does not implement the hook (`reconfigurable()`): build per experiment instead.
        ConfigError
            Before `build`, on a build of an experiment's network, inside another `experiment`, or for
            neurons outside the network.
        """
        if not self.reconfigurable():
            raise UnsupportedFeature(f"backend {self.name!r} cannot change a built network in place; build each "
                                     "experiment's network instead")
        self._require_build("experiment")
        if self._spec.experiment is not None:
            raise ConfigError(f"backend {self.name!r}: experiment() needs a build of the bare connectome "
                              f"(build_network(conn, None)), not of experiment {self._spec.experiment.name!r}")
        if self._applied is not None:
            raise ConfigError(f"backend {self.name!r}: experiment() inside experiment "
                              f"{self._applied.experiment.name!r}")
        n, driven, silenced = self._spec.n_neurons, resolved.driven, resolved.silenced  # driven: sorted
        ends = [int(driven[0]), int(driven[-1])] if driven.size else []
        ends += [int(silenced.min()), int(silenced.max())] if silenced.size else []
        if ends and (min(ends) < 0 or max(ends) >= n):
            raise ConfigError(f"backend {self.name!r}: experiment {resolved.experiment.name!r} names neurons "
                              f"outside the network's 0..{n - 1}")
        self.setup()
        self._apply(resolved)
        self._applied, self._spikes, self._ran = resolved, None, False
        try:
            yield self
        finally:
            if self._applied is not None:  # close() inside dropped the network
                self._applied, self._spikes, self._ran = None, None, False
                self._restore()

    def _require_build(self, stage: str) -> None:
        if self._n_steps is None:
            raise ConfigError(f"backend {self.name!r}: {stage}() called before build()")


def _heard(table: SpikeTable, applied: ResolvedExperiment | None) -> SpikeTable:
    """`table` without the spikes of neurons silenced in mode "both" by the applied experiment: `_apply` may leave
    their inputs, but built without them they never spike (a silenced neuron is never driven)."""
    if applied is None or not applied.silenced.size or applied.experiment.silence_mode != "both":
        return table
    keep = ~np.isin(table.neuron, applied.silenced)
    return SpikeTable(table.trial[keep], table.step[keep], table.neuron[keep])


OPTIONS_ENV = "FLYHPC_BACKEND_OPTIONS"

# Field metadata of an option that steers how a run goes (which GPU, retries, debugging) but not
# its spikes: such options stay out of a task's fingerprint.
RUN_ONLY = {"run_only": True}


def result_options(cls: type[Backend], values: Mapping[str, Any]) -> dict[str, Any]:
    """The options among `values` that can change a run's spikes (every field not marked RUN_ONLY)."""
    run_only = {f.name for f in dataclasses.fields(cls.Options) if f.metadata.get("run_only")}
    return {k: v for k, v in values.items() if k not in run_only}


def make_options(cls: type[Backend], values: Mapping[str, Any]):
    """`cls.Options` from plain values (JSON or TOML: lists become tuples); the dataclass validates them.

    Raises
    ------
    ConfigError
        If a key is not an option of the backend (every valid one is listed) or a value is invalid.
    """
    valid = sorted(f.name for f in dataclasses.fields(cls.Options))
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ConfigError(f"backend {cls.name!r} has no option {unknown[0]!r}; "
                          f"its options: {', '.join(valid) or 'none'}")
    return cls.Options(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def env_options(backend: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The options of `backend` in $FLYHPC_BACKEND_OPTIONS ({} when unset or not named there).

    Raises
    ------
    ConfigError
        If the variable is not a JSON object of objects.
    """
    raw = (os.environ if env is None else env).get(OPTIONS_ENV, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"${OPTIONS_ENV} is not valid JSON ({exc}): {raw!r}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"${OPTIONS_ENV} must be a JSON object {{backend: {{option: value}}}}, got {raw!r}")
    return dict(data.get(backend, {}))


def default_work_root() -> Path:
    """Root of build directories: $FLYHPC_BUILD_DIR, else ~/.cache/flyhpc/builds."""
    env = os.environ.get("FLYHPC_BUILD_DIR")
    return Path(env) if env else Path.home() / ".cache" / "flyhpc" / "builds"
