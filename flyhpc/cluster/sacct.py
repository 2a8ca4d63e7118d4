"""Scheduler states: `sacct` for `flyhpc status` (one call for all arrays of a label, finished jobs
included), `squeue` for what `cancel` may signal (the controller's own view of queued and running jobs).

Owns the sacct command line, the parsing of its `--parsable2` output (array ids such as
`123_4` and `123_[5-9%2]`) and the mapping of Slurm states onto flyhpc's status words. Knows
nothing about tasks or records. Entry points: `query`, `queued`, `parse`, `category`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from flyhpc.errors import Busy, SchedulerUnavailable

# Slurm's words mapped onto flyhpc's (`flyhpc.results.states.SCHEDULER_STATES`: the task states less "corrupt").

_STATE_CATEGORY = {
    "PENDING": "pending", "REQUEUED": "pending", "REQUEUE_HOLD": "pending", "REQUEUE_FED": "pending",
    "PREEMPTED": "pending", "SUSPENDED": "running", "RUNNING": "running", "CONFIGURING": "running",
    "COMPLETING": "running", "RESIZING": "running", "STAGE_OUT": "running", "SIGNALING": "running",
    "COMPLETED": "done", "FAILED": "failed", "NODE_FAIL": "failed", "BOOT_FAIL": "failed",
    "DEADLINE": "timeout", "TIMEOUT": "timeout", "CANCELLED": "cancelled", "REVOKED": "cancelled",
    "OUT_OF_MEMORY": "out-of-memory",
}

FIELDS = ("JobID", "State", "ExitCode", "Elapsed", "NodeList", "Reason", "JobName")


@dataclass(frozen=True)
class JobState:
    """One array task as sacct reports it."""

    job_id: str
    state: str
    exit_code: str = ""
    elapsed: str = ""
    node: str = ""
    reason: str = ""
    name: str = ""

    @property
    def category(self) -> str:
        """flyhpc's word for this state (see `category`)."""
        return category(self.state)


def category(state: str) -> str:
    """Map a Slurm state ('CANCELLED by 0', 'TIMEOUT', ...) onto one of `flyhpc.results.states.SCHEDULER_STATES`."""
    word = state.split()[0].rstrip("+") if state.strip() else ""
    return _STATE_CATEGORY.get(word, "missing")


def _expand(spec: str) -> list[int]:
    """'0-3,7' (an optional '%N' throttle already removed) -> [0, 1, 2, 3, 7]."""
    out: list[int] = []
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


_ARRAY_RE = re.compile(r"^(\d+)_(?:(\d+)|\[([0-9,\-]+)(?:%\d+)?\])$")


def parse(text: str) -> dict[str, JobState]:
    """Parse `sacct -X -n -P -o JobID,State,...` output into {"<jobid>_<index>": JobState}.

    Plain (non-array) jobs keep their id as key; steps (ids with a dot) are skipped. A pending
    range such as `123_[4-9%2]` gives one entry per index.
    """
    states: dict[str, JobState] = {}
    for line in text.splitlines():
        cols = line.split("|")
        if len(cols) < 2 or not cols[0] or "." in cols[0]:
            continue
        cols += [""] * (len(FIELDS) - len(cols))
        job_id, state, exit_code, elapsed, node, reason, name = (c.strip() for c in cols[:len(FIELDS)])
        m = _ARRAY_RE.match(job_id)
        if m is None:
            states[job_id] = JobState(job_id, state, exit_code, elapsed, node, reason, name)
            continue
        base, single, ranges = m.groups()
        for index in ([int(single)] if single is not None else _expand(ranges)):
            key = f"{base}_{index}"
            states[key] = JobState(key, state, exit_code, elapsed, node, reason, name)
    return states


def query(job_ids: list[str], timeout_s: float = 30.0) -> dict[str, JobState]:
    """Ask sacct once about every given array/job id.

    Returns
    -------
    dict
        {"<jobid>_<index>" or "<jobid>": JobState}; ids sacct does not know are absent.

    Raises
    ------
    SchedulerUnavailable
        `sacct` is not installed (exit 3).
    Busy
        sacct fails or does not answer in `timeout_s` (slurmdbd down; its stderr is in the message; exit 75).
    """
    proc = _ask("sacct", "`flyhpc status` needs Slurm accounting (slurmdbd)",
                ["-X", "-n", "-P", "-o", ",".join(FIELDS)], job_ids, timeout_s)
    if proc is None:
        return {}
    if proc.returncode != 0:
        raise Busy(f"sacct failed ({' '.join(proc.args)}): {proc.stderr.strip()}")
    return parse(proc.stdout)


def _ask(tool: str, needed_by: str, options: list[str], job_ids: list[str],
         timeout_s: float) -> subprocess.CompletedProcess | None:
    """Run `tool <options> -j <the jobs' ids, array indices dropped>`; None where no id is given (nothing to ask).

    Raises SchedulerUnavailable where `tool` is not on PATH (`needed_by` says what needs it), Busy where it does
    not answer within `timeout_s`.
    """
    ids = sorted({str(j).split("_")[0] for j in job_ids if j})
    if not ids:
        return None
    exe = shutil.which(tool)
    if exe is None:
        raise SchedulerUnavailable(f"{tool} not found on PATH: {needed_by}")
    cmd = [exe, *options, "-j", ",".join(ids)]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise Busy(f"{Path(cmd[0]).name} did not answer within {timeout_s:g} s ({' '.join(cmd)})") from None


def queued(job_ids: list[str], timeout_s: float = 30.0, ended: bool = False) -> dict[str, JobState]:
    """Ask squeue which of these jobs are still queued or running: {"<jobid>_<index>" or "<jobid>": JobState}.

    The controller's view, with no accounting lag: a job sbatch has just accepted is here even when
    slurmdbd has not recorded it yet. Jobs that have ended are absent, unless `ended`: then jobs the
    controller still remembers (MinJobAge, 300 s by default) are there with their final state
    (COMPLETED, CANCELLED, TIMEOUT, ...).

    Raises
    ------
    SchedulerUnavailable, Busy
        `squeue` is not installed; it fails for another reason than "no such job" or does not answer.
    """
    proc = _ask("squeue", "`flyhpc cancel` needs the Slurm client commands",
                ["-h", "-r", *(["-t", "all"] if ended else []), "-o", "%i|%T|%j"], job_ids, timeout_s)
    if proc is None:
        return {}
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:
            return {}  # none of them is known to the controller any more
        raise Busy(f"squeue failed ({' '.join(proc.args)}): {proc.stderr.strip()}")
    out: dict[str, JobState] = {}
    for line in proc.stdout.splitlines():
        job_id, _, rest = line.partition("|")
        state, _, name = rest.partition("|")
        if job_id:
            out[job_id] = JobState(job_id, state, name=name)
    return out
