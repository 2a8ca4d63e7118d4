"""Turn a label's task records into its bundle files, and check a bundle against its checksums.

`collect` writes benchmark-results.csv (the seed's 18 columns, then ours), manifest.csv and
checksums.sha256 (sorted, relative, `sha256sum -c` ready), optionally upserting a global CSV; it
reads only records and parquets, holds the label's lock, and is idempotent. `verify` re-hashes
every file and names what is missing, extra or corrupt. Entry points: `collect`, `verify`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import fcntl
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from flyhpc.bundle import BundlePaths, framework_name, read_record, record_state
from flyhpc.errors import ConfigError, FlyhpcError
from flyhpc.files import atomic_path, sha256_file

SEED_COLUMNS = ("framework", "n_run", "t_run", "setup_time", "build_time", "sim_time", "total_time",
                "realtime_ratio", "spikes", "active_neurons", "status", "timestamp", "backend_key", "experiment",
                "experiment_key", "run_label", "round", "spike_path")
OUR_COLUMNS = ("load_time", "collect_time", "write_time", "sim_inner_time", "drive", "dtype", "seed", "trials",
               "node", "device", "threads", "versions", "job_id", "array_job_id", "array_task_id", "image_digest",
               "connectome_source", "connectome_digest", "synthetic_connectome", "parquet_sha256", "flyhpc_version")
RESULT_COLUMNS = SEED_COLUMNS + OUR_COLUMNS
SEED_MANIFEST_COLUMNS = ("run_label", "round", "framework", "backend_key", "experiment", "experiment_key", "n_run",
                         "t_run", "spike_path", "spikes", "active_neurons", "status", "timestamp",
                         "spike_schema_version", "spike_time_column", "spike_time_unit")
MANIFEST_COLUMNS = SEED_MANIFEST_COLUMNS + ("sha256", "drive", "dtype")
GLOBAL_KEY = ("framework", "n_run", "t_run", "experiment_key", "run_label", "round")


@dataclass(frozen=True)
class CollectReport:
    """What `collect` found and wrote."""

    run_label: str
    rows: int
    done: int
    errors: list[str]
    corrupt: list[str]
    in_progress: list[str]
    files: list[Path]


@dataclass
class VerifyReport:
    """What `verify` found: checked file count and one line per problem (empty = all good)."""

    run_label: str
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.corrupt)


@contextlib.contextmanager
def label_lock(paths: BundlePaths) -> Iterator[None]:
    """Hold the label's lock (fcntl.flock); fail at once if another flyhpc command holds it.

    Raises
    ------
    FlyhpcError
        Another collect (or submit) holds the lock; nothing has been written.
    """
    paths.label_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FlyhpcError(f"another flyhpc command (collect or submit) holds {paths.lock}; "
                              "wait for it to finish and run collect again") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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


def result_row(rec: dict, spike_path: str) -> dict[str, str]:
    """One benchmark-results.csv row from a task record (every value a string)."""
    ph = rec.get("phases_s") or {}
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
        "drive": rec.get("drive", ""), "dtype": rec.get("dtype", ""), "seed": str(rec.get("seed", "")),
        "trials": " ".join(str(t) for t in rec.get("trials", [])), "node": rec.get("node", ""),
        "device": rec.get("device", ""), "threads": _fmt(rec.get("threads")),
        "versions": json.dumps(rec.get("versions", {}), sort_keys=True, separators=(",", ":")),
        "job_id": rec.get("job_id", ""), "array_job_id": rec.get("array_job_id", ""),
        "array_task_id": rec.get("array_task_id", ""), "image_digest": rec.get("image_digest", ""),
        "connectome_source": rec.get("connectome_source", ""), "connectome_digest": rec.get("connectome_digest", ""),
        "synthetic_connectome": _fmt(rec.get("synthetic_connectome")), "parquet_sha256": rec.get("parquet_sha256", ""),
        "flyhpc_version": rec.get("flyhpc_version", ""),
    }


def _csv_text(columns, rows) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _write_if_changed(path: Path, text: str) -> None:
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


def collect(results_root: str | Path, run_label: str, global_csv: str | Path | None = None) -> CollectReport:
    """Write benchmark-results.csv, manifest.csv and checksums.sha256 of a label from its records.

    Success rows need a parquet matching its recorded sha256 (else the task is reported corrupt
    and left out); error records give a row with their status; a parquet without a record is a
    task still running and is left out. Running twice gives identical files.

    Raises
    ------
    ConfigError
        The label folder does not exist.
    FlyhpcError
        Another collect holds the label's lock.
    """
    paths = BundlePaths(results_root, run_label)
    if not paths.label_dir.is_dir():
        raise ConfigError(f"unknown run label {run_label!r}: {paths.label_dir} does not exist")
    with label_lock(paths):
        rows, manifest, done, errors, corrupt = [], [], [], [], []
        parquets: list[Path] = []
        records: list[Path] = []
        rec_files = paths.record_files()
        hashes = hash_files([p.with_suffix(".parquet") for p in rec_files if p.with_suffix(".parquet").is_file()])
        for rec_path in rec_files:
            parquet = rec_path.with_suffix(".parquet")
            state, reason = record_state(rec_path, parquet, hashes.get(parquet))
            if state == "corrupt":
                corrupt.append(f"{paths.relative(rec_path)}: {reason}")
                continue
            rec = read_record(rec_path)
            records.append(rec_path)
            rel = paths.relative(parquet) if state == "done" else ""
            row = result_row(rec, rel)
            rows.append(row)
            if state == "error":
                errors.append(f"{rec.get('key', paths.relative(rec_path))}: {rec['status']}")
                continue
            done.append(rec.get("key", rel))
            parquets.append(parquet)
            manifest.append({**{k: row[k] for k in SEED_MANIFEST_COLUMNS if k in row},
                             "spike_schema_version": "1", "spike_time_column": "time_ms", "spike_time_unit": "ms",
                             "sha256": rec["parquet_sha256"], "drive": row["drive"], "dtype": row["dtype"]})
        in_progress = sorted(paths.relative(p) for p in paths.label_dir.glob("round_*/*.parquet")
                             if not p.with_suffix(".json").exists())
        rows.sort(key=lambda r: (int(r["round"]), r["backend_key"], int(r["n_run"]), float(r["t_run"])))
        manifest.sort(key=lambda r: (int(r["round"]), r["backend_key"], int(r["n_run"]), float(r["t_run"])))
        _write_if_changed(paths.results_csv, _csv_text(RESULT_COLUMNS, rows))
        _write_if_changed(paths.manifest, _csv_text(MANIFEST_COLUMNS, manifest))
        listed = parquets + records + [paths.manifest, paths.results_csv]
        digests = {**hashes, **hash_files([p for p in listed if p not in hashes])}
        lines = sorted(f"{digests[p]}  {paths.relative(p)}" for p in listed)
        lines.sort(key=lambda line: line[66:])
        _write_if_changed(paths.checksums, "".join(line + "\n" for line in lines))
        if global_csv:
            upsert_global(Path(global_csv), rows)
    return CollectReport(run_label, len(rows), len(done), errors, corrupt, in_progress,
                         [paths.results_csv, paths.manifest, paths.checksums])


def upsert_global(path: Path, rows: list[dict[str, str]]) -> None:
    """Upsert rows into a global results CSV keyed as the seed keys labelled rows.

    Key (framework, n_run, t_run, experiment_key, run_label, round), compared as strings; rows with
    a new key are appended, the file is rewritten atomically with the seed's columns first.
    """
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
    _write_if_changed(path, _csv_text(columns, merged))


def verify(results_root: str | Path, run_label: str) -> VerifyReport:
    """Re-hash every file of checksums.sha256 and re-check every record against its parquet.

    Names every file listed but missing, every parquet/record on disk not listed (extra), every
    hash mismatch, and every record that disagrees with its parquet (hash, size, row count).

    Raises
    ------
    ConfigError
        The label folder does not exist.
    """
    import pyarrow.parquet as pq

    paths = BundlePaths(results_root, run_label)
    if not paths.label_dir.is_dir():
        raise ConfigError(f"unknown run label {run_label!r}: {paths.label_dir} does not exist")
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
    on_disk = sorted(paths.label_dir.glob("round_*/*.parquet")) + paths.record_files()
    report.extra += sorted(f"{paths.relative(p)} (not in checksums.sha256)" for p in on_disk
                           if paths.relative(p) not in listed)
    by_path = {f: actual[f] for f in present.values()}  # parquets hashed above are not hashed again
    for rec_path in paths.record_files():
        parquet = rec_path.with_suffix(".parquet")
        state, reason = record_state(rec_path, parquet, by_path.get(parquet))
        if state == "corrupt":
            report.corrupt.append(f"{paths.relative(rec_path)}: {reason}")
        elif state == "done":
            rec = read_record(rec_path)
            try:
                n_rows = pq.ParquetFile(parquet).metadata.num_rows
            except Exception as exc:  # noqa: BLE001 - any reader failure means the file is damaged
                report.corrupt.append(f"{paths.relative(parquet)}: unreadable parquet ({exc})")
                continue
            if n_rows != rec.get("spikes"):
                report.corrupt.append(f"{paths.relative(parquet)}: {n_rows} rows but its record says "
                                      f"{rec.get('spikes')} spikes")
    return report


