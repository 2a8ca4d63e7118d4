"""Calibration of the synthetic connectome: activity of `sugar` and `p9` on the native backend.

Target (seed-spec §6.2, the real brain on Brian2): sugar gives 17,000 ± 3,000 spikes and 300–500
active neurons per trial-second. Generates the full-scale seed-0 connectome if absent, then reports
mean ± sd over drive seeds for 1 s trials and one 10 s trial.
Usage: .venv/bin/python benchmarks/calibrate_synthetic.py [--data-dir data] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from flyhpc.data.connectome import load_connectome
from flyhpc.drive import make_drive
from flyhpc.model import PRESETS
from flyhpc.network import build_network
from flyhpc.pipeline import PhaseTimer, simulate
from flyhpc.data.synthetic import default_sources


def _activity(spec, n_steps: int, seed: int) -> tuple[int, int, float]:
    timer = PhaseTimer()
    result = simulate("native", spec, make_drive(spec, n_steps, 1, base_seed=seed), timer, n_threads=1)
    return len(result.spikes), int(np.unique(result.spikes.neuron).size), timer.seconds["sim"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    t0 = time.perf_counter()
    sources = default_sources(args.data_dir)
    conn = load_connectome(sources)
    report = {"connectome": conn.source, "prepare_s": round(time.perf_counter() - t0, 1)}
    for key in ("sugar", "p9"):
        spec = build_network(conn, PRESETS[key])
        runs = np.array([_activity(spec, 10_000, seed) for seed in range(args.seeds)])
        report[key] = {"spikes_per_s": f"{runs[:, 0].mean():.0f} ± {runs[:, 0].std(ddof=1):.0f}",
                       "active_per_s": f"{runs[:, 1].mean():.0f} ± {runs[:, 1].std(ddof=1):.0f}",
                       "native_wall_s_per_sim_s": round(float(np.median(runs[:, 2])), 4)}
    spikes, active, sim_s = _activity(build_network(conn, PRESETS["sugar"]), 100_000, 1000)
    report["sugar_10s"] = {"spikes_per_s": spikes / 10, "active": active, "native_wall_s": round(sim_s, 3)}
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
