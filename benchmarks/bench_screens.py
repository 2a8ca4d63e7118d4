"""Screens benchmark: what a chunk spends outside the simulation, and what silencing per experiment costs.

Runs in the current folder (use a scratch one, e.g. /tmp/screens-bench): connectomes under --data-dir, screen
files and chunk outputs under --out. Two networks: a generated 2,000-neuron one (synthetic generator, the real
brain's ~109 edges per neuron) and the full-scale synthetic connectome (`flyhpc run`'s default; generated on first
use, ~15 s). On each:
  * activation: N random neurons (seeded) activated alone at 200 Hz, 1 s, 1 trial, as one chunk (a screen file
    with activate_each = a CSV of their ids): engine time per experiment (mean, median, p99), overhead outside
    the engine per experiment-trial and its parts, the fraction of experiments that evoke any other spike, and
    the chunk's process CPU time beside its wall time (the machine may be shared);
  * silencing (full scale only): sugar with each of the K most active neurons silenced, 1 trial, in both modes:
    per-experiment network preparation (the silenced rows zeroed in place, both modes) against a rebuild
    (`build_network` + `EngineNetwork.from_spec`).

Usage: .venv/bin/python benchmarks/bench_screens.py [--n-experiments 300] [--n-silence 10] [--data-dir data]
       [--out screens-out] [--small-only]
Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def _activation(conn, out: Path, label: str, n_experiments: int) -> dict:
    from flyhpc.screens import load_screen, plan_experiments, run_chunk

    rng = np.random.default_rng(2024)
    ids = np.sort(rng.choice(conn.flywire_ids, size=min(n_experiments, conn.n_neurons), replace=False))
    folder = out / label
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"flywire_id": ids}).to_csv(folder / "neurons.csv", index=False)
    (folder / "activation.toml").write_text('[screen]\nt_run_s = 1.0\nn_run = 1\n[base]\nrate_hz = 200.0\n'
                                            '[axes]\nactivate_each = "neurons.csv"\n')
    t0 = time.perf_counter()
    screen = load_screen(str(folder / "activation.toml"))
    exps = plan_experiments(screen, conn)
    plan_s = time.perf_counter() - t0
    cpu0 = time.process_time()
    res = run_chunk(screen, exps, conn, folder, "chunk_000")
    cpu_s = time.process_time() - cpu0
    summary = pd.read_csv(res.files.experiments)
    engine = summary["engine_s"].to_numpy()
    per_trial = {k: round(getattr(res, k) / res.n_trials * 1e3, 4)
                 for k in ("drive_s", "prepare_s", "collect_s", "rates_s", "write_s")}
    return {
        "experiments": res.n_experiments, "plan_s": round(plan_s, 3), "runner_setup_s": round(res.setup_s, 3),
        "chunk_total_s": round(res.total_s, 3), "chunk_cpu_s": round(cpu_s, 3),
        "engine_total_s": round(res.engine_s, 3),
        "engine_ms_per_experiment": {"mean": round(engine.mean() * 1e3, 3),
                                     "median": round(statistics.median(engine) * 1e3, 3),
                                     "p99": round(_percentile(engine, 99) * 1e3, 3)},
        "overhead_ms_per_experiment_trial": round(res.overhead_per_trial_s * 1e3, 4),
        "overhead_ms_per_experiment_trial_without_setup": round(
            (res.total_s - res.engine_s - res.setup_s) / res.n_trials * 1e3, 4),
        "overhead_parts_ms_per_trial": per_trial,
        "responding_fraction": round(float((summary["active_neurons"] > 1).mean()), 3),
        "rates_parquet_bytes": res.files.rates.stat().st_size,
    }


def _silencing(conn, out: Path, n_silence: int) -> dict:
    from flyhpc.backends.native import EngineNetwork
    from flyhpc.model import PRESETS, Experiment, Params
    from flyhpc.network import build_network
    from flyhpc.screens import load_screen, plan_experiments, run_chunk

    report = {}
    for mode in ("both", "outgoing"):
        folder = out / f"silence-{mode}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "silence.toml").write_text(
            f'[screen]\nt_run_s = 1.0\nn_run = 1\nsilence_mode = "{mode}"\n[base]\npreset = "sugar"\n'
            f'[axes]\nsilence_each = {{most_active = {n_silence}}}\n')
        screen = load_screen(str(folder / "silence.toml"))
        t0 = time.perf_counter()
        exps = plan_experiments(screen, conn)
        plan_s = time.perf_counter() - t0
        res = run_chunk(screen, exps, conn, folder, "chunk_000")
        summary = pd.read_csv(res.files.experiments)
        silenced = summary.iloc[1:]
        report[mode] = {
            "experiments": res.n_experiments, "plan_s_incl_base_run": round(plan_s, 3),
            "prepare_ms_first_silenced": round(silenced["prepare_s"].iloc[0] * 1e3, 2),
            "prepare_ms_median_silenced": round(silenced["prepare_s"].median() * 1e3, 2),
            "engine_ms_median_silenced": round(silenced["engine_s"].median() * 1e3, 2),
            "base_spikes": int(summary["spikes"].iloc[0]),
            "silenced_spikes_median": float(silenced["spikes"].median()),
        }
    exp = Experiment(name="rebuild", activate=PRESETS["sugar"].activate, rate_hz=200.0,
                     silence=(int(conn.flywire_ids[0]),), silence_mode="outgoing")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        EngineNetwork.from_spec(build_network(conn, exp, Params()), 10_000)
        times.append(time.perf_counter() - t0)
    report["full_rebuild_ms_median"] = round(statistics.median(times) * 1e3, 1)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-experiments", type=int, default=300)
    ap.add_argument("--n-silence", type=int, default=10)
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--out", type=Path, default=Path("screens-out"))
    ap.add_argument("--small-only", action="store_true", help="only the 2,000-neuron network")
    args = ap.parse_args()

    from flyhpc.data import synthetic
    from flyhpc.data.connectome import load_connectome
    from flyhpc.data.sources import resolve_sources

    report = {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    small_dir = args.data_dir / "synthetic-2000n"
    small_sources = synthetic.sources_in(small_dir) or synthetic.generate(small_dir, n_neurons=2000, n_edges=218_000)
    small = load_connectome(small_sources)
    report["small"] = {"connectome": f"{small.source}: {small.n_neurons} neurons, {small.n_edges} edges",
                       **_activation(small, args.out, "small", args.n_experiments)}
    if not args.small_only:
        sources = resolve_sources("synthetic", args.data_dir)
        load_connectome(sources)  # builds the .npz cache on first use
        t0 = time.perf_counter()
        full = load_connectome(sources)
        report["full"] = {"connectome": f"{full.source}: {full.n_neurons} neurons, {full.n_edges} edges",
                          "load_cached_s": round(time.perf_counter() - t0, 3),
                          **_activation(full, args.out, "full", args.n_experiments)}
        report["full"]["silencing"] = _silencing(full, args.out, args.n_silence)
    report["load_avg_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
