"""Running benchmark tasks at scale: submitit executors, arrays, submission records, cancel.

The only module that imports submitit. Groups tasks into one array per (backend, resource set,
time limit), split at the site's MaxArraySize and throttled with `%N`; each array task runs
`run_task(task)` -> `worker.run(task)`, inside the backend's Apptainer image when the profile
says so. Owns submission.json: every planned task, and the label's identity (one experiment,
seed, connectome and option set per label: `check_identity`); refuses to resubmit tasks the
scheduler still holds, and to follow a submission file or job folder that someone else could have
written. Knows nothing about neurons. Status lives in `flyhpc.slurm_status`.
Entry points: `plan`, `submit`, `resubmit`, `record_plan`, `cancel`, `run_task`, `load_submission`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as _dt
import json
import math
import multiprocessing
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from flyhpc import __version__
from flyhpc.errors import ConfigError, FlyhpcError
from flyhpc.files import check_private, label_lock, write_json_atomic
from flyhpc.profiles import ClusterProfile, Resources


def submitit_slurm_parameters() -> dict[str, Any]:
    """submitit's valid Slurm executor parameters, name -> default (read from submitit itself)."""
    from submitit.slurm import slurm as _ss

    return dict(_ss._get_default_parameters())


# ----------------------------------------------------------------------------- the job side

def run_task(task: Any, force: bool = False) -> dict:
    """Run one task inside a job: `worker.run(task)`, with Slurm's signals meaning what Slurm meant.

    submitit's job-side handlers (USR2 raises inside the task, TERM is ignored) are replaced by
    `job_signals.install`: the pre-timeout warning is noted, TERM ends the task with a record that
    says timeout or cancelled; a requeued task simply runs again (the worker is idempotent).
    """
    from flyhpc import job_signals, worker

    job_signals.install()
    return worker.run(task, force=force)


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
    clamped: Mapping[str, int] = dataclasses.field(default_factory=dict)  # task key -> capped limit (min)

    @property
    def n_tasks(self) -> int:
        return sum(a.n_tasks for a in self.arrays)

    def sbatch_parameters(self, array: ArrayPlan) -> dict[str, Any]:
        """The submitit Slurm parameters of one array (what goes into its sbatch script)."""
        return _slurm_parameters(self.profile, array, self.run_label)


def plan(tasks: Sequence[Any], profile: ClusterProfile, container: bool = True, time_factor: float = 1.0,
         skip_done: bool = True, at_least_min: Mapping[str, int] | None = None) -> SubmitPlan:
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
    at_least_min
        Task key -> minutes its limit must reach (resubmit: the earlier limit times the factor).

    Raises
    ------
    ConfigError
        Tasks of several run labels or results roots; a container run whose backend has no image.
    """
    from flyhpc import worker

    if not tasks:
        raise ConfigError("nothing to plan: the grid expands to no task")
    tasks = [dataclasses.replace(t, backend_options=profile.backend_options(t.backend))
             if profile.backend_options(t.backend) else t for t in tasks]  # the site's options travel with the task
    labels = {(t.run_label, str(t.results_root)) for t in tasks}
    if len(labels) != 1:
        raise ConfigError(f"tasks of several run labels/results roots in one submission: {sorted(labels)}")
    (label, root), = labels
    container = container and profile.container and profile.executor == "slurm"
    groups: dict[tuple, list[Any]] = {}
    done: list[str] = []
    clamped: dict[str, int] = {}
    for task in tasks:
        if skip_done and worker.is_done(task):
            done.append(task.key)
            continue
        res = profile.resources(task.backend)
        image = profile.image_path(task.backend) if container else ""
        if container and not image:
            raise ConfigError(f"profile {profile.name!r} ({profile.source}) runs in containers but backend "
                              f"{task.backend!r} has no image; set [backends.{task.backend}].image or "
                              "use --no-container")
        limit = profile.time_limit(task.backend, task.t_run_s, task.n_run, time_factor,
                                   at_least_min=(at_least_min or {}).get(task.key, 0))
        if limit.clamped:
            clamped[task.key] = limit.minutes
        key = (task.backend, res, limit.minutes, image)
        groups.setdefault(key, []).append(task)
    arrays: list[ArrayPlan] = []
    for (backend, res, time_min, image), members in groups.items():
        size = profile.max_array_size if profile.executor == "slurm" else len(members)
        for start in range(0, len(members), size):
            arrays.append(ArrayPlan(backend, res, time_min, image, tuple(members[start:start + size])))
    return SubmitPlan(label, root, profile, container, tuple(arrays), tuple(done), clamped)


def _python_command(profile: ClusterProfile, array: ArrayPlan, binds: Sequence[str]) -> str:
    if not array.image:
        return shlex.quote(sys.executable)
    bind = ",".join(dict.fromkeys([*profile.binds, *binds]))
    parts = [*shlex.split(profile.apptainer)] + (["--bind", bind] if bind else []) + [array.image, profile.python]
    return " ".join(shlex.quote(p) for p in parts)


def _slurm_parameters(profile: ClusterProfile, array: ArrayPlan, run_label: str) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------- files

def _paths(results_root: str | Path, run_label: str):
    from flyhpc.bundle import BundlePaths

    return BundlePaths(results_root, run_label)


def _git_revision() -> str:
    """The commit of the flyhpc checkout this code runs from ('' for an installed wheel)."""
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        return ""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def load_submission(results_root: str | Path, run_label: str, trusted: bool = False) -> dict:
    """The label's submission.json.

    `trusted=True` (commands that follow its profile source and setup lines, or write job pickles
    next to it) first checks that the file and the submitit folder are yours and not writable by
    others (`files.check_private`).

    Raises
    ------
    ConfigError
        The label was never submitted (no submission.json), the file is not valid JSON, or (trusted)
        someone else could have written it.
    """
    paths = _paths(results_root, run_label)
    path = Path(paths.submission)
    if not path.is_file():
        raise ConfigError(f"no submission for run label {run_label!r}: {path} does not exist "
                          "(submit it first with `flyhpc submit`)")
    if trusted:
        check_private(path, "follow its profile and setup lines")
        if paths.jobs_dir.exists():
            check_private(paths.jobs_dir, "let jobs load the pickles in it")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None


def task_from_dict(data: dict) -> Any:
    """Rebuild a BenchmarkTask from its submission.json entry."""
    from flyhpc.tasks import BenchmarkTask

    fields = {f.name for f in dataclasses.fields(BenchmarkTask)}
    return BenchmarkTask(**{k: v for k, v in data.items() if k in fields})


def label_identity(tasks: Sequence[Any]) -> dict:
    """What every task of a label must share: experiment, seed, connectome, result-changing options.

    Raises
    ------
    ConfigError
        The tasks themselves disagree (one submission mixing experiments).
    """
    from flyhpc import backends
    from flyhpc.tasks import experiment_digest

    ident: dict[str, Any] = {}
    for task in tasks:
        options = ident.setdefault("options", {})
        mine = {"experiment": task.experiment, "experiment_digest": experiment_digest(task.experiment),
                "seed": task.seed, "connectome": task.connectome, "connectome_digest": task.connectome_digest}
        for k, v in mine.items():
            if ident.setdefault(k, v) != v:
                raise ConfigError(f"one submission mixes {k} {ident[k]!r} and {v!r}; a run label holds one")
        opts = json.loads(json.dumps(backends.result_options(task.backend, dict(task.backend_options)), default=str))
        if options.setdefault(task.backend, opts) != opts:
            raise ConfigError(f"one submission gives backend {task.backend} two option sets")
    return ident


def check_identity(recorded: dict | None, wanted: dict, run_label: str) -> None:
    """Refuse adding tasks to a label that was made for another experiment, seed, connectome or options.

    Raises
    ------
    ConfigError
        Naming each difference and what to do (another --run-label).
    """
    if not recorded:
        return
    diffs = []
    for key in ("experiment", "experiment_digest", "seed", "connectome_digest"):
        if key in recorded and recorded[key] != wanted.get(key):
            diffs.append(f"{key} {recorded[key]!r} there, {wanted.get(key)!r} now")
    for backend, opts in wanted.get("options", {}).items():
        before = recorded.get("options", {}).get(backend)
        if before is not None and before != opts:
            diffs.append(f"{backend} options {before} there, {opts} now")
    if diffs:
        raise ConfigError(f"run label {run_label!r} already holds other results: " + "; ".join(diffs) +
                          ". A label has one meaning: use another --run-label")


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
        params = _slurm_parameters(prof, array, sp.run_label)
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


def job_name(run_label: str, backend: str) -> str:
    """The Slurm job name of a label's array for one backend (cancel matches it)."""
    return f"flyhpc.{run_label}.{backend}"


def _jobs_folder(paths) -> Path:
    folder = Path(paths.jobs_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # mkdir's mode is masked; pickles in here are code that jobs load
    return folder


def _refuse_active(results_root: str | Path, run_label: str, keys: Sequence[str]) -> None:
    from flyhpc import slurm_status

    report = slurm_status.status(results_root, run_label)
    busy = [r for r in report.rows if r.key in set(keys) and r.state in slurm_status.ACTIVE]
    if busy:
        shown = ", ".join(f"{r.key} ({r.state}, job {r.job_id})" for r in busy[:5])
        more = f" and {len(busy) - 5} more" if len(busy) > 5 else ""
        raise ConfigError(f"run label {run_label!r}: {len(busy)} task(s) are still queued or running: {shown}{more}; "
                          "wait (`flyhpc status --watch`), cancel them, or pass --force to submit them again")


def record_plan(tasks: Sequence[Any], executor: str = "bench") -> dict:
    """Record tasks run outside submit (e.g. `flyhpc bench`) in the label's submission.json.

    So that status, collect and verify know every planned task. Same identity rule as `submit`.
    """
    task = tasks[0]
    paths = _paths(task.results_root, task.run_label)
    with label_lock(paths.lock, "bench"):
        record = _updated_record(paths, task.run_label, str(task.results_root), list(tasks))
        record["submissions"].append({
            "submitted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "executor": executor,
            "backend": ",".join(sorted({t.backend for t in tasks})), "tasks": [t.key for t in tasks], "jobs": []})
        write_json_atomic(paths.submission, record, mode=0o644)
    return record


def _updated_record(paths, run_label: str, results_root: str, tasks: list[Any]) -> dict:
    sub_path = Path(paths.submission)
    record = json.loads(sub_path.read_text()) if sub_path.is_file() else {
        "run_label": run_label, "results_root": results_root, "submissions": [], "tasks": {}}
    wanted = label_identity(tasks)
    check_identity(record.get("identity"), wanted, run_label)
    identity = record.setdefault("identity", {k: v for k, v in wanted.items() if k != "options"} | {"options": {}})
    identity["options"].update(wanted.get("options", {}))
    for task in tasks:
        record["tasks"][task.key] = dataclasses.asdict(task)
    return record


def submit(sp: SubmitPlan, job_fn: Callable | None = None, force: bool = False) -> dict:
    """Submit every array of a plan and record it in results/<label>/submission.json.

    Parameters
    ----------
    sp
        From `plan`.
    job_fn
        What each array task runs (default `run_task`). Tests pass a module-level wrapper that
        injects faults before calling `run_task`; the CLI never does.
    force
        Submit tasks again although the scheduler still holds them (duplicates their jobs).

    Returns
    -------
    dict
        The updated submission record (earlier submissions of the label are kept, newest last).

    Raises
    ------
    ConfigError
        Tasks still pending or running (without `force`); a label made for another experiment,
        seed, connectome or options; a submission file or job folder someone else could write; a
        profile value that submitit or sbatch refuses.
    FlyhpcError
        Another flyhpc command holds the label's lock; sbatch failed.
    """
    paths = _paths(sp.results_root, sp.run_label)
    with label_lock(paths.lock, f"submit --run-label {sp.run_label}"):
        if Path(paths.submission).is_file():
            load_submission(sp.results_root, sp.run_label, trusted=True)
            if not force:
                _refuse_active(sp.results_root, sp.run_label, [t.key for a in sp.arrays for t in a.tasks])
        record = _updated_record(paths, sp.run_label, str(sp.results_root), [t for a in sp.arrays for t in a.tasks])
        record.update(flyhpc_version=__version__, git_revision=_git_revision(), profile=_profile_record(sp.profile),
                      container=sp.container)
        folder = _jobs_folder(paths)
        try:
            for array in sp.arrays:
                record["submissions"].append(_submit_array(sp, array, folder, job_fn))
        except Exception as exc:
            write_json_atomic(paths.submission, record, mode=0o644)  # keep what did go out
            if isinstance(exc, FlyhpcError):
                raise
            raise FlyhpcError(f"submitting run label {sp.run_label!r} failed after "
                              f"{len(record['submissions'])} array(s): {exc}") from exc
        write_json_atomic(paths.submission, record, mode=0o644)
    return record


def resubmit(results_root: str | Path, run_label: str, states: Sequence[str], profile: ClusterProfile | None = None,
             time_factor: float = 1.0, container: bool = True, job_fn: Callable | None = None,
             force: bool = False) -> tuple[SubmitPlan, dict]:
    """Submit again the tasks of a label whose status is one of `states` (never done/pending/running).

    Every parquet is hashed first (a bit-flipped file is "corrupt" and is rerun).

    Returns
    -------
    (SubmitPlan, dict)
        What was submitted (possibly no arrays) and the updated submission record.

    Raises
    ------
    ConfigError
        A state that cannot be resubmitted; a time factor that cannot raise a limit because the
        profile's max_time_min caps it; an untrusted submission file.
    """
    from flyhpc import profiles, slurm_status

    bad = set(states) & {"done", "pending", "running"}
    if bad:
        raise ConfigError(f"resubmit cannot take tasks that are {', '.join(sorted(bad))}")
    record = load_submission(results_root, run_label, trusted=True)
    report = slurm_status.status(results_root, run_label, deep=True)
    if profile is None:
        prof = record["profile"]
        profile = profiles.load_profile(prof["source"] if prof["source"] != "<embedded>" else prof["name"])
    chosen = [task_from_dict(record["tasks"][row.key]) for row in report.rows if row.state in states]
    if not chosen:
        return SubmitPlan(run_label, str(results_root), profile, container, (), ()), record
    before = _earlier_limits(record)
    floors = {t.key: math.ceil(before.get(t.key, 0) * time_factor) for t in chosen} if time_factor > 1 else {}
    sp = plan(chosen, profile, container=container, time_factor=time_factor, skip_done=False, at_least_min=floors)
    if time_factor > 1:
        _refuse_capped(sp, before, time_factor)
    return sp, submit(sp, job_fn=job_fn, force=force)


def _earlier_limits(record: dict) -> dict[str, int]:
    """Task key -> the time limit (minutes) of its latest submission."""
    before: dict[str, int] = {}
    for sub in record["submissions"]:
        for key in sub["tasks"]:
            before[key] = sub.get("time_min", 0)
    return before


def _refuse_capped(sp: SubmitPlan, before: dict[str, int], time_factor: float) -> None:
    stuck = [(t.key, a.time_min) for a in sp.arrays for t in a.tasks if a.time_min <= before.get(t.key, 0)]
    if stuck:
        key, minutes = stuck[0]
        raise ConfigError(f"--time-factor {time_factor:g} cannot raise the time limit of {len(stuck)} task(s) "
                          f"(e.g. {key}: {minutes} min again): profile {sp.profile.name!r} ({sp.profile.source}) caps "
                          f"it with max_time_min = {sp.profile.max_time_min}; raise max_time_min there, or pass "
                          "--profile with a higher cap")


def _local_pid_is_ours(pid: int, folder: Path) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "submitit.local._local" in cmd and str(folder) in cmd


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


def cancel(results_root: str | Path, run_label: str) -> list[str]:
    """Cancel the label's jobs that are still queued or running (scancel; SIGTERM for local jobs).

    Only Slurm jobs that sacct shows pending or running AND whose job name is this label's
    (`job_name`) are cancelled: job ids of a recreated cluster that now belong to someone else's
    jobs are left alone.

    Returns
    -------
    list[str]
        The job ids signalled.
    """
    from flyhpc import sacct

    paths = _paths(results_root, run_label)
    record = load_submission(results_root, run_label, trusted=True)
    subs = [s for s in record["submissions"] if s["executor"] == "slurm"]
    done: list[str] = []
    if subs:
        states = sacct.query([s["job_id"] for s in subs])
        ids = set()
        for sub in subs:
            expected = sub.get("sbatch", {}).get("job_name") or job_name(run_label, sub["backend"])
            ids |= {js.job_id.split("_")[0] for js in states.values()
                    if js.job_id.split("_")[0] == sub["job_id"] and js.name == expected
                    and js.category in ("pending", "running")}
        if ids:
            proc = subprocess.run(["scancel", *sorted(ids)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise FlyhpcError(f"scancel {' '.join(sorted(ids))} failed: {proc.stderr.strip()}")
            done += sorted(ids)
    for sub in record["submissions"]:
        for job in sub.get("jobs", []):
            pid = int(job["job_id"])
            if sub["executor"] == "local" and _local_pid_is_ours(pid, Path(paths.jobs_dir).resolve()):
                for member in [pid, *_descendants(pid)]:  # the job and the per-task processes it started
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(member, signal.SIGTERM)
                done.append(str(pid))
    return done


def wait(results_root: str | Path, run_label: str, timeout_s: float = 3600.0, poll_s: float = 2.0) -> Any:
    """Block until no task of the label is pending or running; returns the final StatusReport."""
    from flyhpc import slurm_status

    deadline = time.monotonic() + timeout_s
    while True:
        report = slurm_status.status(results_root, run_label, retry_s=60.0)
        if report.active == 0:
            return report
        if time.monotonic() > deadline:
            raise FlyhpcError(f"run label {run_label!r}: {report.active} task(s) still active after {timeout_s:.0f} s")
        time.sleep(poll_s)
