"""What Slurm tells a running task through signals, and what the task's record then says.

Slurm sends the pre-timeout warning the submission asked for (SIGUSR2, `--signal=USR2@<delay>`)
and SIGTERM when a job is cancelled or reaches its time limit (at a time limit twice; then SIGKILL
after KillWait). submitit's own job-side handlers turn USR2 into an exception and ignore TERM, which
made a task killed by its time limit record a plain failure ("compilation failed"). `install()`
replaces both: USR2 is noted (the task goes on: it may still finish), the first TERM raises
`TaskInterrupted` (later ones are only noted, so they cannot abort the record being written) and the
worker writes a record that says `timeout: ...` (TERM after the warning, or at the job's end time,
SLURM_JOB_END_TIME) or `cancelled: ...` (TERM alone, before it), with the signal named, and removes
its partial files. `interruption()` gives the record status for an exception raised after the
warning (a child process that died of it). A local job running its tasks one after the other notes a
TERM too (`ending_job`), so that it starts no further task. Entry points: `install`, `interruption`,
`TaskInterrupted`, `reset`, `ending_job`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import Any, Callable, Iterator

from flyhpc.errors import FlyhpcError

_warned_at: float | None = None
_term_signal: str | None = None
_term_at: float | None = None
_job_ending = False  # a TERM reached this process (`reset` keeps it: a local job starts no further task)


class TaskInterrupted(FlyhpcError):
    """SIGTERM reached the task: Slurm is ending it (time limit after the warning, or scancel)."""

    exit_code = 143


def _on_usr2(signum: int, _frame: Any) -> None:
    global _warned_at
    _warned_at = time.time()
    print(f"flyhpc: received {signal.Signals(signum).name} (Slurm's pre-timeout warning); the task goes on "
          "until Slurm ends it", file=sys.stderr, flush=True)


def _on_term(signum: int, _frame: Any) -> None:
    global _term_signal, _term_at
    _note_term(signum, _frame)
    first = _term_signal is None
    _term_signal = signal.Signals(signum).name
    if first:
        _term_at = time.time()
        raise TaskInterrupted(interruption() or "")
    print(f"flyhpc: received {_term_signal} again; the task is already ending", file=sys.stderr, flush=True)


def _note_term(_signum: int, _frame: Any) -> None:
    global _job_ending
    _job_ending = True


@contextlib.contextmanager
def ending_job() -> Iterator[Callable[[], bool]]:
    """While a local job runs its share of an array: SIGTERM (`flyhpc cancel` signals the job and every process
    under it) is noted instead of ignored, as submitit's job side would, and the callable it yields says whether
    one came (also to a task that ran in this process with `install`), so that the job starts no further task.
    The previous handler comes back after (the debug executor runs its jobs in the caller's process)."""
    global _job_ending
    _job_ending = False
    try:
        previous = signal.signal(signal.SIGTERM, _note_term)
    except ValueError:  # not in the main thread: nothing to note
        yield lambda: False
        return
    try:
        yield lambda: _job_ending
    finally:
        signal.signal(signal.SIGTERM, previous)


def _past_end_time(now: float) -> bool:
    """Slurm's end time of this job (SLURM_JOB_END_TIME, epoch seconds) has come: a TERM now is the time limit."""
    end = os.environ.get("SLURM_JOB_END_TIME", "")
    return end.isdigit() and now >= int(end) - 1  # whole seconds on Slurm's side


def install() -> None:
    """In a job's main thread: note SIGUSR2, turn SIGTERM into TaskInterrupted (no-op elsewhere)."""
    reset()
    with contextlib.suppress(ValueError):  # not in the main thread: nothing to override
        signal.signal(signal.SIGUSR2, _on_usr2)
        signal.signal(signal.SIGTERM, _on_term)


def reset() -> None:
    """Forget earlier signals (a new task in the same process)."""
    global _warned_at, _term_signal, _term_at
    _warned_at = _term_signal = _term_at = None


def interruption() -> str | None:
    """The record status of a task that Slurm's signals reached, or None when none came.

    TERM after the warning (or the warning alone, when a child died of it) is a timeout, and so is
    TERM at or after the job's end time; TERM before it is a cancellation.
    """
    if _warned_at is not None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_warned_at))
        then = f", then {_term_signal}" if _term_signal else ""
        return f"timeout: SIGUSR2 (Slurm's pre-timeout warning) at {stamp}{then}"
    if _term_at is not None and _past_end_time(_term_at):
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(os.environ["SLURM_JOB_END_TIME"])))
        return f"timeout: {_term_signal} at the job's time limit (SLURM_JOB_END_TIME {end})"
    if _term_signal:
        return f"cancelled: {_term_signal} (scancel, or Slurm ending the job)"
    return None
