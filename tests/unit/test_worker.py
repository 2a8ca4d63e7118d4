"""The worker's failure path: an error record, the traceback in the log, attempts appended, no parquet.
"""

from __future__ import annotations

import json

import pytest

from flyhpc import collect, worker
from flyhpc.bundle import BundlePaths
from flyhpc.errors import TaskFailed
from flyhpc.cluster.status import EXIT_UNFINISHED
from flyhpc.tasks import BenchmarkTask

from tests.unit.bundles import plan, state


def test_worker_failure_leaves_error_record_and_log_and_no_parquet(tmp_path):
    t = BenchmarkTask(run_label="lab", round=1, backend="brian2cpp", experiment="sugar", t_run_s=0.01, n_run=1,
                      seed=0, connectome=str(tmp_path / "no_such_folder"), connectome_digest="",
                      results_root=str(tmp_path))
    paths = BundlePaths(tmp_path, "lab")
    paths.round_dir(1).mkdir(parents=True)
    paths.parquet(t).write_bytes(b"stale")
    with pytest.raises(TaskFailed) as info:
        worker.run(t)
    assert info.value.task_key == t.key and info.value.log_path == str(paths.log(t))
    rec = json.loads(paths.record(t).read_text())
    assert rec["status"].startswith("error: ConfigError") and "no_such_folder" in rec["status"]
    assert not paths.parquet(t).exists()
    assert "Traceback" in paths.log(t).read_text()
    assert state(t)[0] == "error"
    plan(t)
    report = collect.collect(tmp_path, "lab")
    assert report.rows == 1 and report.exit_code == EXIT_UNFINISHED
    assert report.status.rows[0].state == "failed"
    with pytest.raises(TaskFailed):
        worker.run(t)
    log = paths.log(t).read_text()
    assert log.count("=== attempt ") == 2 and "=== attempt 2: started" in log  # attempts append, never overwrite


def test_worker_records_an_unknown_experiment_as_an_error(tmp_path):
    t = BenchmarkTask(run_label="lab", round=1, backend="brian2cpp", experiment="walking", t_run_s=0.01, n_run=1,
                      seed=0, connectome="auto", connectome_digest="", results_root=str(tmp_path))
    with pytest.raises(TaskFailed, match="unknown experiment 'walking'"):
        worker.run(t)
    assert state(t)[0] == "error"
