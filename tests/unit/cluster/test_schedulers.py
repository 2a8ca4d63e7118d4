"""The scheduler registry: every executor a profile may name has one `Scheduler`, whose planning properties say what
the profile rules say; a recorded submission finds its scheduler again (none for `flyhpc bench`'s runs); a Slurm
task nobody knows is pending only just after its submission and only while the controller could not be asked.
The schedulers submitting for real: tests/integration/test_schedulers.py."""

from __future__ import annotations

import datetime as _dt

import pytest

from flyhpc.cluster import profiles
from flyhpc.cluster.local_scheduler import DebugScheduler, LocalScheduler
from flyhpc.cluster.profiles import profile_from_dict
from flyhpc.cluster.sacct import JobState
from flyhpc.cluster.scheduler import Seen
from flyhpc.cluster.schedulers import SCHEDULERS, by_scheduler, recorded, scheduler_for
from flyhpc.cluster.slurm_scheduler import SlurmScheduler
from flyhpc.errors import ConfigError


@pytest.mark.parametrize("executor", profiles.EXECUTORS)
def test_every_executor_has_a_scheduler_that_agrees_with_the_profile_rules(executor, tmp_path):
    prof = profile_from_dict({"cluster": {"executor": executor, "array_parallelism": 3, "max_array_size": 7}}, "t")
    scheduler = scheduler_for(prof)
    assert type(scheduler) is SCHEDULERS[executor] and scheduler.name == executor
    assert scheduler.max_array_size == (7 if executor == "slurm" else None)
    assert scheduler.parallel_workers == (1 if executor == "slurm" else 3)  # local jobs share an array's tasks
    container = {"cluster": {"executor": executor, "container": True, "image_dir": str(tmp_path)}}
    if scheduler.supports_containers:
        assert profile_from_dict(container, "t").container
    else:
        with pytest.raises(ConfigError, match="container = true needs executor = 'slurm'"):
            profile_from_dict(container, "t")
    assert set(SCHEDULERS) == set(profiles.EXECUTORS)


def test_a_recorded_submission_finds_its_scheduler_and_bench_runs_have_none():
    entries = [{"executor": "local", "jobs": []}, {"executor": "bench"}, {"executor": "slurm", "job_id": "7"},
               {"executor": "local", "jobs": []}, {"executor": "debug", "jobs": []}]
    assert [type(recorded(e)) for e in entries] == [LocalScheduler, type(None), SlurmScheduler, LocalScheduler,
                                                    DebugScheduler]
    assert [(s.name, len(group)) for s, group in by_scheduler(entries)] == [("local", 2), ("slurm", 1), ("debug", 1)]
    slurm = {"executor": "slurm", "job_id": "7", "array": True, "tasks": ["a", "b"]}
    assert SlurmScheduler().task_jobs(slurm) == [("a", "7_0"), ("b", "7_1")]
    assert SlurmScheduler().task_jobs({**slurm, "array": False, "tasks": ["a"]}) == [("a", "7")]
    local = {"executor": "local", "jobs": [{"job_id": "11", "tasks": ["a", "c"]}, {"job_id": "12", "tasks": ["b"]}]}
    assert LocalScheduler().task_jobs(local) == [("a", "11"), ("c", "11"), ("b", "12")]


def test_a_slurm_task_nobody_knows_is_pending_only_just_after_submission(tmp_path):
    slurm = SlurmScheduler()
    now = _dt.datetime.now(_dt.timezone.utc)
    fresh, old = {"submitted_at": now.isoformat()}, {"submitted_at": (now - _dt.timedelta(hours=1)).isoformat()}
    record = tmp_path / "none.json"
    assert slurm.task_state(fresh, "5_0", Seen({}, complete=False), "missing", record) == "pending"
    assert slurm.task_state(fresh, "5_0", Seen({}), "missing", record) == "missing"  # the controller said: gone
    assert slurm.task_state(fresh, "5_0", Seen({}, complete=False, error="down"), "missing", record) == "missing"
    assert slurm.task_state(old, "5_0", Seen({}, complete=False), "missing", record) == "missing"
    assert slurm.task_state(old, "5_0", Seen({"5_0": JobState("5_0", "TIMEOUT")}), "missing", record) == "timeout"
    assert slurm.states([]).jobs == {}  # nothing to ask: no sacct call


def test_a_live_local_job_runs_its_first_unrecorded_task_and_the_rest_wait(tmp_path):
    local, seen = LocalScheduler(), Seen({"11": JobState("11", "RUNNING")})
    entry = {"submitted_at": "2026-12-07T06:00:00+00:00"}
    record = tmp_path / "none.json"
    assert [local.task_state(entry, "11", seen, "missing", record) for _ in range(3)] == ["running", "pending",
                                                                                          "pending"]
    assert local.task_state(entry, "12", seen, "missing", record) is None  # its job has ended: the files say
    assert DebugScheduler().states(["11"]).jobs == {} and DebugScheduler().cancel([entry], "x") == []
