"""Client-side cost of the Slurm layer on the paper suite (600 tasks), against a real Slurm.

Measures: plan (grid -> arrays, skipping done tasks), plan + submit (one sbatch per array), and
`status` over the 600 tasks (one sacct call joined with the records). The arrays are submitted
held (`--hold`) and cancelled right after, so nothing runs. Needs the cluster of
scripts/local-slurm/start.sh (or any Slurm) and a profile; prints one line per measurement.

    python benchmarks/bench_slurm.py [--profile example-site] [--root /tmp/bench-slurm]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import time

from flyhpc.cluster import profiles
from flyhpc.cluster import slurm
from flyhpc.cluster import status as slurm_status


def paper_tasks(root: str, label: str):
    from flyhpc import tasks

    if hasattr(tasks, "load_grid"):
        return tasks.expand_grid(tasks.load_grid("paper"), label, root, "auto")
    return [tasks.BenchmarkTask(run_label=label, round=r, backend=b, experiment="sugar", t_run_s=t, n_run=n, seed=0,
                                connectome="auto", connectome_digest="", results_root=root)
            for r in range(1, 6) for b in ("brian2cpp", "brian2cuda", "pytorch", "nestgpu", "genn", "brian2genn")
            for n in (1, 4, 8, 16, 32) for t in (0.1, 1.0, 10.0, 100.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="example-site")
    ap.add_argument("--root", default="/tmp/bench-slurm")
    args = ap.parse_args()
    shutil.rmtree(args.root, ignore_errors=True)
    prof = profiles.load_profile(args.profile)
    # run on this cluster: no partition/account/qos/constraint of the example site, hold every array
    # and shrink each backend's request to fit one test node (the time model is kept)
    fit = {b: dataclasses.replace(r, cpus=1, mem_gb=0.25, gpus=min(r.gpus, 1)) for b, r in prof.backends.items()}
    prof = dataclasses.replace(prof, executor="slurm", partition="", account="", qos="", slurm_setup=(),
                               container=False, sbatch={"additional_parameters": {"hold": True}}, backends=fit,
                               default=dataclasses.replace(prof.default, cpus=1, mem_gb=0.25, gpus=min(prof.default.gpus, 1)))
    label = "bench"
    t0 = time.perf_counter()
    todo = paper_tasks(args.root, label)
    sp = slurm.plan(todo, prof)
    t_plan = time.perf_counter() - t0
    print(f"plan: {len(todo)} tasks -> {len(sp.arrays)} arrays in {t_plan:.3f} s")
    t0 = time.perf_counter()
    record = slurm.submit(sp)
    t_submit = time.perf_counter() - t0
    ids = [s["job_id"] for s in record["submissions"]]
    print(f"submit: {len(ids)} sbatch calls in {t_submit:.3f} s (plan + submit {t_plan + t_submit:.3f} s)")
    try:
        for _ in range(3):
            t0 = time.perf_counter()
            report = slurm_status.status(args.root, label)
            print(f"status: {len(report.rows)} tasks in {time.perf_counter() - t0:.3f} s; "
                  f"pending {sum(c['pending'] for c in report.counts.values())}")
    finally:
        subprocess.run(["scancel", *ids], check=False)


if __name__ == "__main__":
    main()
