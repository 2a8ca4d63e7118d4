"""Foundation benchmark: full-scale synthetic sugar run on brian2cpp.

Reports, side by side in one run:
  * connectome cache-load time in a fresh process (target < 1 s), against the cold parquet load;
  * Brian2 build time with a clean build directory and with the cached build (fresh process each);
  * wall seconds per simulated second of the C++ standalone run.

Usage: .venv/bin/python benchmarks/bench_foundation.py [--t-run 1.0] [--threads 2] [--data-dir data]
Writes nothing but the connectome cache and a temporary build directory (removed at the end).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(kind: str, data_dir: str, work_root: str, t_run_s: float, threads: int) -> dict:
    from flyhpc.data.connectome import load_connectome
    from flyhpc.data.sources import resolve_sources
    from flyhpc.drive import make_drive
    from flyhpc.model import PRESETS, validate_run
    from flyhpc.network import build_network
    from flyhpc.pipeline import PhaseTimer, simulate

    sources = resolve_sources("synthetic", Path(data_dir))
    t0 = time.perf_counter()
    conn = load_connectome(sources)
    load_s = time.perf_counter() - t0
    if kind == "load":
        return {"load_s": load_s, "n_neurons": conn.n_neurons, "n_edges": conn.n_edges}
    spec = build_network(conn, PRESETS["sugar"])
    drive = make_drive(spec, validate_run(t_run_s, 1), 1)
    timer = PhaseTimer()
    result = simulate("brian2cpp", spec, drive, timer, n_threads=threads, work_root=Path(work_root))
    return {"load_s": load_s, "phases": timer.as_dict(), "cached": result.build.cached,
            "inner_s": result.run.inner_s, "spikes": len(result.spikes)}


def _in_fresh_process(kind: str, args: argparse.Namespace, work_root: str) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--data-dir", str(args.data_dir), "--work-root", work_root,
           "--t-run", str(args.t_run), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--t-run", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--child", choices=["load", "sim"])
    ap.add_argument("--work-root", default="")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, str(args.data_dir), args.work_root, args.t_run, args.threads)))
        return

    from flyhpc.data.connectome import load_connectome
    from flyhpc.data.sources import resolve_sources

    sources = resolve_sources("synthetic", args.data_dir)
    cache_dir = Path(sources.connectivity).parent / "cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    t0 = time.perf_counter()
    conn = load_connectome(sources)  # cold: parquet + CSV, builds the cache
    cold_s = time.perf_counter() - t0
    warm = _in_fresh_process("load", args, "")
    work_root = tempfile.mkdtemp(prefix="flyhpc-bench-build-")
    try:
        clean = _in_fresh_process("sim", args, work_root)
        cached = _in_fresh_process("sim", args, work_root)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    report = {
        "connectome": f"{conn.source}: {conn.n_neurons} neurons, {conn.n_edges} edges",
        "load_cold_parquet_s": round(cold_s, 3),
        "load_cached_npz_s": round(warm["load_s"], 3),
        "build_clean_s": clean["phases"]["build"],
        "build_cached_s": cached["phases"]["build"],
        "cached_build_reused": cached["cached"],
        "sim_s": [clean["phases"]["sim"], cached["phases"]["sim"]],
        "wall_s_per_simulated_s": round(min(clean["phases"]["sim"], cached["phases"]["sim"]) / args.t_run, 3),
        "inner_loop_s": [clean["inner_s"], cached["inner_s"]],
        "spikes_per_trial_second": clean["spikes"] / args.t_run,
        "threads": args.threads,
        "ratios": {
            "cold_over_cached_load": round(cold_s / warm["load_s"], 1),
            "clean_over_cached_build": round(clean["phases"]["build"] / max(cached["phases"]["build"], 1e-9), 1),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
