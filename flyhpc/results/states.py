"""Task states and record statuses, declared once for every command.

A task's state (`TASK_STATES`, the order status tables show them) is what `flyhpc.cluster.status.status`
decides from the scheduler and the files; the scheduler alone knows all but "corrupt" (`SCHEDULER_STATES`);
the files alone say one of `DISK_STATES` (`flyhpc.results.records.disk_state`). A record's `status` is
`SUCCESS`, `error: ...` or, for a task a signal ended, one of `INTERRUPTED_PREFIXES` then Slurm's word.
No logic here.
"""

from __future__ import annotations

TASK_STATES = ("pending", "running", "done", "failed", "timeout", "cancelled", "out-of-memory", "missing", "corrupt")
ACTIVE = ("pending", "running")  # still queued or running: come back later
UNFINISHED = ("failed", "timeout", "cancelled", "out-of-memory", "missing", "corrupt")  # ended without a result
ENDED_BADLY = ("failed", "timeout", "cancelled", "out-of-memory", "corrupt")  # UNFINISHED less "missing"
SCHEDULER_STATES = TASK_STATES[:-1]  # sacct's words mapped onto ours: no "corrupt"
DISK_STATES = ("done", "error", "interrupted", "stale", "missing", "corrupt")

SUCCESS = "success"
ERROR_PREFIX = "error"
INTERRUPTED_PREFIXES = ("timeout:", "cancelled:")  # a record of a task ended by a signal: Slurm's word follows
