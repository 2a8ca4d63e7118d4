"""Drive version 2 is part of every task's identity; a label planned with version 1 stays readable but is never
resumed with other trains (issue 17 item 4)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from flyhpc import backends, worker
from flyhpc.cluster import slurm
from flyhpc.cluster.profiles import load_profile
from flyhpc.cluster.status import status
from flyhpc.cluster.submission import check_identity, label_identity, record_plan
from flyhpc.kinds import task_from_dict, task_to_dict
from flyhpc.drive import DRIVE_VERSION
from flyhpc.errors import ConfigError, TaskFailed
from flyhpc.tasks import experiment_digest
from tests.unit.test_tasks import _task


def _version_1_key(task) -> str:
    """The key as flyhpc computed it before drive version 2 (no drive_version in the fingerprint)."""
    body = {"experiment": experiment_digest(task.experiment), "seed": task.seed, "connectome": task.connectome_digest,
            "options": backends.result_options(task.backend, dict(task.backend_options))}
    return f"{task.name}@{hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:10]}"


def test_new_tasks_carry_version_2_in_their_key_and_identity():
    task = _task()
    assert DRIVE_VERSION == 2 and task.drive_version == 2
    assert task.key != _version_1_key(task) and task.identity()["drive_version"] == 2
    assert task_from_dict(task_to_dict(task)) == task


def test_a_version_1_entry_keeps_its_old_key():
    entry = task_to_dict(_task())
    del entry["drive_version"]  # as submission.json files written before version 2 hold it
    old = task_from_dict(entry)
    assert old.drive_version == 1 and old.key == _version_1_key(old)


def test_submit_into_a_version_1_label_is_refused_naming_the_versions():
    recorded = {k: v for k, v in label_identity([_task()]).items() if k != "drive_version"}
    with pytest.raises(ConfigError, match=r"drive_version 1 there, 2 now \(its input trains are not this flyhpc's"):
        check_identity(recorded, label_identity([_task()]), "lab")


def test_a_version_1_label_reads_but_is_not_resumed(tmp_path):
    old = dataclasses.replace(_task(results_root=str(tmp_path)), drive_version=1)
    record_plan([old])
    assert [r.key for r in status(tmp_path, old.run_label).rows] == [old.key]  # status reads it as before
    with pytest.raises(ConfigError, match="planned with drive version 1; this flyhpc draws version 2"):
        slurm.resubmit(tmp_path, old.run_label, ["missing"], profile=load_profile("local"))
    with pytest.raises(TaskFailed, match="drive version 1"):
        worker.run(old)
