"""Running tasks (benchmark grid points, screen chunks) at scale: plan arrays, submit, resubmit, cancel, wait.

Groups tasks into one array per (backend, resource set, time limit, image), split at the site's
MaxArraySize and throttled with `%N`; the profile's scheduler (`schedulers.scheduler_for`: Slurm or
this machine) submits them (each array task runs `executors.run_task` -> `worker.run`, inside the
backend's Apptainer image when the profile says so) and cancels them. Refuses to submit tasks the
scheduler still holds (unless forced), a label made for another experiment, and a submission file or
job folder someone else could have written (submitit's folder is private to the user and outside the
results: `job_folder`). Knows nothing about neurons. Entry points: `plan`, `submit`, `resubmit`,
`cancel`, `wait`, `ArrayPlan`, `SubmitPlan`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from flyhpc import __version__
from flyhpc.bundle import BundlePaths
from flyhpc.cluster import job_folder, schedulers, status
from flyhpc.cluster.profiles import ClusterProfile, Resources
from flyhpc.cluster.submission import git_revision, load_submission, profile_record, updated_record, write_record
from flyhpc.drive import DRIVE_VERSION
from flyhpc.errors import Busy, ConfigError, TaskFailed
from flyhpc.files import is_output_error, label_lock, output_error
from flyhpc.kinds import task_from_dict


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
        wall_h = sum(t.wall_estimate_s(self.resources) for t in self.tasks) / 3600.0
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


def plan(tasks: Sequence[Any], profile: ClusterProfile, container: bool = True, time_factor: float = 1.0,
         skip_done: bool = True, at_least_min: Mapping[str, int] | None = None) -> SubmitPlan:
    """Group tasks into arrays; leave out tasks whose record on disk says done.

    Parameters
    ----------
    tasks
        Tasks of one run label: BenchmarkTasks (`tasks.expand_grid`) or ScreenTasks (`screens.task.plan_tasks`).
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
    scheduler = schedulers.scheduler_for(profile)
    container = container and profile.container and scheduler.supports_containers
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
        limit = profile.limit_for(task.wall_estimate_s(res), time_factor,
                                  at_least_min=(at_least_min or {}).get(task.key, 0))
        if limit.clamped:
            clamped[task.key] = limit.minutes
        key = (task.backend, res, limit.minutes, image)
        groups.setdefault(key, []).append(task)
    arrays: list[ArrayPlan] = []
    for (backend, res, time_min, image), members in groups.items():
        size = scheduler.max_array_size or len(members)
        for start in range(0, len(members), size):
            arrays.append(ArrayPlan(backend, res, time_min, image, tuple(members[start:start + size])))
    return SubmitPlan(label, root, profile, container, tuple(arrays), tuple(done), clamped)


def _refuse_active(results_root: str | Path, run_label: str, keys: Sequence[str]) -> None:
    report = status.status(results_root, run_label)
    busy = [r for r in report.rows if r.key in set(keys) and r.state in status.ACTIVE]
    if busy:
        shown = ", ".join(f"{r.key} ({r.state}, job {r.job_id})" for r in busy[:5])
        more = f" and {len(busy) - 5} more" if len(busy) > 5 else ""
        raise ConfigError(f"run label {run_label!r}: {len(busy)} task(s) are still queued or running: {shown}{more}; "
                          "wait (`flyhpc status --watch`), cancel them, or pass --force to submit them again")


def submit(sp: SubmitPlan, job_fn: Callable | None = None, force: bool = False, extra: dict | None = None) -> dict:
    """Submit every array of a plan and record it in results/<label>/submission.json.

    Nothing is written unless the scheduler accepted an array: the record is written once, after the arrays
    went out, and the job files (pickles, sbatch scripts) of an array sbatch refused are removed.

    Parameters
    ----------
    sp
        From `plan`.
    job_fn
        What each array task runs (default `executors.run_task`). Tests pass a module-level wrapper that
        injects faults before calling `run_task`; the CLI never does.
    force
        Submit tasks again although the scheduler still holds them (duplicates their jobs).
    extra
        Entries the record keeps beside the tasks (a screen: how to plan it again).

    Returns
    -------
    dict
        The updated submission record (earlier submissions of the label are kept, newest last).

    Raises
    ------
    ConfigError
        Tasks still pending or running (without `force`); a label made for another experiment,
        seed, connectome or options; a submission file or job folder someone else could write; a
        profile value that submitit or sbatch refuses (nothing queued, nothing written).
    TaskFailed
        sbatch accepted some arrays and refused a later one: those that went out are recorded, the rest are
        missing tasks of the label (`flyhpc resubmit --missing`).
    Busy
        Another flyhpc command holds the label's lock.
    OutputError
        The results folder is full or read-only (the arrays that had gone out are cancelled).
    """
    paths = BundlePaths(sp.results_root, sp.run_label)
    paths.check_own_folder()  # before its lock file is made through a link, in another label's folder
    fresh = not Path(paths.submission).is_file()
    try:
        with label_lock(paths.lock, f"submit --run-label {sp.run_label}"):
            if Path(paths.submission).is_file():
                load_submission(sp.results_root, sp.run_label, trusted=True)
                if not force:
                    _refuse_active(sp.results_root, sp.run_label, [t.key for a in sp.arrays for t in a.tasks])
            record = updated_record(paths, sp.run_label, str(sp.results_root), [t for a in sp.arrays for t in a.tasks])
            record.update(flyhpc_version=__version__, git_revision=git_revision(), profile=profile_record(sp.profile),
                          container=sp.container, **(extra or {}))
            try:
                folder = job_folder.folder_for(sp.profile, sp.results_root, sp.run_label)
            except OSError as exc:
                raise output_error(exc) if is_output_error(exc) else exc
            new, refused = _submit_arrays(sp, folder, job_fn)
            record["submissions"] += new
            if not new:  # nothing went out: nothing is written
                if fresh:
                    with contextlib.suppress(OSError):  # only if empty
                        folder.rmdir()
                raise refused  # type: ignore[misc]
            try:
                write_record(paths, record)
            except Exception:
                _cancel_submitted(new)  # jobs without a record would run unjudged
                raise
            if refused is not None:
                raise TaskFailed(f"{refused}; {len(new)} of {len(sp.arrays)} array(s) went out (job(s) "
                                 f"{', '.join(s['job_id'] for s in new)}) and are recorded; the other tasks are "
                                 f"missing: fix the cause, then `flyhpc resubmit {sp.run_label} --missing`")
    except BaseException:
        if fresh and not Path(paths.submission).is_file():  # nothing went out: a label folder this call made goes
            with contextlib.suppress(OSError):  # (only if empty: the lock file went with the lock)
                paths.label_dir.rmdir()
        raise
    return record


def _submit_arrays(sp: SubmitPlan, folder: Path, job_fn: Callable | None) -> tuple[list[dict], Exception | None]:
    """Submit the plan's arrays in order until one is refused: (entries of those that went out, the refusal)."""
    scheduler = schedulers.scheduler_for(sp.profile)
    binds = [str(Path(sp.results_root).resolve())]
    out: list[dict] = []
    for n, array in enumerate(sp.arrays):
        try:
            out.append(scheduler.submit_array(array, folder, job_fn, label=sp.run_label, binds=binds,
                                              what=f"array {n + 1} of {len(sp.arrays)} of run label {sp.run_label!r}"))
        except Exception as exc:
            return out, _submit_error(exc, folder)
    return out, None


def _submit_error(exc: Exception, folder: Path) -> Exception:
    """The error an array that did not go out stands for (the scheduler's own words kept)."""
    if isinstance(exc, OSError) and is_output_error(exc):
        return output_error(exc, exc.filename or f"the job files in {folder}")
    return exc


def _cancel_submitted(subs: list[dict]) -> None:
    """Cancel jobs that went out but could not be recorded (best effort)."""
    for scheduler, entries in schedulers.by_scheduler(subs):
        scheduler.abort(entries)


def resubmit(results_root: str | Path, run_label: str, states: Sequence[str], profile: ClusterProfile | None = None,
             time_factor: float = 1.0, container: bool = True, job_fn: Callable | None = None,
             force: bool = False, retry_s: float = 0.0,
             on_retry: Callable[[str], None] | None = None) -> tuple[SubmitPlan, dict]:
    """Submit again the tasks of a label whose status is one of `states` (never done/pending/running).

    Every parquet is hashed first (a bit-flipped file is "corrupt" and is rerun). A failing sacct is retried
    for up to `retry_s` seconds, telling `on_retry` (as `flyhpc status --watch` does).

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
    from flyhpc.cluster import profiles

    bad = set(states) & {"done", "pending", "running"}
    if bad:
        raise ConfigError(f"resubmit cannot take tasks that are {', '.join(sorted(bad))}")
    record = load_submission(results_root, run_label, trusted=True)
    for sub in record["submissions"]:  # the label's job folders, whatever the tasks' states: nothing goes out
        if sub.get("folder") and Path(sub["folder"]).is_dir():  # from a folder others could change
            job_folder.check(Path(sub["folder"]))
    report = status.status(results_root, run_label, deep=True, retry_s=retry_s, on_retry=on_retry)
    if profile is None:
        prof = record.get("profile")
        if not isinstance(prof, dict):  # `flyhpc bench` runs tasks here and records no profile
            raise ConfigError(f"run label {run_label!r} was not submitted with a cluster profile (flyhpc bench ran it "
                              "here): give one, e.g. `flyhpc resubmit " + run_label + " --profile local`")
        profile = profiles.load_profile(prof["source"] if prof["source"] != "<embedded>" else prof["name"])
    chosen = [task_from_dict(record["tasks"][row.key]) for row in report.rows if row.state in states]
    old = sorted({t.drive_version for t in chosen} - {DRIVE_VERSION})
    if old:
        raise ConfigError(f"run label {run_label!r} was planned with drive version {old[0]}; this flyhpc draws "
                          f"version {DRIVE_VERSION} (paired input trains), so its tasks cannot be rerun into it. "
                          "Its files stay readable (status, collect, verify, report); submit under another "
                          "--run-label to run it again")
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


def cancel(results_root: str | Path, run_label: str) -> list[str]:
    """Cancel the label's jobs that are still queued or running (each submission's scheduler: scancel; SIGTERM for
    local jobs).

    Only Slurm jobs that the controller (squeue) still holds AND whose job name is this label's
    (`executors.job_name`) are cancelled: job ids of a recreated cluster that now belong to
    someone else's jobs are left alone.

    Returns
    -------
    list[str]
        The job ids signalled.
    """
    paths = BundlePaths(results_root, run_label)
    record = load_submission(results_root, run_label, trusted=True)
    done: list[str] = []
    for scheduler, entries in schedulers.by_scheduler(record["submissions"]):
        # submitit's folder; slurm/ in the label folder for labels submitted before 2026-12
        done += scheduler.cancel([dict(e, folder=e.get("folder") or str(paths.label_dir / "slurm")) for e in entries],
                                 run_label)
    return done


def wait(results_root: str | Path, run_label: str, timeout_s: float = 3600.0, poll_s: float = 2.0) -> Any:
    """Block until no task of the label is pending or running; returns the final StatusReport."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = status.status(results_root, run_label, retry_s=60.0)
        if report.active == 0:
            return report
        if time.monotonic() > deadline:
            raise Busy(f"run label {run_label!r}: {report.active} task(s) still active after {timeout_s:.0f} s")
        time.sleep(poll_s)
