"""A chunk run in one process gives the spikes and rates of the same experiments run one by one with `flyhpc run`.

300-neuron generated network, 0.2 s x 2 trials: the base experiment and four silencing experiments (the two most
active neurons of the base run, two rates), in both silence modes, on native and pytorch (one network changed in
place per experiment: the backends' experiment hook), each compared spike for spike with the parquet of `flyhpc
run`, and rate for rate with `flyhpc.results.spikes.rates`; the same screen, smaller, on brian2cpp (no hook: a build per
experiment); then a single-neuron activation screen against `pipeline.run_experiment`. Checks the chunk's three
files and their metadata too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from flyhpc.bundle import file_stem
from flyhpc.cli import cli
from flyhpc.pipeline import run_experiment
from flyhpc.screens import load_screen, plan_experiments, run_chunk
from flyhpc.results.screen_tables import TIDY_COLUMNS
from flyhpc.results.spikes import SpikeTable, rates, read_spikes

SCREEN = """
[screen]
t_run_s = {t_run}
n_run = 2
seed = 3
backend = "{backend}"
by = "index"
silence_mode = "{mode}"
readout = "readout.csv"
[base]
activate = [0, 1]
rate_hz = 150.0
[axes]
silence_each = {{most_active = {n_silence}}}
rate_hz = {rates}
"""
# (backend, silence mode, t_run_s, most active neurons silenced one by one, rates): brian2cpp compiles per run
CASES = [("native", "both", 0.2, 2, [150.0, 300.0]), ("native", "outgoing", 0.2, 2, [150.0, 300.0]),
         ("pytorch", "both", 0.2, 2, [150.0, 300.0]), ("pytorch", "outgoing", 0.2, 2, [150.0, 300.0]),
         ("brian2cpp", "both", 0.05, 1, [150.0])]


def _spikes_of(frame: pd.DataFrame) -> SpikeTable:
    return SpikeTable.from_arrays(frame["trial"], np.rint(frame["time_ms"] / 0.1).astype(np.int64),
                                  frame["neuron_index"])


def _check_rates(tidy: pd.DataFrame, key: str, spikes: SpikeTable, conn, t_run_s: float, n_run: int,
                 experiment=None) -> None:
    """The chunk's rows of one experiment: the spiking neurons' rates as `flyhpc run` computes them, per-trial
    counts that add up, and a row for each neuron the experiment drives or silences (0 spikes where quiet)."""
    rows = tidy[tidy["experiment_key"] == key].reset_index(drop=True)
    mine = rows[rows["spikes"] > 0].reset_index(drop=True)
    want = rates(spikes, conn.flywire_ids, t_run_s, n_run).sort_values("neuron_index", ignore_index=True)
    assert mine["neuron_index"].tolist() == want["neuron_index"].tolist()
    for col in ("flywire_id", "spikes", "rate_mean_hz", "rate_std_hz"):
        np.testing.assert_array_equal(mine[col].to_numpy(), want[col].to_numpy(), err_msg=col)
    assert (rows["n_trials"] == n_run).all()
    per_trial = np.stack(rows["trial_spikes"].to_numpy())
    assert per_trial.shape == (len(rows), n_run) and (per_trial.sum(axis=1) == rows["spikes"]).all()
    if experiment is not None:
        roles = rows.set_index("neuron_index")["role"]
        assert set(roles[roles == "silenced"].index) == set(experiment.silence)  # by index in these screens
        assert set(roles[roles == "driven"].index) == set(experiment.activate)
        assert set(roles[~roles.index.isin(experiment.silence + experiment.activate)]) <= {""}


@pytest.mark.parametrize("backend,mode,t_run,n_silence,rates_hz", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_chunk_equals_flyhpc_run_one_by_one(tmp_path, conn_dir, conn, write_screen, backend, mode, t_run, n_silence,
                                            rates_hz):
    if backend != "native":
        pytest.importorskip({"pytorch": "torch", "brian2cpp": "brian2"}[backend])
    (tmp_path / "readout.csv").write_text("neuron_index,name\n0,D0\n150,far\n")
    screen = load_screen(str(write_screen(SCREEN.format(backend=backend, mode=mode, t_run=t_run,
                                                        n_silence=n_silence, rates=rates_hz))))
    exps = plan_experiments(screen, conn)
    n_exp = 1 + n_silence * len(rates_hz)
    assert len(exps) == n_exp and all(len(e.experiment.silence) == 1 for e in exps[1:])
    out = run_chunk(screen, exps, conn, tmp_path / "out", "chunk_000", keep_spikes=True, metadata={"chunk": "0"})
    assert out.n_experiments == n_exp and out.n_trials == 2 * n_exp and out.engine_s > 0
    assert out.total_s >= out.engine_s
    tidy = pd.read_parquet(out.files.rates)
    assert tuple(tidy.columns) == TIDY_COLUMNS
    meta = pq.read_schema(out.files.rates).metadata
    assert meta[b"flyhpc.silence_mode"] == mode.encode() and meta[b"chunk"] == b"0"
    assert meta[b"flyhpc.connectome_digest"] == conn.digest.encode()
    for exp in exps:
        e = exp.experiment
        args = ["run", "--backend", backend, "--connectome", conn_dir, "--by", "index",
                "--activate", ",".join(map(str, e.activate)), "--rate", e.rate_hz, "--silence-mode", mode,
                "--t-run", t_run, "--n-run", "2", "--seed", "3", "--threads", "1", "--out", tmp_path / exp.key]
        if e.silence:
            args += ["--silence", ",".join(map(str, e.silence))]
        res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        alone = _spikes_of(read_spikes(tmp_path / exp.key / f"{file_stem(backend, t_run, 2)}.parquet"))
        assert len(alone) > 0 and out.spikes[exp.key].equals(alone), exp.name
        _check_rates(tidy, exp.key, alone, conn, t_run, 2, e)
    summary = pd.read_csv(out.files.experiments)
    assert summary["experiment_key"].tolist() == [e.key for e in exps]
    assert summary["spikes"].tolist() == [len(out.spikes[e.key]) for e in exps]
    readout = pd.read_csv(out.files.readout)
    assert list(readout.columns) == ["experiment_key", "experiment_name", "D0", "far"]
    d0 = tidy[tidy["neuron_index"] == 0].set_index("experiment_key")["rate_mean_hz"]
    np.testing.assert_array_equal(readout["D0"].to_numpy(), d0.loc[readout["experiment_key"]].to_numpy())
    # the silenced neurons: quiet in "both"; in "outgoing" they still receive and spike
    silenced_spikes = [np.isin(out.spikes[e.key].neuron, e.experiment.silence).sum() for e in exps[1:]]
    assert (sum(silenced_spikes) == 0) == (mode == "both")


def test_single_neuron_activations_equal_run_experiment(tmp_path, conn_dir, conn, write_screen):
    screen = load_screen(str(write_screen("[screen]\nby = \"index\"\nt_run_s = 0.1\n[base]\nrate_hz = 200.0\n"
                                          "[axes]\nactivate_each = [2, 3, 4]\n")))
    exps = plan_experiments(screen, conn)
    assert [e.name for e in exps] == ["s: activate 2", "s: activate 3", "s: activate 4"]
    out = run_chunk(screen, exps, conn, tmp_path / "out", "c", keep_spikes=True)
    assert out.files.readout is None and not (tmp_path / "out" / "c_readout.csv").exists()
    tidy = pd.read_parquet(out.files.rates)
    for exp in exps:
        run_experiment(backend="native", experiment=exp.experiment, t_run_s=0.1, n_run=1, out_dir=tmp_path / exp.key,
                       connectome=str(conn_dir), data_dir=tmp_path, seed=0, n_threads=1)
        alone = _spikes_of(read_spikes(tmp_path / exp.key / "native_t0.1s_n1.parquet"))
        assert out.spikes[exp.key].equals(alone)
        _check_rates(tidy, exp.key, alone, conn, 0.1, 1, exp.experiment)
        assert tidy[tidy["experiment_key"] == exp.key]["rate_std_hz"].isna().all()  # one trial: no std
