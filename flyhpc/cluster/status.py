"""The state of every planned task of a label: the schedulers' view (one query each) joined with the files.

`status` is the one function that decides a task's state, for `flyhpc status`, `submit`, `resubmit`,
`collect` and `verify`. The files are the truth for success (`results.records.disk_state`): a task whose
record says success and whose parquet passes the check is done whatever the scheduler says; a task
the scheduler still holds is pending or running (each submission's own scheduler says which:
`schedulers.recorded`; sacct for Slurm, the job's process for the local executor); otherwise the
record's error or signal, or the scheduler's final state (timeout, cancelled, out-of-memory, failed),
explains it, and a damaged file is "corrupt". A record that the task's latest job did not write
(`Scheduler.wrote`) is an earlier attempt's: once that job has ended without writing one, the
scheduler's verdict on it decides (a local job that ended leaves none: missing), and the reason names
the job and quotes the earlier record. Damage to the label itself (a screen plan whose sha256 is
not the planned one, a task removed from submission.json) is listed in `StatusReport.damaged`. Exit
codes for scripts: `StatusReport.exit_code`. Imports no submitit and submits nothing. Entry points:
`status`, `StatusReport`, `TaskStatus`, `label_damage`, `news_waiter`, `EXIT_*` (the states themselves:
`flyhpc.results.states`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from typing import Callable

from flyhpc.cluster import schedulers
from flyhpc.cluster.scheduler import Scheduler, Seen
from flyhpc.cluster.submission import load_submission, lost_tasks
from flyhpc.bundle import BundlePaths
from flyhpc.results.records import disk_state
from flyhpc.results.states import ACTIVE, TASK_STATES, UNFINISHED
from flyhpc.files import sha256_file
from flyhpc.kinds import task_from_dict


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


def _earlier_attempt(reason: str, cat: str | None, js, sid: str) -> tuple[str, str]:
    """(state, reason) of a task whose latest job `sid` ended without writing its record, the record on disk
    (saying `reason`) being an earlier attempt's: the scheduler's verdict on that job (`cat`, `js`)."""
    state = cat if cat in ("timeout", "cancelled", "out-of-memory", "failed") else "missing"
    if js:
        ended = (f"job {sid} ended {js.state} (exit {js.exit_code}, elapsed {js.elapsed}, node {js.node}) "
                 "without a record of the task")
    else:  # an ended local job leaves nothing; Slurm forgot it
        ended = f"job {sid} ended before it reached the task"
    return state, f"{ended}; the earlier attempt's record says {reason}"


def _log(paths: BundlePaths, task, sub: dict, sid: str, disk: str) -> str:
    """The task's log ('' for a task that never started); for a task without a record (its job failed before
    the task started, or was killed), the job's stderr in its submitit folder when there is one (submitit
    names it `<job id>_0_log.err`)."""
    job_err = Path(sub["folder"]) / f"{sid}_0_log.err" if sub.get("folder") and sid else None
    if disk in ("missing", "stale") and job_err is not None and job_err.is_file():
        return str(job_err)
    return str(paths.log(task)) if paths.log(task).is_file() else ""


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
    latest: dict[str, tuple[dict, Scheduler, str]] = {}  # task key -> (submission, its scheduler, job id), newest wins
    for sub in record["submissions"]:
        scheduler = schedulers.recorded(sub)
        for key, sid in scheduler.task_jobs(sub) if scheduler else ():
            latest[key] = (sub, scheduler, sid)
    asked: dict[str, tuple[Scheduler, list[str]]] = {}
    for _sub, scheduler, sid in latest.values():
        asked.setdefault(scheduler.name, (scheduler, []))[1].append(sid)
    seen = {name: scheduler.states(ids, retry_s=retry_s, on_retry=on_retry, require=require_scheduler)
            for name, (scheduler, ids) in asked.items()}  # one query per scheduler

    rows: list[TaskStatus] = []
    hashes = hashes or {}
    for key, data in record["tasks"].items():
        task = task_from_dict(data)
        sub, scheduler, sid = latest.get(key, ({}, None, ""))
        parquet = paths.parquet(task)
        disk, reason = disk_state(paths.record(task), parquet, key=key, deep=deep, parquet_sha256=hashes.get(parquet),
                                  required=task.record_keys)
        said = seen[scheduler.name] if scheduler else Seen({})
        js = said.jobs.get(sid)
        node = js.node if js else ""
        if disk == "done":
            rows.append(TaskStatus(key, task.backend, "done", sid, node=node))
            continue
        cat = scheduler.task_state(sub, sid, said, disk, paths.record(task)) if scheduler else None
        if said.error and disk == "missing":
            reason = f"no task record; {said.error}"
        # an error or signal record its latest job, now ended, did not write: an earlier attempt's
        earlier = (disk in ("error", "interrupted") and scheduler is not None and cat not in ACTIVE
                   and not said.error and not scheduler.wrote(sub, sid, paths.record(task)))
        state, why = _earlier_attempt(reason, cat, js, sid) if earlier else _combine(disk, reason, cat, js)
        log = "" if state in ACTIVE else _log(paths, task, sub, sid, "missing" if earlier else disk)
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


LOCAL_EXECUTORS = ("local", "debug")  # their status asks no service: a pid check and the files


def news_waiter(results_root: str | Path, run_label: str, interval_s: float, poll_s: float = 0.2) -> Callable[[], None]:
    """A wait between two refreshes of `status --watch`: `interval_s`, or for a label whose every job runs on this
    machine less, until one of its task folders changes (a record or progress file written there; a folder's mtime
    is one stat), so a watch sees the last task end within `poll_s` instead of up to a whole interval later. A
    label with Slurm jobs waits the whole interval (each status asks sacct).
    """
    record = load_submission(results_root, run_label)
    asked = {sched.name for sched, _ in schedulers.by_scheduler(record["submissions"])}
    if asked - set(LOCAL_EXECUTORS):
        return lambda: time.sleep(interval_s)
    paths = BundlePaths(results_root, run_label)
    folders = sorted({paths.record(task_from_dict(data)).parent for data in record["tasks"].values()})

    def stamp() -> tuple[int, ...]:
        return tuple(os.stat(f).st_mtime_ns if f.is_dir() else 0 for f in folders)

    seen = [stamp()]  # the folders as the last refresh may have seen them

    def wait() -> None:
        end = time.monotonic() + interval_s
        while time.monotonic() < end:
            time.sleep(min(poll_s, max(0.0, end - time.monotonic())))
            now = stamp()
            if now != seen[0]:
                break
        seen[0] = stamp()

    return wait
