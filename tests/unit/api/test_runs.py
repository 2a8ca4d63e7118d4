"""`flyhpc.run` and `flyhpc.connectome`: the files of `flyhpc run`, nothing written unless asked, the CLI's errors."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import flyhpc
from flyhpc.errors import ConfigError
from flyhpc.presets import MN9, NEURON_SETS


@pytest.fixture(scope="module")
def sugar(small_connectome):
    return flyhpc.run(experiment="sugar", n_run=3, t_run_s=0.2, seed=4, connectome=small_connectome)


def test_run_gives_what_flyhpc_run_writes(sugar, small_connectome, tmp_path, monkeypatch):
    """The same pipeline: the saved parquet and rates CSV are byte for byte those of `flyhpc run`."""
    from flyhpc.cli import cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--backend", "native", "--experiment", "sugar", "--n-run", "3",
                                       "--t-run", "0.2", "--seed", "4", "--connectome", str(small_connectome),
                                       "--out", "cli"])
    assert result.exit_code == 0, result.output
    saved = sugar.save(tmp_path / "api")
    assert sorted(p.name for p in saved) == sorted(p.name for p in (tmp_path / "cli").iterdir())
    for path in saved:
        if path.suffix != ".json":
            assert path.read_bytes() == (tmp_path / "cli" / path.name).read_bytes(), path.name
    assert list(sugar.spikes.columns) == ["t", "time_ms", "trial", "neuron_index", "flywire_id", "exp_name"]
    assert len(sugar.spikes) == sugar.record["spikes"] > 0 and sugar.record["backend"] == "native"
    assert sugar.rates["rate_mean_hz"].is_monotonic_decreasing
    assert set(NEURON_SETS["sugar"].ids) <= set(sugar.rates["flywire_id"])
    assert sugar.synthetic and "SYNTHETIC" in repr(sugar)


def test_run_writes_nothing_unless_saved(small_connectome, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = {p.name for p in Path(tempfile.gettempdir()).glob("flyhpc-run-*")}
    r = flyhpc.run(activate=NEURON_SETS["p9"].ids, rate_hz=100.0, t_run_s=0.1, connectome=small_connectome)
    assert list(tmp_path.iterdir()) == []
    assert {p.name for p in Path(tempfile.gettempdir()).glob("flyhpc-run-*")} == before
    paths = r.save(tmp_path / "out")
    with pytest.raises(ConfigError, match="results exist already: .*use force=True"):
        r.save(tmp_path / "out")
    assert r.save(tmp_path / "out", force=True) == paths and all(p.stat().st_size for p in paths)


def test_rates_paper_and_silencing(sugar, small_connectome):
    top = int(sugar.rates.loc[~sugar.rates.flywire_id.isin(NEURON_SETS["sugar"].ids), "flywire_id"].iloc[0])
    assert sugar.rate_of(top).iloc[0] > 0
    assert sugar.rate_of([MN9]).index.tolist() == [MN9]
    paper = sugar.paper  # sugar at 200 Hz: the paper's MN9 rate beside ours
    assert paper[["neuron", "flywire_id", "paper_hz"]].values.tolist() == [["MN9", MN9, 93.2667]]
    assert paper["ours_hz"].iloc[0] == sugar.rate_of(MN9).iloc[0] and "SYNTHETIC" in paper["note"].iloc[0]
    both = flyhpc.run(experiment="sugar", silence=top, n_run=3, t_run_s=0.2, seed=4, connectome=small_connectome)
    out = flyhpc.run(experiment="sugar", silence=[top], silence_mode="outgoing", n_run=3, t_run_s=0.2, seed=4,
                     connectome=small_connectome)
    assert both.record["silence_mode"] == "both" and out.record["silence_mode"] == "outgoing"
    assert both.rate_of(top).iloc[0] == 0.0 and out.rate_of(top).iloc[0] > 0  # outgoing: it still spikes
    assert both.paper.empty and out.paper.empty  # the paper published no number for these


def test_errors_are_the_clis(small_connectome):
    with pytest.raises(ConfigError, match="FlyWire id 123 not in the connectome") as info:
        flyhpc.run(activate=[123], rate_hz=10.0, t_run_s=0.1, connectome=small_connectome)
    assert info.value.exit_code == 2
    with pytest.raises(ConfigError, match="unknown experiment 'salt'; known: bitter, ir94e, p9, sugar, water"):
        flyhpc.run(experiment="salt")
    with pytest.raises(ConfigError, match="not both"):
        flyhpc.run(experiment="sugar", activate=[1])
    with pytest.raises(ConfigError, match="need a rate"):
        flyhpc.run(activate=[1])
    with pytest.raises(flyhpc.errors.UnknownBackendError, match="brian2-cuda"):
        flyhpc.run(experiment="sugar", backend="brian2-cuda", connectome=small_connectome)


def test_connectome_lookups(small_connectome):
    c = flyhpc.connectome(small_connectome)
    assert c.synthetic and c.n_neurons == len(c.flywire_ids) and MN9 in c and 5 not in c
    rows = c.index_of(NEURON_SETS["sugar"].ids)
    assert c.id_of(rows).tolist() == list(NEURON_SETS["sugar"].ids)
    assert c.index_of(MN9).tolist() == [int(np.searchsorted(c.flywire_ids, MN9))]
    with pytest.raises(ConfigError, match="FlyWire id 7 not in"):
        c.index_of([7, MN9])
    with pytest.raises(ConfigError, match="index -1 out of range"):
        c.id_of(-1)
    edges = c.edges()
    assert len(edges) == c.n_edges and (edges["synapses"] != 0).all()
    assert c.neurons["out_degree"].sum() == c.n_edges == c.neurons["in_degree"].sum()
