"""Which `Scheduler` runs a profile's tasks, and which one holds a recorded submission's jobs.

The profile's `executor` key (slurm | local | debug, `profiles.EXECUTORS`) names one class here; a
submission in submission.json records the same name, so status and cancel ask that scheduler again.
Entry points: `SCHEDULERS`, `scheduler_for`, `recorded`, `by_scheduler`.
"""

from __future__ import annotations

from typing import Sequence

from flyhpc.cluster.local_scheduler import DebugScheduler, LocalScheduler
from flyhpc.cluster.profiles import ClusterProfile
from flyhpc.cluster.scheduler import Scheduler
from flyhpc.cluster.slurm_scheduler import SlurmScheduler

SCHEDULERS: dict[str, type[Scheduler]] = {cls.name: cls for cls in (SlurmScheduler, LocalScheduler, DebugScheduler)}


def scheduler_for(profile: ClusterProfile) -> Scheduler:
    """The scheduler of a (checked) profile, ready to submit."""
    return SCHEDULERS[profile.executor](profile)


def recorded(entry: dict) -> Scheduler | None:
    """The scheduler of one recorded submission; None for tasks no scheduler holds (`flyhpc bench` records its
    runs with executor "bench")."""
    cls = SCHEDULERS.get(entry.get("executor", ""))
    return cls() if cls else None


def by_scheduler(entries: Sequence[dict]) -> list[tuple[Scheduler, list[dict]]]:
    """Recorded submissions grouped by their scheduler (in the order each first appears; none for "bench")."""
    groups: dict[str, tuple[Scheduler, list[dict]]] = {}
    for entry in entries:
        sched = recorded(entry)
        if sched is not None:
            groups.setdefault(sched.name, (sched, []))[1].append(entry)
    return list(groups.values())
