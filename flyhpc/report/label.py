"""A collected run label as the report reads it: every planned task, the results CSV, records, submission.

Reads plain files only, located by `flyhpc.bundle.BundlePaths`: manifest.csv (one row per planned
task with state, reason, job id), benchmark-results.csv, the JSON record beside each parquet and
submission.json. Never re-hashes, re-runs or writes anything. An unknown, uncollected or empty label
is a one-line ConfigError saying what to run. Entry points: `load_label`, `LabelData`, `TaskRow`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyhpc.bundle import BundlePaths, round_folder
from flyhpc.pipeline import framework_name
from flyhpc.errors import ConfigError
from flyhpc.results.records import read_json_object, record_beside
from flyhpc.results.tables import read_rows

_KEY_RE = re.compile(r"^(?P<label>[^/]+)/(?P<round>round_\d+)/(?P<stem>[^@/]+)(@.*)?$")


@dataclass(frozen=True)
class TaskRow:
    """One planned task of the label: its grid point, state and where its files are."""

    key: str
    round: int
    backend: str
    framework: str
    t_run_s: float
    n_run: int
    state: str
    reason: str
    job_id: str
    node: str
    parquet: Path
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        """`round_XX/<stem>`: how the page names a task."""
        return f"{round_folder(self.round)}/{self.parquet.stem}"


@dataclass(frozen=True)
class LabelData:
    """A collected label: every planned task (manifest order), the results CSV rows, the submission."""

    label: str
    paths: BundlePaths
    tasks: list[TaskRow]
    results: list[dict[str, str]]
    submission: dict[str, Any]

    @property
    def done(self) -> list[TaskRow]:
        return [t for t in self.tasks if t.state == "done"]

    @property
    def not_done(self) -> list[TaskRow]:
        return [t for t in self.tasks if t.state != "done"]

    def records(self) -> list[dict[str, Any]]:
        """The records of every task that left one (done or failed)."""
        return [t.record for t in self.tasks if t.record]


def load_label(results_root: str | Path, label: str) -> LabelData:
    """Read a collected label.

    Raises
    ------
    ConfigError
        Unknown label (no folder), a label never collected (no manifest.csv / benchmark-results.csv),
        a manifest from before every planned task was listed, or a label with no done task.
    """
    paths = BundlePaths(results_root, label)
    if not paths.label_dir.is_dir():
        raise ConfigError(f"unknown run label {label!r}: {paths.label_dir} does not exist "
                          f"(run `flyhpc submit ... --run-label {label}` or pass --results-root)")
    paths.require_benchmark("report")
    for path in (paths.manifest, paths.results_csv):
        if not path.is_file():
            raise ConfigError(f"run label {label!r} is not collected: {path} does not exist; "
                              f"run `flyhpc collect {label}` first")
    columns, manifest = read_rows(paths.manifest)
    if "state" not in columns or "task_key" not in columns:
        raise ConfigError(f"{paths.manifest} was written by an older flyhpc (no state/task_key columns); "
                          f"run `flyhpc collect {label}` again")
    _, results = read_rows(paths.results_csv)
    nodes = {r.get("spike_path") or _result_key(r): r.get("node", "") for r in results}
    tasks = [_task_row(paths, row, nodes) for row in manifest]
    if not any(t.state == "done" for t in tasks):
        counts = _state_counts(tasks)
        raise ConfigError(f"run label {label!r} has no done task ({len(tasks)} planned: {counts}); "
                          f"see `flyhpc status {label}`, then `flyhpc resubmit {label} --failed --missing` "
                          f"and `flyhpc collect {label}`")
    submission = read_json_object(paths.submission)
    return LabelData(label, paths, tasks, results, submission)


def _state_counts(tasks: list[TaskRow]) -> str:
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.state] = counts.get(t.state, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"


def _result_key(row: dict[str, str]) -> str:
    return f"{row.get('round')}|{row.get('backend_key')}|{row.get('t_run')}|{row.get('n_run')}"


def _task_row(paths: BundlePaths, row: dict[str, str], nodes: dict[str, str]) -> TaskRow:
    rnd, backend = int(row["round"]), row["backend_key"]
    t_run_s, n_run = float(row["t_run"]), int(row["n_run"])
    match = _KEY_RE.match(row.get("task_key", ""))
    stem = match.group("stem") if match else f"{backend}_t{t_run_s}s_n{n_run}"
    parquet = paths.round_dir(rnd) / f"{stem}.parquet"
    record = record_beside(parquet)
    if record.get("key") not in (None, row.get("task_key")):
        record = {}  # a record of another task under the same file name says nothing about this one
    node = nodes.get(row.get("spike_path") or "", "") or nodes.get(_result_key(row), "") or record.get("node", "")
    return TaskRow(key=row.get("task_key", ""), round=rnd, backend=backend,
                   framework=row.get("framework") or framework_name(backend), t_run_s=t_run_s, n_run=n_run,
                   state=row["state"], reason=row.get("reason", ""),
                   job_id=row.get("job_id") or str(record.get("job_id") or ""), node=node,
                   parquet=parquet, record=record)
