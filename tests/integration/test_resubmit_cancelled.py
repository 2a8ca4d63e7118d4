"""A resubmitted task whose new job is cancelled before it reaches the task is judged by that job's end, never by
its earlier attempt's record — for real, on both schedulers (the local executor: submitit's LocalExecutor; the
loopback Slurm of scripts/local-slurm/start.sh).

Two tiny tasks of one label fail (their jobs inherit FLYHPC_PRECISION=bogus, which the real worker rejects and
records as an error), are resubmitted with array_parallelism 1, and the first task of the new attempt is held at
a gate (`held_run`: it lets SIGTERM end it, as `run_task` does, then waits). `flyhpc cancel` ends the new jobs
while the other task still waits its turn: its failed record from the first attempt is still on disk (dated in
the future, as a file server's clock may), yet `flyhpc status` says what became of its latest job — cancelled on
Slurm, missing on the local executor (an ended local job leaves nothing) — names that job, quotes the earlier
record, and exits 4; a resubmit takes the task again.
"""

from __future__ import annotations

import os
import time

import pytest

from flyhpc.bundle import BundlePaths
from flyhpc.cluster import slurm, status
from flyhpc.cluster.profiles import profile_from_dict
from flyhpc.results.records import disk_state

from tests.integration.test_resubmit_waiting import ON_SLURM, ROOT, _cli, _until
from tests.integration.test_slurm_faults import _profile, _tasks


def held_run(task):
    """Test job function: the task that starts first notes its key and waits (SIGTERM ends it, as it ends
    `run_task`) until the gate file appears; every task then runs for real."""
    from pathlib import Path

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


@pytest.mark.parametrize("kind", [pytest.param("slurm", marks=ON_SLURM), "local"])
def test_a_resubmitted_task_whose_job_was_cancelled_first_is_not_its_old_failure(tmp_path, kind, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("FLYHPC_THREADS", "1")
    monkeypatch.setenv("COLUMNS", "400")  # the status table: one line per row
    monkeypatch.setenv("FLYHPC_TEST_GATE", str(tmp_path / "gate"))
    if kind == "slurm":
        prof = _profile(tmp_path, array_parallelism=1)
    else:
        prof = profile_from_dict({"cluster": {"executor": "local", "array_parallelism": 1,
                                              "private_dir": str(tmp_path / "private")}}, "test", "test")
    root, label = tmp_path / "results", f"cancel_{kind}"
    todo = _tasks(label, root, 2)
    paths = BundlePaths(root, label)
    try:
        monkeypatch.setenv("FLYHPC_PRECISION", "bogus")  # the first attempt's jobs inherit it: both fail
        slurm.submit(slurm.plan(todo, prof))
        monkeypatch.delenv("FLYHPC_PRECISION")
        first = _until("both tasks failed", lambda: (r := status.status(root, label)).active == 0 and r)
        assert [r.state for r in first.rows] == ["failed", "failed"], first.rows
        old_reason = first.rows[0].reason
        assert "bogus" in old_reason, first.rows

        slurm.resubmit(root, label, ("failed",), profile=prof, job_fn=held_run)
        held = _until("a task is held at the gate", lambda: (tmp_path / "held").is_file()
                      and (tmp_path / "held").read_text())
        waiting = next(t for t in todo if t.key != held)
        old = paths.record(waiting)
        assert disk_state(old, paths.parquet(waiting), key=waiting.key)[0] == "error"  # the old attempt's record
        future = time.time() + 3600
        os.utime(old, (future, future))  # a file server's clock ahead: still not the latest job's record
        assert status.status(root, label).exit_code == 75  # queued behind the held one (test_resubmit_waiting)

        cancelled = _cli("cancel", label, "--results-root", str(root))
        assert cancelled.returncode == 0 and cancelled.stdout.startswith("cancelled "), cancelled.stdout
        report = _until("the new jobs ended", lambda: (r := status.status(root, label)).active == 0 and r)
        row = next(r for r in report.rows if r.key == waiting.key)
        latest = row.job_id
        assert latest and latest not in old_reason  # the resubmission's job, not the first attempt's
        assert row.state == ("cancelled" if kind == "slurm" else "missing"), report.rows
        ended = f"job {latest} ended CANCELLED" if kind == "slurm" else f"job {latest} ended before it reached the task"
        assert row.reason.startswith(ended), row.reason
        assert row.reason.endswith(f"; the earlier attempt's record says {old_reason}"), row.reason
        assert not (tmp_path / "gate").exists() and not paths.parquet(waiting).exists()  # it never ran

        shown = _cli("status", label, "--results-root", str(root))
        assert shown.returncode == 4, shown.stdout + shown.stderr
        cells = {c[0]: c[1:] for c in ([x.strip() for x in ln.split("│")[1:-1]] for ln in shown.stdout.splitlines())
                 if c}
        state, job, reason = cells[waiting.key][:3]  # the reason's first line (the table wraps it)
        assert (state, job) == (row.state, latest) and reason.startswith(ended), shown.stdout
        assert waiting.key in {r.key for r in report.failures()}  # a resubmit takes it again
    finally:
        (tmp_path / "gate").write_text("open\n")  # a held job never outlives the test
        if (root / label / "submission.json").is_file():
            slurm.cancel(root, label)
