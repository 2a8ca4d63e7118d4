"""A resubmitted task that waits its turn is pending, never its earlier attempt's failure — for real, on both
schedulers (the local executor: submitit's LocalExecutor; the loopback Slurm of scripts/local-slurm/start.sh).

Two tiny tasks of one label fail (their jobs inherit FLYHPC_PRECISION=bogus, which the real worker rejects and
records as an error), are resubmitted with array_parallelism 1, and the first task of the new attempt is held
at a gate (`gated_run`, the only test hook: it waits, then calls the real `run_task`). While it is held, the
other task's failed record from the first attempt is still on disk (dated in the future, as a file server's
clock may), yet `flyhpc status` says it pending (the held one running) with exit 75, `flyhpc collect` exits 75
with no result row for either, and a second resubmit sends nothing. Once the gate opens both end done: status
and collect exit 0.
"""

from __future__ import annotations

import contextlib
import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from flyhpc.bundle import BundlePaths
from flyhpc.cluster import slurm, status
from flyhpc.cluster.profiles import profile_from_dict
from flyhpc.results.records import disk_state

from tests.integration.test_slurm_faults import _REASON, _profile, _tasks

ROOT = Path(__file__).resolve().parents[2]
ON_SLURM = [pytest.mark.slurm] + ([pytest.mark.skip(reason=_REASON)] if _REASON else [])


def gated_run(task):
    """Test job function: the task that starts first notes its key and waits for the gate file (SIGTERM ends it
    while it waits, as it ends `run_task`); every task then runs for real."""
    from flyhpc.cluster import executors, job_signals

    gate = Path(os.environ["FLYHPC_TEST_GATE"])
    try:
        with open(gate.with_name("held"), "x") as fh:  # only the first task to start creates it
            fh.write(task.key)
    except FileExistsError:
        return executors.run_task(task)
    job_signals.install()
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return executors.run_task(task)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flyhpc", *args], capture_output=True, text=True, timeout=120)


def _until(what: str, check, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.3)
    return value


@contextlib.contextmanager
def resubmitted_with_one_held(tmp_path: Path, kind: str, label: str, job_fn, monkeypatch):
    """Two tiny tasks of `label` fail (their jobs inherit FLYHPC_PRECISION=bogus), are resubmitted with
    array_parallelism 1 and `job_fn`, and the first to start is held at the gate; yields once it is, with the
    other task's old failed record dated an hour ahead (a file server's clock). The gate opens and the label's
    jobs are cancelled on the way out, so a held job never outlives the test."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("FLYHPC_THREADS", "1")
    monkeypatch.setenv("COLUMNS", "400")  # the status table: one line per row
    monkeypatch.setenv("FLYHPC_TEST_GATE", str(tmp_path / "gate"))
    if kind == "slurm":
        prof = _profile(tmp_path, array_parallelism=1)
    else:
        prof = profile_from_dict({"cluster": {"executor": "local", "array_parallelism": 1,
                                              "private_dir": str(tmp_path / "private")}}, "test", "test")
    root = tmp_path / "results"
    todo = _tasks(label, root, 2)
    paths = BundlePaths(root, label)
    try:
        monkeypatch.setenv("FLYHPC_PRECISION", "bogus")  # the first attempt's jobs inherit it: both fail
        slurm.submit(slurm.plan(todo, prof))
        monkeypatch.delenv("FLYHPC_PRECISION")
        first = _until("both tasks failed", lambda: (r := status.status(root, label)).active == 0 and r)
        assert [r.state for r in first.rows] == ["failed", "failed"], first.rows
        assert "bogus" in first.rows[0].reason, first.rows

        sp, _ = slurm.resubmit(root, label, ("failed",), profile=prof, job_fn=job_fn)
        assert [len(a.tasks) for a in sp.arrays] == [2]
        held = _until("a task is held at the gate", lambda: (tmp_path / "held").is_file()
                      and (tmp_path / "held").read_text())
        waiting = next(t for t in todo if t.key != held)
        old = paths.record(waiting)
        assert disk_state(old, paths.parquet(waiting), key=waiting.key)[0] == "error"  # the old attempt's record
        future = time.time() + 3600
        os.utime(old, (future, future))  # a file server's clock ahead: still not the latest job's record
        yield SimpleNamespace(root=root, label=label, paths=paths, prof=prof, held=held, waiting=waiting,
                              old_reason=first.rows[0].reason)
    finally:
        (tmp_path / "gate").write_text("open\n")
        if (root / label / "submission.json").is_file():
            slurm.cancel(root, label)


@pytest.mark.parametrize("kind", [pytest.param("slurm", marks=ON_SLURM), "local"])
def test_a_resubmitted_task_waiting_its_turn_is_pending_not_its_old_failure(tmp_path, kind, monkeypatch):
    with resubmitted_with_one_held(tmp_path, kind, f"wait_{kind}", gated_run, monkeypatch) as case:
        root, label, paths, prof, held, waiting = case.root, case.label, case.paths, case.prof, case.held, case.waiting
        report = status.status(root, label)
        states = {r.key: (r.state, r.reason) for r in report.rows}
        assert states[waiting.key] == ("pending", ""), report.rows
        # the held one runs; sacct may still say PENDING for a moment after Slurm started it
        assert states[held] == ("running", "") or kind == "slurm" and states[held] == ("pending", ""), report.rows
        shown = _cli("status", label, "--results-root", str(root))
        assert shown.returncode == 75, shown.stdout + shown.stderr
        assert "tasks to resubmit" not in shown.stdout and "bogus" not in shown.stdout, shown.stdout
        collected = _cli("collect", label, "--results-root", str(root))
        assert collected.returncode == 75, collected.stdout + collected.stderr
        assert f"pending {waiting.key}" in " ".join(collected.stdout.split())
        with open(paths.results_csv) as fh:
            assert list(csv.DictReader(fh)) == []  # neither the held nor the waiting task counts as a result

        assert slurm.resubmit(root, label, ("failed",), profile=prof)[0].arrays == ()  # nothing failed: none sent twice

        (tmp_path / "gate").write_text("open\n")
        final = _until("both tasks ended", lambda: (r := status.status(root, label)).active == 0 and r)
        assert [r.state for r in final.rows] == ["done", "done"], final.rows
        assert _cli("status", label, "--results-root", str(root)).returncode == 0
        assert _cli("collect", label, "--results-root", str(root)).returncode == 0
        with open(paths.results_csv) as fh:
            assert sorted(r["status"] for r in csv.DictReader(fh)) == ["success", "success"]
