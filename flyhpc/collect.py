"""Turn a label's task records into its bundle files, and check a bundle against its checksums.

`collect` (one for every kind of label) writes manifest.csv and checksums.sha256 (sorted, relative,
`sha256sum -c` ready) and asks the label's task kind (`flyhpc.kinds`) for what it merges: a benchmark label's
benchmark-results.csv (optionally upserted into a global CSV), a screen label's screen tables. It reads only
records and the tasks' files (formats: `flyhpc.results`), holds the label's lock, and is idempotent. `verify`
re-hashes every file and names what is missing, extra or corrupt. Entry points: `collect`, `verify`,
`label_paths`, `hashed_status`, `task_record`, `hash_files`.
"""

from __future__ import annotations

import concurrent.futures
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyhpc.bundle import BundlePaths
from flyhpc.errors import ConfigError, DataError
from flyhpc.files import label_lock, sha256_file
from flyhpc.results.records import read_record
from flyhpc.results.states import ACTIVE, ERROR_PREFIX, INTERRUPTED_PREFIXES
from flyhpc.results.tables import csv_text, write_if_changed


@dataclass(frozen=True)
class CollectReport:
    """What `collect` found (the label's status, every parquet hashed) and wrote; `disturbed`: (task key,
    reason) of each done task whose sim timing was disturbed (`flyhpc.timing.disturbance`)."""

    run_label: str
    status: Any  # flyhpc.cluster.status.StatusReport
    rows: int
    files: list[Path]
    disturbed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every planned task is done and intact; else the status exit code (4 or 75)."""
        return self.status.exit_code


@dataclass
class VerifyReport:
    """What `verify` found: files checked and one line per problem.

    Integrity problems (`missing`, `extra`, `corrupt`: files against checksums.sha256 and records)
    and completeness problems (`incomplete`: planned tasks that are not done).
    """

    run_label: str
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    status_code: int = 0

    @property
    def intact(self) -> bool:
        return not (self.missing or self.extra or self.corrupt)

    @property
    def ok(self) -> bool:
        return self.intact and not self.incomplete

    @property
    def exit_code(self) -> int:
        """0: complete and intact; 5: a file is missing, extra or damaged; else the status code (4/75)."""
        return 5 if not self.intact else self.status_code


def hash_files(paths: list[Path], workers: int | None = None) -> dict[Path, str]:
    """sha256 of many files in parallel (threads: hashlib releases the GIL on large reads)."""
    workers = workers or max(1, min(len(paths), os.cpu_count() or 1))
    if not paths:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(paths, pool.map(sha256_file, paths)))


def label_paths(results_root: str | Path, run_label: str) -> BundlePaths:
    """The label's paths, once its folder is known to exist.

    Raises
    ------
    ConfigError
        The label folder does not exist or is a symbolic link.
    """
    paths = BundlePaths(results_root, run_label)
    paths.check_own_folder()
    if not paths.label_dir.is_dir():
        raise ConfigError(f"unknown run label {run_label!r}: {paths.label_dir} does not exist")
    return paths


def hashed_status(paths: BundlePaths, deep: bool = False) -> tuple[dict[str, Any], dict[Path, str], Any]:
    """Every planned task of the label (key -> task), the sha256 of every task parquet there, and the
    label's status judged with those hashes (no scheduler needed; `deep` also hashes a chunk's other files)."""
    from flyhpc.cluster.status import status
    from flyhpc.cluster.submission import load_submission
    from flyhpc.kinds import task_from_dict

    planned = {k: task_from_dict(v)
               for k, v in load_submission(paths.results_root, paths.run_label)["tasks"].items()}
    hashes = hash_files([paths.parquet(t) for t in planned.values() if paths.parquet(t).is_file()])
    report = status(paths.results_root, paths.run_label, deep=deep, require_scheduler=False, hashes=hashes)
    return planned, hashes, report


def task_record(row: Any, record_path: Path) -> dict | None:
    """The record that explains a finished task's state (`row`, a status row), or None.

    That is the record of a done task, the `error: ...` record of a failed one, and the `timeout: ...` /
    `cancelled: ...` record of one a signal ended: intact files that belong in checksums.sha256. None for a
    task still pending or running (its record is about to be replaced), a corrupt or unreadable record, and
    a record that is not evidence of the state (e.g. a success record of a task the scheduler failed).
    """
    if row.state in (*ACTIVE, "corrupt") or not record_path.is_file():
        return None
    try:
        rec = read_record(record_path)
    except DataError:
        return None
    status = str(rec["status"])
    if row.state == "done" or (row.state == "failed" and status.startswith(ERROR_PREFIX)) or (
            row.state in ("timeout", "cancelled", "out-of-memory") and status.startswith(INTERRUPTED_PREFIXES)):
        return rec
    return None


def collect(results_root: str | Path, run_label: str, global_csv: str | Path | None = None) -> CollectReport:
    """Write a label's manifest.csv and checksums.sha256, and what its kind merges; report what is missing.

    Every planned task (submission.json) gets a manifest row (`Task.manifest_row`) with its state (the one
    decision of `flyhpc.cluster.status.status`, with every parquet hashed) and reason. The label's kind merges
    what it has (`Task.merge`): a benchmark label benchmark-results.csv, a row per task that left a done or
    error record (and `global_csv`), naming the done tasks whose sim timing was disturbed (CPU share below
    `flyhpc.timing.SHARE_FLOOR` of its threads); a screen label its screen tables, only once every chunk is done.
    checksums.sha256 lists exactly the intact files: done tasks' files with their records, the records that
    explain a failure, what was merged and the manifest; a corrupt file never gets a checksum. Always writes what
    it can; `CollectReport.exit_code` says whether the bundle is complete. Running twice gives identical files.

    Raises
    ------
    ConfigError
        The label folder or its submission.json does not exist; `global_csv` for a kind without results rows.
    FlyhpcError
        Another flyhpc command holds the label's lock.
    """
    from flyhpc.cluster.submission import label_kind

    paths = label_paths(results_root, run_label)
    kind = label_kind(results_root, run_label)
    if global_csv and not kind.result_rows:
        raise ConfigError(f"run label {run_label!r} holds {kind.kind} tasks: a {kind.kind} label has no benchmark "
                          "rows to upsert into --global-csv")
    with label_lock(paths.lock, f"collect {run_label}"):
        planned, hashes, report = hashed_status(paths, deep=kind.collect_deep)
        manifest, intact, known, records = [], [], {}, []
        for row in report.rows:
            task = planned[row.key]
            files = paths.task_files(task.folder, task.stem)
            rec = task_record(row, files.record)
            if rec is not None:
                intact.append(files.record)
                records.append((task, row, rec))
            if row.state == "done":
                outputs = task.outputs(files.parquet, rec)
                known.update({p: digest for p, digest in outputs.items() if digest})  # hashed by the status
                intact += list(outputs)
            manifest.append(task.manifest_row(row, rec, paths.relative(files.parquet)))
        merged = kind.merge(paths, report, records, Path(global_csv) if global_csv else None)
        manifest.sort(key=kind.manifest_order)
        write_if_changed(paths.manifest, csv_text(kind.manifest_columns, manifest))
        listed = merged.label_files + intact + merged.files + [paths.manifest]
        digests = {**hashes, **known}
        digests.update(hash_files([p for p in listed if p not in digests]))
        lines = sorted((paths.relative(p), digests[p]) for p in listed)
        write_if_changed(paths.checksums, "".join(f"{digest}  {rel}\n" for rel, digest in lines))
    return CollectReport(run_label, report, merged.rows, [*merged.files, paths.manifest, paths.checksums],
                         merged.disturbed)


def verify(results_root: str | Path, run_label: str) -> VerifyReport:
    """Check a bundle: integrity (every file against checksums.sha256, every record against its
    parquet) and completeness (every task of the label's submission present, done and intact).

    Raises
    ------
    ConfigError
        The label folder or its submission.json does not exist.
    """
    from flyhpc.cluster.status import status

    paths = label_paths(results_root, run_label)
    report = VerifyReport(run_label)
    listed: dict[str, str] = {}
    if not paths.checksums.is_file():
        report.missing.append(f"{paths.relative(paths.checksums)} (run `flyhpc collect {run_label}`)")
    else:
        for n, line in enumerate(paths.checksums.read_text().splitlines(), 1):
            digest, sep, rel = line.partition("  ")
            if not sep or len(digest) != 64 or not rel or rel.startswith("/") or ".." in Path(rel).parts:
                report.corrupt.append(f"checksums.sha256 line {n}: malformed {line!r}")
                continue
            listed[rel] = digest
    present = {p: paths.label_dir / p for p in listed if (paths.label_dir / p).is_file()}
    report.missing += sorted(f"{p} (listed in checksums.sha256)" for p in listed if p not in present)
    actual = hash_files(list(present.values()))
    report.checked = len(actual)
    report.corrupt += sorted(f"{p}: sha256 differs from checksums.sha256" for p, f in present.items()
                             if actual[f] != listed[p])
    on_disk = paths.task_parquets() + paths.record_files()
    report.extra += sorted(f"{paths.relative(p)} (not in checksums.sha256: run `flyhpc collect {run_label}`)"
                           for p in on_disk if paths.relative(p) not in listed)
    st = status(results_root, run_label, deep=True, require_scheduler=False, hashes=actual)
    report.corrupt += [f"{name}: {why}" for name, why in st.damaged]
    for row in st.rows:
        if row.state == "corrupt":
            report.corrupt.append(f"{row.key}: {row.reason}")
        elif row.state != "done":
            report.incomplete.append(f"{row.key}: {row.state}" + (f" ({row.reason})" if row.reason else ""))
    report.status_code = st.exit_code
    return report
