"""The state of every planned task of a label: the scheduler's view (one sacct call) joined with the files.

`status` is the one function that decides a task's state, for `flyhpc status`, `submit`, `resubmit`,
`collect` and `verify`. The files are the truth for success (`results.records.disk_state`): a task whose
record says success and whose parquet passes the check is done whatever the scheduler says; a task
the scheduler still holds is pending or running; otherwise the record's error or signal, or the
scheduler's final state (timeout, cancelled, out-of-memory, failed), explains it, and a damaged
file is "corrupt". Damage to the label itself (a screen plan whose sha256 is not the planned one, a task
removed from submission.json) is listed in `StatusReport.damaged`. Exit codes for scripts:
`StatusReport.exit_code`. Imports no submitit and submits nothing. Entry points: `status`, `StatusReport`,
`TaskStatus`, `label_damage`, `EXIT_*` (the states themselves: `flyhpc.results.states`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from typing import Callable

from flyhpc.cluster import sacct
from flyhpc.cluster.submission import load_submission, lost_tasks, task_from_dict
from flyhpc.bundle import BundlePaths
from flyhpc.results.records import disk_state
from flyhpc.results.states import ACTIVE, TASK_STATES, UNFINISHED
from flyhpc.errors import FlyhpcError, SchedulerUnavailable
from flyhpc.files import sha256_file


# Exit codes of status / collect / verify (README "Exit codes"): every task done; some task ended
# without a valid result (failures win over tasks still running); some still pending or running.
EXIT_DONE = 0
EXIT_UNFINISHED = 4
EXIT_ACTIVE = 75  # EX_TEMPFAIL: try again later


@dataclass(frozen=True)
class TaskStatus:
    """One task: its key, backend, status word, and for failures the reason and log path."""

    key: str
    backend: str
    state: str
    job_id: str = ""
    reason: str = ""
    log: str = ""
    node: str = ""


@dataclass(frozen=True)
class StatusReport:
    """Per-task rows and per-backend counts of one run label."""

    run_label: str
    rows: tuple[TaskStatus, ...]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    damaged: tuple[tuple[str, str], ...] = ()  # (file of the label, what is wrong with it)

    @property
    def active(self) -> int:
        """Tasks still pending or running."""
        return sum(1 for r in self.rows if r.state in ("pending", "running"))

    @property
    def complete(self) -> bool:
        """Every planned task is done and the label's own files are intact."""
        return not self.damaged and all(r.state == "done" for r in self.rows)

    @property
    def exit_code(self) -> int:
        """EXIT_DONE, EXIT_UNFINISHED (some task failed, timed out, ... or is corrupt; a label file is damaged)
        or EXIT_ACTIVE."""
        if self.damaged or any(r.state in UNFINISHED for r in self.rows):
            return EXIT_UNFINISHED
        return EXIT_ACTIVE if self.active else EXIT_DONE

    def failures(self) -> list[TaskStatus]:
        """Rows that need a resubmit (failed, timeout, cancelled, out-of-memory, missing, corrupt)."""
        return [r for r in self.rows if r.state in UNFINISHED]

    def by_state(self, *states: str) -> list[TaskStatus]:
        """Rows in any of `states`."""
        return [r for r in self.rows if r.state in states]


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


def _written_by(path: Path, job_id: str, sub: dict) -> bool:
    """The task record was written by this local job (its job id, started after the submission).

    A record this job did not write is an earlier attempt's, which the job will replace when it reaches
    the task. Decided from the record, not from file times: a file server's clock (a future mtime) must
    not turn a queued task into a failed or corrupt one.
    """
    try:
        rec = json.loads(path.read_text())
        return str(rec.get("job_id", "")) == job_id and str(rec.get("started_utc", "")) >= \
            _dt.datetime.fromisoformat(sub["submitted_at"]).astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def _record_prefix_state(reason: str) -> str:
    return "timeout" if reason.startswith("timeout") else "cancelled"


def _combine(disk: str, reason: str, cat: str | None, js) -> tuple[str, str]:
    """(state, reason) of a task not done on disk, given the scheduler's category (None: no scheduler)."""
    if cat in ACTIVE:
        return cat, ""
    if disk == "corrupt":
        return "corrupt", reason
    if disk == "error":
        return "failed", reason
    if disk == "interrupted":
        state = cat if cat in ("timeout", "cancelled", "out-of-memory") else _record_prefix_state(reason)
        if state != _record_prefix_state(reason):  # e.g. a time limit without the warning: Slurm knows better
            return state, f"{js.state} says Slurm; the task's record: {reason}"
        return state, reason
    if disk == "stale":
        return "missing", reason
    sched = f"{js.state} (exit {js.exit_code}, elapsed {js.elapsed}, node {js.node})" if js else ""
    if cat in ("timeout", "cancelled", "out-of-memory", "failed"):
        return cat, sched
    if cat == "done":
        return "missing", f"no task record although its job completed; {sched}"
    return "missing", reason


def _log(paths: BundlePaths, task, sub: dict, sid: str, disk: str) -> str:
    """The task's log ('' for a task that never started); for a task without a record (its job failed before
    the task started, or was killed), the job's stderr in its submitit folder when there is one (submitit
    names it `<job id>_0_log.err`)."""
    job_err = Path(sub["folder"]) / f"{sid}_0_log.err" if sub.get("folder") and sid else None
    if disk in ("missing", "stale") and job_err is not None and job_err.is_file():
        return str(job_err)
    return str(paths.log(task)) if paths.log(task).is_file() else ""


def _query(ids: list[str], retry_s: float, on_retry: Callable[[str], None] | None) -> dict:
    """sacct once; transient failures retried with doubling waits for up to `retry_s` seconds."""
    delay, waited = 2.0, 0.0
    while True:
        try:
            return sacct.query(ids)
        except FlyhpcError as exc:
            if waited + delay > retry_s or isinstance(exc, SchedulerUnavailable):
                raise
            if on_retry:
                on_retry(f"{exc}; retrying in {delay:.0f} s")
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 60.0)


def status(results_root: str | Path, run_label: str, *, deep: bool = False, retry_s: float = 0.0,
           on_retry: Callable[[str], None] | None = None, require_scheduler: bool = True,
           hashes: dict[Path, str] | None = None) -> StatusReport:
    """State of every planned task of a run label (one sacct call for all its Slurm jobs).

    Parameters
    ----------
    deep
        Hash every parquet against its record (`status --deep`, resubmit, collect); otherwise the
        cheap check (size, footer, row count) decides.
    retry_s, on_retry
        Retry a failing sacct for up to `retry_s` seconds (a slurmdbd restart), telling `on_retry`.
    require_scheduler
        False: if sacct cannot answer, judge from the files alone (a task without a record is
        "missing", with the reason) instead of raising.
    hashes
        Parquet sha256s the caller already computed (path -> hex): used instead of hashing again.

    Raises
    ------
    ConfigError
        The label has no submission.json.
    FlyhpcError
        sacct is missing or keeps failing while the label has Slurm jobs (require_scheduler).
    """
    record = load_submission(results_root, run_label)
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
    sched, sched_error, controller_asked = {}, "", False
    if slurm_ids:
        try:
            sched = _query(slurm_ids, retry_s, on_retry)
        except FlyhpcError as exc:
            if require_scheduler:
                raise
            sched_error = f"scheduler not reachable ({exc})"
        unaccounted = [sid for sid in slurm_ids if sid not in sched]
        if unaccounted and not sched_error:
            # slurmdbd records jobs a moment (under load: minutes) after the controller knows them;
            # squeue is the controller's own view, with the final state of jobs that ended lately.
            try:
                sched.update(sacct.queued(unaccounted, ended=True))
                controller_asked = True
            except FlyhpcError:
                pass

    rows: list[TaskStatus] = []
    first_waiting: set[str] = set()
    hashes = hashes or {}
    for key, data in record["tasks"].items():
        task = task_from_dict(data)
        sub, sid = latest.get(key, ({}, ""))
        parquet = paths.parquet(task)
        disk, reason = disk_state(paths.record(task), parquet, key=key, deep=deep, parquet_sha256=hashes.get(parquet),
                                  required=task.record_keys)
        js = sched.get(sid) if sub.get("executor") == "slurm" else None
        node = js.node if js else ""
        if disk == "done":
            rows.append(TaskStatus(key, task.backend, "done", sid, node=node))
            continue
        if sub.get("executor") == "slurm":
            if js:
                cat = js.category
            else:  # no accounting row and not queued (or the controller could not be asked)
                cat = "pending" if _recent(sub) and not sched_error and not controller_asked else "missing"
            if sched_error and disk == "missing":
                reason = f"no task record; {sched_error}"
        elif sub.get("executor") == "local" and local_alive.get(sid) and (
                disk in ("missing", "stale") or not _written_by(paths.record(task), sid, sub)):
            cat = "running" if sid not in first_waiting else "pending"
            first_waiting.add(sid)
        else:
            cat = None
        state, why = _combine(disk, reason, cat, js)
        log = "" if state in ACTIVE else _log(paths, task, sub, sid, disk)
        rows.append(TaskStatus(key, task.backend, state, sid, why, log, node))

    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        per = counts.setdefault(row.backend, {c: 0 for c in TASK_STATES})
        per[row.state] += 1
    return StatusReport(run_label, tuple(rows), counts, label_damage(paths, record))


def label_damage(paths: BundlePaths, record: dict) -> tuple[tuple[str, str], ...]:
    """What is wrong with the label's own files: the screen plan missing or not the planned sha256 (it is hashed:
    a few MB even for the atlas), tasks that plan.log lists and submission.json lost."""
    found = []
    planned = record.get("identity", {}).get("plan_sha256")
    if planned:
        plan = paths.screen_plan
        actual = sha256_file(plan) if plan.is_file() else ""
        if actual != planned:
            found.append((plan.name, (f"sha256 {actual[:12]}... is not the planned {planned[:12]}..." if actual
                                      else "missing") + f"; `flyhpc resubmit {paths.run_label}` rewrites it from the "
                          "screen file"))
    lost = lost_tasks(paths, record)
    if lost:
        more = f" and {len(lost) - 3} more" if len(lost) > 3 else ""
        found.append((paths.submission.name, f"{len(lost)} planned task(s) removed from it (plan.log lists them): "
                      f"{', '.join(lost[:3])}{more}"))
    return tuple(found)
