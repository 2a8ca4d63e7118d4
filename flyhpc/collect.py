"""Turn a label's task records into its bundle files, and check a bundle against its checksums.

`collect` writes benchmark-results.csv (the seed's 18 columns, then ours: phases, provenance, the sim's
CPU share and whether its timing was disturbed), manifest.csv and checksums.sha256 (sorted, relative,
`sha256sum -c` ready), optionally upserting a global CSV; it reads only records and parquets, holds the
label's lock, and is idempotent. `verify` re-hashes every file and names what is missing, extra or
corrupt. Entry points: `collect`, `verify`, and for
`flyhpc.screens.collect` `label_paths`, `hashed_status`, `task_record`, `csv_text`, `write_if_changed`,
`hash_files`.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyhpc.bundle import BundlePaths
from flyhpc.pipeline import framework_name
from flyhpc.results.records import read_record
from flyhpc.results.states import ACTIVE, ERROR_PREFIX, INTERRUPTED_PREFIXES
from flyhpc.errors import ConfigError, DataError
from flyhpc.files import atomic_path, label_lock, rewrite_lock, sha256_file
from flyhpc.timing import disturbance, sim_share

SEED_COLUMNS = ("framework", "n_run", "t_run", "setup_time", "build_time", "sim_time", "total_time",
                "realtime_ratio", "spikes", "active_neurons", "status", "timestamp", "backend_key", "experiment",
                "experiment_key", "run_label", "round", "spike_path")
OUR_COLUMNS = ("load_time", "collect_time", "write_time", "sim_inner_time", "drive", "drive_version", "dtype", "seed",
               "trials", "node", "device", "threads", "versions", "job_id", "array_job_id", "array_task_id", "image_digest",
               "connectome_source", "connectome_digest", "synthetic_connectome", "parquet_sha256", "flyhpc_version",
               "sim_cpu_time", "sim_threads", "cpu_share", "cpus_usable", "load_start", "load_end", "disturbed")
RESULT_COLUMNS = SEED_COLUMNS + OUR_COLUMNS
SEED_MANIFEST_COLUMNS = ("run_label", "round", "framework", "backend_key", "experiment", "experiment_key", "n_run",
                         "t_run", "spike_path", "spikes", "active_neurons", "status", "timestamp",
                         "spike_schema_version", "spike_time_column", "spike_time_unit")
MANIFEST_COLUMNS = SEED_MANIFEST_COLUMNS + ("sha256", "drive", "dtype", "task_key", "state", "reason", "job_id")
GLOBAL_KEY = ("framework", "n_run", "t_run", "experiment_key", "run_label", "round")


@dataclass(frozen=True)
class CollectReport:
    """What `collect` found (the label's status, every parquet hashed) and wrote; `disturbed`: (task key,
    reason) of each done task whose sim timing was disturbed (`flyhpc.timing.disturbance`)."""

    run_label: str
    status: Any  # slurm_status.StatusReport
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


def _fmt(value, digits: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}" if digits is not None else repr(value)
    return str(value)


def _timestamp(rec: dict) -> str:
    stamp = rec.get("finished_utc") or rec.get("started_utc") or ""
    return stamp.replace("T", " ").rstrip("Z")


def _load1(rec: dict, key: str) -> str:
    """The 1-minute load average of `load_avg_start` / `load_avg_end`."""
    load = rec.get(key) or []
    return _fmt(float(load[0]), 2) if load else ""


def result_row(rec: dict, spike_path: str) -> dict[str, str]:
    """One benchmark-results.csv row from a task record (every value a string)."""
    ph = rec.get("phases_s") or {}
    share = sim_share(rec)
    ok = rec["status"] == "success"
    sim = ph.get("sim", 0.0)
    ratio = (rec["t_run_s"] * rec["n_run"] / sim if sim > 0 else math.inf) if ok else None
    return {
        "framework": rec.get("framework") or framework_name(rec["backend"], rec.get("device", "")),
        "n_run": str(rec["n_run"]), "t_run": repr(float(rec["t_run_s"])),
        "setup_time": _fmt(ph.get("setup", 0.0), 3), "build_time": _fmt(ph.get("build", 0.0), 3),
        "sim_time": _fmt(ph.get("sim", 0.0), 6), "total_time": _fmt(ph.get("total", 0.0), 6),
        "realtime_ratio": _fmt(ratio, 4), "spikes": str(rec.get("spikes", 0)),
        "active_neurons": str(rec.get("active_neurons", 0)), "status": rec["status"],
        "timestamp": _timestamp(rec), "backend_key": rec["backend"], "experiment": rec.get("experiment", ""),
        "experiment_key": rec.get("experiment_key", ""), "run_label": rec["run_label"], "round": str(rec["round"]),
        "spike_path": spike_path,
        "load_time": _fmt(ph.get("load", 0.0), 6), "collect_time": _fmt(ph.get("collect", 0.0), 6),
        "write_time": _fmt(ph.get("write", 0.0), 6), "sim_inner_time": _fmt(rec.get("sim_inner_s"), 6),
        "drive": rec.get("drive", ""), "drive_version": str(rec.get("drive_version", 1)),
        "dtype": rec.get("dtype", ""), "seed": str(rec.get("seed", "")),
        "trials": " ".join(str(t) for t in rec.get("trials", [])), "node": rec.get("node", ""),
        "device": rec.get("device", ""), "threads": _fmt(rec.get("threads")),
        "versions": json.dumps(rec.get("versions", {}), sort_keys=True, separators=(",", ":")),
        "job_id": rec.get("job_id", ""), "array_job_id": rec.get("array_job_id", ""),
        "array_task_id": rec.get("array_task_id", ""), "image_digest": rec.get("image_digest", ""),
        "connectome_source": rec.get("connectome_source", ""), "connectome_digest": rec.get("connectome_digest", ""),
        "synthetic_connectome": _fmt(rec.get("synthetic_connectome")), "parquet_sha256": rec.get("parquet_sha256", ""),
        "flyhpc_version": rec.get("flyhpc_version", ""),
        "sim_cpu_time": _fmt((rec.get("phases_cpu_s") or {}).get("sim"), 6),
        "sim_threads": _fmt(rec.get("sim_threads")), "cpu_share": _fmt(share.value, 3) if share else "",
        "cpus_usable": _fmt(rec.get("cpus_usable")), "load_start": _load1(rec, "load_avg_start"),
        "load_end": _load1(rec, "load_avg_end"), "disturbed": disturbance(rec) if ok else "",
    }


def csv_text(columns, rows) -> str:
    """CSV text of dict rows under `columns` (header first, `\\n` line ends, extra keys ignored)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_if_changed(path: Path, text: str) -> None:
    """Write `text` atomically unless the file already holds exactly it."""
    if path.is_file() and path.read_text() == text:
        return  # identical content: leave the file (and its mtime) alone
    with atomic_path(path) as tmp:
        tmp.write_text(text)


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
    from flyhpc.cluster.submission import load_submission, task_from_dict

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


def _planned_row(task, state: str, reason: str, job_id: str) -> dict[str, str]:
    """A manifest row for a planned task that has no valid result."""
    return {"run_label": task.run_label, "round": str(task.round), "framework": framework_name(task.backend),
            "backend_key": task.backend, "experiment_key": task.experiment, "n_run": str(task.n_run),
            "t_run": repr(float(task.t_run_s)), "status": state, "task_key": task.key, "state": state,
            "reason": reason, "job_id": job_id}


def collect(results_root: str | Path, run_label: str, global_csv: str | Path | None = None) -> CollectReport:
    """Write benchmark-results.csv, manifest.csv and checksums.sha256 of a label; report what is missing.

    Every planned task (submission.json) gets a manifest row with its state (the one decision of
    `slurm_status.status`, with every parquet hashed) and reason. benchmark-results.csv has a row
    per task that left a record (success or error). checksums.sha256 lists exactly the intact
    files: done parquets with their records, error records, the CSV and the manifest; a corrupt
    file never gets a checksum. Always writes what it can; `CollectReport.exit_code` says whether
    the bundle is complete. Running twice gives identical files. A done task whose sim timing was
    disturbed (its CPU share fell below `flyhpc.timing.SHARE_FLOOR` of its threads) says why in the
    `disturbed` column and in `CollectReport.disturbed`.

    Raises
    ------
    ConfigError
        The label folder or its submission.json does not exist.
    FlyhpcError
        Another flyhpc command holds the label's lock.
    """
    paths = label_paths(results_root, run_label)
    with label_lock(paths.lock, f"collect {run_label}"):
        planned, hashes, report = hashed_status(paths)
        rows, manifest, intact, disturbed = [], [], [], []
        for row in report.rows:
            task = planned[row.key]
            record_path, parquet = paths.record(task), paths.parquet(task)
            rec = task_record(row, record_path)
            if rec is not None:
                intact.append(record_path)
                if row.state in ("done", "failed"):
                    rows.append(result_row(rec, paths.relative(parquet) if row.state == "done" else ""))
            if row.state != "done":
                manifest.append(_planned_row(task, row.state, row.reason, row.job_id))
                continue
            intact.append(parquet)
            res = rows[-1]
            if res["disturbed"]:
                disturbed.append((row.key, res["disturbed"]))
            manifest.append({**{k: res[k] for k in SEED_MANIFEST_COLUMNS if k in res},
                             "spike_schema_version": "1", "spike_time_column": "time_ms", "spike_time_unit": "ms",
                             "sha256": rec["parquet_sha256"], "drive": res["drive"], "dtype": res["dtype"],
                             "task_key": row.key, "state": "done", "reason": "", "job_id": row.job_id})
        order = lambda r: (int(r["round"]), r["backend_key"], int(r["n_run"]), float(r["t_run"]))  # noqa: E731
        rows.sort(key=order)
        manifest.sort(key=order)
        write_if_changed(paths.results_csv, csv_text(RESULT_COLUMNS, rows))
        write_if_changed(paths.manifest, csv_text(MANIFEST_COLUMNS, manifest))
        listed = intact + [paths.manifest, paths.results_csv]
        digests = {**hashes, **hash_files([p for p in listed if p not in hashes])}
        lines = sorted((paths.relative(p), digests[p]) for p in listed)
        write_if_changed(paths.checksums, "".join(f"{digest}  {rel}\n" for rel, digest in lines))
        if global_csv:
            upsert_global(Path(global_csv), rows)
    return CollectReport(run_label, report, len(rows), [paths.results_csv, paths.manifest, paths.checksums],
                         sorted(disturbed))


def upsert_global(path: Path, rows: list[dict[str, str]]) -> None:
    """Upsert rows into a global results CSV keyed as the seed keys labelled rows.

    Key (framework, n_run, t_run, experiment_key, run_label, round), compared as strings; rows with
    a new key are appended, the file is rewritten atomically with the seed's columns first. Collects of
    several labels share the file: each holds its lock (`files.rewrite_lock`, waiting for the others) from
    reading to writing, so none overwrites another's rows.
    """
    with rewrite_lock(path):
        existing: list[dict[str, str]] = []
        columns = list(RESULT_COLUMNS)
        if path.is_file():
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                columns += [c for c in (reader.fieldnames or []) if c not in columns]
                existing = list(reader)
        new = {tuple(r.get(k, "") for k in GLOBAL_KEY): r for r in rows}
        merged = []
        for row in existing:
            key = tuple(row.get(k, "") for k in GLOBAL_KEY)
            merged.append(new.pop(key) if key in new else row)
        merged.extend(new.values())
        write_if_changed(path, csv_text(columns, merged))


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
