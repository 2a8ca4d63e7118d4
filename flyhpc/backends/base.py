"""Backend contract and capabilities. No Slurm, no result files, no timing of phases.

A backend turns a `NetworkSpec` and a `Drive` into a `SpikeTable`, in explicit stages that the
caller times: `build` (code generation and compilation, cached where possible), `setup`
(network construction and upload), `run` (all trials of the drive; the only timed simulation),
`spikes` (collect off the device), `close`. Backend options (each backend's `Options` dataclass) come
from the caller or from $FLYHPC_BACKEND_OPTIONS, a JSON object {backend: {option: value}} that a site
sets in its module or job environment. Entry points: `Backend`, `Capabilities`, `Probe`, `make_options`,
`env_options`.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from flyhpc.drive import Drive
from flyhpc.errors import BackendUnavailable, ConfigError, UnsupportedFeature
from flyhpc.network import NetworkSpec
from flyhpc.spikes import SpikeTable


@dataclass(frozen=True)
class Capabilities:
    """What a backend is and can do; read by the CLI table, the README table and the Slurm layer.

    device: "cpu" or "gpu"; batching: how trials run ("sequential", "parallel", "batched");
    drive: "events" (applies the shared event trains) or "native" (draws its own);
    precisions: state dtypes it supports (first = default); compiles: has a build step;
    deterministic: same drive gives the same spikes; needs: partition features (e.g. {"gpu"});
    image: the Apptainer image name; verified_here: "yes", "CPU mode only" (the simulator's CPU code
    generator passes the contract suite; its GPU path is not run), "code generation only" or "not run here".
    """

    device: str
    batching: str
    drive: str
    precisions: tuple[str, ...]
    compiles: bool
    deterministic: bool
    image: str
    verified_here: str
    needs: frozenset[str] = field(default_factory=frozenset)


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


class Backend(abc.ABC):
    """One simulator behind the common stages. One instance simulates one network and duration."""

    name: ClassVar[str]
    caps: ClassVar[Capabilities]
    Options: ClassVar[type] = NoOptions

    def __init__(self, options=None, *, n_threads: int | None = None, precision: str | None = None,
                 work_root: Path | None = None):
        self.options = options if options is not None else make_options(type(self), env_options(self.name))
        self.n_threads = max(1, n_threads or available_cpus())
        self.precision = precision or self.caps.precisions[0]
        if self.precision not in self.caps.precisions:
            raise UnsupportedFeature(
                f"backend {self.name!r} does not support precision {self.precision!r}; "
                f"supported: {', '.join(self.caps.precisions)}")
        self.work_root = Path(work_root) if work_root else default_work_root()

    @classmethod
    @abc.abstractmethod
    def probe(cls) -> Probe:
        """Import the simulator (allocating nothing) and say whether it can run here; never raises."""

    @abc.abstractmethod
    def build(self, spec: NetworkSpec, n_steps: int) -> BuildReport:
        """Generate and compile what simulating `spec` for `n_steps` needs (reuse a cached build)."""

    def _probe_for_build(self, n_steps: int) -> Probe:
        """The probe at the top of `build`: BackendUnavailable with its reason, ConfigError for n_steps < 1."""
        probe = self.probe()
        if not probe.ok:
            raise BackendUnavailable(f"backend {self.name!r}: {probe.reason}")
        if int(n_steps) < 1:
            raise ConfigError(f"n_steps must be >= 1, got {n_steps!r}")
        return probe

    def setup(self) -> None:
        """Construct the network and upload it (after build, before run). Default: nothing."""

    @abc.abstractmethod
    def run(self, drive: Drive) -> RunReport:
        """Simulate every trial of `drive`; return when the device is idle. No I/O of ours inside."""

    @abc.abstractmethod
    def spikes(self) -> SpikeTable:
        """Spikes of the last `run`, trial numbers as in the drive."""

    def close(self) -> None:
        """Free memory and simulator globals. Idempotent."""


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


def available_cpus() -> int:
    """CPUs this process may use (Slurm's allocation or the affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def default_work_root() -> Path:
    """Root of build directories: $FLYHPC_BUILD_DIR, else ~/.cache/flyhpc/builds."""
    env = os.environ.get("FLYHPC_BUILD_DIR")
    return Path(env) if env else Path.home() / ".cache" / "flyhpc" / "builds"
