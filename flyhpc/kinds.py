"""Task kinds as plug-ins: the `Task` interface every kind of task implements, and the one table of kinds.

A kind is a frozen task class (`flyhpc.tasks.BenchmarkTask`: a grid point; `flyhpc.screens.task.ScreenTask`: a
chunk of a screen) that the worker, submission.json, status, collect and the command line handle only through
`Task`: none of them tests a kind by its name. `KINDS` maps each name to a "module:Class" string, imported on
first use (as the backend registry does), so a benchmark label never loads the screen code. Entry points:
`Task`, `TaskName`, `CollectOutputs`, `KINDS`, `kind`, `task_from_dict`, `task_to_dict`, `DEFAULT_KIND`.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol, Sequence

from flyhpc.errors import ConfigError

KINDS: dict[str, str] = {
    "benchmark": "flyhpc.tasks:BenchmarkTask",
    "screen": "flyhpc.screens.task:ScreenTask",
}
DEFAULT_KIND = "benchmark"  # what an entry or label written before kinds existed holds


@dataclass(frozen=True)
class CollectOutputs:
    """What a kind's `merge` wrote for `flyhpc collect`: `files` (listed in checksums.sha256, reported),
    `label_files` (the label's own intact files to list too, e.g. a screen's plan), `rows` (results rows written)
    and `disturbed` ((task key, reason) of each done task whose sim timing was disturbed)."""

    files: list[Path]
    rows: int
    label_files: list[Path] = field(default_factory=list)
    disturbed: list[tuple[str, str]] = field(default_factory=list)


class Task(Protocol):
    """One unit of work Slurm runs: small, frozen, picklable, with a stable key and its files in one label.

    Files: `<label>/<folder>/<stem>.parquet|.json|.log` (`flyhpc.bundle.BundlePaths`) plus the record's
    `extra_files`. The label-level hooks (`progress`, `repair`, `manifest_order`, `merge`) are class methods: what
    `flyhpc status`, `resubmit` and `collect` ask a label of this kind (`collect` asks each kind what it merges).
    """

    kind: ClassVar[str]  # its name in `KINDS`, stored with each task in submission.json
    record_keys: ClassVar[tuple[str, ...]]  # the record fields of this kind beyond `results.records.REQUIRED`
    collect_deep: ClassVar[bool]  # collect hashes every file a task owns (not only its parquet)
    result_rows: ClassVar[bool]  # collect writes benchmark-results.csv rows (so --global-csv applies)
    manifest_columns: ClassVar[tuple[str, ...]]  # the columns of its label's manifest.csv
    run_label: str
    results_root: str
    backend: str
    backend_options: tuple[tuple[str, Any], ...]
    t_run_s: float
    n_run: int
    seed: int
    connectome: str
    connectome_digest: str
    drive_version: int

    @property
    def key(self) -> str: ...  # `<name>@<fingerprint[:10]>`, computed once per task object

    @property
    def name(self) -> str: ...

    @property
    def folder(self) -> str: ...

    @property
    def stem(self) -> str: ...

    @property
    def trials(self) -> int: ...

    def identity(self) -> dict[str, Any]: ...  # what every task of its label shares

    def describe(self) -> str: ...  # one line for its log: what it runs

    def wall_estimate_s(self, resources: Any) -> float: ...  # for the Slurm time limit

    def record_fields(self) -> dict[str, Any]: ...  # its kind's fields in its record

    def execute(self, parquet: Path, log: Callable[[str], None], on_phase: Callable[[str], None],
                n_threads: int | None) -> dict[str, Any]: ...  # run it; the record fields it measured

    @classmethod
    def from_dict(cls, data: dict) -> "Task": ...  # from its submission.json entry

    def outputs(self, parquet: Path, rec: dict) -> dict[Path, str | None]: ...  # a done task's files (-> sha256
    # where its record has it) for checksums.sha256

    def manifest_row(self, row: Any, rec: dict | None, rel: str) -> dict[str, str]: ...  # its manifest row
    # (`row`: its status row, `rec`: the record explaining it or None, `rel`: its parquet in the label)

    @classmethod
    def manifest_order(cls, row: dict[str, str]) -> Any: ...  # sort key of its label's manifest rows

    @classmethod
    def merge(cls, paths: Any, report: Any, records: list, global_csv: Path | None) -> CollectOutputs: ...
    # what collect merges for its label from (task, status row, record) of every task with a record

    @classmethod
    def progress(cls, results_root: str | Path, run_label: str, rows: Sequence[Any],
                 tasks: dict) -> tuple[int, int] | None: ...  # (units done, planned) beyond task counts, or None

    @classmethod
    def repair(cls, results_root: str | Path, run_label: str, record: dict) -> str: ...  # fix the label's own files
    # (`record`: its submission.json); says what was done


class TaskName:
    """The `Task.name` every kind shares: `<label>/<folder>/<stem>`, unique inside a label."""

    @property
    def name(self) -> str:
        return f"{self.run_label}/{self.folder}/{self.stem}"


def kind(name: str) -> type:
    """The task class of kind `name`.

    Raises
    ------
    ConfigError
        An unknown kind (a submission.json from a newer flyhpc, or edited), listing the known ones.
    """
    try:
        module, _, cls = KINDS[name].partition(":")
    except KeyError:
        raise ConfigError(f"unknown task kind {name!r}; known: {', '.join(KINDS)}") from None
    return getattr(importlib.import_module(module), cls)


def task_from_dict(data: dict) -> Any:
    """Rebuild a task from its submission.json entry (its "kind", else `DEFAULT_KIND`)."""
    return kind(data.get("kind", DEFAULT_KIND)).from_dict(data)


def task_to_dict(task: Any) -> dict:
    """A task as submission.json keeps it (its kind first)."""
    return {"kind": task.kind, **dataclasses.asdict(task)}


def fields_of(cls: type, data: dict) -> dict:
    """The entries of `data` that are fields of dataclass `cls`, with `drive_version` 1 where an entry written
    before drive version 2 lacks it (unknown keys ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {"drive_version": 1, **{k: v for k, v in data.items() if k in names}}
