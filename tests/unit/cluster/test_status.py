"""The one decision about a task's state (`cluster.status.status`), without a scheduler: files of every
kind of ending, a local job that is still alive, and the exit codes scripts read."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import pytest

from flyhpc.bundle import BundlePaths
from flyhpc.cluster.status import EXIT_ACTIVE, EXIT_DONE, EXIT_UNFINISHED, news_waiter, status
from flyhpc.errors import ConfigError

from tests.unit.bundles import fake_result, make_task, plan


def _states(root, label="lab"):
    return {row.key: (row.state, row.reason) for row in status(root, label).rows}


def test_every_ending_has_its_state_and_the_exit_code_says_unfinished(tmp_path):
    done, failed, timed_out, cancelled, other, never, damaged = (make_task(tmp_path, t=t) for t in
                                                                 (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7))
    plan(done, failed, timed_out, cancelled, other, never, damaged)
    fake_result(done)
    fake_result(failed, status="error: ConfigError: bad")
    fake_result(timed_out, status="timeout: SIGUSR2 (Slurm's pre-timeout warning) at X, then SIGTERM")
    fake_result(cancelled, status="cancelled: SIGTERM (scancel, or Slurm ending the job)")
    fake_result(dataclasses.replace(other, experiment="p9"))  # a record made for another experiment
    paths = fake_result(damaged)
    with open(paths.parquet(damaged), "r+b") as fh:
        fh.truncate(40)
    states = _states(tmp_path)
    assert states[done.key] == ("done", "")
    assert states[failed.key] == ("failed", "error: ConfigError: bad")
    assert states[timed_out.key][0] == "timeout" and "SIGUSR2" in states[timed_out.key][1]
    assert states[cancelled.key][0] == "cancelled"
    assert states[other.key][0] == "missing" and "written for task" in states[other.key][1]
    assert states[never.key] == ("missing", "no task record")
    assert states[damaged.key][0] == "corrupt"
    report = status(tmp_path, "lab")
    assert report.exit_code == EXIT_UNFINISHED and not report.complete
    assert {r.key for r in report.failures()} == set(states) - {done.key}


def test_deep_status_hashes_what_the_cheap_one_trusts(tmp_path):
    task = make_task(tmp_path)
    plan(task)
    paths = fake_result(task)
    data = bytearray(paths.parquet(task).read_bytes())
    data[10] ^= 0xFF
    paths.parquet(task).write_bytes(bytes(data))
    assert status(tmp_path, "lab").exit_code == EXIT_DONE
    deep = status(tmp_path, "lab", deep=True)
    assert deep.exit_code == EXIT_UNFINISHED and deep.rows[0].state == "corrupt"


def test_a_live_local_job_makes_its_tasks_pending_or_running_and_exits_75(tmp_path):
    first, second = make_task(tmp_path, t=0.1), make_task(tmp_path, t=1.0)
    plan(first, second)
    paths = BundlePaths(tmp_path, "lab")
    record = json.loads(paths.submission.read_text())
    record["submissions"].append({"submitted_at": "2000-01-01T00:00:00+00:00", "executor": "local", "backend": "brian2cpp",
                                  "tasks": [first.key, second.key],
                                  "jobs": [{"job_id": str(os.getpid()), "tasks": [first.key, second.key]}]})
    paths.submission.write_text(json.dumps(record))
    report = status(tmp_path, "lab")
    assert [r.state for r in report.rows] == ["running", "pending"]
    assert report.exit_code == EXIT_ACTIVE and report.active == 2
    fake_result(first, status="error: RuntimeError: boom")  # an earlier attempt's record: the job replaces it
    report = status(tmp_path, "lab")
    assert [r.state for r in report.rows] == ["running", "pending"] and report.exit_code == EXIT_ACTIVE
    _by_job(paths.record(first), str(os.getpid()))  # this job's first task failed, the second waits
    report = status(tmp_path, "lab")
    assert [r.state for r in report.rows] == ["failed", "running"]
    assert report.exit_code == EXIT_UNFINISHED  # a failure wins over tasks still running


def _with_jobs(root, executor, *tasks):
    paths = BundlePaths(root, "lab")
    record = json.loads(paths.submission.read_text())
    record["submissions"].append({"submitted_at": "2000-01-01T00:00:00+00:00", "executor": executor,
                                  "backend": "brian2cpp", "tasks": [t.key for t in tasks],
                                  "jobs": [{"job_id": str(os.getpid()), "tasks": [t.key for t in tasks]}]})
    paths.submission.write_text(json.dumps(record))


def test_a_watch_of_local_jobs_wakes_when_a_task_writes_its_files(tmp_path):
    """status --watch waits its interval, unless a task of a label run on this machine writes a file: then at once."""
    import threading

    task = make_task(tmp_path)
    plan(task)
    _with_jobs(tmp_path, "local", task)
    wait = news_waiter(tmp_path, "lab", interval_s=0.6, poll_s=0.02)
    t0 = time.monotonic()
    wait()  # nothing happens: the whole interval
    assert time.monotonic() - t0 >= 0.6
    writer = threading.Timer(0.1, fake_result, [task])
    writer.start()
    t0 = time.monotonic()
    wait()
    woke = time.monotonic() - t0
    writer.join()
    assert 0.1 <= woke < 0.45, woke  # woken by the record, well before the 0.6 s interval
    assert status(tmp_path, "lab").rows[0].state == "done"


def test_a_watch_of_slurm_jobs_waits_its_whole_interval(tmp_path):
    task = make_task(tmp_path)
    plan(task)
    _with_jobs(tmp_path, "slurm", task)
    wait = news_waiter(tmp_path, "lab", interval_s=0.3, poll_s=0.02)
    fake_result(task)  # a change, but asking sacct again at once is not for a watch
    t0 = time.monotonic()
    wait()
    assert time.monotonic() - t0 >= 0.3


def _by_job(record_path, job_id, started_utc="2026-12-01T00:00:00Z"):
    rec = json.loads(record_path.read_text())
    rec.update(job_id=job_id, started_utc=started_utc)
    record_path.write_text(json.dumps(rec))


@pytest.mark.parametrize("earlier", ["error: RuntimeError: boom", "success"])
def test_an_earlier_record_with_a_future_mtime_leaves_a_queued_local_task_queued(tmp_path, earlier):
    """A file server whose clock runs ahead (or a touched file): an earlier attempt's record is newer than the
    resubmission, yet it is not this job's, so the task is pending, not failed or corrupt (exit 75, not 4)."""
    first, queued = make_task(tmp_path, t=0.1), make_task(tmp_path, t=1.0)
    plan(first, queued)
    paths = BundlePaths(tmp_path, "lab")
    record = json.loads(paths.submission.read_text())
    record["submissions"].append({"submitted_at": "2026-12-07T06:00:00+00:00", "executor": "local",
                                  "backend": "brian2cpp", "tasks": [first.key, queued.key],
                                  "jobs": [{"job_id": str(os.getpid()), "tasks": [first.key, queued.key]}]})
    paths.submission.write_text(json.dumps(record))
    fake_result(first)  # this job's first task is done
    _by_job(paths.record(first), str(os.getpid()), "2026-12-07T06:00:05Z")
    fake_result(queued, status=earlier)  # an earlier attempt's, by another job
    if earlier == "success":
        paths.parquet(queued).write_bytes(b"damaged")  # why it was resubmitted
    _by_job(paths.record(queued), "4242", "2026-12-06T00:00:00Z")
    future = time.time() + 3600
    os.utime(paths.record(queued), (future, future))
    report = status(tmp_path, "lab")
    assert [r.state for r in report.rows] == ["done", "running"], report.rows
    assert report.exit_code == EXIT_ACTIVE


def test_a_label_without_submission_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no submission for run label 'nope'"):
        status(tmp_path, "nope")


def _slurm_submission(tmp_path, tasks, submitted_at):
    paths = BundlePaths(tmp_path, "lab")
    record = json.loads(paths.submission.read_text())
    record["submissions"].append({"submitted_at": submitted_at, "executor": "slurm", "backend": "brian2cpp",
                                  "job_id": "900", "array": True, "tasks": [t.key for t in tasks]})
    paths.submission.write_text(json.dumps(record))


def test_a_job_accounting_has_not_recorded_yet_is_asked_of_the_controller(tmp_path, monkeypatch):
    """sacct lags behind the controller: a job it does not list is pending only if squeue still lists
    it; one squeue does not list has ended, and its files decide (the CI failure of 2026-12-01)."""
    from datetime import datetime, timezone
    from flyhpc.cluster import sacct
    from flyhpc.errors import FlyhpcError

    done, damaged, unrecorded, queued = (make_task(tmp_path, t=t) for t in (0.1, 0.2, 0.3, 0.4))
    plan(done, damaged, unrecorded, queued)
    _slurm_submission(tmp_path, [done, damaged, unrecorded, queued], datetime.now(timezone.utc).isoformat())
    fake_result(done)
    with open(fake_result(damaged).parquet(damaged), "r+b") as fh:
        fh.truncate(40)
    monkeypatch.setattr(sacct, "query", lambda ids, **_: {})
    monkeypatch.setattr(sacct, "queued", lambda ids, **_: {"900_3": sacct.JobState("900_3", "PENDING")})
    states = _states(tmp_path)
    assert {k: s for k, (s, _) in states.items()} == {
        done.key: "done", damaged.key: "corrupt", unrecorded.key: "missing", queued.key: "pending"}

    def no_controller(ids, **_):
        raise FlyhpcError("squeue failed: slurmctld not responding")
    monkeypatch.setattr(sacct, "queued", no_controller)  # nobody to ask: a just-submitted job is pending
    assert [s for s, _ in _states(tmp_path).values()] == ["done", "pending", "pending", "pending"]


def test_a_linked_or_foreign_label_folder_is_refused_everywhere(tmp_path):
    """`results/alias -> results/conA`: status, collect, verify and a new plan into alias are refused (exit 2),
    and so is a label folder whose submission.json names another label; conA's files are untouched."""
    import subprocess
    import sys

    from flyhpc import collect
    from flyhpc.cluster import submission

    con = [make_task(tmp_path, t=t, label="conA") for t in (0.1, 0.2)]
    plan(*con)
    for k, task in enumerate(con):
        fake_result(task, seed=k)
    before = {p: p.read_bytes() for p in (tmp_path / "conA").rglob("*") if p.is_file()}
    (tmp_path / "alias").symlink_to(tmp_path / "conA")
    for call in (lambda: status(tmp_path, "alias"), lambda: collect.collect(tmp_path, "alias"),
                 lambda: collect.verify(tmp_path, "alias"),
                 lambda: submission.record_plan([make_task(tmp_path, t=0.1, label="alias")])):
        with pytest.raises(ConfigError, match="symbolic link"):
            call()
    from flyhpc.cluster import slurm
    from flyhpc.cluster.profiles import profile_from_dict

    local = profile_from_dict({"cluster": {"executor": "local", "private_dir": str(tmp_path / "private")}}, "t", "t")
    with pytest.raises(ConfigError, match="symbolic link"):  # `submit --run-label alias`
        slurm.submit(slurm.plan([make_task(tmp_path, t=0.1, label="alias")], local, skip_done=False))
    for command in ("status", "collect", "verify"):
        out = subprocess.run([sys.executable, "-m", "flyhpc", command, "alias", "--results-root", str(tmp_path)],
                             capture_output=True, text=True)
        assert out.returncode == 2 and "symbolic link" in out.stderr, (command, out.returncode, out.stderr)
    (tmp_path / "alias").unlink()
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "submission.json").write_bytes((tmp_path / "conA" / "submission.json").read_bytes())
    with pytest.raises(ConfigError, match="is the submission of run label 'conA'"):
        status(tmp_path, "copy")
    with pytest.raises(ConfigError, match="is the submission of run label 'conA'"):
        submission.record_plan([make_task(tmp_path, t=0.1, label="copy")])
    assert {p: p.read_bytes() for p in (tmp_path / "conA").rglob("*") if p.is_file()} == before


def test_slurm_saying_timeout_wins_over_a_record_that_says_cancelled(tmp_path, monkeypatch):
    """A time limit whose SIGTERM came without the warning (no SLURM_JOB_END_TIME before Slurm 23.02):
    the record says cancelled, sacct says TIMEOUT: the task is a timeout, and the reason says both."""
    from datetime import datetime, timezone
    from flyhpc.cluster import sacct

    task = make_task(tmp_path)
    plan(task)
    _slurm_submission(tmp_path, [task], datetime.now(timezone.utc).isoformat())
    fake_result(task, status="cancelled: SIGTERM (scancel, or Slurm ending the job)")
    _by_job(BundlePaths(tmp_path, "lab").record(task), "900_0", _utc_now())  # the job's own record
    monkeypatch.setattr(sacct, "query", lambda ids, **_: {"900_0": sacct.JobState("900_0", "TIMEOUT", "0:0")})
    (row,) = status(tmp_path, "lab").rows
    assert row.state == "timeout" and row.reason.startswith("TIMEOUT says Slurm; the task's record: cancelled: SIGTERM")


def _utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def test_a_resubmitted_slurm_job_that_ended_first_is_judged_by_its_own_end(tmp_path, monkeypatch):
    """Resubmitted, then cancelled before it reached a task: the failed record on disk (dated in the future, as a
    file server's clock may) is the earlier attempt's, so the task is cancelled as its latest job was, and the
    reason says both; a record the latest job wrote keeps its own word."""
    from datetime import datetime, timezone
    from flyhpc.cluster import sacct

    ran, unreached = make_task(tmp_path, t=0.1), make_task(tmp_path, t=0.2)
    plan(ran, unreached)
    paths = BundlePaths(tmp_path, "lab")
    for task, job in ((ran, "800_0"), (unreached, "800_1")):  # the first attempt: both failed
        fake_result(task, status="error: ConfigError: bad precision")
        _by_job(paths.record(task), job, "2026-12-01T00:00:00Z")
    _slurm_submission(tmp_path, [ran, unreached], datetime.now(timezone.utc).isoformat())
    fake_result(ran, status="error: RuntimeError: boom")  # the resubmission's first task failed again
    _by_job(paths.record(ran), "900_0", _utc_now())
    future = time.time() + 3600
    os.utime(paths.record(unreached), (future, future))
    monkeypatch.setattr(sacct, "query", lambda ids, **_: {
        "900_0": sacct.JobState("900_0", "FAILED", "1:0"),
        "900_1": sacct.JobState("900_1", "CANCELLED by 0", "0:0", node="None assigned")})
    report = status(tmp_path, "lab")
    rows = {r.key: r for r in report.rows}
    assert (rows[ran.key].state, rows[ran.key].reason) == ("failed", "error: RuntimeError: boom")
    assert rows[unreached.key].state == "cancelled" and rows[unreached.key].job_id == "900_1"
    assert rows[unreached.key].reason.startswith("job 900_1 ended CANCELLED by 0 (exit 0:0, ")
    assert rows[unreached.key].reason.endswith(
        "without a record of the task; the earlier attempt's record says error: ConfigError: bad precision")
    assert report.exit_code == EXIT_UNFINISHED

    monkeypatch.setattr(sacct, "query", lambda ids, **_: {"900_0": sacct.JobState("900_0", "FAILED", "1:0"),
                                                          "900_1": sacct.JobState("900_1", "PENDING")})
    assert _states(tmp_path)[unreached.key] == ("pending", "")  # still queued: waiting, not the old failure


def test_an_ended_local_job_that_never_reached_a_task_leaves_it_missing_not_failed(tmp_path):
    """A local job leaves nothing once it has ended: a task whose record an earlier job wrote is missing, and the
    reason says the latest job ended before it reached it and what the earlier record said (exit 4)."""
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # the id of a process that has ended
    task = make_task(tmp_path)
    plan(task)
    paths = BundlePaths(tmp_path, "lab")
    fake_result(task, status="timeout: SIGUSR2 (Slurm's pre-timeout warning) at X, then SIGTERM")
    _by_job(paths.record(task), gone, "2026-12-01T00:00:00Z")  # the same job id, but before the resubmission
    record = json.loads(paths.submission.read_text())
    record["submissions"].append({"submitted_at": "2026-12-07T06:00:00+00:00", "executor": "local",
                                  "backend": "brian2cpp", "tasks": [task.key],
                                  "jobs": [{"job_id": gone, "tasks": [task.key]}]})
    paths.submission.write_text(json.dumps(record))
    report = status(tmp_path, "lab")
    assert [(r.state, r.reason) for r in report.rows] == [(
        "missing", f"job {gone} ended before it reached the task; the earlier attempt's record says "
                   "timeout: SIGUSR2 (Slurm's pre-timeout warning) at X, then SIGTERM")]
    assert report.exit_code == EXIT_UNFINISHED
    _by_job(paths.record(task), gone, "2026-12-07T06:00:01Z")  # the latest job's own record: its word stands
    assert _states(tmp_path)[task.key][0] == "timeout"
