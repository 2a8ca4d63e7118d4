"""`bench.run_tasks` on this machine: every task ends with a state from its files, a done task is not run
again (skipped, reported so), and a failing task does not stop the ones after it."""

from __future__ import annotations

import dataclasses

import pytest

from flyhpc import bench
from flyhpc.cluster import submission
from flyhpc.errors import ConfigError
from flyhpc.tasks import BenchmarkTask

from tests.integration.test_quick_grid import write_tiny_connectome


def test_inline_run_skips_done_tasks_and_survives_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYHPC_THREADS", "1")
    conn = write_tiny_connectome(tmp_path / "conn")
    good = BenchmarkTask(run_label="b", round=1, backend="native", experiment="index:0,1,2@200", t_run_s=0.1, n_run=1,
                         seed=0, connectome=str(conn), connectome_digest="", results_root=str(tmp_path))
    bad = dataclasses.replace(good, round=2, connectome=str(tmp_path / "nowhere"))
    after = dataclasses.replace(good, round=3)
    submission.record_plan([good, bad, after])
    events = []
    outcomes = bench.run_tasks([good, bad, after], "inline", on_event=lambda kind, t, d: events.append((kind, t.round)))
    assert [o.state for o in outcomes] == ["done", "error", "done"]
    assert "nowhere" in outcomes[1].error and outcomes[1].record["status"].startswith("error: ConfigError")
    assert ("phase", 1) in events and ("end", 3) in events
    again = bench.run_tasks([good], "inline")
    assert again[0].skipped and again[0].state == "done"


def test_unknown_mode_is_named():
    with pytest.raises(ConfigError, match="unknown executor 'threads'; known: inline, process, local"):
        bench.run_tasks([], "threads")
