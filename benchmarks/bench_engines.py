"""Engines side by side: native, pytorch, brian2cpp and a seed-style loop on the full-scale sugar run.

All contenders run in one invocation, each in a fresh process (peak RSS from wait4), on the
calibrated synthetic connectome, sugar experiment, t_run 1 s, n_run 1 and 8, the same drive.
Reports wall seconds per simulated trial-second, x real time, collect and write seconds, peak memory, ratios,
and the parity ladder (b): where native's and pytorch's spikes first differ from brian2cpp's, rate correlation and
active-set Jaccard. The seed-style loop (CSR weights x spike vector every step, torch.sparse,
float32, the seed's PyTorch scheme) is run for --seed-steps steps and extrapolated.
Usage: .venv/bin/python benchmarks/bench_engines.py [--t-run 1] [--n-runs 1 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _prepare(data_dir: Path, t_run_s: float, n_run: int):
    from flyhpc.data.connectome import load_connectome
    from flyhpc.data.sources import resolve_sources
    from flyhpc.drive import make_drive
    from flyhpc.model import PRESETS, validate_run
    from flyhpc.network import build_network

    conn = load_connectome(resolve_sources("synthetic", data_dir))
    spec = build_network(conn, PRESETS["sugar"])
    return spec, make_drive(spec, validate_run(t_run_s, n_run), n_run, base_seed=0)


def _seed_style(spec, n_steps: int) -> float:
    """The seed's PyTorch scheme: dense state, W(post x pre) @ spikes every step, 19-slot roll buffer."""
    import torch

    torch.set_num_threads(1)
    n = spec.n_neurons
    w = torch.sparse_coo_tensor(
        torch.as_tensor(np.vstack([spec.indices.astype(np.int64), spec.pre_indices.astype(np.int64)])),
        torch.as_tensor(spec.weights_mv, dtype=torch.float32), (n, n)).coalesce().to_sparse_csr()
    v, g = torch.full((n,), -52.0), torch.zeros(n)
    spikes, buf = torch.zeros(n), torch.zeros(spec.params.delay_steps + 1, n)
    start = time.perf_counter()
    for _ in range(n_steps):
        rec = torch.mv(w, spikes)
        g = g * (1 - 0.1 / 5.0) + buf[0]
        buf = torch.roll(buf, -1, 0)
        buf[-1] = rec
        v = v + (0.1 / 20.0) * (g - (v + 52.0))
        fired = v > -45.0
        v[fired] = -52.0
        spikes = fired.float()
        torch.nonzero(fired)
    return time.perf_counter() - start


def _child(args) -> None:
    from flyhpc.pipeline import PhaseTimer, simulate
    from flyhpc.results.spikes import write_spikes

    spec, drive = _prepare(args.data_dir, args.t_run, args.n_run)
    if args.child == "seed":
        sim_s = _seed_style(spec, args.seed_steps) * drive.n_steps / args.seed_steps
        print(json.dumps({"sim_s": sim_s, "extrapolated_from_steps": args.seed_steps}))
        return
    timer = PhaseTimer()
    result = simulate(args.child, spec, drive, timer, n_threads=args.threads, work_root=args.work_root)
    with timer.phase("write"):
        write_spikes(args.spikes_out, result.spikes, spec.flywire_ids, 0.1, args.child)
    print(json.dumps({"sim_s": timer.seconds["sim"], "build_s": timer.seconds["build"],
                      "setup_s": timer.seconds["setup"], "collect_s": timer.seconds["collect"],
                      "write_s": timer.seconds["write"], "spikes": len(result.spikes),
                      "active": int(np.unique(result.spikes.neuron).size)}))


def _run_child(name: str, args, n_run: int, spikes_out: Path) -> dict:
    result_out = spikes_out.with_suffix(".json")
    cmd = [sys.executable, __file__, "--child", name, "--n-run", str(n_run), "--t-run", str(args.t_run),
           "--threads", str(args.threads), "--data-dir", str(args.data_dir), "--work-root", str(args.work_root),
           "--spikes-out", str(spikes_out), "--seed-steps", str(args.seed_steps)]
    proc = subprocess.Popen(cmd, stdout=open(result_out, "w"))
    _, status, usage = os.wait4(proc.pid, 0)  # peak RSS of this child alone
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{name} failed (exit {os.waitstatus_to_exitcode(status)})")
    report = json.loads(result_out.read_text().strip().splitlines()[-1])
    report["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    return report


def _parity(reference: Path, other: Path) -> dict:
    import pandas as pd

    a = pd.read_parquet(reference, columns=["trial", "time_ms", "neuron_index"])
    b = pd.read_parquet(other, columns=["trial", "time_ms", "neuron_index"])
    n = min(len(a), len(b))
    differ = np.flatnonzero((a.iloc[:n].to_numpy() != b.iloc[:n].to_numpy()).any(axis=1))
    first = int(differ[0]) if differ.size else (n if len(a) != len(b) else None)
    ca, cb = a["neuron_index"].value_counts(), b["neuron_index"].value_counts()
    shared = ca.index.intersection(cb.index)
    union = ca.index.union(cb.index)
    r = float(np.corrcoef(ca[shared], cb[shared])[0, 1]) if shared.size > 1 else None
    return {"identical": first is None,
            "first_difference": None if first is None else
            {"row": first, "reference": a.iloc[first].tolist() if first < len(a) else None},
            "rate_pearson": r, "active_jaccard": shared.size / max(1, union.size),
            "spikes": [len(a), len(b)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--t-run", type=float, default=1.0)
    ap.add_argument("--n-runs", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--seed-steps", type=int, default=200)
    ap.add_argument("--contenders", nargs="+", default=["native", "pytorch", "brian2cpp", "seed"])
    ap.add_argument("--child")
    ap.add_argument("--n-run", type=int, default=1)
    ap.add_argument("--work-root", type=Path, default=None)
    ap.add_argument("--spikes-out", type=Path, default=None)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    _prepare(args.data_dir, 0.001, 1)  # generate/cache the connectome before timing anything
    results: dict = {"t_run_s": args.t_run, "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="flyhpc-bench-") as tmp:
        args.work_root = Path(tmp) / "builds"
        for n_run in args.n_runs:
            row = {}
            for name in args.contenders:
                if name == "seed" and n_run > 1:
                    continue  # one trial is enough to show the per-step cost of the seed's scheme
                row[name] = _run_child(name, args, n_run, Path(tmp) / f"{name}_{n_run}.parquet")
                sim = row[name]["sim_s"]
                row[name]["wall_s_per_trial_second"] = round(sim / (args.t_run * n_run), 4)
                row[name]["x_real_time_per_trial"] = round(args.t_run * n_run / sim, 2)
            if "brian2cpp" in row:
                for name in ("native", "pytorch"):
                    if name in row:
                        row[name]["parity_vs_brian2cpp"] = _parity(Path(tmp) / f"brian2cpp_{n_run}.parquet",
                                                                   Path(tmp) / f"{name}_{n_run}.parquet")
            base = {k: v["sim_s"] for k, v in row.items()}
            row["ratios"] = {f"{a}_speedup_over_{b}": round(base[b] / base[a], 1)
                             for a in ("native", "pytorch") for b in base if a in base and b != a}
            results[f"n_run={n_run}"] = row
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
