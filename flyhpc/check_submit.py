"""`flyhpc check submit`: `flyhpc check` once per backend on a cluster, as tasks of the scheduler's arrays.

Each backend is a `CheckTask`; the tasks go out through the profile's scheduler
(`cluster.schedulers.scheduler_for`), like benchmark tasks: one array per image (the backends that share
one, or all of them when the profile runs no containers), asking for the largest GPUs, CPUs and memory
of its backends in the profile, with the profile's partition, account, qos, [sbatch] options and setup
lines; the job's Python is the one in the backend's image when the profile runs containers (apptainer
command and binds from the profile, the output folder bound too). In the job `run_check_task` runs
`flyhpc check --backend X --out OUT` (GPU backends with `--require-gpu`) in the output folder, so every
backend writes its check-<backend>-<host>.json/.md there for `flyhpc check collect OUT`, and the folder's
`submitted-checks.json` lists the backends sent out (collect fails on one without a report). The job files
(job scripts, pickles, the jobs' logs) go to the user's private folder (`cluster.job_folder`).
Entry points: `CheckTask`, `plan_arrays`, `describe`, `submit`, `run_check_task`.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from flyhpc import backends
from flyhpc.check import SUBMITTED
from flyhpc.cluster import job_folder, job_signals
from flyhpc.cluster.profiles import ClusterProfile
from flyhpc.cluster.schedulers import scheduler_for
from flyhpc.cluster.slurm import ArrayPlan
from flyhpc.errors import ConfigError, TaskFailed
from flyhpc.files import write_json_atomic
from flyhpc.results.records import read_json_object

LABEL = "check"  # the jobs' names: flyhpc.check.<backends>


@dataclass(frozen=True)
class CheckTask:
    """One backend's `flyhpc check` in a job: its arguments after `flyhpc`, run from `out_dir`."""

    backend: str
    out_dir: str
    args: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{LABEL}/{self.backend}"


def plan_arrays(profile: ClusterProfile, backend_names: Sequence[str], out_dir: Path, time_min: int = 45,
                extra_args: Sequence[str] = ()) -> list[ArrayPlan]:
    """The arrays of `check submit`: one per image (one in all without containers), a task per backend.

    Raises
    ------
    ConfigError
        No backend; a backend without an image in a profile that runs in containers.
    """
    if not backend_names:
        raise ConfigError("check submit: no backend to check")
    out = Path(out_dir).resolve()
    container = profile.container and scheduler_for(profile).supports_containers
    groups: dict[str, list[CheckTask]] = {}
    for name in backend_names:
        args = ["check", "--backend", name, "--out", str(out), *extra_args]
        if backends.get(name).caps.device == "gpu":
            args.append("--require-gpu")  # a node or image that hides its GPU fails instead of falling back quietly
        image = profile.image_path(name) if container else ""
        if container and not image:
            raise ConfigError(f"check submit: profile {profile.name!r} runs in containers but names no image for "
                              f"{name!r} ([backends.{name}] image = ...)")
        groups.setdefault(image, []).append(CheckTask(name, str(out), tuple(args)))
    arrays = []
    for image, tasks in groups.items():
        res = [profile.resources(t.backend) for t in tasks]
        most = replace(res[0], gpus=max(r.gpus for r in res), cpus=max(r.cpus for r in res),
                       mem_gb=max(r.mem_gb for r in res))
        arrays.append(ArrayPlan("+".join(t.backend for t in tasks), most, int(time_min), image, tuple(tasks)))
    return arrays


def describe(profile: ClusterProfile, arrays: Sequence[ArrayPlan]) -> str:
    """What `check submit --dry-run` prints: per array its resources, what the scheduler is told, the job's
    Python and each task's command."""
    from flyhpc.cluster.executors import python_command

    scheduler = scheduler_for(profile)
    lines = [f"check on profile {profile.name} ({scheduler.name}): {sum(a.n_tasks for a in arrays)} task(s) in "
             f"{len(arrays)} array(s)"]
    for n, array in enumerate(arrays, 1):
        res = array.resources
        lines += [f"array {n}: {array.backend}: {res.gpus} GPU(s), {res.cpus} CPU(s), {res.mem_gb:g} GB, "
                  f"{array.time_min} min, image {array.image or '-'}",
                  f"  {scheduler.name}: {scheduler.parameters(array, LABEL)}",
                  f"  python: {python_command(profile, array, [array.tasks[0].out_dir])}"]
        lines += [f"  task {i}: python -m flyhpc {' '.join(t.args)}" for i, t in enumerate(array.tasks)]
    return "\n".join(lines) + "\n"


def submit(profile: ClusterProfile, arrays: Sequence[ArrayPlan], out_dir: Path) -> tuple[list[dict], Path]:
    """Submit the arrays of `plan_arrays`; returns their entries (job ids) and the folder of
    their job files (scripts, logs).

    Raises
    ------
    ConfigError, SchedulerUnavailable
        The scheduler refused the first array, or cannot be reached (nothing went out; without sbatch nothing is
        written).
    TaskFailed
        It refused a later one: the message names the jobs that went out.
    """
    scheduler = scheduler_for(profile)
    scheduler.ensure_available()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)  # the jobs write here, and containers bind it
    folder = job_folder.folder_for(profile, out.parent, out.name)
    entries: list[dict] = []
    for n, array in enumerate(arrays):
        try:
            entries.append(scheduler.submit_array(array, folder, run_check_task, label=LABEL, binds=[str(out)],
                                                  what=f"check array {n + 1} of {len(arrays)} ({array.backend})"))
            _note_submitted(out, [t.backend for t in array.tasks])
        except Exception as exc:
            if not entries:
                raise
            raise TaskFailed(f"{exc}; job(s) {', '.join(e['job_id'] for e in entries)} went out and write into "
                             f"{out}") from None
    return entries, folder


def _note_submitted(out: Path, names: Sequence[str]) -> None:
    """Add `names` to the folder's list of checks sent out (`check.SUBMITTED`): `check collect` fails on one of them
    that never wrote its report."""
    path = out / SUBMITTED
    before = read_json_object(path).get("backends", [])
    write_json_atomic(path, {"backends": sorted(set(before) | set(names))})


def run_check_task(task: CheckTask) -> None:
    """The job side: `python -m flyhpc <task.args>` with this job's Python (the image's, in a container), from the
    output folder (the synthetic connectome goes to its data/), with Slurm's pre-timeout warning kept away from
    it; SIGTERM (scancel, the time limit) ends it and the task.

    Raises
    ------
    TaskFailed
        The check exited non-zero (its report says why): the Slurm job fails (the local executor records it as
        the task's outcome); the verdict is `flyhpc check collect`'s, from the reports.
    """
    from flyhpc.backends.brian2.child_signals import ignoring_argv

    job_signals.install()
    out = Path(task.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(ignoring_argv([sys.executable, "-m", "flyhpc", *task.args]), cwd=out)
    try:
        code = proc.wait()
    except job_signals.TaskInterrupted:
        proc.terminate()
        proc.wait()
        raise
    if code:
        raise TaskFailed(f"flyhpc check --backend {task.backend} exited {code}; see check-{task.backend}-*.md in "
                         f"{out} and this job's log")
