"""What Slurm tells a running task through signals, and what the task's record then says.

Slurm sends the pre-timeout warning the submission asked for (SIGUSR2, `--signal=USR2@<delay>`)
and SIGTERM when a job is cancelled or reaches its time limit (then SIGKILL after KillWait).
submitit's own job-side handlers turn USR2 into an exception and ignore TERM, which made a task
killed by its time limit record a plain failure ("compilation failed"). `install()` replaces both:
USR2 is noted (the task goes on: it may still finish), TERM raises `TaskInterrupted` so the worker
writes a record that says `timeout: ...` (TERM after the warning) or `cancelled: ...` (TERM
alone), with the signal named, and removes its partial files. `interruption()` gives the record
status for an exception raised after the warning (a child process that died of it).
Entry points: `install`, `interruption`, `TaskInterrupted`, `reset`.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from typing import Any

from flyhpc.errors import FlyhpcError

_warned_at: float | None = None
_term_signal: str | None = None


class TaskInterrupted(FlyhpcError):
    """SIGTERM reached the task: Slurm is ending it (time limit after the warning, or scancel)."""

    exit_code = 143


def _on_usr2(signum: int, _frame: Any) -> None:
    global _warned_at
    _warned_at = time.time()
    print(f"flyhpc: received {signal.Signals(signum).name} (Slurm's pre-timeout warning); the task goes on "
          "until Slurm ends it", file=sys.stderr, flush=True)


def _on_term(signum: int, _frame: Any) -> None:
    global _term_signal
    _term_signal = signal.Signals(signum).name
    raise TaskInterrupted(interruption() or "")


def install() -> None:
    """In a job's main thread: note SIGUSR2, turn SIGTERM into TaskInterrupted (no-op elsewhere)."""
    reset()
    with contextlib.suppress(ValueError):  # not in the main thread: nothing to override
        signal.signal(signal.SIGUSR2, _on_usr2)
        signal.signal(signal.SIGTERM, _on_term)


def reset() -> None:
    """Forget earlier signals (a new task in the same process)."""
    global _warned_at, _term_signal
    _warned_at = _term_signal = None


def interruption() -> str | None:
    """The record status of a task that Slurm's signals reached, or None when none came.

    TERM after the warning (or the warning alone, when a child died of it) is a timeout; TERM
    alone is a cancellation.
    """
    if _warned_at is not None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_warned_at))
        then = f", then {_term_signal}" if _term_signal else ""
        return f"timeout: SIGUSR2 (Slurm's pre-timeout warning) at {stamp}{then}"
    if _term_signal:
        return f"cancelled: {_term_signal} (scancel, or Slurm ending the job)"
    return None
