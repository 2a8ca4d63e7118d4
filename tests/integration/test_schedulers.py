"""Both schedulers against one contract, for real: submit an array of two tasks, see them queued or running, cancel
them, see them end without finishing; and `flyhpc check submit` as submitit jobs on the real loopback Slurm,
writing the same reports `flyhpc check` writes and `flyhpc check collect` reads.

The Slurm cases need the loopback cluster (scripts/local-slurm/start.sh); they are marked `slurm`, so they fail
instead of skipping under FLYHPC_REQUIRE_SLURM=1. Apptainer cannot be installed here:
tests/integration/fake-apptainer stands in for it (it checks the arguments and runs the command on the host).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from flyhpc import contract
from flyhpc.cluster import job_folder, job_signals
from flyhpc.cluster.profiles import Resources, profile_from_dict
from flyhpc.cluster.schedulers import scheduler_for
from flyhpc.cluster.slurm import ArrayPlan

from tests.integration.test_slurm_faults import _REASON, _profile

ROOT = Path(__file__).resolve().parents[2]
ACTIVE = ("pending", "running")
ON_SLURM = [pytest.mark.slurm] + ([pytest.mark.skip(reason=_REASON)] if _REASON else [])


@dataclass(frozen=True)
class Nap:
    """A trivial task: note that it started, sleep, note that it finished."""

    name: str
    folder: str
    sleep_s: float = 120.0

    @property
    def key(self) -> str:
        return f"contract/{self.name}"


def nap(task: Nap) -> str:
    """The job function of the contract: what every array task runs (module level: jobs unpickle it by name).
    Like `executors.run_task` it lets SIGTERM end it (submitit's job side ignores TERM)."""
    job_signals.install()
    Path(task.folder, f"{task.name}.started").write_text(str(os.getpid()))
    time.sleep(task.sleep_s)
    Path(task.folder, f"{task.name}.finished").write_text("done")
    return "done"


def _scheduler_profile(kind: str, tmp_path: Path):
    if kind == "slurm":
        return _profile(tmp_path)
    return profile_from_dict({"cluster": {"executor": kind, "array_parallelism": 2,
                                          "private_dir": str(tmp_path / "private")}}, "test", "test")


def _all_known(scheduler, ids: list[str]):
    """The scheduler's `Seen` once it knows every one of the jobs (None before)."""
    seen = scheduler.states(ids)
    return seen if all(j in seen.jobs for j in ids) else None


def _ended(scheduler, job: str):
    """The job's state once it has ended (None before)."""
    js = scheduler.states([job]).jobs.get(job)
    return js if js and js.category not in ACTIVE else None


def _until(what: str, check, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


@pytest.mark.parametrize("kind", [pytest.param("slurm", marks=ON_SLURM), "local"])
def test_a_scheduler_submits_an_array_reports_its_jobs_and_cancels_them(tmp_path, kind, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the jobs unpickle `nap` from this module
    profile = _scheduler_profile(kind, tmp_path)
    scheduler = scheduler_for(profile)
    assert scheduler.name == kind and scheduler.parallel_workers == (1 if kind == "slurm" else 2)
    tasks = (Nap("a", str(tmp_path)), Nap("b", str(tmp_path)))
    array = ArrayPlan("test", Resources(cpus=1, mem_gb=0.25), 2, "", tasks)
    folder = job_folder.folder_for(profile, tmp_path, "contract")
    entry = scheduler.submit_array(array, folder, nap, label="contract")
    assert entry["executor"] == kind and entry["tasks"] == ["contract/a", "contract/b"] and entry["folder"] == str(folder)
    jobs = dict(scheduler.task_jobs(entry))
    assert sorted(jobs) == ["contract/a", "contract/b"]
    assert len(set(jobs.values())) == 2  # an array task each (Slurm), a job each (local: 2 workers)

    _until("a task started", lambda: list(tmp_path.glob("*.started")))
    seen = _until("the scheduler knows both jobs", lambda: _all_known(scheduler, list(jobs.values())))
    assert {seen.jobs[j].category for j in jobs.values()} <= set(ACTIVE)
    judged = [scheduler.task_state(entry, j, seen, "missing", tmp_path / "no-record.json") for j in jobs.values()]
    assert set(judged) <= set(ACTIVE) and "running" in judged

    signalled = scheduler.cancel([entry], "contract")
    assert signalled and set(signalled) <= {j.split("_")[0] for j in jobs.values()}
    _until("every job ended", lambda: not any(
        js.category in ACTIVE for js in scheduler.states(list(jobs.values())).jobs.values()))
    ended = scheduler.states(list(jobs.values()))
    assert all(ended.jobs[j].category == "cancelled" for j in jobs.values()) if kind == "slurm" else not ended.jobs
    assert not list(tmp_path.glob("*.finished"))  # cancelled while asleep: no task got to its end
    assert all(scheduler.task_state(entry, j, ended, "missing", tmp_path / "no-record.json") not in ACTIVE
               for j in jobs.values())
    assert scheduler.cancel([entry], "contract") == []  # nothing left to cancel


def test_a_cancelled_local_job_starts_none_of_its_later_tasks(tmp_path, monkeypatch):
    """A local job runs its share of an array in turn; cancel signals its processes: the task it reached ends,
    and the job starts none after it (submitit's job side would ignore the TERM and go on with them)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    profile = profile_from_dict({"cluster": {"executor": "local", "array_parallelism": 1,
                                             "private_dir": str(tmp_path / "private")}}, "test", "test")
    scheduler = scheduler_for(profile)
    tasks = (Nap("a", str(tmp_path)), Nap("b", str(tmp_path), sleep_s=0.0))
    array = ArrayPlan("test", Resources(cpus=1, mem_gb=0.25), 2, "", tasks)
    entry = scheduler.submit_array(array, job_folder.folder_for(profile, tmp_path, "contract"), nap, label="contract")
    (job,) = {j for _, j in scheduler.task_jobs(entry)}  # one job runs both, a then b
    _until("a started", lambda: (tmp_path / "a.started").is_file())
    assert scheduler.cancel([entry], "contract") == [job]
    _until("the job ended", lambda: not scheduler.states([job]).jobs)
    time.sleep(1.0)  # nothing of it is left to start b
    assert not list(tmp_path.glob("b.*")) and not list(tmp_path.glob("*.finished"))


@pytest.mark.slurm
@pytest.mark.skipif(bool(_REASON), reason=_REASON or "")
def test_check_submit_runs_the_check_as_submitit_jobs_on_slurm(tmp_path):
    """A tiny check (native's contract part) through `flyhpc check submit`: a submitit job in the profile's image
    (the fake apptainer), the same check-native-<host>.json/.md as `flyhpc check`, read by `check collect`."""
    profile = _profile(tmp_path, container=True, image_dir=str(tmp_path / "images"),
                       apptainer=f"{ROOT / 'tests/integration/fake-apptainer'} exec --nv", max_time_min=15)
    out = tmp_path / "checks"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLYHPC_THREADS": "1"}
    cli = [sys.executable, "-m", "flyhpc", "check"]
    proc = subprocess.run([*cli, "submit", "--profile", profile.source, "--backend", "native", "--part", "contract",
                           "--out", str(out), "--time-min", "10"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "submitted 1 task(s) (native): job(s) " in proc.stdout and f"flyhpc check collect {out}" in proc.stdout
    job = proc.stdout.split("job(s) ")[1].split(";")[0]
    assert not (out / "check.sbatch").exists()  # no sbatch script of its own: submitit wrote the job's

    scheduler = scheduler_for(profile)
    state = _until("the check job ended", lambda: _ended(scheduler, job), timeout_s=420)
    reports = sorted(out.glob("check-native-*.json"))
    assert state.category == "done", (state, [p.read_text() for p in job_folder.folder_for(
        profile, out.parent, out.name).glob(f"{job}*log*")])
    assert len(reports) == 1 and reports[0].with_suffix(".md").is_file()
    report = json.loads(reports[0].read_text())
    assert report["status"] == "passed" and list(report["parts"]) == ["contract"]
    n = len(contract.SCENARIOS)
    assert report["parts"]["contract"]["passed"] == report["parts"]["contract"]["n_scenarios"] == n
    calls = (tmp_path / "apptainer.log").read_text()
    assert f"image {tmp_path / 'images' / 'flyhpc-test.sif'}" in calls and f"--bind {out}" in calls

    collected = subprocess.run([*cli, "collect", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert collected.returncode == 0, collected.stderr
    assert "| native |" in collected.stdout and f"{n}/{n}" in collected.stdout
