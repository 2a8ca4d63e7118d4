"""One task end to end: load, build, setup, sim, collect, write -> parquet + task record.

The unit Slurm (and `flyhpc bench`) runs: `run(task)` times every phase the same way for every
backend (a screen chunk runs through `flyhpc.screens.task.execute` with the same record rules), writes the spike parquet and then the record atomically, and always leaves a record —
`success` with the parquet's sha256, `error: ...` with the traceback in the task's log and no
parquet, or `timeout: ...` / `cancelled: ...` naming the signal Slurm sent (flyhpc.cluster.job_signals).
Each attempt appends to the task's log under its own header. Knows nothing about schedulers beyond
reading job ids from the environment. Entry points: `run`, `is_done`, `files_state`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import traceback
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from flyhpc import __version__
from flyhpc.bundle import BundlePaths, disk_state, framework_name, read_record
from flyhpc.drive import DRIVE_VERSION
from flyhpc.errors import ConfigError, FlyhpcError, TaskFailed
from flyhpc.files import write_json_atomic
from flyhpc.tasks import BenchmarkTask, experiment_of

@dataclass(frozen=True)
class JobInfo:
    """What the scheduler side tells the worker about the job it runs in (flyhpc.cluster.executors).

    `interruption()` returns the record status of a task that Slurm's signals reached (`timeout: ...`
    / `cancelled: ...`), or None; the worker asks it when the task ends in an exception.
    """

    job_id: str = ""
    array_job_id: str = ""
    array_task_id: str = ""
    interruption: Callable[[], str | None] = lambda: None


def files_state(task: BenchmarkTask, deep: bool = True) -> str:
    """What the task's files say (`bundle.disk_state`: done, error, interrupted, stale, missing, corrupt)."""
    paths = BundlePaths(task.results_root, task.run_label)
    return disk_state(paths.record(task), paths.parquet(task), key=task.key, deep=deep)[0]


def is_done(task: BenchmarkTask, deep: bool = True) -> bool:
    """The task's files say it is done (`deep` hashes the parquet)."""
    return files_state(task, deep) == "done"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _threads() -> int | None:
    for var in ("FLYHPC_THREADS", "SLURM_CPUS_PER_TASK"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _task_fields(task) -> dict:
    """The record fields of the task's kind (a screen chunk's: `flyhpc.screens.task.record_fields`)."""
    if task.kind == "screen":
        from flyhpc.screens.task import record_fields

        return record_fields(task)
    try:
        exp_name = experiment_of(task.experiment).name
    except FlyhpcError:
        exp_name = ""  # the run fails in its load phase with the reason, and records it
    return {"round": task.round, "experiment": exp_name, "experiment_key": task.experiment, "t_run_s": task.t_run_s,
            "n_run": task.n_run, "trials": list(range(task.n_run))}


def _base_record(task, started: str, job: JobInfo) -> dict:
    return {
        "record_format": 1, "flyhpc_version": __version__, "key": task.key, "run_label": task.run_label,
        "backend": task.backend, "framework": framework_name(task.backend), **_task_fields(task),
        "seed": task.seed, "drive_version": task.drive_version, "connectome": task.connectome,
        "node": socket.gethostname(), "python": platform.python_version(), "started_utc": started,
        "job_id": job.job_id, "array_job_id": job.array_job_id, "array_task_id": job.array_task_id,
        "image_digest": os.environ.get("FLYHPC_IMAGE_DIGEST", ""),
    }


class _Log:
    """The task log, appended to by every attempt under its own header; lines flushed at once."""

    def __init__(self, path: Path, header: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        previous = path.read_text(errors="replace").count("\n=== attempt ") if path.is_file() else 0
        self.attempt = previous + 1
        self.fh = open(path, "a")
        self.fh.write(f"\n=== attempt {self.attempt}: {header} ===\n")

    def __call__(self, msg: str) -> None:
        self.fh.write(f"[{datetime.now():%Y-%m-%d %H:%M:%S}] {msg}\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def run(task: BenchmarkTask, force: bool = False, on_phase: Callable[[str], None] | None = None,
        job: JobInfo | None = None) -> dict:
    """Run one benchmark task; return its record.

    A task whose record says success and whose parquet matches the recorded sha256 is not run
    again (its record is returned) unless `force`. Otherwise the old parquet and record are removed
    (the task reads "missing" while it runs), the task runs, and the parquet then the record are
    written atomically.

    Raises
    ------
    TaskFailed
        The task failed; its record says `error: ...` and its log holds the traceback.
    """
    paths = BundlePaths(task.results_root, task.run_label)
    parquet, record_path, log_path = paths.parquet(task), paths.record(task), paths.log(task)
    if not force and is_done(task):
        return read_record(record_path)
    started = _now()
    job = job or JobInfo()
    record = _base_record(task, started, job)
    log = _Log(log_path, f"started {started} on {record['node']}, job {record['job_id'] or '-'}")
    record["attempt"] = log.attempt
    what = (f"screen {task.screen} experiments {task.first}..{task.stop - 1}" if task.kind == "screen"
            else f"experiment {task.experiment}")
    log(f"task {task.key}: backend {task.backend}, {what}, "
        f"t_run {task.t_run_s} s x {task.n_run}, seed {task.seed}, connectome {task.connectome}")
    for stale in (record_path, parquet):  # an earlier attempt's files: the task is "missing" while it runs
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    try:
        record.update(_execute(task, parquet, log, on_phase))
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            parquet.unlink()
        reason = str(exc).splitlines()[0] if str(exc) else ""
        signalled = job.interruption()
        status = signalled if signalled else f"error: {type(exc).__name__}: {reason}"
        if signalled and reason and not _from_signal(exc, signalled):
            status += f"; the task then failed: {type(exc).__name__}: {reason}"
        record.update(status=status[:500], finished_utc=_now(), log=log_path.name)
        log(f"FAILED: {status}\n{traceback.format_exc()}")
        log.close()
        write_json_atomic(record_path, record)
        if not isinstance(exc, Exception) or signalled:
            raise  # KeyboardInterrupt / SystemExit / Slurm's signal: the record says so, the exit goes on
        raise TaskFailed(f"task {task.key} failed: {type(exc).__name__}: {reason} (log: {log_path})",
                         task.key, str(log_path)) from exc
    log(f"done: {record['spikes']} spikes, {record.get('active_neurons', '-')} active, phases {record['phases_s']}")
    log.close()
    write_json_atomic(record_path, record)
    return record


def _from_signal(exc: BaseException, signalled: str) -> bool:
    """The exception is the signal's own, or wraps it: compiled code (numba) that the signal handler's
    exception interrupted surfaces it as a SystemError caused by it."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if str(seen) and str(seen).splitlines()[0] in signalled:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _execute(task, parquet: Path, log: Callable[[str], None], on_phase: Callable[[str], None] | None) -> dict:
    """The task through the one run pipeline (`pipeline.execute`), or a screen chunk through
    `flyhpc.screens.task.execute`; the record fields it measured."""
    from flyhpc.data.connectome import default_data_dir
    from flyhpc.pipeline import execute

    def phase(name: str) -> None:
        log(f"phase {name}")
        if on_phase:
            on_phase(name)

    if task.drive_version != DRIVE_VERSION:
        raise ConfigError(f"task {task.key} was planned with drive version {task.drive_version}; this flyhpc draws "
                          f"version {DRIVE_VERSION}: submit it under another run label")
    if task.kind == "screen":
        from flyhpc.screens.task import execute as execute_chunk

        return execute_chunk(task, parquet, log, phase, n_threads=_threads() or 1)

    outcome = execute(backend=task.backend, experiment=experiment_of(task.experiment), t_run_s=task.t_run_s,
                      n_run=task.n_run, parquet=parquet, connectome=task.connectome, data_dir=default_data_dir(),
                      seed=task.seed, round_=task.round, n_threads=_threads(),
                      precision=os.environ.get("FLYHPC_PRECISION") or None, options=dict(task.backend_options),
                      expected_digest=task.connectome_digest, parquet_meta={"flyhpc.task": task.key},
                      on_phase=phase, log=log)
    return outcome.record
