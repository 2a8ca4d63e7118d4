"""Screen chunk tasks: how a plan is cut, what their keys depend on, and their trip through submission.json."""

from __future__ import annotations

import dataclasses

import pytest

from flyhpc.cluster.submission import check_identity, label_identity
from flyhpc.kinds import task_from_dict, task_to_dict
from flyhpc.errors import ConfigError
from flyhpc.screens import load_screen, plan_experiments
from flyhpc.screens.cost import CostModel
from flyhpc.screens.task import ScreenTask, plan_tasks

from tests.unit.bundles import make_task

SCREEN = """
[screen]
t_run_s = 1.0
n_run = 1
by = "index"
[base]
rate_hz = 200.0
[axes]
activate_each = "all"
"""


def _tasks(screen, exps, **kw):
    return plan_tasks(screen, exps, "ab" * 32, run_label="s", results_root="/r", connectome="auto",
                      connectome_digest="cd" * 32, n_edges=15_091_983, **kw)


def test_chunks_cover_the_plan_in_order_and_respect_every_limit(conn, write_screen):
    screen = load_screen(str(write_screen(SCREEN)))
    exps = plan_experiments(screen, conn)
    assert len(exps) == 300
    one = _tasks(screen, exps)
    assert [(t.first, t.stop) for t in one] == [(0, 300)]  # 300 cheap experiments fit one 10-minute task
    model = CostModel()
    assert one[0].cost_s == pytest.approx(model.task_setup_s + 300 * (
        model.quiet_trial_second_s + 200 * model.drive_event_s + model.trial_overhead_s))
    several = _tasks(screen, exps, min_tasks=4)
    assert len(several) == 4 and several[0].first == 0 and several[-1].stop == 300
    assert all(a.stop == b.first for a, b in zip(several, several[1:]))
    capped = _tasks(screen, exps, max_per_task=128)
    assert [(t.first, t.stop) for t in capped] == [(0, 128), (128, 256), (256, 300)]
    assert [t.chunk for t in capped] == [0, 1, 2] and capped[2].stem == "chunk_00002"
    assert capped[2].trials == 44 and capped[2].key.startswith("s/chunks/chunk_00002@")
    with pytest.raises(ConfigError, match="max_per_task must be >= 1"):
        _tasks(screen, exps, max_per_task=0)
    other_backend = plan_tasks(dataclasses.replace(screen, backend="brian2cpp"), exps, "ab" * 32, run_label="s",
                               results_root="/r", connectome="auto", connectome_digest="", n_edges=1,
                               target_task_s=600.0, run_wall_s=lambda t, n: 100.0)
    assert [t.n_experiments for t in other_backend] == [5] * 60  # 100 s each: 5 fill 597 s of 10 minutes


def test_the_key_follows_the_results_and_the_record_round_trips(conn, write_screen):
    screen = load_screen(str(write_screen(SCREEN)))
    task = _tasks(screen, plan_experiments(screen, conn), max_per_task=100)[1]
    assert dataclasses.replace(task, cost_s=99.0).key == task.key  # the estimate is not a result
    for change in ({"plan_sha256": "ef" * 32}, {"stop": 150}, {"connectome_digest": "00" * 32},
                   {"keep_spikes": True}):
        assert dataclasses.replace(task, **change).key != task.key, change
    data = task_to_dict(task)
    assert data["kind"] == "screen" and task_from_dict(data) == task
    bench = make_task("/r")
    assert task_from_dict(task_to_dict(bench)) == bench
    with pytest.raises(ConfigError, match="kind 'benchmark' there, 'screen' now"):
        check_identity(label_identity([bench]), label_identity([task]), "s")
    with pytest.raises(ConfigError, match="has no experiments"):
        ScreenTask(**{**{f.name: getattr(task, f.name) for f in dataclasses.fields(task)}, "stop": task.first})


def test_experiments_done_counts_done_chunks_and_the_progress_of_running_ones(tmp_path, conn, write_screen):
    from types import SimpleNamespace

    from flyhpc.bundle import BundlePaths
    from flyhpc.screens.task import experiments_done, progress_path

    screen = load_screen(str(write_screen(SCREEN)))
    tasks = plan_tasks(screen, plan_experiments(screen, conn), "ab" * 32, run_label="s", results_root=tmp_path,
                       connectome="auto", connectome_digest="", n_edges=1, max_per_task=100)
    done, running, waiting = tasks
    path = progress_path(BundlePaths(tmp_path, "s").parquet(running))
    path.parent.mkdir(parents=True)
    path.write_text("37 100\n")
    rows = [SimpleNamespace(key=t.key, state=s) for t, s in zip(tasks, ("done", "running", "pending"))]
    by_key = {t.key: t for t in tasks}
    assert experiments_done(tmp_path, "s", rows, by_key) == (137, 300)
    path.write_text("garbage")
    assert experiments_done(tmp_path, "s", rows, by_key) == (100, 300)


def test_chunks_are_costed_as_the_backend_asks(conn, write_screen):
    """pytorch (the experiment hook): one build per chunk, then each experiment's trials; brian2cpp (no hook): a
    whole run, build included, per experiment; native: the calibrated model whatever the profile says."""
    from flyhpc import backends
    from flyhpc.screens.cost import chunk_costs

    screen = load_screen(str(write_screen(SCREEN)))
    exps = plan_experiments(screen, conn)
    assert backends.get("pytorch").reconfigurable() and not backends.get("brian2cpp").reconfigurable()

    def wall(t_run_s, n_run):  # a profile's time model: 60 s start and build, 6 s per 1-s trial
        return 60.0 + n_run * (1.0 + 5.0 * t_run_s)

    hook = _tasks(dataclasses.replace(screen, backend="pytorch"), exps, run_wall_s=wall)
    assert [t.n_experiments for t in hook] == [90, 90, 90, 30]  # 60 s + 90 x 6 s = 600 s
    assert [t.cost_s for t in hook] == pytest.approx([600.0, 600.0, 600.0, 240.0])
    hookless = _tasks(dataclasses.replace(screen, backend="brian2cpp"), exps, run_wall_s=wall)
    assert [t.n_experiments for t in hookless] == [9] * 33 + [3]  # 3 s setup + 9 x 66 s = 597 s
    assert hookless[0].cost_s == pytest.approx(CostModel().task_setup_s + 9 * 66.0)
    native = _tasks(screen, exps, run_wall_s=wall)
    assert [(t.first, t.stop, t.cost_s) for t in native] == [(t.first, t.stop, t.cost_s) for t in _tasks(screen, exps)]
    with pytest.raises(ConfigError, match="screen cost model 'per-neuron'"):
        chunk_costs("per-neuron", [], 1.0, 1, 1, wall)
