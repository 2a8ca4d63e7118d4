"""`flyhpc status`: the scheduler's view (one sacct call) joined with the task records on disk.

The record on disk is the truth: a task whose record says success (and whose parquet matches it)
is done whatever the scheduler says; otherwise the scheduler's state (pending, running, timeout,
cancelled, out-of-memory, failed) or the record's error explains it. Imports no submitit and
submits nothing. Entry points: `status`, `StatusReport`, `TaskStatus`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from flyhpc import sacct
from flyhpc.sacct import CATEGORIES


@dataclass(frozen=True)
class TaskStatus:
    """One task: its key, backend, status word, and for failures the reason and log path."""

    key: str
    backend: str
    state: str
    job_id: str = ""
    reason: str = ""
    log: str = ""


@dataclass(frozen=True)
class StatusReport:
    """Per-task rows and per-backend counts of one run label."""

    run_label: str
    rows: tuple[TaskStatus, ...]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def active(self) -> int:
        """Tasks still pending or running."""
        return sum(1 for r in self.rows if r.state in ("pending", "running"))

    @property
    def complete(self) -> bool:
        """Every task is done."""
        return all(r.state == "done" for r in self.rows)

    def failures(self) -> list[TaskStatus]:
        """Rows that need a resubmit (failed, timeout, cancelled, out-of-memory, missing)."""
        return [r for r in self.rows if r.state not in ("done", "pending", "running")]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own finished child) is not alive
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def _recent(sub: dict, grace_s: float = 300.0) -> bool:
    # slurmdbd learns about a new job a moment after sbatch returns; until then sacct has no row.
    try:
        submitted = _dt.datetime.fromisoformat(sub["submitted_at"])
    except (KeyError, ValueError):
        return False
    return (_dt.datetime.now(_dt.timezone.utc) - submitted).total_seconds() < grace_s


def _record_reason(path: Path) -> str:
    try:
        return str(json.loads(path.read_text()).get("status", ""))
    except (OSError, ValueError):
        return "unreadable task record"


def status(results_root: str | Path, run_label: str) -> StatusReport:
    """Status of every task ever submitted under a run label.

    Raises
    ------
    ConfigError
        The label has no submission.json.
    FlyhpcError
        sacct is missing or fails while the label has Slurm jobs.
    """
    from flyhpc import worker
    from flyhpc.slurm import load_submission, task_from_dict

    record = load_submission(results_root, run_label)
    from flyhpc.bundle import BundlePaths

    paths = BundlePaths(results_root, run_label)
    latest: dict[str, tuple[dict, str]] = {}  # task key -> (submission, scheduler id), newest wins
    local_alive: dict[str, bool] = {}
    for sub in record["submissions"]:
        if sub["executor"] == "slurm":
            for index, key in enumerate(sub["tasks"]):
                latest[key] = (sub, f"{sub['job_id']}_{index}" if sub.get("array") else sub["job_id"])
        else:
            for job in sub.get("jobs", []):
                local_alive.setdefault(job["job_id"], sub["executor"] == "local" and _pid_alive(int(job["job_id"])))
                for key in job["tasks"]:
                    latest[key] = (sub, job["job_id"])
    slurm_ids = [sid for sub, sid in latest.values() if sub["executor"] == "slurm"]
    sched = sacct.query(slurm_ids) if slurm_ids else {}

    rows: list[TaskStatus] = []
    first_waiting: set[str] = set()
    for key, data in record["tasks"].items():
        task = task_from_dict(data)
        sub, sid = latest.get(key, ({}, ""))
        disk = worker.task_state(task, hash_parquet=False)
        log_path = str(paths.log(task))
        if disk == "done":
            rows.append(TaskStatus(key, task.backend, "done", sid))
            continue
        reason = ""
        if disk == "error":
            reason = _record_reason(Path(paths.record(task)))
        elif disk == "corrupt":
            reason = "parquet does not match the sha256 in its record"
        if sub.get("executor") == "slurm":
            js = sched.get(sid)
            cat = js.category if js else ("pending" if _recent(sub) else "missing")
            if cat in ("pending", "running"):
                rows.append(TaskStatus(key, task.backend, cat, sid))
                continue
            if disk in ("error", "corrupt"):
                state = "failed"
            elif cat == "done":
                state, reason = "failed", "job completed but left no valid task record"
            else:
                state = cat
                if js and cat != "missing":
                    reason = reason or f"{js.state} (exit {js.exit_code}, elapsed {js.elapsed}, node {js.node})"
            rows.append(TaskStatus(key, task.backend, state, sid, reason, log_path))
        else:
            if local_alive.get(sid) and disk == "missing":
                state = "running" if sid not in first_waiting else "pending"
                first_waiting.add(sid)
                rows.append(TaskStatus(key, task.backend, state, sid))
                continue
            state = "failed" if disk in ("error", "corrupt") else "missing"
            rows.append(TaskStatus(key, task.backend, state, sid, reason, log_path))

    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        per = counts.setdefault(row.backend, {c: 0 for c in CATEGORIES})
        per[row.state] += 1
    return StatusReport(run_label, tuple(rows), counts)
