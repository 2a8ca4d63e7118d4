"""Benchmark tasks and grids: what one unit of benchmark work is and how a grid expands into them.

Owns `BenchmarkTask` (a small frozen record with a stable key, the unit Slurm and `bench` run: the "benchmark"
kind of `flyhpc.kinds`, whose `execute` hands it to the one run pipeline), `Grid` (presets read from
jobs/grids/<name>.toml) and the experiment names a task may carry. Expanding a grid runs and writes nothing.
Entry points: `BenchmarkTask`, `Grid`, `load_grid`,
`expand_grid`, `experiment_of` (labels are checked by `bundle.check_label`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from flyhpc import backends, config_paths
from flyhpc.bundle import check_label, file_stem, round_folder
from flyhpc.drive import DRIVE_VERSION
from flyhpc.errors import ConfigError
from flyhpc.kinds import CollectOutputs, TaskName, fields_of
from flyhpc.pipeline import framework_name
from flyhpc.results.manifest import (GLOBAL_KEY, MANIFEST_COLUMNS, RESULT_COLUMNS, done_row, planned_row, result_order,
                                     result_row)
from flyhpc.results.tables import csv_text, upsert_rows, write_if_changed
from flyhpc.model import PRESETS, Experiment, Params, validate_run

_INDEX_EXPERIMENT_RE = re.compile(r"^index:(\d+(?:,\d+)*)@(\d+(?:\.\d+)?)$")


def experiment_of(key: str) -> Experiment:
    """The experiment a task names: a preset key (`sugar`, `p9`) or `index:I,J,...@RATE`.

    The `index:` form drives the listed row indices at RATE Hz; it exists for tiny test
    connectomes that lack the real FlyWire ids of the presets (e.g. `index:0,1,2@200`).

    Raises
    ------
    ConfigError
        Unknown preset or malformed `index:` form, listing what is accepted.
    """
    if key in PRESETS:
        return PRESETS[key]
    m = _INDEX_EXPERIMENT_RE.match(key or "")
    if not m:
        raise ConfigError(f"unknown experiment {key!r}; known: {', '.join(sorted(PRESETS))}, "
                          "or 'index:I,J,...@RATE_HZ' (row indices driven at RATE_HZ)")
    indices = tuple(int(v) for v in m.group(1).split(","))
    rate_hz = float(m.group(2))
    return Experiment(name=f"indices {m.group(1)} ({rate_hz:g} Hz)", key=key, activate=indices,
                      rate_hz=rate_hz, by="index")


def experiment_digest(key: str) -> str:
    """The digest of the experiment a task names; an unknown name digests as itself (its task fails
    with the reason when it runs, and still has a key to record that under)."""
    try:
        return experiment_of(key).digest()
    except ConfigError:
        return f"unknown:{key}"


def _check_t_run(t_run_s, where: str) -> float:
    if isinstance(t_run_s, bool) or not isinstance(t_run_s, (int, float)):
        raise ConfigError(f"{where}: t_run must be a number of seconds, got {t_run_s!r}")
    try:
        validate_run(float(t_run_s), 1, Params())
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return float(t_run_s)


def _check_n_run(n_run, where: str) -> int:
    if isinstance(n_run, bool) or not isinstance(n_run, int) or n_run < 1:
        raise ConfigError(f"{where}: n_run must be an integer >= 1, got {n_run!r}")
    return n_run


def _check_backend(name: str, where: str) -> str:
    if name in backends.REGISTRY:
        return name
    raise ConfigError(f"{where}: unknown backend {name!r}; known: {', '.join(backends.names())}")


def _option_pairs(options: Any, where: str) -> tuple[tuple[str, Any], ...]:
    """Backend options as sorted (name, value) pairs, lists as tuples (hashable, JSON round-trip safe)."""
    try:
        items = dict(options or ())
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: backend_options must be a mapping of option names to values, "
                          f"got {options!r}") from None
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in items.items()))


@dataclass(frozen=True)
class BenchmarkTask(TaskName):
    """One benchmark point: a backend, an experiment, t_run x n_run, a round, in one run label.

    Small and picklable (the cluster package sends it to the job). `t_run_s` is stored as a float, so 1 and
    1.0 give the same task and the same file names. `connectome` is "auto", "synthetic" or a folder;
    `connectome_digest` is "" until resolved, and when set the worker refuses a connectome whose
    digest differs. The drive of trial k is keyed by (seed, round, k) per driven neuron (`flyhpc.drive`);
    `drive_version` is the drive it was planned with (submission.json files older than version 2 lack the
    field and read as 1). The experiment is checked by `expand_grid` and by the worker (an unknown one gives
    an error record), not here.
    """

    kind: ClassVar[str] = "benchmark"
    record_keys: ClassVar[tuple[str, ...]] = ()
    collect_deep: ClassVar[bool] = False  # the parquet is hashed anyway; a grid point owns no other file
    result_rows: ClassVar[bool] = True
    manifest_columns: ClassVar[tuple[str, ...]] = MANIFEST_COLUMNS

    run_label: str
    round: int
    backend: str
    experiment: str
    t_run_s: float
    n_run: int
    seed: int
    connectome: str
    connectome_digest: str
    results_root: str
    backend_options: tuple[tuple[str, Any], ...] = ()
    drive_version: int = DRIVE_VERSION

    def __post_init__(self) -> None:
        check_label(self.run_label)
        where = f"task {self.run_label}/{self.backend}"
        if isinstance(self.round, bool) or not isinstance(self.round, int) or self.round < 1:
            raise ConfigError(f"{where}: round must be an integer >= 1, got {self.round!r}")
        _check_backend(self.backend, where)
        if not isinstance(self.experiment, str) or not self.experiment:
            raise ConfigError(f"{where}: experiment must be a preset key or 'index:...', got {self.experiment!r}")
        object.__setattr__(self, "t_run_s", _check_t_run(self.t_run_s, where))
        _check_n_run(self.n_run, where)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"{where}: seed must be an integer >= 0, got {self.seed!r}")
        object.__setattr__(self, "results_root", str(self.results_root))
        object.__setattr__(self, "connectome", str(self.connectome or "auto"))
        object.__setattr__(self, "backend_options", _option_pairs(self.backend_options, where))

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of everything that changes the task's spikes beyond its name (computed once per task).

        The experiment's digest (what is driven and silenced, at which rates), the base seed, the
        connectome's digest, the backend options that change results (`result_options`) and the drive
        version (left out for version 1, so the keys of older labels stay what they were). Two
        tasks with one name and different fingerprints would write the same file with different
        spikes: a label refuses that (`flyhpc.cluster.submission.check_identity`) and a record made for another
        fingerprint never counts as done.
        """
        body = {"experiment": experiment_digest(self.experiment), "seed": self.seed,
                "connectome": self.connectome_digest,
                "options": backends.result_options(self.backend, dict(self.backend_options))}
        if self.drive_version != 1:
            body["drive_version"] = self.drive_version
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def folder(self) -> str:
        """The task's folder inside its label: `round_XX`."""
        return round_folder(self.round)

    @property
    def trials(self) -> int:
        """Trials the task simulates."""
        return self.n_run

    def wall_estimate_s(self, resources: Any) -> float:
        """Expected wall seconds under a profile's `resources` time model."""
        return resources.wall_estimate_s(self.t_run_s, self.n_run)

    def identity(self) -> dict[str, Any]:
        """What every task of the label shares (`flyhpc.cluster.submission.label_identity`); a path may move,
        a digest not."""
        return {"experiment": self.experiment, "experiment_digest": experiment_digest(self.experiment),
                "seed": self.seed, "connectome_digest": self.connectome_digest, "drive_version": self.drive_version}

    @property
    def stem(self) -> str:
        """File stem shared by the task's parquet, record and log: `brian2cpp_t1.0s_n1`."""
        return file_stem(self.backend, self.t_run_s, self.n_run)

    @functools.cached_property
    def key(self) -> str:
        """Stable id: `<label>/round_XX/<stem>@<fingerprint[:10]>` (name + what changes the results)."""
        return f"{self.name}@{self.fingerprint[:10]}"

    def describe(self) -> str:
        """What the task runs, for its log."""
        return f"experiment {self.experiment}"

    def record_fields(self) -> dict[str, Any]:
        """The benchmark fields of the task's record (`flyhpc.results.records.header` has the common ones)."""
        try:
            exp_name = experiment_of(self.experiment).name
        except ConfigError:
            exp_name = ""  # the run fails in its load phase with the reason, and records it
        return {"round": self.round, "experiment": exp_name, "experiment_key": self.experiment,
                "t_run_s": self.t_run_s, "n_run": self.n_run, "trials": list(range(self.n_run))}

    def execute(self, parquet: Path, log: Callable[[str], None], on_phase: Callable[[str], None],
                n_threads: int | None) -> dict[str, Any]:
        """Run the task through the one run pipeline (`flyhpc.pipeline.execute`); the record fields it measured."""
        from flyhpc.data.connectome import default_data_dir
        from flyhpc.pipeline import execute

        outcome = execute(backend=self.backend, experiment=experiment_of(self.experiment), t_run_s=self.t_run_s,
                          n_run=self.n_run, parquet=parquet, connectome=self.connectome, data_dir=default_data_dir(),
                          seed=self.seed, round_=self.round, n_threads=n_threads,
                          precision=os.environ.get("FLYHPC_PRECISION") or None, options=dict(self.backend_options),
                          expected_digest=self.connectome_digest, parquet_meta={"flyhpc.task": self.key},
                          on_phase=on_phase, log=log)
        return outcome.record

    @classmethod
    def from_dict(cls, data: dict) -> "BenchmarkTask":
        """Rebuild a task from its submission.json entry (entries older than drive version 2 read as version 1)."""
        return cls(**fields_of(cls, data))

    def outputs(self, parquet: Path, rec: dict) -> dict[Path, str | None]:
        """A done grid point's file beside its record: its spike parquet."""
        return {parquet: None}

    def manifest_row(self, row: Any, rec: dict | None, rel: str) -> dict[str, str]:
        """The task's row in the label's manifest: its result when done, else its state and reason."""
        if row.state != "done":
            return planned_row(self, framework_name(self.backend), row.state, row.reason, row.job_id)
        return done_row(_result(rec, rel), rec, row.key, row.job_id)

    @classmethod
    def manifest_order(cls, row: dict[str, str]) -> tuple:
        return result_order(row)

    @classmethod
    def merge(cls, paths: Any, report: Any, records: list, global_csv: Path | None) -> CollectOutputs:
        """benchmark-results.csv: a row per task that left a done or error record (upserted into `global_csv`
        too); the done tasks whose sim timing was disturbed."""
        rows, disturbed = [], []
        for task, row, rec in records:
            if row.state in ("done", "failed"):
                rows.append(_result(rec, paths.relative(paths.parquet(task)) if row.state == "done" else ""))
                if row.state == "done" and rows[-1]["disturbed"]:
                    disturbed.append((row.key, rows[-1]["disturbed"]))
        rows.sort(key=result_order)
        write_if_changed(paths.results_csv, csv_text(RESULT_COLUMNS, rows))
        if global_csv:
            upsert_rows(Path(global_csv), rows, RESULT_COLUMNS, GLOBAL_KEY)
        return CollectOutputs(files=[paths.results_csv], rows=len(rows), disturbed=sorted(disturbed))

    @classmethod
    def progress(cls, results_root, run_label: str, rows, tasks: dict) -> None:
        """A grid point is one unit: the task counts say everything."""
        return None

    @classmethod
    def repair(cls, results_root, run_label: str, record: dict) -> str:
        """A benchmark label has no files of its own to repair."""
        return ""


def _result(rec: dict, spike_path: str) -> dict[str, str]:
    """The task's benchmark-results.csv row (`flyhpc.results.manifest.result_row`)."""
    return result_row(rec, spike_path, rec.get("framework") or framework_name(rec["backend"], rec.get("device", "")))


@dataclass(frozen=True)
class Grid:
    """A benchmark grid: backends x t_run x n_run over rounds `round_start..rounds`.

    `rounds` is the grid's total number of rounds and `round_start` the first one to run, so
    resuming a 5-round grid with `round_start = 3` runs rounds 3, 4 and 5 — never 3..7 (the seed's
    trap). A `round_start` above `rounds` is an error, not an empty grid.
    """

    name: str
    backends: tuple[str, ...]
    t_run_s: tuple[float, ...]
    n_run: tuple[int, ...]
    rounds: int = 1
    round_start: int = 1
    experiment: str = "sugar"
    seed: int = 0
    description: str = ""

    def round_numbers(self) -> range:
        """The rounds this grid runs.

        Raises
        ------
        ConfigError
            rounds < 1, round_start < 1, or round_start > rounds.
        """
        for label, value in (("rounds", self.rounds), ("round_start", self.round_start)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"grid {self.name!r}: {label} must be an integer >= 1, got {value!r}")
        if self.round_start > self.rounds:
            raise ConfigError(f"grid {self.name!r}: round_start {self.round_start} is past the last round "
                              f"{self.rounds} (rounds is the total number of rounds; rounds run: "
                              f"round_start..rounds)")
        return range(self.round_start, self.rounds + 1)


_GRID_KEYS = {f.name for f in dataclasses.fields(Grid)} - {"name"}


def known_grids() -> list[str]:
    """Names of the grid presets in the searched folders (`flyhpc.config_paths`)."""
    return config_paths.names("grids")


def load_grid(name_or_path: str | Path) -> Grid:
    """Read a grid preset (`paper`, `quick`: grids/<name>.toml, see `flyhpc.config_paths`) or a TOML file path.

    The file has one `[grid]` table whose keys are the fields of `Grid` (t_run_s, n_run, ...).

    Raises
    ------
    ConfigError
        Unknown grid, unreadable TOML, unknown keys (listing the valid ones) or bad values.
    """
    path = config_paths.locate("grids", name_or_path, "grid")
    table = config_paths.read_toml(path, "grid").get("grid")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: needs a [grid] table")
    unknown = sorted(set(table) - _GRID_KEYS)
    if unknown:
        raise ConfigError(f"{path} [grid]: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_GRID_KEYS))}")
    for key in ("backends", "t_run_s", "n_run"):
        if not isinstance(table.get(key), list) or not table[key]:
            raise ConfigError(f"{path} [grid].{key}: needs a non-empty list")
    grid = Grid(name=path.stem, **{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()})
    check_grid(grid, where=f"{path} [grid]")
    return grid


def check_grid(grid: Grid, where: str = "") -> None:
    """Check every value of a grid (backends, durations, trial counts, rounds, experiment).

    Raises
    ------
    ConfigError
        The first bad value, naming it and where it came from.
    """
    where = where or f"grid {grid.name!r}"
    for b in grid.backends:
        _check_backend(b, f"{where}.backends")
    for t in grid.t_run_s:
        _check_t_run(t, f"{where}.t_run_s")
    for n in grid.n_run:
        _check_n_run(n, f"{where}.n_run")
    grid.round_numbers()
    try:
        experiment_of(grid.experiment)
    except ConfigError as exc:
        raise ConfigError(f"{where}.experiment: {exc}") from None
    if isinstance(grid.seed, bool) or not isinstance(grid.seed, int) or grid.seed < 0:
        raise ConfigError(f"{where}.seed must be an integer >= 0, got {grid.seed!r}")


def expand_grid(grid: Grid, run_label: str, results_root: str | Path, connectome: str = "auto",
                connectome_digest: str = "") -> list[BenchmarkTask]:
    """Every task of a grid, ordered by round, backend, n_run, t_run; duplicates (1 and 1.0) once.

    Raises
    ------
    ConfigError
        A bad label or grid value.
    """
    check_label(run_label)
    check_grid(grid)
    out: list[BenchmarkTask] = []
    seen: set[str] = set()
    t_values = sorted({float(t) for t in grid.t_run_s})
    n_values = sorted({int(n) for n in grid.n_run})
    for rnd in grid.round_numbers():
        for backend in dict.fromkeys(grid.backends):
            for n_run in n_values:
                for t_run_s in t_values:
                    task = BenchmarkTask(run_label=run_label, round=rnd, backend=backend, experiment=grid.experiment,
                                         t_run_s=t_run_s, n_run=n_run, seed=grid.seed, connectome=connectome,
                                         connectome_digest=connectome_digest, results_root=str(results_root))
                    if task.key not in seen:
                        seen.add(task.key)
                        out.append(task)
    return out


def sim_seconds(tasks: list[BenchmarkTask]) -> float:
    """Simulated trial-seconds of a task list (t_run x n_run summed): a size estimate."""
    return math.fsum(t.t_run_s * t.n_run for t in tasks)
