"""The chunk-size cost model: estimates that grow with what an experiment does, chunks that fill a task."""

from __future__ import annotations

import math

import pytest

from flyhpc.errors import ConfigError
from flyhpc.model import PRESETS, Experiment
from flyhpc.screens.cost import FULL_SCALE_EDGES, CostModel, experiment_cost_s, plan_chunks


def test_estimates_scale_with_trials_drive_edges_and_silencing():
    model = CostModel()
    sugar = PRESETS["sugar"]
    one = experiment_cost_s(sugar, 1.0, 1)
    assert experiment_cost_s(sugar, 1.0, 10) == pytest.approx(10 * one)
    assert experiment_cost_s(sugar, 1.0, 1, FULL_SCALE_EDGES // 2) < one
    single = Experiment(name="a", activate=(1,), rate_hz=200.0)
    assert experiment_cost_s(single, 1.0, 1) < one / 5  # sugar drives 21 neurons
    for mode in ("both", "outgoing"):
        silenced = Experiment(name="s", activate=sugar.activate, rate_hz=200.0, silence=(2,), silence_mode=mode)
        assert experiment_cost_s(silenced, 1.0, 1) == pytest.approx(one + model.silence_s)
    assert one == pytest.approx(model.quiet_trial_second_s + 21 * 200 * model.drive_event_s + model.trial_overhead_s)


def test_chunks_fill_the_budget_in_order():
    chunks = plan_chunks([1.0] * 10, target_task_s=4.5, task_setup_s=0.5)
    assert chunks == [range(0, 4), range(4, 8), range(8, 10)]
    assert plan_chunks([], 10.0, 1.0) == []
    # an experiment costlier than a task gets a chunk of its own; every experiment is in exactly one chunk
    chunks = plan_chunks([1.0, 50.0, 1.0, 1.0], target_task_s=10.0, task_setup_s=1.0)
    assert chunks == [range(0, 1), range(1, 2), range(2, 4)]
    atlas = [experiment_cost_s(Experiment(name="a", activate=(1,), rate_hz=200.0), 1.0, 1)] * 138_639
    sizes = [len(c) for c in plan_chunks(atlas, target_task_s=300.0)]
    assert sum(sizes) == 138_639 and max(sizes) * atlas[0] <= 300.0 - CostModel().task_setup_s
    assert len(sizes) == math.ceil(138_639 / max(sizes))


@pytest.mark.parametrize("costs,target,setup,message", [
    ([1.0], 1.0, 1.0, "must exceed the task setup"),
    ([1.0, -1.0], 10.0, 1.0, "experiment 1: cost must be a finite number of seconds >= 0, got -1.0"),
    ([math.nan], 10.0, 1.0, "experiment 0: cost must be"),
])
def test_bad_inputs_are_named(costs, target, setup, message):
    with pytest.raises(ConfigError, match=message):
        plan_chunks(costs, target, setup)


def test_a_huge_cheap_screen_is_cut_by_the_experiment_ceiling_too():
    # 1,000,000 experiments that all fit one task's time still make chunks of at most max_experiments each
    ceiling = CostModel().max_experiments
    chunks = plan_chunks([1e-6] * 1_000_000, target_task_s=600.0)
    assert len(chunks) == math.ceil(1_000_000 / ceiling) and {len(c) for c in chunks} == {ceiling}
    assert chunks[0].start == 0 and chunks[-1].stop == 1_000_000
    assert plan_chunks([1.0] * 5, target_task_s=100.0, max_experiments=2) == [range(0, 2), range(2, 4), range(4, 5)]
