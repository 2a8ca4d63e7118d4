"""Run a list of benchmark tasks on this machine, one after the other, reporting progress events.

Three ways: `inline` (this process; phases are reported live), `process` (each task in a fresh
spawned process, so simulator globals die with it), `local` (the local executor of the cluster package, through
flyhpc.cluster.slurm, the same path as a Slurm submission). Renders nothing (the CLI does).
Entry points: `run_tasks`, `Outcome`, `MODES`.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from flyhpc import worker
from flyhpc.cluster import submission
from flyhpc.errors import ConfigError, TaskFailed
from flyhpc.tasks import BenchmarkTask

MODES = ("inline", "process", "local")


@dataclass(frozen=True)
class Outcome:
    """How one task ended: its state on disk ("done" / "error" / ...), its record (if any), the error text."""

    task: BenchmarkTask
    state: str
    record: dict
    error: str = ""
    skipped: bool = False  # done before, not run again


Event = Callable[[str, BenchmarkTask, str], None]  # (kind: "start" | "phase" | "end", task, detail)


def _record(task: BenchmarkTask) -> dict:
    from flyhpc.bundle import BundlePaths
    from flyhpc.results.records import read_record

    try:
        return read_record(BundlePaths(task.results_root, task.run_label).record(task))
    except Exception:  # noqa: BLE001 - no or unreadable record: reported through the state
        return {}


def _run_one_isolated(task: BenchmarkTask, force: bool) -> dict:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(worker.run, task, force).result()


def run_tasks(tasks: Sequence[BenchmarkTask], mode: str = "process", force: bool = False,
              on_event: Event | None = None, poll_s: float = 1.0) -> list[Outcome]:
    """Run `tasks` in order, recorded in the label's submission.json; a failing task is recorded and the next one
    runs.

    Returns
    -------
    list[Outcome]
        One per task, in order.

    Raises
    ------
    ConfigError
        Unknown mode.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown executor {mode!r}; known: {', '.join(MODES)}")
    emit = on_event or (lambda kind, task, detail: None)
    if mode == "local":
        return _run_local(tasks, force, emit, poll_s)  # its submission records the tasks
    if tasks:
        submission.record_plan(tasks)  # so that status, collect and verify know every planned task
    outcomes = []
    for task in tasks:
        if not force and worker.is_done(task):
            outcomes.append(Outcome(task, "done", _record(task), skipped=True))
            emit("end", task, "done (already)")
            continue
        emit("start", task, "")
        error = ""
        try:
            if mode == "inline":
                worker.run(task, force=force, on_phase=lambda p, t=task: emit("phase", t, p))
            else:
                _run_one_isolated(task, force)
        except TaskFailed as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - e.g. a crashed child process: the task is not done
            error = f"{type(exc).__name__}: {exc}"
        state = worker.files_state(task)
        emit("end", task, state)
        outcomes.append(Outcome(task, state, _record(task), error))
    return outcomes


def _run_local(tasks: Sequence[BenchmarkTask], force: bool, emit: Event, poll_s: float) -> list[Outcome]:
    from flyhpc.cluster import profiles
    from flyhpc.cluster import slurm
    from flyhpc.cluster import status as slurm_status

    if force:
        raise ConfigError("--force is not available with --executor local (it skips tasks already done); "
                          "use --executor process")
    todo = list(tasks)
    sp = slurm.plan(todo, profiles.load_profile("local"), container=False)
    if sp.arrays:
        slurm.submit(sp)
    for task in todo:
        emit("start", task, "submitted")
    pending = {t.key: t for t in todo}
    while pending:
        for key, task in list(pending.items()):
            state = worker.files_state(task)
            if state not in ("missing", "stale"):
                emit("end", task, state)
                del pending[key]
        if not pending:
            break
        report = slurm_status.status(todo[0].results_root, todo[0].run_label)
        if not report.active:
            for task in pending.values():
                emit("end", task, worker.files_state(task))
            break
        time.sleep(poll_s)
    return [Outcome(t, worker.files_state(t), _record(t)) for t in todo]
