"""Time and peak memory of `flyhpc compare` on two generated paper-sized spike files (100 s x 32 trials).

Generates a reference file (brian2cpp) with ~17,250 spikes per trial-second over ~500 active
neurons (about 55 million spikes) and a perturbed copy (pytorch: 1 % dropped, 10 % shifted by
1-5 steps, 1 % added), both with flyhpc.results.spikes.write_spikes into a bundle layout; then runs each
comparison in its own process and reports wall seconds and peak RSS (getrusage of the child).
The spike files are deleted afterwards unless --keep. Not a test: CI never runs it.

    python benchmarks/bench_compare.py [--out-dir DIR] [--trials 32] [--t-run 100] [--keep]
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
LABEL = "bench_compare"


def _trial_events(rng, n_steps: int, rates_hz: np.ndarray, neurons: np.ndarray, t_run_s: float):
    n = rng.poisson(rates_hz.sum() * t_run_s)
    neuron = rng.choice(neurons, size=n, p=rates_hz / rates_hz.sum()).astype(np.int32)
    step = rng.integers(0, n_steps, size=n, dtype=np.int64)
    return step, neuron


def _perturb(rng, step, neuron, n_steps: int, neurons: np.ndarray):
    keep = rng.random(step.size) >= 0.01
    step, neuron = step[keep].copy(), neuron[keep]
    shift = rng.random(step.size) < 0.10
    step[shift] += rng.choice(np.array([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]), size=int(shift.sum()))
    np.clip(step, 0, n_steps - 1, out=step)
    n_add = int(step.size * 0.01)
    step = np.concatenate([step, rng.integers(0, n_steps, n_add)])
    neuron = np.concatenate([neuron, rng.choice(neurons, n_add).astype(np.int32)])
    return step, neuron


def generate(bundle_dir: Path, trials: int, t_run_s: float, seed: int = 0) -> dict[str, int]:
    """Write the two spike files; return their spike counts."""
    from flyhpc.bundle import file_stem
    from flyhpc.results.spikes import SpikeTable, write_spikes

    rng = np.random.default_rng(seed)
    n_steps = int(round(t_run_s * 10_000))
    neurons = np.sort(rng.choice(N_NEURONS, 500, replace=False)).astype(np.int32)
    rates = rng.lognormal(mean=2.5, sigma=1.2, size=neurons.size)
    rates *= 17_250.0 / rates.sum()
    ids = np.int64(720575940600000000) + np.arange(N_NEURONS, dtype=np.int64) * 3
    counts = {}
    parts = {"brian2cpp": [], "pytorch": []}
    for k in range(trials):
        step, neuron = _trial_events(rng, n_steps, rates, neurons, t_run_s)
        for key, (s, n) in (("brian2cpp", (step, neuron)), ("pytorch", _perturb(rng, step, neuron, n_steps, neurons))):
            order = np.lexsort((n, s))
            parts[key].append((np.full(s.size, k, np.int32), s[order], n[order]))
    for key, chunks in parts.items():
        table = SpikeTable(np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks]),
                           np.concatenate([c[2] for c in chunks]))
        chunks.clear()
        stem = file_stem(key, t_run_s, trials)
        write_spikes(bundle_dir / "round_01" / f"{stem}.parquet", table, ids, 0.1, stem)
        counts[key] = len(table)
        del table
    return counts


def measure(code: str) -> tuple[float, float]:
    """Run python code in a child; return (wall seconds, peak RSS in MiB of that child)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code])
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"comparison failed with exit code {proc.returncode}")
    return wall, usage.ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/flyhpc_bench_compare"))
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--t-run", type=float, default=100.0)
    ap.add_argument("--keep", action="store_true", help="keep the generated spike files")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = args.out_dir / "results"
    bundle = root / LABEL
    if args.generate_only:
        print(json.dumps(generate(bundle, args.trials, args.t_run)))
        return
    # generate in a child: a child forked from a big parent inherits its RSS high-water mark
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--generate-only", "--out-dir", str(args.out_dir), "--trials",
                          str(args.trials), "--t-run", str(args.t_run)], check=True, capture_output=True, text=True)
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    gen_s = time.perf_counter() - t0
    sizes = {p.name: p.stat().st_size for p in (bundle / "round_01").glob("*.parquet")}
    print(f"generated {counts} spikes in {gen_s:.1f} s; files {sizes}", flush=True)
    common = f"from flyhpc.compare import reports as compare; r, l = {str(root)!r}, {LABEL!r}; t, n = {args.t_run!r}, {args.trials!r}\n"
    runs = {
        "pairs (spike-time matching)": common + "compare.pairwise(r, l, 1, [t], [n], 1.0)",
        "backend (rates only)": common + "compare.backend_vs_reference(r, l, 'pytorch', [1], [t], [n])",
        "ground-truth": common + "compare.ground_truth(r, l, 1, t, n)",
    }
    results = {"spikes": counts, "file_bytes": sizes, "generate_s": round(gen_s, 1), "runs": {}}
    for name, code in runs.items():
        wall, rss = measure(code)
        results["runs"][name] = {"wall_s": round(wall, 2), "peak_rss_mib": round(rss, 1)}
        print(f"{name}: {wall:.1f} s, peak RSS {rss:.0f} MiB", flush=True)
    summary = json.loads((bundle / "comparisons" / "pairwise_summary.json").read_text())[0]
    results["pair_metrics"] = {k: summary[k] for k in ("spikes_a", "spikes_b", "timing_matches", "timing_f1",
                                                       "rate_pearson_shared", "timing_median_abs_dt_ms")}
    print(json.dumps(results, indent=2))
    (args.out_dir / "bench_compare.json").write_text(json.dumps(results, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(bundle / "round_01")


if __name__ == "__main__":
    main()
