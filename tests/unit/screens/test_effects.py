"""The effect ranking of a screen, against values worked out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from flyhpc.screens.effects import EFFECT_COLUMNS, effect_table

EXPERIMENTS = pd.DataFrame({"experiment_key": ["b", "x", "y"], "experiment_name": ["base", "X", "Y"],
                            "spikes": [10, 4, 30], "active_neurons": [2, 1, 3]})
RATES = pd.DataFrame({"experiment_key": ["b", "b", "x", "y", "y", "y"], "neuron_index": [1, 2, 2, 1, 2, 3],
                      "flywire_id": [11, 12, 12, 11, 12, 13], "rate_mean_hz": [5.0, 2.0, 4.0, 5.0, 2.0, 9.0]})


def test_every_neuron_compared_with_the_base():
    table = effect_table(EXPERIMENTS, RATES, base_key="b")
    assert list(table.columns) == list(EFFECT_COLUMNS)
    rows = table.set_index("experiment_key")
    # X: neuron 1 went 5 -> 0, neuron 2 went 2 -> 4: |−5| + |2| = 7, top neuron 11 (−5)
    assert rows.loc["x", "effect_hz"] == 7.0 and rows.loc["x", "top_neuron"] == "11"
    assert rows.loc["x", "top_change_hz"] == -5.0
    # Y: only neuron 3 appeared at 9 Hz
    assert rows.loc["y", "effect_hz"] == 9.0 and rows.loc["y", "top_neuron"] == "13"
    assert rows.loc["b", "effect_hz"] == 0.0 and rows.loc["b", "top_neuron"] == ""
    assert list(table["experiment_key"]) == ["y", "x", "b"] and list(table["rank"]) == [1, 2, 3]
    assert (table["measured_on"] == "all neurons").all()


def test_without_a_base_the_effect_is_the_evoked_rate():
    table = effect_table(EXPERIMENTS, RATES, base_key="").set_index("experiment_key")
    assert table.loc["y", "effect_hz"] == 16.0 and table.loc["b", "effect_hz"] == 7.0


def test_readout_neurons_only():
    readout = pd.DataFrame({"experiment_key": ["b", "x", "y"], "experiment_name": ["base", "X", "Y"],
                            "MN9": [1.0, 3.5, 1.0], "far": [0.0, 0.0, 0.5]})
    table = effect_table(EXPERIMENTS, RATES, base_key="b", readout=readout)
    assert list(table["experiment_key"]) == ["x", "y", "b"]
    x = table.iloc[0]
    assert x["effect_hz"] == pytest.approx(2.5) and x["top_neuron"] == "MN9" and x["top_change_hz"] == 2.5
    assert table.iloc[1]["top_neuron"] == "far" and (table["measured_on"] == "readout").all()
