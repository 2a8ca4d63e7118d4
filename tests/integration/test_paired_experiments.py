"""Issue 17's scenario: experiments that drive the same neurons get the same input trains (drive version 2).

On a generated 300-neuron network where one neuron has no outgoing synapse: silencing its outgoing synapses
changes nothing, so `flyhpc run` gives the very spikes of the unsilenced run and a screen gives it effect 0
exactly, ranked below a neuron whose silencing really changes the network; `flyhpc compare runs` of the two
runs says "identical". Before version 2 every experiment drew its own trains, and the no-effect experiment
showed large "effects" of pure noise.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from flyhpc import worker
from flyhpc.bundle import BundlePaths
from flyhpc.cli import cli
from flyhpc.cluster.profiles import load_profile
from flyhpc.cluster.submission import record_plan
from flyhpc.collect import collect as collect_label
from flyhpc.screens.plan_file import write_plan
from flyhpc.screen_submission import plan_screen
from flyhpc.results.spikes import read_spikes
from tests.integration.test_quick_grid import write_tiny_connectome

QUIET = 299  # no outgoing synapse in the test network
RUN = ["--backend", "native", "--by", "index", "--activate", "0,1,2,3,4", "--rate", "200", "--t-run", "0.5",
       "--n-run", "8", "--seed", "21", "--threads", "1", "--silence-mode", "outgoing"]


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    folder = write_tiny_connectome(tmp_path_factory.mktemp("paired") / "conn", n_neurons=300, n_edges=5000, seed=2)
    edges = pd.read_parquet(folder / "Connectivity_783.parquet")
    edges[edges["Presynaptic_Index"] != QUIET].to_parquet(folder / "Connectivity_783.parquet")
    return folder


def _run(network, out, *extra):
    res = CliRunner().invoke(cli, ["run", "--connectome", str(network), "--out", str(out), *RUN, *extra],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return read_spikes(out / "native_t0.5s_n8.parquet")


def _most_changed_neuron(base: pd.DataFrame) -> int:
    counts = base[~base["neuron_index"].isin(range(5))].groupby("neuron_index").size()
    return int(counts.idxmax())


def test_no_effect_silencing_is_identical_in_run_and_zero_in_a_screen(tmp_path, network):
    base = _run(network, tmp_path / "base")
    quiet = _run(network, tmp_path / "quiet", "--silence", str(QUIET))
    assert len(base) > 1000
    cols = ["trial", "time_ms", "neuron_index"]
    assert quiet[cols].equals(base[cols])  # not one spike differs
    record = json.loads((tmp_path / "quiet" / "native_t0.5s_n8.json").read_text())
    assert record["drive_version"] == 2

    res = CliRunner().invoke(cli, ["compare", "runs", str(tmp_path / "base" / "native_t0.5s_n8.parquet"),
                                   str(tmp_path / "quiet" / "native_t0.5s_n8.parquet")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "identical" in res.output and "not identical" not in res.output

    busy = _most_changed_neuron(base)
    screen = tmp_path / "s.toml"
    screen.write_text(textwrap.dedent(f"""
        [screen]
        t_run_s = 0.5
        n_run = 8
        seed = 21
        by = "index"
        silence_mode = "outgoing"
        [base]
        activate = [0, 1, 2, 3, 4]
        rate_hz = 200.0
        [axes]
        silence_each = [{QUIET}, {busy}]
        """))
    sub = plan_screen(str(screen), "paired", tmp_path / "results", load_profile("local"), connectome=str(network),
                      keep_spikes=True)
    tasks = [t for a in sub.submit_plan.arrays for t in a.tasks]
    write_plan(BundlePaths(tmp_path / "results", "paired").screen_plan, sub.plan)
    record_plan(tasks)
    for task in tasks:
        worker.run(task)
    assert collect_label(tmp_path / "results", "paired").exit_code == 0
    paths = BundlePaths(tmp_path / "results", "paired")
    effects = pd.read_csv(paths.screen_effects, keep_default_na=False).set_index("experiment_name")
    no_effect, real = effects.loc[f"s: silence {QUIET}"], effects.loc[f"s: silence {busy}"]
    assert no_effect["effect_hz"] == 0.0 and no_effect["effect_se_hz"] == 0.0 and no_effect["n_significant"] == 0
    assert no_effect["own_change_hz"] == 0.0 and no_effect["top_neuron"] == ""
    assert real["n_significant"] > 0 and real["significant_effect_hz"] > 0 and real["rank"] < no_effect["rank"]
    assert real["rank"] == 1
    # the chunk's spikes of the no-effect experiment equal the base's, which equal `flyhpc run`'s
    spikes = pd.concat([pd.read_parquet(paths.parquet(t).parent / f"{t.stem}_spikes.parquet") for t in tasks])
    by_key = {k: g[["trial", "time_ms", "neuron_index"]].reset_index(drop=True)
              for k, g in spikes.groupby("experiment_key", observed=True)}
    keys = pd.read_csv(paths.screen_experiments, dtype={"experiment_key": str}).set_index("experiment_name")
    base_key, quiet_key = keys.loc["s: base", "experiment_key"], keys.loc[f"s: silence {QUIET}", "experiment_key"]
    assert by_key[quiet_key].equals(by_key[base_key])
    assert np.array_equal(by_key[base_key]["time_ms"].to_numpy(), base["time_ms"].to_numpy())
