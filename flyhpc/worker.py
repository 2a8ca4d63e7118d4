"""One task end to end, whatever its kind: the task's own run (`flyhpc.kinds.Task.execute`) -> parquet + record.

The unit Slurm (and `flyhpc bench`) runs: `run(task)` starts the record (`flyhpc.results.records.header` and
the kind's `record_fields`), has the task run itself (a grid point through the one run pipeline, a screen
chunk through `flyhpc.screens.task.execute_chunk`, both with the same record rules), then writes the record
atomically after the task's parquet, and always leaves one —
`success` with the parquet's sha256, `error: ...` with the traceback in the task's log and no
parquet, or `timeout: ...` / `cancelled: ...` naming the signal Slurm sent (flyhpc.cluster.job_signals).
Each attempt appends to the task's log under its own header. Knows nothing about schedulers beyond
reading job ids from the environment. Entry points: `run`, `is_done`, `files_state`.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from flyhpc.bundle import BundlePaths
from flyhpc.pipeline import framework_name
from flyhpc.drive import DRIVE_VERSION
from flyhpc.errors import ConfigError, TaskFailed
from flyhpc.files import signals_held, write_json_atomic
from flyhpc.kinds import Task
from flyhpc.results.records import disk_state, header, read_record

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


def files_state(task: Task, deep: bool = True) -> str:
    """What the task's files say (`results.records.disk_state`: done, error, interrupted, stale, missing, corrupt)."""
    paths = BundlePaths(task.results_root, task.run_label)
    return disk_state(paths.record(task), paths.parquet(task), key=task.key, deep=deep,
                      required=task.record_keys)[0]


def is_done(task: Task, deep: bool = True) -> bool:
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


def run(task: Task, force: bool = False, on_phase: Callable[[str], None] | None = None,
        job: JobInfo | None = None) -> dict:
    """Run one task of any kind (`flyhpc.kinds.Task`); return its record.

    A task whose record says success and whose parquet matches the recorded sha256 is not run
    again (its record is returned) unless `force`. Otherwise the old parquet and record are removed
    (the task reads "missing" while it runs), the task runs, and the parquet then the record are
    written atomically.

    Raises
    ------
    TaskFailed
        The task failed; its record says `error: ...` and its log holds the traceback.
    """
    parquet, record_path, log_path = BundlePaths(task.results_root, task.run_label).task_files(task.folder, task.stem)
    if not force and disk_state(record_path, parquet, key=task.key, deep=True, required=task.record_keys)[0] == "done":
        return read_record(record_path, task.record_keys)
    started = _now()
    job = job or JobInfo()
    record = {**header(key=task.key, run_label=task.run_label, backend=task.backend,
                       framework=framework_name(task.backend), seed=task.seed, drive_version=task.drive_version,
                       connectome=task.connectome, started_utc=started, job=job), **task.record_fields()}
    log = _Log(log_path, f"started {started} on {record['node']}, job {record['job_id'] or '-'}")
    record["attempt"] = log.attempt
    log(f"task {task.key}: backend {task.backend}, {task.describe()}, "
        f"t_run {task.t_run_s} s x {task.n_run}, seed {task.seed}, connectome {task.connectome}")
    for stale in (record_path, parquet):  # an earlier attempt's files: the task is "missing" while it runs
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    try:
        record.update(_execute(task, parquet, log, on_phase))
    except BaseException as exc:
        with signals_held():  # from here until the record is written, no signal (Slurm sends SIGTERM twice
            # at a time limit) can abort it: one that comes meanwhile is delivered afterwards
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
    with signals_held():  # a signal now ends the job after the record, not instead of it
        log(f"done: {record['spikes']} spikes, {record.get('active_neurons', '-')} active, phases {record['phases_s']}")
        log.close()
        write_json_atomic(record_path, record)
    return record


def _from_signal(exc: BaseException, signalled: str) -> bool:
    """The exception is the signal's own, or wraps it: compiled code (numba) that the signal handler's
    exception interrupted surfaces it as a SystemError, caused by it — or, when the handler's exception was
    lost on the way out of the compiled call (seen under heavy load), as a SystemError alone. A SystemError
    is the interpreter's, never the task's: after a signal it is the signal's."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, SystemError) or (str(seen) and str(seen).splitlines()[0] in signalled):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _execute(task: Task, parquet: Path, log: Callable[[str], None],
             on_phase: Callable[[str], None] | None) -> dict:
    """The task run by its kind (`Task.execute`: a grid point through the one run pipeline, a screen chunk
    through `flyhpc.screens.task.execute_chunk`); the record fields it measured."""

    def phase(name: str) -> None:
        log(f"phase {name}")
        if on_phase:
            on_phase(name)

    if task.drive_version != DRIVE_VERSION:
        raise ConfigError(f"task {task.key} was planned with drive version {task.drive_version}; this flyhpc draws "
                          f"version {DRIVE_VERSION}: submit it under another run label")
    return task.execute(parquet, log, phase, n_threads=_threads())
