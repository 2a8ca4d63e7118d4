"""Running benchmark tasks at scale: submitit executors, arrays, submission records, cancel.

The only module that imports submitit. Groups tasks into one array per (backend, resource set,
time limit), split at the site's MaxArraySize and throttled with `%N`; each array task runs
`run_task(task)` -> `worker.run(task)`, inside the backend's Apptainer image when the profile
says so. Knows nothing about neurons. Status lives in `flyhpc.slurm_status`.
Entry points: `plan`, `submit`, `resubmit`, `cancel`, `run_task`, `load_submission`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as _dt
import fcntl
import json
import logging
import multiprocessing
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from flyhpc import __version__
from flyhpc.errors import ConfigError, FlyhpcError
from flyhpc.files import write_json_atomic
from flyhpc.profiles import ClusterProfile, Resources

log = logging.getLogger(__name__)


def submitit_slurm_parameters() -> dict[str, Any]:
    """submitit's valid Slurm executor parameters, name -> default (read from submitit itself)."""
    from submitit.slurm import slurm as _ss

    return dict(_ss._get_default_parameters())


# ----------------------------------------------------------------------------- the job side

def _note_signal(signum: int, _frame: Any) -> None:
    print(f"flyhpc: received {signal.Signals(signum).name}; letting Slurm enforce the time limit",
          file=sys.stderr, flush=True)


def run_task(task: Any, force: bool = False) -> dict:
    """Run one task inside a job: `worker.run(task)`, with Slurm (not submitit) owning time limits.

    submitit turns its pre-timeout signal (USR2) into an exception inside the task; we ignore that
    signal instead, so a task that runs out of time is killed by Slurm and ends as TIMEOUT with no
    record, and a requeued task simply runs again (the worker is idempotent).
    """
    from flyhpc import worker

    leave_time_limits_to_slurm()
    return worker.run(task, force=force)


def leave_time_limits_to_slurm() -> None:
    """In a job: replace submitit's USR2 handler (which raises inside the task) by a log line."""
    with contextlib.suppress(ValueError):  # not in the main thread: nothing to override
        signal.signal(signal.SIGUSR2, _note_signal)


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


# ----------------------------------------------------------------------------- planning

@dataclass(frozen=True)
class ArrayPlan:
    """One sbatch array (or one local job): tasks sharing backend, resources and time limit."""

    backend: str
    resources: Resources
    time_min: int
    image: str
    tasks: tuple[Any, ...]

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def estimate_hours(self, profile: ClusterProfile) -> tuple[float, float]:
        """(GPU-hours, core-hours) of the expected wall time (no safety factor)."""
        wall_h = sum(self.resources.wall_estimate_s(t.t_run_s, t.n_run) for t in self.tasks) / 3600.0
        return wall_h * self.resources.gpus, wall_h * self.resources.cpus


@dataclass(frozen=True)
class SubmitPlan:
    """What `submit` will do: arrays to submit and tasks skipped (already done)."""

    run_label: str
    results_root: str
    profile: ClusterProfile
    container: bool
    arrays: tuple[ArrayPlan, ...]
    skipped_done: tuple[str, ...]

    @property
    def n_tasks(self) -> int:
        return sum(a.n_tasks for a in self.arrays)

    def sbatch_parameters(self, array: ArrayPlan) -> dict[str, Any]:
        """The submitit Slurm parameters of one array (what goes into its sbatch script)."""
        return _slurm_parameters(self.profile, array)


def plan(tasks: Sequence[Any], profile: ClusterProfile, container: bool = True, time_factor: float = 1.0,
         skip_done: bool = True) -> SubmitPlan:
    """Group tasks into arrays; leave out tasks whose record on disk says done.

    Parameters
    ----------
    tasks
        BenchmarkTasks of one run label (from `tasks.expand_grid`).
    profile
        The cluster profile giving resources and time limits.
    container
        Wrap each task in `apptainer exec` (slurm executor and profile.container only).
    time_factor
        Multiplies every time limit (``resubmit --time-factor``).

    Raises
    ------
    ConfigError
        Tasks of several run labels or results roots; a container run whose backend has no image.
    """
    from flyhpc import worker

    if not tasks:
        raise ConfigError("nothing to plan: the grid expands to no task")
    labels = {(t.run_label, str(t.results_root)) for t in tasks}
    if len(labels) != 1:
        raise ConfigError(f"tasks of several run labels/results roots in one submission: {sorted(labels)}")
    (label, root), = labels
    container = container and profile.container and profile.executor == "slurm"
    groups: dict[tuple, list[Any]] = {}
    done: list[str] = []
    for task in tasks:
        if skip_done and worker.task_state(task) == "done":
            done.append(task.key)
            continue
        if profile.backend_options(task.backend):  # the site's options travel with the task to the job
            task = dataclasses.replace(task, backend_options=profile.backend_options(task.backend))
        res = profile.resources(task.backend)
        image = profile.image_path(task.backend) if container else ""
        if container and not image:
            raise ConfigError(f"profile {profile.name!r} ({profile.source}) runs in containers but backend "
                              f"{task.backend!r} has no image; set [backends.{task.backend}].image or "
                              "use --no-container")
        key = (task.backend, res, profile.time_limit_min(task.backend, task.t_run_s, task.n_run, time_factor), image)
        groups.setdefault(key, []).append(task)
    arrays: list[ArrayPlan] = []
    for (backend, res, time_min, image), members in groups.items():
        size = profile.max_array_size if profile.executor == "slurm" else len(members)
        for start in range(0, len(members), size):
            arrays.append(ArrayPlan(backend, res, time_min, image, tuple(members[start:start + size])))
    return SubmitPlan(label, root, profile, container, tuple(arrays), tuple(done))


def _python_command(profile: ClusterProfile, array: ArrayPlan, binds: Sequence[str]) -> str:
    if not array.image:
        return shlex.quote(sys.executable)
    bind = ",".join(dict.fromkeys([*profile.binds, *binds]))
    parts = [*shlex.split(profile.apptainer)] + (["--bind", bind] if bind else []) + [array.image, profile.python]
    return " ".join(shlex.quote(p) for p in parts)


def _slurm_parameters(profile: ClusterProfile, array: ArrayPlan) -> dict[str, Any]:
    res = array.resources
    params: dict[str, Any] = {
        "job_name": f"flyhpc-{array.backend}", "time": array.time_min, "cpus_per_task": res.cpus,
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


# ----------------------------------------------------------------------------- files

def _paths(results_root: str | Path, run_label: str):
    from flyhpc.bundle import BundlePaths

    return BundlePaths(results_root, run_label)


@contextlib.contextmanager
def _label_lock(paths) -> Iterator[None]:
    lock = Path(paths.lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FlyhpcError(f"another flyhpc command holds {lock}; wait for it and retry") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _git_revision() -> str:
    repo = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def load_submission(results_root: str | Path, run_label: str) -> dict:
    """The label's submission.json.

    Raises
    ------
    ConfigError
        The label was never submitted (no submission.json) or the file is not valid JSON.
    """
    path = Path(_paths(results_root, run_label).submission)
    if not path.is_file():
        raise ConfigError(f"no submission for run label {run_label!r}: {path} does not exist "
                          "(submit it first with `flyhpc submit`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None


def task_from_dict(data: dict) -> Any:
    """Rebuild a BenchmarkTask from its submission.json entry."""
    from flyhpc.tasks import BenchmarkTask

    fields = {f.name for f in dataclasses.fields(BenchmarkTask)}
    return BenchmarkTask(**{k: v for k, v in data.items() if k in fields})


def _profile_record(profile: ClusterProfile) -> dict:
    rec = dataclasses.asdict(profile)
    rec["sbatch"] = dict(profile.sbatch)
    return rec


# ----------------------------------------------------------------------------- submitting

def _executor(profile: ClusterProfile, folder: Path, python: str):
    import submitit

    if profile.executor == "slurm":
        return submitit.SlurmExecutor(folder=folder, python=python, max_num_timeout=0)
    if profile.executor == "local":
        return submitit.LocalExecutor(folder=folder)
    return submitit.DebugExecutor(folder=folder)


def _submit_array(sp: SubmitPlan, array: ArrayPlan, folder: Path, job_fn: Callable | None) -> dict:
    prof = sp.profile
    binds = [str(Path(sp.results_root).resolve())]
    python = _python_command(prof, array, binds)
    ex = _executor(prof, folder, python)
    entry: dict[str, Any] = {
        "submitted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "executor": prof.executor, "backend": array.backend, "time_min": array.time_min,
        "resources": dataclasses.asdict(array.resources), "image": array.image, "python": python,
        "tasks": [t.key for t in array.tasks], "jobs": [],
    }
    if prof.executor == "slurm":
        params = _slurm_parameters(prof, array)
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
    timeout = sum(prof.time_limit_min(t.backend, t.t_run_s, t.n_run) for t in array.tasks)
    ex.update_parameters(timeout_min=timeout)
    fn = job_fn or run_task
    for chunk in chunks:
        job = ex.submit(_local_sequence, fn, chunk)
        if prof.executor == "debug":
            job.result()
        entry["jobs"].append({"job_id": str(job.job_id), "tasks": [t.key for t in chunk]})
    entry["job_id"] = entry["jobs"][0]["job_id"]
    return entry


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


def submit(sp: SubmitPlan, job_fn: Callable | None = None) -> dict:
    """Submit every array of a plan and record it in results/<label>/submission.json.

    Parameters
    ----------
    sp
        From `plan`.
    job_fn
        What each array task runs (default `run_task`). Tests pass a module-level wrapper that
        injects faults before calling `run_task`; the CLI never does.

    Returns
    -------
    dict
        The updated submission record (earlier submissions of the label are kept, newest last).

    Raises
    ------
    ConfigError
        A profile value that submitit or sbatch refuses (the message has submitit's list of keys).
    FlyhpcError
        Another flyhpc command holds the label's lock; sbatch failed.
    """
    paths = _paths(sp.results_root, sp.run_label)
    folder = Path(paths.label_dir) / "slurm"
    with _label_lock(paths):
        sub_path = Path(paths.submission)
        record = json.loads(sub_path.read_text()) if sub_path.is_file() else {
            "run_label": sp.run_label, "results_root": str(sp.results_root), "submissions": [], "tasks": {}}
        record.update(flyhpc_version=__version__, git_revision=_git_revision(), profile=_profile_record(sp.profile),
                      container=sp.container)
        for array in sp.arrays:
            for task in array.tasks:
                record["tasks"][task.key] = dataclasses.asdict(task)
        try:
            for array in sp.arrays:
                record["submissions"].append(_submit_array(sp, array, folder, job_fn))
        except Exception as exc:
            write_json_atomic(sub_path, record)  # keep what did go out
            if isinstance(exc, FlyhpcError):
                raise
            raise FlyhpcError(f"submitting run label {sp.run_label!r} failed after "
                              f"{len(record['submissions'])} array(s): {exc}") from exc
        write_json_atomic(sub_path, record)
    return record


def resubmit(results_root: str | Path, run_label: str, states: Sequence[str], profile: ClusterProfile | None = None,
             time_factor: float = 1.0, container: bool = True, job_fn: Callable | None = None) -> tuple[SubmitPlan, dict]:
    """Submit again the tasks of a label whose status is one of `states` (never done/pending/running).

    Returns
    -------
    (SubmitPlan, dict)
        What was submitted (possibly no arrays) and the updated submission record.
    """
    from flyhpc import profiles, slurm_status

    bad = set(states) & {"done", "pending", "running"}
    if bad:
        raise ConfigError(f"resubmit cannot take tasks that are {', '.join(sorted(bad))}")
    report = slurm_status.status(results_root, run_label)
    record = load_submission(results_root, run_label)
    if profile is None:
        prof = record["profile"]
        profile = profiles.load_profile(prof["source"] if prof["source"] != "<embedded>" else prof["name"])
    chosen = [task_from_dict(record["tasks"][row.key]) for row in report.rows if row.state in states]
    if not chosen:
        return SubmitPlan(run_label, str(results_root), profile, container, (), ()), record
    sp = plan(chosen, profile, container=container, time_factor=time_factor, skip_done=True)
    return sp, submit(sp, job_fn=job_fn)


def _local_pid_is_ours(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "submitit.local._local" in cmd


def cancel(results_root: str | Path, run_label: str) -> list[str]:
    """Cancel every job of a label still queued or running (scancel, or SIGTERM for local jobs).

    Returns
    -------
    list[str]
        The job ids signalled.
    """
    record = load_submission(results_root, run_label)
    slurm_ids = sorted({s["job_id"] for s in record["submissions"] if s["executor"] == "slurm"})
    done: list[str] = []
    if slurm_ids:
        proc = subprocess.run(["scancel", *slurm_ids], capture_output=True, text=True)
        if proc.returncode != 0:
            raise FlyhpcError(f"scancel {' '.join(slurm_ids)} failed: {proc.stderr.strip()}")
        done += slurm_ids
    for sub in record["submissions"]:
        for job in sub.get("jobs", []):
            pid = int(job["job_id"])
            if sub["executor"] == "local" and _local_pid_is_ours(pid):
                os.kill(pid, signal.SIGTERM)
                done.append(str(pid))
    return done


def wait(results_root: str | Path, run_label: str, timeout_s: float = 3600.0, poll_s: float = 2.0) -> Any:
    """Block until no task of the label is pending or running; returns the final StatusReport."""
    from flyhpc import slurm_status

    deadline = time.monotonic() + timeout_s
    while True:
        report = slurm_status.status(results_root, run_label)
        if report.active == 0:
            return report
        if time.monotonic() > deadline:
            raise FlyhpcError(f"run label {run_label!r}: {report.active} task(s) still active after {timeout_s:.0f} s")
        time.sleep(poll_s)
