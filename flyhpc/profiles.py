"""Cluster profiles (jobs/clusters/*.toml): where tasks run and with what resources.

Owns the profile schema, its validation (unknown keys fail with every valid key listed), the
per-backend resources, backend options (`[backends.<name>.options]`) and the time-limit model. Imports no submitit and submits nothing; the
Slurm layer (`flyhpc.slurm`) turns a profile into executors. Entry points: `load_profile`,
`ClusterProfile.resources`, `Resources.time_limit_min`, `profile_names`.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from flyhpc.errors import ConfigError, FlyhpcError

EXECUTORS = ("slurm", "local", "debug")

# Time limits are rounded up to one of these (minutes), so that the tasks of a backend fall into a
# few arrays instead of one array per grid point.
TIME_LADDER_MIN = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 960, 1440, 2160, 2880,
                   4320, 5760, 10080)


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
        """The resources of `backend`: its own table, else the profile's `[default]` table."""
        return self.backends.get(backend, self.default)

    def time_limit_min(self, backend: str, t_run_s: float, n_run: int, time_factor: float = 1.0) -> int:
        """Slurm time limit (minutes) for one task, rounded up to the time ladder.

        Parameters
        ----------
        backend, t_run_s, n_run
            The task's backend key and size.
        time_factor
            Extra multiplier (``resubmit --time-factor``), on top of the profile's safety factor.

        Returns
        -------
        int
            Minutes, within [min_time_min, max_time_min].
        """
        wall_s = self.resources(backend).wall_estimate_s(t_run_s, n_run)
        minutes = math.ceil(wall_s * self.safety_factor * time_factor / 60.0)
        minutes = max(minutes, self.min_time_min)
        rung = next((m for m in TIME_LADDER_MIN if m >= minutes), minutes)
        return min(rung, self.max_time_min)

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


def _resources(table: Mapping[str, Any], base: Resources, where: str) -> Resources:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    _check_keys(table, _RES_KEYS, where)
    res = dataclasses.replace(base, **table)
    for key in ("gpus", "cpus"):
        value = getattr(res, key)
        if not isinstance(value, int) or value < (1 if key == "cpus" else 0):
            raise ConfigError(f"{where}.{key} = {value!r}: expected an integer >= {1 if key == 'cpus' else 0}")
    for key in ("mem_gb", "base_s", "per_trial_s", "per_sim_s"):
        value = getattr(res, key)
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{where}.{key} = {value!r}: expected a number >= 0")
    if not isinstance(res.image, str):
        raise ConfigError(f"{where}.image = {res.image!r}: expected a file name")
    return res


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
    from flyhpc import slurm  # the one module that imports submitit

    return {k: v for k, v in slurm.submitit_slurm_parameters().items() if k not in _OWNED_SBATCH}


def profile_from_dict(data: Mapping[str, Any], name: str, source: str = "<dict>") -> ClusterProfile:
    """Build and validate a profile from a parsed TOML document.

    Raises
    ------
    ConfigError
        Unknown keys (listing the valid ones), bad types or values, an unknown executor.
    """
    where = source
    data = dict(data)
    cluster = dict(data.pop("cluster", {}))
    default_table = data.pop("default", {})
    backend_tables = dict(data.pop("backends", {}))
    sbatch = dict(data.pop("sbatch", {}))
    _check_keys(data, {"cluster", "default", "backends", "sbatch"}, f"{where} (top-level tables)")
    _check_keys(cluster, _TOP_KEYS - {"sbatch"}, f"{where} [cluster]")
    for key in ("binds", "slurm_setup"):
        if key in cluster:
            if not isinstance(cluster[key], list) or not all(isinstance(v, str) for v in cluster[key]):
                raise ConfigError(f"{where} [cluster].{key}: expected a list of strings, got {cluster[key]!r}")
            cluster[key] = tuple(cluster[key])
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
    if prof.executor not in EXECUTORS:
        raise ConfigError(f"{where} [cluster].executor = {prof.executor!r}; valid: {', '.join(EXECUTORS)}")
    for key in ("max_array_size", "array_parallelism", "min_time_min", "max_time_min"):
        value = getattr(prof, key)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where} [cluster].{key} = {value!r}: expected an integer >= 1")
    if prof.min_time_min > prof.max_time_min:
        raise ConfigError(f"{where}: min_time_min {prof.min_time_min} > max_time_min {prof.max_time_min}")
    if not isinstance(prof.safety_factor, (int, float)) or prof.safety_factor < 1:
        raise ConfigError(f"{where} [cluster].safety_factor = {prof.safety_factor!r}: expected a number >= 1")
    if not isinstance(prof.signal_delay_s, int) or prof.signal_delay_s < 0:
        raise ConfigError(f"{where} [cluster].signal_delay_s = {prof.signal_delay_s!r}: expected an integer >= 0")
    for key in ("partition", "account", "qos", "image_dir", "apptainer", "python"):
        if not isinstance(getattr(prof, key), str):
            raise ConfigError(f"{where} [cluster].{key} = {getattr(prof, key)!r}: expected a string")
    if prof.container and prof.executor != "slurm":
        raise ConfigError(f"{where}: container = true needs executor = 'slurm' (got {prof.executor!r})")


def clusters_dirs() -> list[Path]:
    """Folders searched for `<name>.toml`: ./jobs/clusters, then the checkout's jobs/clusters."""
    here = Path.cwd() / "jobs" / "clusters"
    repo = Path(__file__).resolve().parents[1] / "jobs" / "clusters"
    return [here] if here.resolve() == repo else [here, repo]


def profile_names() -> list[str]:
    """Every profile name found in the searched folders, plus the embedded `local`."""
    names = {"local"}
    for folder in clusters_dirs():
        names.update(p.stem for p in folder.glob("*.toml"))
    return sorted(names)


def load_profile(name_or_path: str | Path) -> ClusterProfile:
    """Load a cluster profile by name (jobs/clusters/<name>.toml) or by path.

    `local` without a file is the embedded default: submitit's local executor, one task at a time.

    Raises
    ------
    ConfigError
        No such profile (listing the known ones), a TOML syntax error, or a schema error.
    """
    text = str(name_or_path)
    candidates = [Path(text)] if text.endswith(".toml") or "/" in text else \
        [d / f"{text}.toml" for d in clusters_dirs()]
    for path in candidates:
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from None
            return profile_from_dict(data, name=path.stem, source=str(path))
    if text == "local":
        return ClusterProfile(name="local")
    raise ConfigError(f"no cluster profile {text!r}; known: {', '.join(profile_names())} "
                      f"(searched {', '.join(str(c) for c in candidates)})")
