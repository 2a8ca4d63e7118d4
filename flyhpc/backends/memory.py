"""The host memory this process may still fill: the job's limit, not the node's free memory.

A job on a shared node may use what its allocation allows, which is usually far less than the node has free: the
limit is the tightest of the memory cgroup the process runs in (v2 `memory.max`, v1 `memory.limit_in_bytes`, at its
own level and every level above it, each less what that level already uses), the allocation Slurm announces
($SLURM_MEM_PER_NODE, or $SLURM_MEM_PER_CPU x $SLURM_CPUS_ON_NODE, less this process's resident memory: the fallback
where the cgroup is not visible, e.g. a container without its job's cgroup) and the node's MemAvailable. Reads
files and the environment only; allocates nothing. Entry point: `host_budget_bytes`.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
MEMINFO = Path("/proc/meminfo")
PROC_STATUS = Path("/proc/self/status")
UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as 9223372036854771712


def _read_int(path: Path) -> int | None:
    """An integer file of the cgroup tree; None where missing, unreadable or unlimited ("max", or v1's huge value)."""
    try:
        value = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return value if value < UNLIMITED else None


def _cgroup_headroom(root: Path, proc_cgroup: Path) -> int | None:
    """Limit less usage, at the tightest level of this process's memory cgroup and its ancestors (v2 and v1)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    found: list[int] = []
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and controllers == "":
            base, limit_file, usage_file = root, "memory.max", "memory.current"
        elif "memory" in controllers.split(","):
            base, limit_file, usage_file = root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        # Every level from the process's own cgroup up to the mount: a parent's limit binds its children too. Inside
        # a container the mount may show only the container's part, so levels that do not exist are passed over.
        for depth in range(len(parts), -1, -1):
            level = base.joinpath(*parts[:depth])
            limit = _read_int(level / limit_file)
            if limit is not None:
                found.append(max(0, limit - (_read_int(level / usage_file) or 0)))
    return min(found) if found else None


def _kib_field(path: Path, name: str) -> int | None:
    """A "Name:  N kB" line of /proc/meminfo or /proc/self/status, in bytes."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _slurm_headroom(env: dict, proc_status: Path) -> int | None:
    """Slurm's memory allocation on this node (MB in its variables) less this process's resident memory."""
    try:
        if env.get("SLURM_MEM_PER_NODE"):
            limit_mb = int(env["SLURM_MEM_PER_NODE"])
        elif env.get("SLURM_MEM_PER_CPU") and env.get("SLURM_CPUS_ON_NODE"):
            limit_mb = int(env["SLURM_MEM_PER_CPU"]) * int(env["SLURM_CPUS_ON_NODE"])
        else:
            return None
    except ValueError:
        return None
    if limit_mb <= 0:  # --mem=0: all the node's memory, which MemAvailable bounds
        return None
    return max(0, (limit_mb << 20) - (_kib_field(proc_status, "VmRSS") or 0))


def host_budget_bytes(env: dict | None = None, *, root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP,
                      meminfo: Path = MEMINFO, proc_status: Path = PROC_STATUS) -> int | None:
    """Bytes of host memory this process may still fill: the smallest of its cgroup headroom, Slurm's allocation
    less its resident memory and the node's MemAvailable; None where none of them can be read."""
    env = os.environ if env is None else env
    known = [v for v in (_cgroup_headroom(root, proc_cgroup), _slurm_headroom(env, proc_status),
                         _kib_field(meminfo, "MemAvailable")) if v is not None]
    return min(known) if known else None
