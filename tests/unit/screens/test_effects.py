"""Paired effects of a screen, against values worked out by hand (3 trials of 1 s: counts are rates in Hz)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from flyhpc.screens.effects import ALPHA, EFFECT_COLUMNS, NEURON_EFFECT_COLUMNS, Readout, paired_effects
from flyhpc.results.screen_tables import TIDY_SCHEMA

EXPERIMENTS = pd.DataFrame({"experiment_key": ["b", "x", "y", "z"], "experiment_name": ["base", "X", "Y", "Z"],
                            "spikes": [0, 0, 0, 0], "active_neurons": [0, 0, 0, 0]})


def _rates(rows):
    """rows: (experiment_key, neuron_index, role, [per-trial counts]); FlyWire id = 10 + index."""
    keys, neurons, roles, counts = zip(*rows)
    counts = [list(c) for c in counts]
    arr = np.array(counts, np.int64)
    return pa.table({
        "experiment_key": list(keys), "experiment_name": list(keys), "neuron_index": pa.array(neurons, pa.int32()),
        "flywire_id": pa.array([10 + n for n in neurons], pa.int64()), "spikes": arr.sum(axis=1),
        "rate_mean_hz": arr.mean(axis=1), "rate_std_hz": arr.std(axis=1, ddof=1),
        "n_trials": pa.array([3] * len(rows), pa.int32()), "role": list(roles),
        "trial_spikes": pa.array(counts, pa.list_(pa.int32()))}, schema=TIDY_SCHEMA)


RATES = _rates([
    ("b", 1, "driven", [50, 52, 49]), ("b", 2, "", [5, 6, 7]), ("b", 3, "", [2, 0, 1]),
    # x silences neuron 3 ("both": no spikes, its own row says so) and shifts neuron 2 by exactly +3 every trial
    ("x", 1, "driven", [50, 52, 49]), ("x", 2, "", [8, 9, 10]), ("x", 3, "silenced", [0, 0, 0]),
    # y: neuron 2 noisy (+4, -3, +1), neuron 4 appears (1, 0, 2)
    ("y", 1, "driven", [50, 52, 49]), ("y", 2, "", [9, 3, 8]), ("y", 3, "", [2, 0, 1]), ("y", 4, "", [1, 0, 2]),
    # z: identical to the base (a silenced neuron 5 that never spiked and reaches nobody)
    ("z", 1, "driven", [50, 52, 49]), ("z", 2, "", [5, 6, 7]), ("z", 3, "", [2, 0, 1]), ("z", 5, "silenced", [0, 0, 0]),
])


def _effects(**kw):
    return paired_effects(EXPERIMENTS, RATES, base_key="b", n_run=3, t_run_s=1.0, **kw)


def test_paired_differences_standard_errors_and_tests():
    effects, neurons = _effects()
    assert list(effects.columns) == list(EFFECT_COLUMNS) and list(neurons.columns) == list(NEURON_EFFECT_COLUMNS)
    n = neurons.set_index(["experiment_key", "neuron_index"])
    # x, neuron 2: +3 in every trial: no spread, a certain change (p 0)
    assert n.loc[("x", 2), "change_hz"] == 3.0 and n.loc[("x", 2), "change_se_hz"] == 0.0
    assert n.loc[("x", 2), "p"] == 0.0 and n.loc[("x", 2), "significant"]
    assert ("x", 3) not in n.index and ("x", 1) not in n.index  # its own (silenced) and driven neurons: not measured
    # y, neuron 2: differences 4, -3, 1 -> scipy's paired t-test
    ref = stats.ttest_rel([9, 3, 8], [5, 6, 7])
    assert n.loc[("y", 2), "change_hz"] == pytest.approx(2 / 3)
    assert n.loc[("y", 2), "change_se_hz"] == pytest.approx(np.std([4, -3, 1], ddof=1) / np.sqrt(3))
    assert n.loc[("y", 2), "t"] == pytest.approx(ref.statistic) and n.loc[("y", 2), "p"] == pytest.approx(ref.pvalue)
    assert n.loc[("y", 4), "base_rate_hz"] == 0.0 and n.loc[("y", 4), "rate_hz"] == pytest.approx(1.0)
    # z: every difference is 0: p 1, nothing significant
    assert (n.loc["z", "change_hz"] == 0).all() and (n.loc["z", "p"] == 1.0).all()


def test_ranking_by_significant_effect_and_own_change_apart():
    effects, _ = _effects()
    rows = effects.set_index("experiment_key")
    x, y, z = rows.loc["x"], rows.loc["y"], rows.loc["z"]
    # x: neuron 2 (+3, certain) measured; neuron 3 is its own: base 1 Hz lost, reported apart
    assert x["effect_hz"] == 3.0 and x["n_tested"] == 1 and x["n_significant"] == 1
    assert x["significant_effect_hz"] == 3.0 and x["own_change_hz"] == pytest.approx(-1.0)
    assert x["top_neuron"] == "12" and x["top_change_hz"] == 3.0 and x["top_change_se_hz"] == 0.0
    # y: larger summed change (2/3 + 0 + 1) but nothing significant: ranked below x
    assert y["effect_hz"] == pytest.approx(2 / 3 + 1.0) and y["n_significant"] == 0
    assert y["significant_effect_hz"] == 0.0 and y["own_change_hz"] == 0.0
    # z: exactly no effect
    assert z["effect_hz"] == 0.0 and z["effect_se_hz"] == 0.0 and z["n_significant"] == 0 and z["top_neuron"] == ""
    assert list(effects["experiment_key"]) == ["x", "y", "b", "z"] and list(effects["rank"]) == [1, 2, 3, 4]
    assert (effects["measured_on"] == "all neurons").all()


def test_benjamini_hochberg_within_each_experiment():
    _, neurons = _effects()
    y = neurons[neurons["experiment_key"] == "y"].sort_values("p")
    p = y["p"].to_numpy()
    m = len(p)
    expected = np.minimum.accumulate((p * m / np.arange(1, m + 1))[::-1])[::-1].clip(max=1)
    assert y["q"].to_numpy() == pytest.approx(expected)
    assert ((neurons["q"] < ALPHA) == neurons["significant"]).all()


def test_without_a_base_the_effect_is_the_evoked_rate():
    effects, _ = paired_effects(EXPERIMENTS, RATES, base_key="", n_run=3, t_run_s=1.0)
    rows = effects.set_index("experiment_key")
    assert rows.loc["y", "effect_hz"] == pytest.approx(20 / 3 + 1 + 1)  # neurons 2, 3, 4; driven neuron 1 is own
    assert rows.loc["y", "own_change_hz"] == pytest.approx(151 / 3)


def test_readout_neurons_only_with_their_labels():
    effects, neurons = _effects(readout=Readout(values=(12, 14), labels=("MN9", "far"), by="id"))
    assert set(neurons["label"]) <= {"MN9", "far"} and (effects["measured_on"] == "readout").all()
    x = effects.set_index("experiment_key").loc["x"]
    assert x["top_neuron"] == "MN9" and x["effect_hz"] == 3.0
    y = effects.set_index("experiment_key").loc["y"]
    assert y["top_neuron"] == "far" and y["effect_hz"] == pytest.approx(2 / 3 + 1)


def test_one_trial_cannot_be_tested_and_ranks_by_effect():
    one = pa.table({name: RATES.column(name) for name in TIDY_SCHEMA.names if name != "trial_spikes"} |
                   {"trial_spikes": pa.array([[c[0]] for c in RATES.column("trial_spikes").to_pylist()],
                                             pa.list_(pa.int32()))})
    effects, neurons = paired_effects(EXPERIMENTS, one, base_key="b", n_run=1, t_run_s=1.0)
    assert neurons["p"].isna().all() and effects["significant_effect_hz"].isna().all()
    assert list(effects["experiment_key"])[0] == "y"  # |9-5| + |1| = 5 > x's 3
