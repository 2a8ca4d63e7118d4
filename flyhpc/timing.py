"""Phase timings and how far to trust them: wall and CPU seconds per phase, the host's load, the disturbed verdict.

`PhaseTimer` times named phases (wall and CPU seconds); `host_state` snapshots what the host looked like (load
average, CPUs); `sim_share` and `disturbance` judge a record's sim phase: a CPU sim that got less than
`SHARE_FLOOR` of the CPU time its threads could have used was disturbed by its neighbours. No files, no
backends, no Slurm. Entry points: `PhaseTimer`, `cpu_seconds`, `usable_cpus`, `host_state`, `sim_share`,
`disturbance`, `SHARE_FLOOR`, `MIN_JUDGED_S`.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

PHASES = ("load", "build", "setup", "sim", "collect", "write", "total")
SHARE_FLOOR = 0.8  # below this share of its threads' CPU time a sim timing is flagged as disturbed
MIN_JUDGED_S = 0.2  # shorter sims are not judged: thread-pool start-up weighs too much in them


def cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process, all its threads, plus its children that ended
    and were waited for (the compiler of a build, Brian2's standalone binary that runs brian2cpp's sim).

    A child still running when a phase ends is not counted in it (the backends wait for theirs).
    """
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def usable_cpus() -> int:
    """CPUs this process may use (Slurm's allocation or the affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def host_state() -> dict[str, Any]:
    """The host now: `load_avg` (1, 5 and 15 minutes; [] where the OS has none), `cpus_usable`, `cpu_count`."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - no load average on this OS
        load = []
    return {"load_avg": load, "cpus_usable": usable_cpus(), "cpu_count": os.cpu_count() or 0}


@dataclass
class PhaseTimer:
    """Wall seconds (perf_counter) and CPU seconds (`cpu_seconds`) per named phase; a phase entered twice adds
    up. `finish` sets `total`: both clocks since the timer was made. `overlap` books work of one phase done
    while another ran (a streamed run collects and writes during its sim)."""

    seconds: dict[str, float] = field(default_factory=dict)
    on_phase: Callable[[str], None] | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    overlapped_cpu: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._made = (time.perf_counter(), cpu_seconds())

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.on_phase:
            self.on_phase(name)
        start, cpu_start = time.perf_counter(), cpu_seconds()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.cpu[name] = self.cpu.get(name, 0.0) + cpu_seconds() - cpu_start

    def overlap(self, name: str, within: str, cpu_s: float) -> None:
        """`cpu_s` CPU seconds of phase `name` were spent while phase `within` ran: they move from `within`'s CPU
        seconds to `name`'s (and are kept in `overlapped_cpu`); the wall seconds stay `within`'s, as they were
        spent at the same time."""
        cpu_s = max(0.0, min(cpu_s, self.cpu.get(within, 0.0)))
        self.cpu[within] = self.cpu.get(within, 0.0) - cpu_s
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu_s
        self.overlapped_cpu[name] = self.overlapped_cpu.get(name, 0.0) + cpu_s

    def finish(self) -> None:
        """Set `total` to the wall and CPU seconds since the timer was made."""
        self.seconds["total"] = time.perf_counter() - self._made[0]
        self.cpu["total"] = cpu_seconds() - self._made[1]

    def as_dict(self) -> dict[str, float]:
        return {p: round(self.seconds.get(p, 0.0), 6) for p in PHASES}

    def cpu_dict(self) -> dict[str, float]:
        return {p: round(self.cpu.get(p, 0.0), 6) for p in PHASES}


@dataclass(frozen=True)
class Share:
    """A sim phase's CPU share: `cpu_s` / (`wall_s` x `threads`), `threads` being those it could keep busy."""

    cpu_s: float
    wall_s: float
    threads: int
    judged: bool  # False: a GPU sim (its host thread may sleep while the device works) or a sim too short

    @property
    def value(self) -> float:
        return self.cpu_s / (self.wall_s * self.threads)


def sim_share(rec: Mapping[str, Any]) -> Share | None:
    """The CPU share of a record's sim phase, or None where the record has no CPU time (older records, errors).

    A CPU sim is measured against the threads it ran on (`sim_threads`, at most `cpus_usable`); a GPU sim
    against the one host thread that drives the device, and never judged: under a blocking wait that thread
    sleeps while the device works, so a low share there is no evidence of a neighbour.
    """
    wall = (rec.get("phases_s") or {}).get("sim")
    cpu = (rec.get("phases_cpu_s") or {}).get("sim")
    if not wall or cpu is None or wall <= 0:
        return None
    gpu = rec.get("sim_device") == "gpu"
    threads = 1 if gpu else max(1, min(int(rec.get("sim_threads") or 1), int(rec.get("cpus_usable") or 1 << 20)))
    return Share(float(cpu), float(wall), threads, judged=not gpu and wall >= MIN_JUDGED_S)


def disturbance(rec: Mapping[str, Any]) -> str:
    """Why the record's sim timing is not to be trusted, or "" (undisturbed, or nothing to judge).

    E.g. "sim CPU share 0.31 < 0.8 of 2 threads; load 14.2 at start, 15.0 at end on 2 of 64 CPUs".
    """
    share = sim_share(rec)
    if share is None or not share.judged or share.value >= SHARE_FLOOR:
        return ""
    return (f"sim CPU share {share.value:.2f} < {SHARE_FLOOR:g} of {share.threads} thread"
            f"{'s' if share.threads > 1 else ''}; {load_text(rec)}")


def load_text(rec: Mapping[str, Any]) -> str:
    """The record's 1-minute load averages and CPUs in words."""
    start, end = (rec.get(k) or [math.nan] for k in ("load_avg_start", "load_avg_end"))
    cpus = f"{rec.get('cpus_usable', '?')} of {rec.get('cpu_count', '?')} CPUs"
    return f"load {start[0]:.1f} at start, {end[0]:.1f} at end on {cpus}"
