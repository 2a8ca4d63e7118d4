"""This machine behind the `Scheduler` interface: submitit's LocalExecutor (executor = "local") and
DebugExecutor (executor = "debug").

An array's tasks are dealt to `array_parallelism` jobs, each a process that runs its share one after
the other (`executors.local_sequence`), every task in a fresh interpreter; the debug executor runs them
in this process before `submit_array` returns. A local job's id is its process id: it is alive while
that process is, and of its tasks the first one without a record of its own (`Scheduler.wrote`) is
running, the later ones wait. Cancel sends SIGTERM to the job's process and every process under it, only
when the process is submitit's job of this label's folder: the task it reached ends, and no later one
starts. Entry points: `LocalScheduler`, `DebugScheduler`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from flyhpc.cluster import executors
from flyhpc.cluster.sacct import JobState
from flyhpc.cluster.scheduler import Scheduler, Seen


class LocalScheduler(Scheduler):
    """Tasks in `array_parallelism` background processes on this machine (executor = "local")."""

    name = "local"

    @property
    def parallel_workers(self) -> int:
        return self.profile.array_parallelism if self.profile else 1

    def _executor(self, folder: Path) -> Any:
        import submitit

        from flyhpc.cluster.job_folder import guarded

        return guarded(submitit.LocalExecutor)(folder=folder)  # jobs start in job_folder.main

    def _start(self, ex: Any, job_fn: Callable, chunk: list) -> Any:
        with _std_detached():
            return ex.submit(executors.local_sequence, job_fn, chunk)

    def parameters(self, array: Any, label: str) -> dict[str, Any]:
        # the tasks are dealt to this many jobs; a job runs its share in turn, so it may need every task's time
        return {"jobs": min(self.parallel_workers, array.n_tasks), "timeout_min": array.time_min * array.n_tasks}

    def _submit(self, entry: dict, array: Any, folder: Path, python: str, job_fn: Callable, label: str,
                what: str) -> None:
        ex = self._executor(folder)
        params = self.parameters(array, label)
        chunks = [list(array.tasks[i::params["jobs"]]) for i in range(params["jobs"])]
        ex.update_parameters(timeout_min=params["timeout_min"])
        for chunk in chunks:
            job = self._start(ex, job_fn, chunk)
            entry["jobs"].append({"job_id": str(job.job_id), "tasks": [t.key for t in chunk]})
        entry["job_id"] = entry["jobs"][0]["job_id"]

    def task_jobs(self, entry: dict) -> list[tuple[str, str]]:
        return [(key, job["job_id"]) for job in entry.get("jobs", []) for key in job["tasks"]]

    def states(self, job_ids: Sequence[str], *, retry_s: float = 0.0,
               on_retry: Callable[[str], None] | None = None, require: bool = True) -> Seen:
        """The jobs whose process is alive, as running (an ended job is gone: it leaves only its tasks' records)."""
        return Seen({pid: JobState(pid, "RUNNING") for pid in dict.fromkeys(job_ids) if _pid_alive(int(pid))})

    def task_state(self, entry: dict, job_id: str, seen: Seen, disk: str, record: Path) -> str | None:
        if job_id not in seen.jobs or (disk not in ("missing", "stale") and self.wrote(entry, job_id, record)):
            return None  # the job has ended, or it has done this task: the files say how
        state = "pending" if job_id in seen.busy else "running"
        seen.busy.add(job_id)
        return state

    def cancel(self, entries: Sequence[dict], run_label: str) -> list[str]:
        """SIGTERM to each job's process and the per-task processes under it, where the process is submitit's job
        of the submission's folder (a reused process id is left alone)."""
        done = []
        for entry in entries:
            folder = Path(entry["folder"]).resolve()
            for job in entry.get("jobs", []):
                pid = int(job["job_id"])
                if _local_pid_is_ours(pid, folder):
                    _terminate(pid)
                    done.append(str(pid))
        return done

    def abort(self, entries: Sequence[dict]) -> None:
        self.cancel(entries, "")


class DebugScheduler(LocalScheduler):
    """Tasks run in this process, one after the other, before `submit_array` returns (executor = "debug")."""

    name = "debug"

    def _executor(self, folder: Path) -> Any:
        import submitit

        return submitit.DebugExecutor(folder=folder)  # runs in this process: no pickle is loaded

    def _start(self, ex: Any, job_fn: Callable, chunk: list) -> Any:
        job = ex.submit(executors.local_sequence, job_fn, chunk)
        job.result()
        return job

    def states(self, job_ids: Sequence[str], *, retry_s: float = 0.0,
               on_retry: Callable[[str], None] | None = None, require: bool = True) -> Seen:
        return Seen({})  # its jobs ended when they were submitted

    def cancel(self, entries: Sequence[dict], run_label: str) -> list[str]:
        return []


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


def _local_pid_is_ours(pid: int, folder: Path) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "submitit.local._local" in cmd and str(folder) in cmd


def _terminate(pid: int) -> None:
    for member in [pid, *_descendants(pid)]:  # the job and the per-task processes it started
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGTERM)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo += children.get(child, [])
    return out


@contextlib.contextmanager
def _std_detached() -> Iterator[None]:
    """Point this process's stdin/stdout/stderr at /dev/null while a local job starts, so that the job (which
    inherits them; its tasks write their own logs) does not keep them open: `flyhpc submit | tail` would
    otherwise wait for every task to end."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        yield
    finally:
        for fd, copy in zip((0, 1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(null)
