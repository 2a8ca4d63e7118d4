"""submitit's side of flyhpc: executors, the sbatch parameters of an array, and the job side.

`submit_array` turns one planned array into a submitit Slurm array (or local/debug jobs) and returns
what submission.json records of it; `run_task` is what every job runs: the task's job ids from
submitit's `JobEnvironment`, Slurm's signals meaning what Slurm meant (`job_signals`), then
`worker.run`. Entry points: `submit_array`, `run_task`, `job_info`, `job_name`, `slurm_parameters`,
`python_command`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as _dt
import multiprocessing
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from flyhpc.cluster import job_signals
from flyhpc.cluster.profiles import ClusterProfile
from flyhpc.errors import ConfigError


def run_task(task: Any, force: bool = False) -> dict:
    """Run one task inside a job: `worker.run(task)`, with Slurm's signals meaning what Slurm meant.

    submitit's job-side handlers (USR2 raises inside the task, TERM is ignored) are replaced by
    `job_signals.install`: the pre-timeout warning is noted, TERM ends the task with a record that
    says timeout or cancelled; a requeued task simply runs again (the worker is idempotent).
    """
    from flyhpc import worker

    job_signals.install()
    return worker.run(task, force=force, job=job_info())


def job_info() -> Any:
    """This job's ids from submitit's `JobEnvironment` (none outside a submitit job), and its signals."""
    import submitit

    from flyhpc.worker import JobInfo

    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # run_task called outside a submitit job (tests, `bench --executor process`)
        return JobInfo(interruption=job_signals.interruption)
    return JobInfo(job_id=str(env.job_id), array_job_id=env.array_job_id or "", array_task_id=env.array_task_id or "",
                   interruption=job_signals.interruption)


def _run_isolated(task: Any) -> str:
    # A fresh interpreter per task, so simulator globals die with the task (local executor).
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        try:
            pool.submit(run_task, task).result()
            return "done"
        except Exception as exc:  # the worker left an error record; go on with the next task
            return f"error: {exc}"


def run_sequence(tasks: Sequence[Any]) -> list[str]:
    """Local executor job: run tasks one after the other, each in its own process; one outcome each."""
    return [_run_isolated(t) for t in tasks]


def python_command(profile: ClusterProfile, array: Any, binds: Sequence[str]) -> str:
    """The job's Python: this interpreter, or the profile's inside `apptainer exec` of the array's image."""
    if not array.image:
        return shlex.quote(sys.executable)
    bind = ",".join(dict.fromkeys([*profile.binds, *binds]))
    parts = [*shlex.split(profile.apptainer)] + (["--bind", bind] if bind else []) + [array.image, profile.python]
    return " ".join(shlex.quote(p) for p in parts)


def slurm_parameters(profile: ClusterProfile, array: Any, run_label: str) -> dict[str, Any]:
    """The submitit Slurm parameters of one planned array (`slurm.ArrayPlan`)."""
    res = array.resources
    params: dict[str, Any] = {
        "job_name": job_name(run_label, array.backend), "time": array.time_min, "cpus_per_task": res.cpus,
        "mem": f"{int(res.mem_gb * 1024)}MB", "array_parallelism": profile.array_parallelism,
        "signal_delay_s": profile.signal_delay_s,
    }
    if res.gpus:
        params["gres"] = f"gpu:{res.gpus}"
    for key in ("partition", "account", "qos"):
        if getattr(profile, key):
            params[key] = getattr(profile, key)
    if profile.slurm_setup:
        params["setup"] = list(profile.slurm_setup)
    params.update(profile.sbatch)
    return params


def _executor(profile: ClusterProfile, folder: Path, python: str):
    import submitit

    from flyhpc.cluster.job_folder import guarded

    if profile.executor == "slurm":  # jobs start in job_folder.main: the folder and pickle are checked first
        return guarded(submitit.SlurmExecutor)(folder=folder, python=python, max_num_timeout=0)
    if profile.executor == "local":
        return guarded(submitit.LocalExecutor)(folder=folder)
    return submitit.DebugExecutor(folder=folder)  # runs in this process: no pickle is loaded


def submit_array(prof: ClusterProfile, results_root: str | Path, run_label: str, array: Any, folder: Path,
                 job_fn: Callable | None) -> dict:
    """Submit one planned array (`slurm.ArrayPlan`) with submitit's files in `folder` (`job_folder.folder_for`);
    return its submission.json entry."""
    binds = [str(Path(results_root).resolve()), str(folder)]
    python = python_command(prof, array, binds)
    ex = _executor(prof, folder, python)
    entry: dict[str, Any] = {
        "submitted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "executor": prof.executor, "backend": array.backend, "time_min": array.time_min,
        "resources": dataclasses.asdict(array.resources), "image": array.image, "python": python,
        "tasks": [t.key for t in array.tasks], "jobs": [], "folder": str(folder),
    }
    if prof.executor == "slurm":
        params = slurm_parameters(prof, array, run_label)
        try:
            ex.update_parameters(**params)
        except ValueError as exc:
            raise ConfigError(f"profile {prof.name!r} ({prof.source}): {exc}") from None
        jobs = ex.map_array(job_fn or run_task, list(array.tasks))
        entry["job_id"] = jobs[0].job_id.split("_")[0]
        entry["array"] = len(jobs) > 1  # submitit sends a one-task list as a plain job
        entry["parallelism"] = min(prof.array_parallelism, len(jobs))
        entry["sbatch"] = {k: v for k, v in params.items() if k != "setup"}
        return entry
    # local/debug: the tasks run one after the other in `array_parallelism` jobs
    n_jobs = min(prof.array_parallelism, array.n_tasks)
    chunks = [list(array.tasks[i::n_jobs]) for i in range(n_jobs)]
    timeout = sum(prof.limit_for(t.wall_estimate_s(prof.resources(t.backend))).minutes for t in array.tasks)
    ex.update_parameters(timeout_min=timeout)
    fn = job_fn or run_task
    for chunk in chunks:
        with _std_detached() if prof.executor == "local" else contextlib.nullcontext():
            job = ex.submit(_local_sequence, fn, chunk)
        if prof.executor == "debug":
            job.result()
        entry["jobs"].append({"job_id": str(job.job_id), "tasks": [t.key for t in chunk]})
    entry["job_id"] = entry["jobs"][0]["job_id"]
    return entry


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


def _local_sequence(fn: Callable, tasks: Sequence[Any]) -> list[str]:
    if fn is run_task:
        return run_sequence(tasks)
    out = []
    for task in tasks:  # a test hook: same process, still one outcome per task
        try:
            fn(task)
            out.append("done")
        except Exception as exc:
            out.append(f"error: {exc}")
    return out


def job_name(run_label: str, backend: str) -> str:
    """The Slurm job name of a label's array for one backend (cancel matches it)."""
    return f"flyhpc.{run_label}.{backend}"
