"""Screens end to end, as a user runs them through a profile: plan, submit + run (--watch), collect, verify.

Runs the real `flyhpc` commands in the current folder (use a scratch one: results land in ./results/<label>)
on the full-scale synthetic connectome (or --connectome), and reports wall time per step, the chunks' own
phase sums (load, setup, drive, prepare, sim, collect, rates, write), core-seconds and overhead per experiment,
the label's size on disk, and what the screen found: experiments that evoke any spike besides the neurons
they drive, and how many distinct neurons respond to anything.

Usage: .venv/bin/python benchmarks/bench_screen_e2e.py SCREEN --label L [--profile local] [--parallel 2]
       [--slice N]   (an atlas of N random neurons instead of SCREEN, to check the extrapolation)
Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _flyhpc(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flyhpc", *args], capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def _slice_screen(n: int, connectome: str) -> Path:
    """An atlas screen over n random neurons of the connectome (seeded), written to ./atlas-slice-<n>.toml."""
    from flyhpc.data.connectome import default_data_dir, load_connectome
    from flyhpc.data.sources import resolve_sources

    conn = load_connectome(resolve_sources(connectome, default_data_dir()))
    rows = np.sort(np.random.default_rng(2024).choice(conn.n_neurons, n, replace=False))
    csv = Path(f"atlas-slice-{n}.csv")
    pd.DataFrame({"flywire_id": conn.flywire_ids[rows]}).to_csv(csv, index=False)
    path = Path(f"atlas-slice-{n}.toml")
    path.write_text(f'[screen]\nt_run_s = 1.0\nn_run = 1\nseed = 0\nbackend = "native"\n[base]\nrate_hz = 200.0\n'
                    f'[axes]\nactivate_each = "{csv}"\n')
    return path


def _findings(label_dir: Path) -> dict:
    rates = pd.read_parquet(label_dir / "screen.parquet", columns=["experiment_key", "neuron_index", "spikes"])
    plan = pd.read_parquet(label_dir / "screen-plan.parquet", columns=["experiment_key", "activate"])
    driven = plan.explode("activate")
    exps = pd.read_csv(label_dir / "experiments.csv", dtype={"experiment_key": str})
    out = {"experiments": len(exps), "tidy_rows": len(rates)}
    if "activate" in plan and len(driven) == len(plan):  # one driven neuron per experiment: an atlas
        from flyhpc.data.connectome import default_data_dir, load_connectome
        from flyhpc.data.sources import resolve_sources

        ids = load_connectome(resolve_sources("auto", default_data_dir())).flywire_ids
        own = pd.Series(np.searchsorted(ids, driven["activate"].astype(np.int64).to_numpy()),
                        index=driven["experiment_key"].to_numpy())
        others = rates[rates["neuron_index"].to_numpy() != own.reindex(rates["experiment_key"]).to_numpy()]
        out["experiments_evoking_other_spikes"] = int(others["experiment_key"].nunique())
        out["neurons_responding_to_anything"] = int(others["neuron_index"].nunique())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("screen", nargs="?", default="atlas")
    ap.add_argument("--label", required=True)
    ap.add_argument("--profile", default="local")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--connectome", default="auto")
    ap.add_argument("--slice", type=int, default=0)
    args = ap.parse_args()
    screen = str(_slice_screen(args.slice, args.connectome)) if args.slice else args.screen
    common = ["--profile", args.profile, "--run-label", args.label, "--connectome", args.connectome,
              "--parallel", str(args.parallel)]
    report: dict = {"screen": screen, "label": args.label, "parallel": args.parallel}
    report["plan_s"], proc = _flyhpc("screen", "plan", screen, *common)
    assert proc.returncode == 0, proc.stderr
    report["submit_and_run_s"], proc = _flyhpc("screen", "submit", screen, *common, "--watch")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report["collect_s"], proc = _flyhpc("collect", args.label)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report["verify_s"], proc = _flyhpc("verify", args.label)
    assert proc.returncode == 0, proc.stdout
    report["end_to_end_s"] = report["plan_s"] + report["submit_and_run_s"] + report["collect_s"]
    label_dir = Path("results") / args.label
    records = [json.loads(p.read_text()) for p in sorted((label_dir / "chunks").glob("chunk_*.json"))]
    phases: dict[str, float] = {}
    for rec in records:
        for k, v in rec["phases_s"].items():
            phases[k] = phases.get(k, 0.0) + v
    n_exp = sum(r["experiments"] for r in records)
    n_trials = n_exp * records[0]["n_run"]
    report.update(chunks=len(records), chunk_phase_sums_s=phases,
                  core_s_per_experiment=phases["total"] / n_exp,
                  overhead_ms_per_experiment_trial=1e3 * (phases["total"] - phases["sim"]) / n_trials,
                  overhead_outside_load_setup_ms_per_experiment_trial=1e3 * (
                      phases["total"] - phases["sim"] - phases["load"] - phases["setup"]) / n_trials,
                  engine_ms_per_experiment=1e3 * phases["sim"] / n_exp,
                  label_bytes=sum(p.stat().st_size for p in label_dir.rglob("*") if p.is_file()),
                  screen_parquet_bytes=(label_dir / "screen.parquet").stat().st_size,
                  **_findings(label_dir))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
