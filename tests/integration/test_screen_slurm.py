"""A small screen through the real local Slurm, as a user runs it: `flyhpc screen plan`, `screen submit --watch`,
`collect`, `verify`, `sha256sum -c`; its chunked rates equal one-by-one `flyhpc run`; a lost chunk is found and
resubmitted alone; a label refuses another screen.

Needs the loopback cluster of scripts/local-slurm/start.sh (skipped with the reason otherwise; CI sets
FLYHPC_REQUIRE_SLURM=1, which turns that skip into a failure).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.integration.test_quick_grid import write_tiny_connectome
from tests.integration.test_slurm_faults import _REASON

pytestmark = [pytest.mark.slurm] + ([pytest.mark.skip(reason=_REASON)] if _REASON else [])

SCREEN = """
    [screen]
    description = "CI screen: a base drive, each of three neurons silenced, two rates"
    t_run_s = 0.2
    n_run = 2
    seed = 1
    by = "index"
    silence_mode = "outgoing"
    readout = [285, 290, 637]

    [base]
    activate = [0, 1, 2, 3, 4]
    rate_hz = 150.0

    [axes]
    silence_each = [10, 20, 30]
    rate_hz = [100.0, 200.0]
"""

PROFILE = """
    [cluster]
    executor = "slurm"
    array_parallelism = 4
    max_array_size = 2
    min_time_min = 1
    max_time_min = 10
    python = "{python}"

    [default]
    cpus = 1
    mem_gb = 0.5
"""


def _flyhpc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flyhpc", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def screen_dir(tmp_path_factory):
    here = tmp_path_factory.mktemp("screen")
    write_tiny_connectome(here / "conn", n_neurons=2000, n_edges=60000, seed=3)
    (here / "ci.toml").write_text(textwrap.dedent(SCREEN))
    (here / "slurm.toml").write_text(textwrap.dedent(PROFILE).format(python=sys.executable))
    return here


def _submit(here: Path, label: str, *extra: str) -> subprocess.CompletedProcess:
    return _flyhpc(here, "screen", "submit", "ci.toml", "--profile", "slurm.toml", "--run-label", label,
                   "--connectome", "conn", "--max-per-task", "3", *extra)


def test_screen_plan_submit_collect_verify_and_equal_to_flyhpc_run(screen_dir):
    here = screen_dir
    planned = _flyhpc(here, "screen", "plan", "ci.toml", "--profile", "slurm.toml", "--run-label", "ci",
                      "--connectome", "conn", "--max-per-task", "3")
    assert planned.returncode == 0, planned.stderr
    assert "7 experiment(s)" in planned.stdout and "3 task(s) in 2 array(s)" in planned.stdout, planned.stdout
    assert not (here / "results").exists()  # plan writes nothing
    dry = _submit(here, "ci", "--dry-run")
    assert dry.returncode == 0 and "3 task(s) in 2 array(s)" in dry.stdout and not (here / "results").exists()

    submitted = _submit(here, "ci", "--watch")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    collected = _flyhpc(here, "collect", "ci")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert "largest paired effects on readout" in collected.stdout
    verified = _flyhpc(here, "verify", "ci")
    assert verified.returncode == 0 and "all good" in verified.stdout, verified.stdout
    label = here / "results" / "ci"
    subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=label, check=True)

    manifest = list(csv.DictReader(open(label / "manifest.csv")))
    assert [(r["first"], r["stop"], r["state"]) for r in manifest] == [("0", "3", "done"), ("3", "6", "done"),
                                                                        ("6", "7", "done")]
    experiments = pd.read_csv(label / "experiments.csv", dtype={"experiment_key": str})
    assert list(experiments["experiment_name"]) == ["ci: base", "ci: silence 10, 100 Hz", "ci: silence 10, 200 Hz",
                                                    "ci: silence 20, 100 Hz", "ci: silence 20, 200 Hz",
                                                    "ci: silence 30, 100 Hz", "ci: silence 30, 200 Hz"]
    readout = pd.read_csv(label / "readout.csv", dtype={"experiment_key": str})
    assert list(readout.columns) == ["experiment_key", "experiment_name", "285", "290", "637"]
    effects = pd.read_csv(label / "effects.csv", dtype={"experiment_key": str})
    ranked = list(zip(effects["significant_effect_hz"], effects["effect_hz"]))
    assert ranked == sorted(ranked, reverse=True) and len(effects) == 7  # significant effect first, then effect
    assert effects.loc[effects["experiment_name"] == "ci: base", "effect_hz"].item() == 0.0
    assert effects["effect_hz"].max() > 0  # some experiment moved the readout

    rates = pd.read_parquet(label / "screen.parquet")
    for name, rate, silence in (("ci: base", 150, None), ("ci: silence 20, 200 Hz", 200, 20)):
        out = here / "one-by-one" / name.replace(" ", "_").replace(",", "").replace(":", "")
        args = ["run", "--backend", "native", "--by", "index", "--activate", "0,1,2,3,4", "--rate", rate,
                "--silence-mode", "outgoing", "--t-run", "0.2", "--n-run", "2", "--seed", "1", "--connectome", "conn",
                "--out", out] + (["--silence", silence] if silence is not None else [])
        ran = _flyhpc(here, *args)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        spikes = pd.read_parquet(out / "native_t0.2s_n2.parquet")
        per_trial = spikes.groupby(["neuron_index", "trial"]).size().unstack(fill_value=0).reindex(columns=[0, 1],
                                                                                                     fill_value=0)
        mine = rates[(rates["experiment_name"] == name) & (rates["spikes"] > 0)].set_index("neuron_index").sort_index()
        assert list(mine.index) == list(per_trial.index)
        assert np.array_equal(mine["spikes"].to_numpy(), per_trial.sum(axis=1).to_numpy())
        assert np.allclose(mine["rate_mean_hz"].to_numpy(), (per_trial / 0.2).mean(axis=1).to_numpy(), rtol=0, atol=1e-9)
        assert np.allclose(mine["rate_std_hz"].to_numpy(), (per_trial / 0.2).std(axis=1, ddof=1).to_numpy(),
                           rtol=0, atol=1e-9)

    # a chunk lost after the fact: status and collect say so, resubmit reruns that chunk alone
    (label / "chunks" / "chunk_00001.json").unlink()
    assert _flyhpc(here, "status", "ci").returncode == 4
    incomplete = _flyhpc(here, "collect", "ci")
    assert incomplete.returncode == 4 and not (label / "screen.parquet").exists()
    assert "screen.parquet" not in (label / "checksums.sha256").read_text()
    again = _flyhpc(here, "resubmit", "ci")
    assert again.returncode == 0 and "1 task(s)" in again.stdout, again.stdout + again.stderr
    watched = _flyhpc(here, "status", "ci", "--watch", "--interval", "1")
    assert watched.returncode == 0, watched.stdout
    assert _flyhpc(here, "collect", "ci").returncode == 0
    assert pd.read_parquet(label / "screen.parquet").equals(rates)
    assert _flyhpc(here, "verify", "ci").returncode == 0


def test_a_screen_label_holds_one_plan(screen_dir):
    here = screen_dir
    first = _submit(here, "one", "--watch")
    assert first.returncode == 0, first.stdout + first.stderr
    plan = (here / "results" / "one" / "screen-plan.parquet").read_bytes()
    (here / "other.toml").write_text(textwrap.dedent(SCREEN).replace("seed = 1", "seed = 2"))
    other = _flyhpc(here, "screen", "submit", "other.toml", "--profile", "slurm.toml", "--run-label", "one",
                    "--connectome", "conn")
    assert other.returncode == 2 and "already holds other results" in other.stderr, other.stderr
    assert (here / "results" / "one" / "screen-plan.parquet").read_bytes() == plan  # nothing overwritten
    report = _flyhpc(here, "report", "one")
    assert report.returncode == 2 and "has no effects yet: run `flyhpc collect one`" in report.stderr, report.stderr
    again = _submit(here, "one")
    assert again.returncode == 0 and "every chunk of one is done" in again.stdout, again.stdout + again.stderr
