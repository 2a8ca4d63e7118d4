"""What a large benchmark task spends outside the simulation: collect, write, hash and summary of ~58 M spikes.

Builds the spikes of the paper grid's largest native task (32 trials x 100 s at the calibrated sugar activity)
without simulating 100 s: the full-scale synthetic connectome's sugar spikes of --tile-trials 1 s trials (one
engine run) are tiled, second after second, into --trials trials of --seconds s. Then times, in this process,
the native backend's collect (per-trial results -> one SpikeTable), `write_spikes` (the spike parquet; written
twice to show the bytes are the same), sha256 of the file, `summarize` and `rates`, and reports each against
--sim-s (the sim phase of that task: 86.9 s measured on 2026-12-01).
Usage: .venv/bin/python benchmarks/bench_phases.py [--data-dir data] [--trials 32] [--seconds 100] [--out /tmp/x.parquet]
Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _tile_results(data_dir: Path, n_trials: int, seconds: int, tile_trials: int):
    """TrialResults of n_trials x `seconds` s made of the spikes of `tile_trials` real 1 s sugar trials."""
    from flyhpc.backends.native.trials import EngineNetwork, TrialResult, run_trials
    from flyhpc.data.connectome import load_connectome
    from flyhpc.data.sources import resolve_sources
    from flyhpc.drive import make_drive
    from flyhpc.model import PRESETS, validate_run
    from flyhpc.network import build_network

    spec = build_network(load_connectome(resolve_sources("synthetic", data_dir)), PRESETS["sugar"])
    drive = make_drive(spec, validate_run(1.0, tile_trials), tile_trials, base_seed=0)
    tiles = run_trials(EngineNetwork.from_spec(spec, drive.n_steps), drive.trials)
    empty = np.zeros(0, np.int32)
    results = []
    for k in range(n_trials):
        parts = [tiles[(k + s) % tile_trials] for s in range(seconds)]
        starts = np.concatenate([[0], np.cumsum([np.diff(p.step_starts) for p in parts])])
        results.append(TrialResult(trial=k, spike_neurons=np.concatenate([p.spike_neurons for p in parts]),
                                   step_starts=starts, n_neurons=spec.n_neurons, state_neurons=empty,
                                   state_anchor=np.zeros(0, np.int64), state_u0_mv=np.zeros(0),
                                   state_g0_mv=np.zeros(0), stats={}))
    return spec, results


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - start, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=100)
    ap.add_argument("--tile-trials", type=int, default=4)
    ap.add_argument("--sim-s", type=float, default=86.9)
    ap.add_argument("--out", type=Path, default=Path("/tmp/flyhpc-bench-phases.parquet"))
    args = ap.parse_args()
    from flyhpc.backends.native.backend import NativeBackend
    from flyhpc.files import sha256_file
    from flyhpc.results.spikes import rates, summarize, write_spikes

    spec, results = _tile_results(args.data_dir, args.trials, args.seconds, args.tile_trials)
    backend = NativeBackend()
    backend._results = results
    table, collect_s = _timed(backend._collect)
    del results, backend
    report = {"spikes": len(table), "collect_s": collect_s}
    digests = []
    for k in range(2):
        _, report[f"write_{k}_s"] = _timed(lambda: write_spikes(args.out, table, spec.flywire_ids, 0.1,
                                                                "native_t100.0s_n32", {"flyhpc.backend": "native"}))
        digest, report["sha256_s"] = _timed(lambda: sha256_file(args.out))
        digests.append(digest)
    report["bytes_identical"] = digests[0] == digests[1]
    report["parquet_mb"] = round(args.out.stat().st_size / 1e6, 1)
    _, report["summarize_s"] = _timed(lambda: summarize(table, float(args.seconds), args.trials))
    _, report["rates_s"] = _timed(lambda: rates(table, spec.flywire_ids, float(args.seconds), args.trials))
    report["collect_write_pct_of_sim"] = round(100 * (collect_s + report["write_1_s"]) / args.sim_s, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
