"""The quick grid end to end through the CLI on a tiny FlyWire-format connectome.

`flyhpc bench` (brian2cpp plus every other quick-grid backend that can run here) -> records and
parquets in the seed's layout -> `collect` -> `sha256sum -c` and `verify` pass -> a second bench is
a no-op -> a damaged parquet is named by verify and repaired by bench -> compare finds the backends
spike-for-spike equal (same drive, same contract). Bad input changes nothing.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from flyhpc import backends, tasks
from flyhpc.bundle import BundlePaths

LABEL = "quick_ci"


def write_tiny_connectome(folder, n_neurons=40, n_edges=300, seed=1):
    """Completeness_783.csv + Connectivity_783.parquet with the FlyWire columns, tiny and excitable."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = (np.arange(n_neurons, dtype=np.int64) + 10_000) * 7
    pd.DataFrame({"": ids, "Completed": True}).to_csv(folder / "Completeness_783.csv", index=False)
    pre, post = rng.integers(0, n_neurons, n_edges), rng.integers(0, n_neurons, n_edges)
    count = rng.integers(1, 40, n_edges)
    sign = np.where(rng.random(n_edges) < 0.8, 1, -1)
    pd.DataFrame({"Presynaptic_ID": ids[pre], "Postsynaptic_ID": ids[post], "Presynaptic_Index": pre,
                  "Postsynaptic_Index": post, "Connectivity": count, "Excitatory": sign,
                  "Excitatory x Connectivity": count * sign}).to_parquet(folder / "Connectivity_783.parquet")
    return folder


def _usable(key: str) -> bool:
    try:
        return backends.get(key).probe().ok
    except Exception:  # noqa: BLE001 - unavailable here
        return False


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not _usable("brian2cpp"):
        pytest.skip("brian2cpp cannot run here")
    root = tmp_path_factory.mktemp("quick")
    conn = write_tiny_connectome(root / "conn")
    chosen = [b for b in tasks.load_grid("quick").backends if _usable(b)]
    mp = pytest.MonkeyPatch()
    mp.setenv("FLYHPC_BUILD_DIR", str(root / "builds"))
    mp.setenv("FLYHPC_THREADS", "1")
    mp.chdir(root)
    yield {"root": root, "conn": conn, "backends": chosen, "results": root / "results"}
    mp.undo()


def _cli(*args):
    from flyhpc.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _bench(env, *extra):
    args = ["bench", "--grid", "quick", "--t-run", "0.02", "--n-run", "1", "--n-run", "2", "--run-label", LABEL,
            "--results-root", env["results"], "--connectome", env["conn"], "--executor", "inline"]
    for b in env["backends"]:
        args += ["--backend", b]
    return _cli(*args, *extra)


@pytest.fixture(scope="module")
def ran(env):
    result = _bench(env)
    assert result.exit_code == 0, result.output
    return BundlePaths(env["results"], LABEL)


def test_bench_writes_the_seed_layout_and_collects(env, ran):
    n = 2 * len(env["backends"])
    parquets = sorted(p.name for p in ran.round_dir(1).glob("*.parquet"))
    assert parquets == sorted(f"{b}_t0.02s_n{k}.parquet" for b in env["backends"] for k in (1, 2))
    rows = list(csv.DictReader(open(ran.results_csv)))
    assert len(rows) == n and {r["status"] for r in rows} == {"success"}
    for row in rows:
        rec = json.loads((ran.label_dir / row["spike_path"]).with_suffix(".json").read_text())
        assert set(rec["phases_s"]) == {"load", "build", "setup", "sim", "collect", "write", "total"}
        assert rec["phases_s"]["total"] >= rec["phases_s"]["sim"] > 0
        assert int(row["spikes"]) == rec["spikes"] > 0 and rec["drive"] == "events"
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=ran.label_dir, check=True)
    assert _cli("verify", LABEL, "--results-root", env["results"]).exit_code == 0


def test_second_bench_is_a_no_op_and_collect_is_idempotent(env, ran):
    records = {p: p.read_bytes() for p in ran.record_files()}
    bundle = {p: p.read_bytes() for p in (ran.results_csv, ran.manifest, ran.checksums)}
    assert _bench(env).exit_code == 0
    assert {p: p.read_bytes() for p in records} == records
    assert _cli("collect", LABEL, "--results-root", env["results"]).exit_code == 0
    assert {p: p.read_bytes() for p in bundle} == bundle


def test_damaged_parquet_is_named_and_repaired(env, ran):
    target = ran.round_dir(1) / "brian2cpp_t0.02s_n1.parquet"
    good = target.read_bytes()
    target.write_bytes(good[: len(good) // 2])
    out = _cli("verify", LABEL, "--results-root", env["results"])
    assert out.exit_code == 5 and "brian2cpp_t0.02s_n1.parquet" in out.output
    assert _bench(env).exit_code == 0
    assert target.read_bytes() == good  # same drive, same spikes: byte-identical file
    assert _cli("verify", LABEL, "--results-root", env["results"]).exit_code == 0


def test_backends_agree_spike_for_spike(env, ran):
    if len(env["backends"]) < 2:
        pytest.skip("only brian2cpp can run here")
    out = _cli("compare", "pairs", "--run-label", LABEL, "--results-root", env["results"], "--t-run", "0.02",
               "--n-run", "1", "--n-run", "2")
    assert out.exit_code == 0, out.output
    rows = json.loads((ran.comparisons / "pairwise_summary.json").read_text())
    assert rows and all(r["timing_f1"] == 1.0 and r["spikes_a"] == r["spikes_b"] for r in rows)
    gt = _cli("compare", "ground-truth", "--run-label", LABEL, "--results-root", env["results"], "--t-run", "0.02",
              "--n-run", "2")
    assert gt.exit_code == 0, gt.output


@pytest.mark.parametrize("extra, message", [
    (["--run-label", "../x"], "run label"),
    (["--run-label", "a;b"], "run label"),
    (["--t-run", "-1"], "t_run"),
    (["--backend", "brian9"], "unknown backend 'brian9'"),
    (["--rounds", "1", "--round-start", "2"], "past the last round"),
    (["--experiment", "walking"], "unknown experiment"),
])
def test_bad_bench_input_changes_nothing(env, extra, message):
    before = sorted(p for p in env["root"].rglob("*") if "builds" not in p.parts)
    args = ["bench", "--grid", "quick", "--results-root", env["results"], "--connectome", env["conn"],
            "--run-label", "bad_input", *extra]
    out = _cli(*args)
    assert out.exit_code == 2 and message in out.output
    assert sorted(p for p in env["root"].rglob("*") if "builds" not in p.parts) == before


def test_unknown_label_for_collect_verify_compare(env):
    for args in (["collect", "nolabel"], ["verify", "nolabel"], ["compare", "pairs", "--run-label", "nolabel"]):
        out = _cli(*args, "--results-root", env["results"])
        assert out.exit_code == 2 and "unknown run label 'nolabel'" in out.output


def test_a_missing_connectome_is_refused_before_anything_runs(env):
    """bench and submit check inputs as `run` does: exit 2 naming the folder, no task file written."""
    for command in (["bench", "--executor", "inline"], ["submit", "--profile", "local"]):
        out = _cli(*command, "--grid", "quick", "--backend", "brian2cpp", "--t-run", "0.02", "--n-run", "1",
                   "--run-label", "failing", "--results-root", env["results"], "--connectome", env["root"] / "nowhere")
        assert out.exit_code == 2 and "nowhere" in out.output, out.output
        assert not (env["results"] / "failing").exists()


def test_an_unknown_neuron_is_refused_by_submit(env):
    out = _cli("submit", "--grid", "quick", "--backend", "native", "--experiment", "index:0,999@200",
               "--profile", "local", "--run-label", "badid", "--results-root", env["results"], "--connectome", env["conn"])
    assert out.exit_code == 2 and "999" in out.output, out.output
    assert not (env["results"] / "badid").exists()


def test_readme_main_flow_submit_watch_collect(env):
    """The README's main job on the tiny connectome: submit (local profile) returns at once, status --watch
    returns when every task has ended, then collect has every row."""
    label = "readme_flow"
    submitted = _cli("submit", "--grid", "quick", "--backend", "native", "--t-run", "0.02", "--n-run", "1",
                     "--n-run", "2", "--profile", "local", "--run-label", label, "--results-root", env["results"],
                     "--connectome", env["conn"])
    assert submitted.exit_code == 0, submitted.output
    watched = _cli("status", label, "--results-root", env["results"], "--watch", "--interval", "0.5")
    assert watched.exit_code == 0, watched.output
    collected = _cli("collect", label, "--results-root", env["results"])
    assert collected.exit_code == 0, collected.output
    assert _cli("verify", label, "--results-root", env["results"]).exit_code == 0
    with open(env["results"] / label / "benchmark-results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"success"}
