"""Task records: the JSON file beside each task's parquet, its common fields, reading it, and what a task's files
say about it.

A record (format `RECORD_FORMAT`, docs/DESIGN.md §3) is written once per attempt by the worker, atomically,
after the parquet; `header` builds the fields every record starts with (the one place they are assembled),
the task's kind adds its own and what it measured. `read_record` reads one (refusing one that lacks the
fields every record has, or its kind's); `disk_state` is the one judgement of a task from its files alone,
used by status, submit, resubmit, collect and verify through `flyhpc.cluster.status.status`. Writes nothing.
Entry points: `header`, `read_record`, `record_beside`, `disk_state`, `RECORD_FORMAT`, `REQUIRED`.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from pathlib import Path
from typing import Any, Sequence

from flyhpc import __version__
from flyhpc.errors import DataError
from flyhpc.files import sha256_file
from flyhpc.results.states import ERROR_PREFIX, INTERRUPTED_PREFIXES, SUCCESS

RECORD_FORMAT = 1
REQUIRED = ("status", "backend", "t_run_s", "n_run", "round", "run_label")  # every record has them


def header(*, key: str, run_label: str, backend: str, framework: str, seed: int, drive_version: int,
           connectome: str, started_utc: str, job: Any) -> dict[str, Any]:
    """The fields every task record starts with: which task, who ran it where and when (`job`: a
    `flyhpc.worker.JobInfo`); the kind's fields and the measurements follow."""
    return {
        "record_format": RECORD_FORMAT, "flyhpc_version": __version__, "key": key, "run_label": run_label,
        "backend": backend, "framework": framework, "seed": seed, "drive_version": drive_version,
        "connectome": connectome, "node": socket.gethostname(), "python": platform.python_version(),
        "started_utc": started_utc, "job_id": job.job_id, "array_job_id": job.array_job_id,
        "array_task_id": job.array_task_id, "image_digest": os.environ.get("FLYHPC_IMAGE_DIGEST", ""),
    }


def read_record(path: Path, required: Sequence[str] = ()) -> dict[str, Any]:
    """A task record as a dict; `required`: the fields its kind adds to `REQUIRED` (`Task.record_keys`).

    Raises
    ------
    DataError
        The file is missing, not JSON, or lacks the fields every record (or its kind's) has.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no task record") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: task record is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: task record is not a JSON object")
    missing = [k for k in (*REQUIRED, *required) if k not in data]
    if missing:
        raise DataError(f"{path}: task record lacks {', '.join(missing)}")
    return data


def record_beside(parquet: Path) -> dict[str, Any]:
    """The record beside a parquet (`<stem>.json`), or {} where there is none or it is not a readable JSON object:
    for readers that only show what a record says (report, compare); judging a task is `disk_state`'s."""
    return read_json_object(Path(parquet).with_suffix(".json"))


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file's object, or {} where the file is missing, unreadable or not a JSON object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def disk_state(record_path: Path, parquet_path: Path, *, key: str | None = None, deep: bool = False,
               parquet_sha256: str | None = None, required: Sequence[str] = ()) -> tuple[str, str]:
    """Judge a task from its files alone: (state, reason), one of `flyhpc.results.states.DISK_STATES`.

    States: "done"; "error" (the record says the task failed); "interrupted" (the record says a
    signal ended it: `timeout: ...` / `cancelled: ...`); "stale" (the record was made for another
    task key: another experiment, seed, connectome or result-changing option); "missing" (no
    record: never ran, or still running); "corrupt" (anything else: unreadable record, parquet
    missing, of another size, with a damaged footer or another row count than the record's spike
    count, or — when hashed — another sha256).

    The cheap check (size, parquet footer, row count) always runs; the parquet is hashed when `deep`
    or when the caller passes its sha256 (`parquet_sha256`, so nothing is hashed twice).
    """
    record_path, parquet_path = Path(record_path), Path(parquet_path)
    if not record_path.exists():
        return "missing", "no task record"
    try:
        rec = read_record(record_path, required)
    except DataError as exc:
        return "corrupt", str(exc)
    if key is not None and rec.get("key") != key:
        return "stale", (f"{record_path.name} was written for task {rec.get('key')!r}, not {key!r} "
                         "(another experiment, seed, connectome or result-changing option)")
    status = str(rec["status"])
    if status.startswith(ERROR_PREFIX):
        return "error", status
    if status.startswith(INTERRUPTED_PREFIXES):
        return "interrupted", status
    if status != SUCCESS:
        return "corrupt", f"{record_path.name}: unknown status {status!r}"
    return _parquet_state(rec, parquet_path, deep, parquet_sha256)


def _parquet_state(rec: dict, parquet_path: Path, deep: bool, parquet_sha256: str | None) -> tuple[str, str]:
    import pyarrow.parquet as pq

    name = parquet_path.name
    if not parquet_path.is_file():
        return "corrupt", f"{name}: missing although its record says success"
    size = parquet_path.stat().st_size
    if size != rec.get("parquet_bytes", -1):
        return "corrupt", f"{name}: {size} bytes, its record says {rec.get('parquet_bytes')}"
    try:
        rows = pq.ParquetFile(parquet_path).metadata.num_rows
    except Exception as exc:  # noqa: BLE001 - any reader failure means a damaged footer
        return "corrupt", f"{name}: unreadable parquet footer ({type(exc).__name__}: {exc})"
    expected_rows = rec.get("parquet_rows", rec.get("spikes"))  # a spike parquet has a row per spike
    if rows != expected_rows:
        unit = "rows" if "parquet_rows" in rec else "spikes"
        return "corrupt", f"{name}: {rows} rows, its record says {expected_rows} {unit}"
    for extra, entry in sorted((rec.get("extra_files") or {}).items()):  # a screen chunk's other files
        path = parquet_path.parent / extra
        if not path.is_file() or path.stat().st_size != entry.get("bytes"):
            return "corrupt", f"{extra}: missing or not the {entry.get('bytes')} bytes its record says"
        if deep and sha256_file(path) != entry.get("sha256"):
            return "corrupt", f"{extra}: sha256 differs from its record"
    if not deep and parquet_sha256 is None:
        return "done", ""
    if (parquet_sha256 or sha256_file(parquet_path)) != rec.get("parquet_sha256"):
        return "corrupt", f"{name}: sha256 differs from its record"
    return "done", ""
