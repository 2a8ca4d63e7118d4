"""submitit's job side of flyhpc, and the sbatch parameters of an array.

`run_task` is what every job runs: the task's job ids from submitit's `JobEnvironment`, Slurm's signals
meaning what Slurm meant (`job_signals`), then `worker.run`; a local job runs its share of an array with
`local_sequence`. The schedulers (`scheduler.Scheduler`) submit with `python_command` (the job's Python,
in the backend's image where the profile says so) and `slurm_parameters`. Entry points: `run_task`,
`local_sequence`, `job_info`, `job_name`, `slurm_parameters`, `python_command`.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import shlex
import sys
from typing import Any, Callable, Sequence

from flyhpc.cluster import job_signals
from flyhpc.cluster.profiles import ClusterProfile


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


def local_sequence(fn: Callable, tasks: Sequence[Any]) -> list[str]:
    """A local job's share of an array, one task after the other, one outcome each: every task in a fresh
    interpreter (`run_task`), or for another job function (a check task, a test hook) in this process.

    A SIGTERM (`flyhpc cancel`) ends the task it reached as it ends a Slurm task, and the job: no later task
    starts (submitit's job side would ignore the signal and go on with them).
    """
    out = []
    with job_signals.ending_job() as ending:
        for task in tasks:
            if ending():
                out.append("not started: the job received SIGTERM")
            elif fn is run_task:
                out.append(_run_isolated(task))
            else:
                try:
                    fn(task)
                    out.append("done")
                except Exception as exc:
                    out.append(f"error: {exc}")
    return out


def job_name(run_label: str, backend: str) -> str:
    """The Slurm job name of a label's array for one backend (cancel matches it)."""
    return f"flyhpc.{run_label}.{backend}"
