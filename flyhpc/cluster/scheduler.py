"""The scheduler interface: what submit, status and cancel ask of Slurm or of this machine.

A `Scheduler` submits one planned array of tasks through submitit (`submit_array`), says which of its
jobs holds each task of a recorded submission (`task_jobs`), what it knows of those jobs (`states`: a
`Seen`), what that means for a task whose files are not done (`task_state`), whether a task's record is
its job's own (`wrote`: one rule for all schedulers), and cancels a recorded submission's jobs (`cancel`;
`abort`: jobs that went out but could not be recorded). One class per
scheduler, like submitit's executors (`slurm_scheduler`, `local_scheduler`), chosen by
`schedulers.scheduler_for(profile)` or, for a recorded submission, `schedulers.recorded`: callers ask the
scheduler and never compare executor names. Entry points: `Scheduler`, `Seen`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from flyhpc.cluster import executors
from flyhpc.cluster.profiles import ClusterProfile
from flyhpc.cluster.sacct import JobState


@dataclass
class Seen:
    """What a scheduler said about the jobs it was asked about (one `states` call).

    `jobs` holds the jobs it still knows (Slurm: with their final state for ended ones it remembers);
    `complete`: a job absent from it is gone (not merely unknown yet); `error`: it could not be asked (its
    words). `busy` is filled while tasks are judged: jobs whose running task is already named (a job that
    runs its tasks one after the other has one running task; the others wait).
    """

    jobs: dict[str, JobState]
    complete: bool = True
    error: str = ""
    busy: set[str] = field(default_factory=set)


_SUBMITTER_FILE = re.compile(r"^(\.submission_file_)?[0-9a-f]{32}\.(pkl|sh)$")  # submitit's names before sbatch


class Scheduler(ABC):
    """One way of running tasks (a profile's `executor`): submit arrays, query job states, cancel jobs.

    Built from a profile to submit (`scheduler_for`); without one it can still judge and cancel what a
    submission record holds (`recorded`).
    """

    name: ClassVar[str]  # the profile's `executor` value, and what submission.json records of each array
    supports_containers: ClassVar[bool] = False  # jobs may run in the backend's Apptainer image
    clock_slack_s: ClassVar[float] = 0.0  # how far the job's clock may lag the submitting machine's (`wrote`)

    def __init__(self, profile: ClusterProfile | None = None):
        self.profile = profile

    @property
    def parallel_workers(self) -> int:
        """How many jobs share one array's tasks among themselves, each running its share in turn: plan at least
        that many tasks so that none idles (1 where every task is a job of its own)."""
        return 1

    @property
    def max_array_size(self) -> int | None:
        """The most tasks one array may hold (None: no limit)."""
        return None

    def ensure_available(self) -> None:
        """Raise SchedulerUnavailable unless this machine can submit to the scheduler (before anything is written)."""

    @abstractmethod
    def parameters(self, array: Any, label: str) -> dict[str, Any]:
        """What the scheduler is told about one planned array (Slurm: the sbatch parameters), as `submit_array`
        passes it to submitit."""

    def submit_array(self, array: Any, folder: Path, job_fn: Callable | None = None, *, label: str,
                     binds: Sequence[str] = (), what: str = "the array") -> dict:
        """Submit one planned array (`slurm.ArrayPlan`: backend, resources, time_min, image, tasks) with submitit's
        files in `folder` (`job_folder.folder_for`); each task runs `job_fn(task)` (default `executors.run_task`),
        inside `array.image` when it names one (binding `binds` and the folder). Returns its submission.json
        entry. `label` names the jobs (`executors.job_name`); `what` names the array in a refusal.

        Raises
        ------
        ConfigError
            The scheduler or submitit refused the parameters or the array (nothing went out; submitit's files of
            it are removed).
        SchedulerUnavailable
            The scheduler's commands are not installed here.
        """
        if self.profile is None:
            raise TypeError(f"{type(self).__name__} without a profile cannot submit")
        python = executors.python_command(self.profile, array, [*binds, str(folder)])
        entry: dict[str, Any] = {
            "submitted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "executor": self.name, "backend": array.backend, "time_min": array.time_min,
            "resources": dataclasses.asdict(array.resources), "image": array.image, "python": python,
            "tasks": [t.key for t in array.tasks], "jobs": [], "folder": str(folder),
        }
        before = _job_files(folder)
        try:
            self._submit(entry, array, folder, python, job_fn or executors.run_task, label, what)
        except Exception:
            _remove_new_job_files(folder, before)
            raise
        return entry

    @abstractmethod
    def _submit(self, entry: dict, array: Any, folder: Path, python: str, job_fn: Callable, label: str,
                what: str) -> None:
        """Submit the array's tasks and add the job ids to `entry`."""

    @abstractmethod
    def task_jobs(self, entry: dict) -> list[tuple[str, str]]:
        """(task key, id of the job that runs it) of every task of a recorded submission."""

    @abstractmethod
    def states(self, job_ids: Sequence[str], *, retry_s: float = 0.0,
               on_retry: Callable[[str], None] | None = None, require: bool = True) -> Seen:
        """What the scheduler knows of these jobs (ids from `task_jobs`).

        A failing query is retried for up to `retry_s` seconds, telling `on_retry`; with `require` False a
        scheduler that cannot answer gives a `Seen` whose `error` says why instead of raising.
        """

    @abstractmethod
    def task_state(self, entry: dict, job_id: str, seen: Seen, disk: str, record: Path) -> str | None:
        """The scheduler's word on a task whose files are not done (`results.records.disk_state` says `disk`, its record
        file is `record`): pending, running, or how its job ended; None where the scheduler has none."""

    def wrote(self, entry: dict, job_id: str, record: Path) -> bool:
        """The task record `record` was written by this job of the recorded submission `entry`: the record names the
        job's id (`worker.JobInfo.job_id`, the id `task_jobs` gives) and started after the submission.

        A record the job did not write is an earlier attempt's: the job replaces it when it reaches the task, and
        if the job ends first the record says nothing of it. Decided from the record, not from file times: a file
        server's clock (a future mtime) must not turn a queued task into a failed or corrupt one. The start time
        guards against a job id used again (a local process id, a recreated cluster's numbering).
        """
        try:
            rec = json.loads(Path(record).read_text())
            submitted = _dt.datetime.fromisoformat(entry["submitted_at"]).astimezone(_dt.timezone.utc)
            earliest = submitted - _dt.timedelta(seconds=self.clock_slack_s)
            return str(rec.get("job_id", "")) == job_id and \
                str(rec.get("started_utc", "")) >= earliest.strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            return False

    @abstractmethod
    def cancel(self, entries: Sequence[dict], run_label: str) -> list[str]:
        """Cancel the still queued or running jobs of these recorded submissions of `run_label`, and only the
        label's own (a job id now someone else's is left alone); returns the job ids signalled."""

    @abstractmethod
    def abort(self, entries: Sequence[dict]) -> None:
        """Cancel the jobs of submissions that just went out but could not be recorded (best effort)."""


def _job_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _remove_new_job_files(folder: Path, before: set[str]) -> None:
    """Remove the pickles and sbatch scripts submitit wrote for an array that did not go out (only names
    submitit gives them before a job id exists: running jobs' logs and results are never touched)."""
    for name in _job_files(folder) - before:
        if _SUBMITTER_FILE.match(name):
            with contextlib.suppress(OSError):
                (folder / name).unlink()
