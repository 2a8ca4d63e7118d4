"""`flyhpc.screen` and `flyhpc.open_bundle`: a screen run here and read back, a benchmark label read lazily, and
`verify()` giving `flyhpc verify`'s verdict."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

import flyhpc
from flyhpc.errors import ConfigError
from flyhpc.presets import MN9, NEURON_SETS

NECESSITY = """
[screen]
t_run_s = 0.2
n_run = 2
silence_mode = "outgoing"
readout = [720575940660219265]
[base]
preset = "sugar"
[axes]
silence_each = { most_active = 3 }
"""
SUFFICIENCY = """
[screen]
t_run_s = 0.2
n_run = 2
readout = [720575940660219265]
[axes]
activate_each = { most_active = 3, of = "sugar" }
rate_hz = [50.0, 100.0]
"""


@pytest.fixture(scope="module")
def necessity(small_connectome, tmp_path_factory):
    folder = tmp_path_factory.mktemp("screens")
    (folder / "nec.toml").write_text(NECESSITY)
    return flyhpc.screen(folder / "nec.toml", "nec", results_root=folder / "results", connectome=small_connectome,
                         parallel=2)


def test_screen_runs_here_and_reads_back(necessity, small_connectome):
    b = necessity
    assert b.kind == "screen" and set(b.tasks["state"]) == {"done"}
    s = b.screen
    assert len(s.experiments) == 4 and s.experiments["experiment_name"].iloc[0] == "nec: base"
    assert len(s.effects) == 4 and {"significant_effect_hz", "effect_se_hz", "own_change_hz"} <= set(s.effects)
    assert set(s.neuron_effects["experiment_key"]) <= set(s.experiments["experiment_key"])
    assert list(s.readout.columns) == ["experiment_key", "experiment_name", str(MN9)]
    base = s.rates_of("nec: base")
    assert set(NEURON_SETS["sugar"].ids) <= set(base["flywire_id"]) and (base["experiment_name"] == "nec: base").all()
    with pytest.raises(ConfigError, match="has no experiment 'nope'"):
        s.rates_of("nope")
    assert s.paper["experiment"].tolist() == ["nec: base"] and s.paper["paper_hz"].tolist() == [93.2667]
    assert s.synthetic and "SYNTHETIC" in s.paper["note"].iloc[0]
    with pytest.raises(ConfigError, match="holds a screen, not benchmark tasks"):
        b.benchmark


def test_verify_is_flyhpc_verify(necessity):
    from flyhpc.cli import cli

    assert necessity.verify().ok and necessity.verify().exit_code == 0
    root = necessity.paths.results_root
    (root / "nec" / "effects.csv").write_text("damaged\n")
    report = flyhpc.open_bundle("nec", root).verify()
    cli_code = CliRunner().invoke(cli, ["verify", "nec", "--results-root", str(root)]).exit_code
    assert report.exit_code == cli_code == 5 and any("effects.csv" in c for c in report.corrupt)
    assert necessity.collect().exit_code == 0 and necessity.verify().ok  # collect rewrites the merged files


def test_sufficiency_ranks_by_a_preset_run(small_connectome, tmp_path):
    """activate_each = {most_active = 3, of = "sugar"}: the 3 most active neurons of a sugar run (GRNs included,
    as the paper's top 200), each driven alone at each rate; no base experiment."""
    (tmp_path / "suf.toml").write_text(SUFFICIENCY)
    b = flyhpc.screen(tmp_path / "suf.toml", "suf", results_root=tmp_path / "results", connectome=small_connectome,
                      parallel=1)
    exps = b.screen.experiments
    assert len(exps) == 6 and exps["experiment_name"].str.contains("Hz").all()
    sugar = flyhpc.run(experiment="sugar", n_run=2, t_run_s=0.2, connectome=small_connectome)
    top3 = sugar.rates.sort_values(["spikes", "neuron_index"], ascending=[False, True])["flywire_id"].head(3)
    named = {int(n.split("activate ")[1].split(",")[0]) for n in exps["experiment_name"]}
    assert named == set(top3.tolist())


def test_open_bundle_of_a_benchmark_label(small_connectome, tmp_path, monkeypatch):
    from flyhpc.cli import cli

    monkeypatch.chdir(tmp_path)
    args = ["bench", "--grid", "quick", "--backend", "native", "--t-run", "0.1", "--n-run", "2", "--experiment",
            "sugar", "--run-label", "b1", "--connectome", str(small_connectome), "--executor", "inline"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    b = flyhpc.open_bundle("b1")
    assert b.kind == "benchmark" and b.tasks["state"].tolist() == ["done"]
    assert b.benchmark[["backend_key", "n_run", "t_run"]].values.tolist() == [["native", 2, 0.1]]
    spikes = b.spikes("native_t0.1s_n2")
    assert len(spikes) == b.benchmark["spikes"].iloc[0] and spikes.equals(b.spikes("round_01/native_t0.1s_n2"))
    ran = flyhpc.run(experiment="sugar", n_run=2, t_run_s=0.1, connectome=small_connectome)  # round 1, seed 0
    pd.testing.assert_frame_equal(b.rates(b.tasks["task_key"].iloc[0]), ran.rates)
    with pytest.raises(ConfigError, match="has no task 'native_t9.0s_n2'; e.g. round_01/native_t0.1s_n2"):
        b.spikes("native_t9.0s_n2")
    with pytest.raises(ConfigError, match="holds benchmark tasks, not a screen"):
        b.screen
    with pytest.raises(ConfigError, match="unknown run label 'nope'"):
        flyhpc.open_bundle("nope")
