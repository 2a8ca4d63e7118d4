"""Cluster profiles (clusters/<name>.toml, found as `flyhpc.config_paths` says): where tasks run, with what.

Owns the profile schema and its validation (unknown keys fail with every valid key listed, unknown
`[backends.<name>]` tables with every registered backend, values of the wrong TOML type with the type
expected), the per-backend resources, backend options (`[backends.<name>.options]`) and the time-limit
model, which says when it had to clamp a limit to `max_time_min`. Reads submitit's list of Slurm
parameters to check `[sbatch]` tables, and submits nothing: `flyhpc.cluster.slurm` and
`flyhpc.cluster.executors` turn a profile into executors. Entry points: `load_profile`,
`ClusterProfile.resources`, `ClusterProfile.time_limit`, `ClusterProfile.limit_for`,
`ClusterProfile.time_limit_min`, `profile_names`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from flyhpc import config_paths
from flyhpc.errors import ConfigError, FlyhpcError

EXECUTORS = ("slurm", "local", "debug")

# Time limits are rounded up to one of these (minutes), so that the tasks of a backend fall into a
# few arrays instead of one array per grid point.
TIME_LADDER_MIN = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 960, 1440, 2160, 2880,
                   4320, 5760, 10080)

# Slurm sends the pre-timeout warning (`--signal=USR2@<signal_delay_s>`, which submitit always asks for)
# up to 60 s earlier than asked ("due to the resolution of event handling", sbatch(1)), and a job's
# Python has no handler for it while it starts (interpreter, container, submitit): a warning then
# kills the task with signal 12 before it has begun (measured on the loopback cluster: a 1 min limit
# with a 30 s warning lost 5 of 368 jobs that way). A limit is therefore never shorter than the
# warning, plus Slurm's 60 s, plus a start-up minute with no warning in it.
WARNING_EARLY_S = 60
STARTUP_S = 60


@dataclass(frozen=True)
class Resources:
    """What one task of a backend asks the scheduler for, and how long it may take.

    Wall time model (seconds) for a task of `n_run` trials of `t_run_s` simulated seconds:
    ``base_s + n_run * (per_trial_s + per_sim_s * t_run_s)``, times the profile's safety factor.
    """

    gpus: int = 0
    cpus: int = 1
    mem_gb: float = 4.0
    image: str = ""
    base_s: float = 60.0
    per_trial_s: float = 1.0
    per_sim_s: float = 5.0

    def wall_estimate_s(self, t_run_s: float, n_run: int) -> float:
        """Expected wall seconds of one task (no safety factor)."""
        return self.base_s + n_run * (self.per_trial_s + self.per_sim_s * t_run_s)


class TimeLimit(NamedTuple):
    """A task's time limit in minutes, and whether `max_time_min` cut it below what the model asks for."""

    minutes: int
    clamped: bool


@dataclass(frozen=True)
class ClusterProfile:
    """A site: executor kind, scheduler options, container settings and per-backend resources."""

    name: str
    executor: str = "local"
    partition: str = ""
    account: str = ""
    qos: str = ""
    max_array_size: int = 1000
    array_parallelism: int = 1
    container: bool = False
    image_dir: str = ""
    apptainer: str = "apptainer exec --nv"
    binds: tuple[str, ...] = ()
    python: str = "python"
    private_dir: str = ""  # submitit's folders (job pickles, scripts, logs); "" = the user's cache (job_folder)
    slurm_setup: tuple[str, ...] = ()
    signal_delay_s: int = 30
    safety_factor: float = 2.0
    min_time_min: int = 10
    max_time_min: int = 2880
    sbatch: Mapping[str, Any] = field(default_factory=dict)
    default: Resources = Resources()
    backends: Mapping[str, Resources] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = "<embedded>"

    def resources(self, backend: str) -> Resources:
        """The resources of `backend`: its own `[backends.<name>]` table; else the profile's `[default]` table with
        the GPUs the backend declares (`caps.gpus`: none for a CPU backend, whatever `[default]` says). A site
        profile need not list every backend."""
        if backend in self.backends:
            return self.backends[backend]
        from flyhpc import backends as registry

        try:
            gpus = registry.get(backend).caps.gpus
        except FlyhpcError:  # unknown or unimportable: planning fails later, naming it
            return self.default
        return dataclasses.replace(self.default, gpus=gpus)

    def time_limit(self, backend: str, t_run_s: float, n_run: int, time_factor: float = 1.0,
                   at_least_min: int = 0) -> TimeLimit:
        """Slurm time limit for one task, rounded up to the time ladder, and whether it was clamped.

        Parameters
        ----------
        backend, t_run_s, n_run
            The task's backend key and size.
        time_factor
            Extra multiplier (``resubmit --time-factor``), on top of the profile's safety factor.
        at_least_min
            A floor before rounding (``resubmit --time-factor`` raises the earlier limit, not only the model's).

        Returns
        -------
        TimeLimit
            `minutes` within [min_time_min, max_time_min]; `clamped` is true when the model asks for
            more than `max_time_min` (the task may time out, and a larger factor cannot help).
        """
        return self.limit_for(self.resources(backend).wall_estimate_s(t_run_s, n_run), time_factor, at_least_min)

    @property
    def shortest_limit_min(self) -> int:
        """The shortest time limit a task gets: `min_time_min`, or longer when the pre-timeout warning
        could otherwise reach a task while it starts (see `WARNING_EARLY_S`)."""
        return max(self.min_time_min, math.ceil((self.signal_delay_s + WARNING_EARLY_S + STARTUP_S) / 60))

    def limit_for(self, wall_s: float, time_factor: float = 1.0, at_least_min: int = 0) -> TimeLimit:
        """`time_limit` of a task whose expected wall time is `wall_s` seconds (a screen chunk's planned cost)."""
        minutes = math.ceil(wall_s * self.safety_factor * time_factor / 60.0)
        minutes = max(minutes, self.shortest_limit_min, at_least_min)
        rung = next((m for m in TIME_LADDER_MIN if m >= minutes), minutes)
        return TimeLimit(min(rung, self.max_time_min), minutes > self.max_time_min)

    def time_limit_min(self, backend: str, t_run_s: float, n_run: int, time_factor: float = 1.0) -> int:
        """Minutes of `time_limit` (the same arguments), for callers that do not warn about clamping."""
        return self.time_limit(backend, t_run_s, n_run, time_factor).minutes

    def backend_options(self, backend: str) -> dict[str, Any]:
        """Options of `backend` from its `[backends.<name>.options]` table ({} if none)."""
        return dict(self.options.get(backend, {}))

    def image_path(self, backend: str) -> str:
        """Absolute path of the backend's Apptainer image ('' when the backend names none)."""
        image = self.resources(backend).image
        if not image:
            return ""
        return image if image.startswith("/") or not self.image_dir else f"{self.image_dir.rstrip('/')}/{image}"


_TOP_KEYS = {f.name for f in dataclasses.fields(ClusterProfile)} - {"name", "default", "backends", "options",
                                                                   "source"}
_RES_KEYS = {f.name for f in dataclasses.fields(Resources)}
# Options the profile sets through its own keys; naming them in [sbatch] too would be ambiguous.
_OWNED_SBATCH = {"partition", "account", "qos", "setup", "array_parallelism", "time", "cpus_per_task",
                 "gpus_per_node", "mem", "signal_delay_s"}


def _check_keys(table: Mapping[str, Any], valid: set[str], where: str) -> None:
    unknown = sorted(set(table) - valid)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}; "
                          f"valid keys: {', '.join(sorted(valid))}")


# Expected TOML type of each key, and its lower bound: (kind, minimum). Booleans are never numbers here
# (Python's True == 1) and strings are never booleans ("false" is true in Python).
_CLUSTER_TYPES: dict[str, tuple[str, float | None]] = {
    "executor": ("string", None), "partition": ("string", None), "account": ("string", None),
    "qos": ("string", None), "image_dir": ("string", None), "apptainer": ("string", None),
    "python": ("string", None), "private_dir": ("string", None), "container": ("boolean", None),
    "binds": ("strings", None),
    "slurm_setup": ("strings", None), "max_array_size": ("integer", 1), "array_parallelism": ("integer", 1),
    "min_time_min": ("integer", 1), "max_time_min": ("integer", 1), "signal_delay_s": ("integer", 0),
    "safety_factor": ("number", 1),
}
_RES_TYPES: dict[str, tuple[str, float | None]] = {
    "gpus": ("integer", 0), "cpus": ("integer", 1), "mem_gb": ("number", 0), "image": ("string", None),
    "base_s": ("number", 0), "per_trial_s": ("number", 0), "per_sim_s": ("number", 0),
}
_KIND_TEXT = {"string": "a string", "boolean": "true or false (a TOML boolean, unquoted)", "integer": "an integer",
              "number": "a number", "strings": "a list of strings"}


def _toml_type(value: Any) -> str:
    """The TOML type of a parsed value, with its article, for error messages ("a boolean")."""
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
                       (list, "a list"), (Mapping, "a table")):
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def _check_types(table: Mapping[str, Any], types: Mapping[str, tuple[str, float | None]], where: str) -> None:
    """Every key of `table` has its expected TOML type and bound; raises ConfigError naming the key."""
    for key, value in table.items():
        kind, minimum = types[key]
        ok = {"string": isinstance(value, str), "boolean": isinstance(value, bool),
              "integer": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool),
              "strings": isinstance(value, list) and all(isinstance(v, str) for v in value)}[kind]
        expected = _KIND_TEXT[kind] + ("" if minimum is None else f" >= {minimum:g}")
        if not ok:
            raise ConfigError(f"{where}.{key} = {value!r}: expected {expected}, got {_toml_type(value)}")
        if minimum is not None and value < minimum:
            raise ConfigError(f"{where}.{key} = {value!r}: expected {expected}")


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table, got {_toml_type(value)}: {value!r}")
    return dict(value)


def _resources(table: Any, base: Resources, where: str) -> Resources:
    table = _table(table, where)
    _check_keys(table, _RES_KEYS, where)
    _check_types(table, _RES_TYPES, where)
    return dataclasses.replace(base, **table)


def _backend_options(backend: str, table: Any, where: str) -> dict[str, Any]:
    """A backend's options table, checked against the backend's own Options (names and values)."""
    from flyhpc import backends
    from flyhpc.backends.base import make_options

    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table of option = value, got {table!r}")
    try:
        make_options(backends.get(backend), table)
    except FlyhpcError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return dict(table)


def valid_sbatch_keys() -> dict[str, Any]:
    """submitit's Slurm parameters (name -> default) that a profile's [sbatch] table may set."""
    from submitit.slurm import slurm as submitit_slurm

    defaults = submitit_slurm._get_default_parameters()  # the keyword arguments of its sbatch writer
    return {k: v for k, v in defaults.items() if k not in _OWNED_SBATCH}


def profile_from_dict(data: Mapping[str, Any], name: str, source: str = "<dict>") -> ClusterProfile:
    """Build and validate a profile from a parsed TOML document.

    Raises
    ------
    ConfigError
        Unknown keys (listing the valid ones), an unknown `[backends.<name>]` table (listing the
        registered backends), a value of the wrong type (naming the key and the type expected), a
        bad value, an unknown executor.
    """
    from flyhpc import backends as registry

    where = source
    data = dict(data)
    cluster = _table(data.pop("cluster", {}), f"{where} [cluster]")
    default_table = data.pop("default", {})
    backend_tables = _table(data.pop("backends", {}), f"{where} [backends]")
    sbatch = _table(data.pop("sbatch", {}), f"{where} [sbatch]")
    _check_keys(data, {"cluster", "default", "backends", "sbatch"}, f"{where} (top-level tables)")
    _check_keys(cluster, _TOP_KEYS - {"sbatch"}, f"{where} [cluster]")
    _check_types(cluster, _CLUSTER_TYPES, f"{where} [cluster]")
    for key in ("binds", "slurm_setup"):
        if key in cluster:
            cluster[key] = tuple(cluster[key])
    for key in backend_tables:
        if key not in registry.REGISTRY:
            raise ConfigError(f"{where} [backends.{key}]: unknown backend {key!r}; valid backends: "
                              f"{', '.join(registry.names())}")
    default = _resources(default_table, Resources(), f"{where} [default]")
    options = {}
    for key, tab in backend_tables.items():
        if isinstance(tab, Mapping) and "options" in tab:
            tab = dict(tab)
            options[key] = _backend_options(key, tab.pop("options"), f"{where} [backends.{key}.options]")
            backend_tables[key] = tab
    backends = {key: _resources(tab, default, f"{where} [backends.{key}]") for key, tab in backend_tables.items()}
    if sbatch and cluster.get("executor", "local") == "slurm":
        valid = valid_sbatch_keys()
        _check_keys(sbatch, set(valid), f"{where} [sbatch] (submitit Slurm parameters)")
    prof = ClusterProfile(name=name, sbatch=sbatch, default=default, backends=backends, options=options,
                          source=source, **cluster)
    _validate(prof, where)
    return prof


def _validate(prof: ClusterProfile, where: str) -> None:
    """The checks across keys (types and bounds are checked key by key before)."""
    if prof.executor not in EXECUTORS:
        raise ConfigError(f"{where} [cluster].executor = {prof.executor!r}; valid: {', '.join(EXECUTORS)}")
    if prof.min_time_min > prof.max_time_min:
        raise ConfigError(f"{where}: min_time_min {prof.min_time_min} > max_time_min {prof.max_time_min}")
    if prof.shortest_limit_min > prof.max_time_min:
        raise ConfigError(f"{where}: max_time_min {prof.max_time_min} leaves no room for Slurm's pre-timeout "
                          f"warning: signal_delay_s {prof.signal_delay_s} + up to {WARNING_EARLY_S} s early + "
                          f"{STARTUP_S} s of start-up need a limit of at least {prof.shortest_limit_min} min "
                          "(raise max_time_min or lower signal_delay_s)")
    if prof.container and prof.executor != "slurm":
        raise ConfigError(f"{where}: container = true needs executor = 'slurm' (got {prof.executor!r})")


def clusters_dirs() -> list[Path]:
    """Folders searched for `<name>.toml`, in the order of `flyhpc.config_paths`."""
    return config_paths.search_dirs("clusters")


def profile_names() -> list[str]:
    """Every profile name found in the searched folders, plus the embedded `local`."""
    names = {"local"}
    for folder in clusters_dirs():
        names.update(p.stem for p in folder.glob("*.toml"))
    return sorted(names)


def load_profile(name_or_path: str | Path) -> ClusterProfile:
    """Load a cluster profile by name (clusters/<name>.toml in the `flyhpc.config_paths` order) or by path.

    `local` without a file is the embedded default: submitit's local executor, one task at a time.

    Raises
    ------
    ConfigError
        No such profile (listing the known ones), a file that is not UTF-8 or not valid TOML (naming
        the file), or a schema error.
    """
    text = str(name_or_path)
    candidates = [Path(text)] if text.endswith(".toml") or "/" in text else \
        [d / f"{text}.toml" for d in clusters_dirs()]
    for path in candidates:
        if path.is_file():
            data = config_paths.read_toml(path, "profile")
            cluster = data.get("cluster", {})
            # an empty or cut file must not quietly mean "run everything on this machine"
            if isinstance(cluster, dict) and "executor" not in cluster:
                raise ConfigError(f"profile {path}: [cluster].executor is not set" + (" (the file is empty)" if not data
                                  else "") + f"; set it to one of {', '.join(EXECUTORS)}")
            return profile_from_dict(data, name=path.stem, source=str(path))
    if text == "local":
        return ClusterProfile(name="local")
    raise ConfigError(f"no cluster profile {text!r}; known: {', '.join(profile_names())} "
                      f"(searched {', '.join(str(c) for c in candidates)})")
