"""Time and peak memory of `flyhpc report` on a generated paper-sized bundle (32 trials x 100 s per big file).

Generates a collected label like a real run leaves it: brian2cpp, native and pytorch at t_run 1 and 100 s,
n_run 1 and 32 (one round); ~17,250 spikes per trial-second over ~500 of 138,639 neurons, so each
100 s x 32 file holds ~55 million spikes. native's spikes equal brian2cpp's, pytorch drops 1 %. Files go
through flyhpc.results.spikes.write_spikes, records as the worker writes them, the plan as `flyhpc bench` records
it, then the real `flyhpc collect`. Then `flyhpc report` runs in a child process: wall seconds and its
peak RSS (getrusage of that child). Optionally also times the report of an existing label (--label).
Deletes the generated bundle unless --keep. Not a test: CI never runs it.

    python benchmarks/bench_report.py [--out-dir DIR] [--trials 32] [--t-run 100] [--keep] [--label demo --root results]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_NEURONS = 138_639
LABEL = "bench_report"
BACKENDS = ("brian2cpp", "native", "pytorch")
SIM_S_PER_TRIAL_S = {"brian2cpp": 7.2, "native": 0.07, "pytorch": 2.7}  # docs/NOTES.md, this machine


def _spikes(rng, t_run_s: float, trials: int, neurons: np.ndarray, rates_hz: np.ndarray):
    from flyhpc.results.spikes import SpikeTable

    n_steps = int(round(t_run_s * 10_000))
    parts = []
    for k in range(trials):
        n = rng.poisson(rates_hz.sum() * t_run_s)
        neuron = rng.choice(neurons, size=n, p=rates_hz / rates_hz.sum()).astype(np.int32)
        step = rng.integers(0, n_steps, size=n, dtype=np.int64)
        order = np.lexsort((neuron, step))
        parts.append((np.full(n, k, np.int32), step[order], neuron[order]))
    return SpikeTable(*(np.concatenate([p[i] for p in parts]) for i in range(3)))


def generate(root: Path, trials: int, t_run_s: float, seed: int = 0) -> dict[str, int]:
    """Write, plan and collect the label; return spikes per file."""
    from flyhpc import collect
    from flyhpc.bundle import BundlePaths
    from flyhpc.cluster.submission import record_plan
    from flyhpc.files import sha256_file, write_json_atomic
    from flyhpc.results.spikes import SpikeTable, write_spikes
    from flyhpc.tasks import BenchmarkTask

    rng = np.random.default_rng(seed)
    neurons = np.sort(rng.choice(N_NEURONS, 500, replace=False)).astype(np.int32)
    rates = rng.lognormal(mean=2.5, sigma=1.2, size=neurons.size)
    rates *= 17_250.0 / rates.sum()
    ids = np.int64(720575940600000000) + np.arange(N_NEURONS, dtype=np.int64) * 3
    points = [(t, n) for t in sorted({1.0, t_run_s}) for n in sorted({1, trials})]
    tasks = {(b, t, n): BenchmarkTask(run_label=LABEL, round=1, backend=b, experiment="sugar", t_run_s=t, n_run=n,
                                      seed=0, connectome="synthetic", connectome_digest="", results_root=str(root))
             for b in BACKENDS for t, n in points}
    record_plan(list(tasks.values()))
    paths = BundlePaths(root, LABEL)
    counts = {}
    for t, n in points:
        table = _spikes(rng, t, n, neurons, rates)
        for backend in BACKENDS:
            task = tasks[(backend, t, n)]
            out = table
            if backend == "pytorch":
                keep = rng.random(len(table)) >= 0.01
                out = SpikeTable(table.trial[keep], table.step[keep], table.neuron[keep])
            write_spikes(paths.parquet(task), out, ids, 0.1, task.stem)
            sim = SIM_S_PER_TRIAL_S[backend] * t * n
            phases = {"load": 0.2, "build": 2.7 if backend == "brian2cpp" else 0.0, "setup": 1.0, "sim": sim,
                      "collect": 0.01 * n, "write": 1e-8 * len(out)}
            phases["total"] = sum(phases.values())
            write_json_atomic(paths.record(task), {
                "record_format": 1, "key": task.key, "run_label": LABEL, "round": 1, "backend": backend,
                "experiment": "Sugar GRNs (200 Hz)", "experiment_key": "sugar", "t_run_s": t, "n_run": n, "seed": 0,
                "trials": list(range(n)), "status": "success", "phases_s": phases, "spikes": len(out),
                "active_neurons": int(np.unique(out.neuron).size), "node": "bench", "device": "cpu",
                "connectome_source": "synthetic:138639n:15091983e:seed0", "synthetic_connectome": True,
                "parquet_sha256": sha256_file(paths.parquet(task)),
                "parquet_bytes": paths.parquet(task).stat().st_size})
            counts[task.stem] = len(out)
            del out
        del table
    collect.collect(root, LABEL)
    return counts


def measure(args: list[str]) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS in MiB of that child)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(args)} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss / 1024.0


def _report(root: Path, label: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flyhpc", "report", label, "--results-root", str(root), *extra]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/flyhpc_bench_report"))
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--t-run", type=float, default=100.0)
    ap.add_argument("--keep", action="store_true", help="keep the generated bundle")
    ap.add_argument("--label", help="also time the report of this existing label (e.g. demo)")
    ap.add_argument("--root", type=Path, default=Path("results"), help="results root of --label")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = args.out_dir / "results"
    if args.generate_only:
        print(json.dumps(generate(root, args.trials, args.t_run)))
        return
    results = {}
    if args.label:
        wall, rss = measure(_report(args.root, args.label))
        results[args.label] = {"wall_s": round(wall, 2), "peak_rss_mib": round(rss, 1)}
        print(f"report of {args.label}: {wall:.1f} s, peak RSS {rss:.0f} MiB", flush=True)
    shutil.rmtree(root / LABEL, ignore_errors=True)
    t0 = time.perf_counter()  # generate in a child: a child forked from a big parent inherits its RSS high-water mark
    out = subprocess.run([sys.executable, __file__, "--generate-only", "--out-dir", str(args.out_dir), "--trials",
                          str(args.trials), "--t-run", str(args.t_run)], check=True, capture_output=True, text=True)
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"generated {sum(counts.values()):,} spikes in {len(counts)} files in {time.perf_counter() - t0:.0f} s; "
          f"largest {max(counts.values()):,}", flush=True)
    wall, rss = measure(_report(root, LABEL))
    results[LABEL] = {"wall_s": round(wall, 2), "peak_rss_mib": round(rss, 1), "spikes": counts}
    print(f"report of {LABEL}: {wall:.1f} s, peak RSS {rss:.0f} MiB", flush=True)
    (args.out_dir / "bench_report.json").write_text(json.dumps(results, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(root / LABEL)


if __name__ == "__main__":
    main()
