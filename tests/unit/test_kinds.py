"""Task kinds as plug-ins (`flyhpc.kinds`): one table, no kind tested by name elsewhere, and one benchmark task's
pass down from `worker.run` — its key computed once, its backend class looked up once by the pipeline, its probe
run once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flyhpc import backends, kinds, tasks, worker
from flyhpc.backends.native.backend import NativeBackend
from flyhpc.errors import ConfigError
from flyhpc.screens.task import ScreenTask
from flyhpc.tasks import BenchmarkTask
from tests.integration.test_quick_grid import write_tiny_connectome

PACKAGE = Path(__file__).resolve().parents[2] / "flyhpc"


def _task(root, connectome="auto", digest="") -> BenchmarkTask:
    return BenchmarkTask(run_label="lab", round=1, backend="native", experiment="index:0,1,2@200", t_run_s=0.05,
                         n_run=1, seed=0, connectome=connectome, connectome_digest=digest, results_root=str(root))


def test_the_table_names_each_kind_and_rebuilds_its_tasks(tmp_path):
    assert kinds.kind("benchmark") is BenchmarkTask and kinds.kind("screen") is ScreenTask
    task = _task(tmp_path)
    assert kinds.task_from_dict(kinds.task_to_dict(task)) == task
    entry = {k: v for k, v in kinds.task_to_dict(task).items() if k != "kind"}  # written before kinds existed
    assert kinds.task_from_dict(entry) == task
    with pytest.raises(ConfigError, match="unknown task kind 'sweep'; known: benchmark, screen"):
        kinds.task_from_dict({**entry, "kind": "sweep"})


def test_no_module_outside_the_table_tests_a_kind_by_name():
    name_test = re.compile(r"""(==|!=)\s*["'](screen|benchmark)["']|["'](screen|benchmark)["']\s*(==|!=)""")
    found = [f"{p.relative_to(PACKAGE)}:{n}" for p in sorted(PACKAGE.rglob("*.py")) if p.name != "kinds.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if name_test.search(line)]
    assert found == []


def test_a_key_is_computed_once_per_task(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(tasks, "experiment_digest", lambda key: calls.append(key) or "d")
    task = _task(tmp_path)
    assert task.key == task.key == task.key and len(calls) == 1


def test_one_benchmark_task_looks_its_backend_up_once_and_probes_it_once(tmp_path, monkeypatch):
    from flyhpc.data.connectome import load_connectome
    from flyhpc.data.sources import resolve_sources

    conn_dir = write_tiny_connectome(tmp_path / "conn", n_neurons=50, n_edges=400, seed=1)
    task = _task(tmp_path / "results", str(conn_dir), load_connectome(resolve_sources(str(conn_dir), conn_dir)).digest)
    looked_up, probed = [], []
    real_get, real_probe = backends.get, NativeBackend.probe.__func__
    monkeypatch.setattr(backends, "get", lambda name: looked_up.append(name) or real_get(name))
    monkeypatch.setattr(NativeBackend, "probe", classmethod(lambda cls: probed.append(cls) or real_probe(cls)))
    record = worker.run(task)
    assert record["status"] == "success" and record["framework"] == NativeBackend.caps.framework("")
    # one lookup for the record's header (its framework, also for a task that fails), one by the pipeline
    assert looked_up == ["native", "native"] and len(probed) == 1
