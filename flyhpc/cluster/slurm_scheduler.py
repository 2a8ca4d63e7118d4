"""Slurm behind the `Scheduler` interface: submitit's SlurmExecutor, sacct and squeue, scancel.

An array goes out as one submitit array (`map_array`; a one-task list as a plain job) with the sbatch
parameters of `executors.slurm_parameters`, its jobs starting in `job_folder.main`. Job states come from
one sacct call (retried with doubling waits), and from squeue for jobs slurmdbd has not recorded yet;
a task whose job neither knows is pending for a few minutes after its submission if squeue could not be
asked, else missing. Cancel
signals only jobs squeue still holds under the label's job name. Entry point: `SlurmScheduler`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from flyhpc.cluster import executors, sacct
from flyhpc.cluster.scheduler import Scheduler, Seen
from flyhpc.errors import Busy, ConfigError, FlyhpcError, SchedulerUnavailable


class SlurmScheduler(Scheduler):
    """Tasks as Slurm array tasks (executor = "slurm")."""

    name = "slurm"
    supports_containers = True
    clock_slack_s = 300.0  # a compute node's clock against the login node's (a job may start within a second)

    @property
    def max_array_size(self) -> int | None:
        return self.profile.max_array_size if self.profile else None

    def ensure_available(self) -> None:
        if shutil.which("sbatch") is None:
            where = f"profile {self.profile.name!r} ({self.profile.source})" if self.profile else "this profile"
            raise SchedulerUnavailable(f"sbatch not found on PATH: {where} submits to Slurm; submit from a login "
                                       "node, or use a profile with executor = \"local\"")

    def parameters(self, array: Any, label: str) -> dict[str, Any]:
        return executors.slurm_parameters(self.profile, array, label)

    def _submit(self, entry: dict, array: Any, folder: Path, python: str, job_fn: Callable, label: str,
                what: str) -> None:
        import submitit

        from flyhpc.cluster.job_folder import guarded

        prof = self.profile
        # jobs start in job_folder.main: the folder and pickle are checked first
        ex = guarded(submitit.SlurmExecutor)(folder=folder, python=python, max_num_timeout=0)
        params = self.parameters(array, label)
        try:
            ex.update_parameters(**params)
        except ValueError as exc:
            raise ConfigError(f"profile {prof.name!r} ({prof.source}): {exc}") from None
        self.ensure_available()
        try:
            jobs = ex.map_array(job_fn, list(array.tasks))
        except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as exc:
            words = " ".join(str(exc).split())
            raise ConfigError(f"sbatch refused {what} (profile {prof.name!r}, {prof.source}): {words}") from None
        entry["job_id"] = jobs[0].job_id.split("_")[0]
        entry["array"] = len(jobs) > 1  # submitit sends a one-task list as a plain job
        entry["parallelism"] = min(prof.array_parallelism, len(jobs))
        entry["sbatch"] = {k: v for k, v in params.items() if k != "setup"}

    def task_jobs(self, entry: dict) -> list[tuple[str, str]]:
        job = entry["job_id"]
        return [(key, f"{job}_{index}" if entry.get("array") else job) for index, key in enumerate(entry["tasks"])]

    def states(self, job_ids: Sequence[str], *, retry_s: float = 0.0,
               on_retry: Callable[[str], None] | None = None, require: bool = True) -> Seen:
        """One sacct call; squeue (the controller's own view, with the final state of jobs that ended lately) for
        the jobs slurmdbd has not recorded yet (it learns of a job a moment, under load minutes, after sbatch).

        Raises
        ------
        FlyhpcError
            sacct is missing or keeps failing (`require`).
        """
        ids = list(job_ids)
        if not ids:
            return Seen({})
        try:
            jobs = _query(ids, retry_s, on_retry)
        except FlyhpcError as exc:
            if require:
                raise
            return Seen({}, complete=False, error=f"scheduler not reachable ({exc})")
        unaccounted = [sid for sid in ids if sid not in jobs]
        if not unaccounted:
            return Seen(jobs)
        try:
            jobs.update(sacct.queued(unaccounted, ended=True))
        except FlyhpcError:
            return Seen(jobs, complete=False)
        return Seen(jobs)

    def task_state(self, entry: dict, job_id: str, seen: Seen, disk: str, record: Path) -> str | None:
        js = seen.jobs.get(job_id)
        if js:
            return js.category
        # neither accounting nor the controller knows it (or the controller could not be asked)
        return "pending" if _recent(entry) and not seen.error and not seen.complete else "missing"

    def cancel(self, entries: Sequence[dict], run_label: str) -> list[str]:
        """scancel the jobs that squeue still holds pending or running under the label's job name (ids of a
        recreated cluster that now belong to someone else's jobs are left alone; a job already COMPLETING is
        ending: nothing to cancel).

        Raises
        ------
        Busy
            scancel failed (try again).
        """
        if not entries:
            return []
        states = sacct.queued([e["job_id"] for e in entries])
        ids: set[str] = set()
        for entry in entries:
            expected = entry.get("sbatch", {}).get("job_name") or executors.job_name(run_label, entry["backend"])
            ids |= {js.job_id.split("_")[0] for js in states.values()
                    if js.job_id.split("_")[0] == entry["job_id"] and js.name == expected
                    and js.category in ("pending", "running") and js.state != "COMPLETING"}
        if ids:
            proc = subprocess.run(["scancel", *sorted(ids)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise Busy(f"scancel {' '.join(sorted(ids))} failed: {proc.stderr.strip()}; try again")
        return sorted(ids)

    def abort(self, entries: Sequence[dict]) -> None:
        ids = [e["job_id"] for e in entries]
        if ids:
            with contextlib.suppress(OSError):
                subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


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


def _recent(entry: dict, grace_s: float = 300.0) -> bool:
    # slurmdbd learns about a new job a moment after sbatch returns; until then sacct has no row.
    try:
        submitted = _dt.datetime.fromisoformat(entry["submitted_at"])
    except (KeyError, ValueError):
        return False
    return (_dt.datetime.now(_dt.timezone.utc) - submitted).total_seconds() < grace_s
