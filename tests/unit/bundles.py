"""Hand-made bundles for tests that need no simulator: tasks, records and real parquets as the worker
writes them, and a label's plan (what `flyhpc bench` records before running)."""

from __future__ import annotations

import numpy as np

from flyhpc.bundle import BundlePaths
from flyhpc.results.records import disk_state
from flyhpc.cluster import submission
from flyhpc.files import sha256_file, write_json_atomic
from flyhpc.results.spikes import SpikeTable, write_spikes
from flyhpc.tasks import BenchmarkTask

SEED_18 = ["framework", "n_run", "t_run", "setup_time", "build_time", "sim_time", "total_time", "realtime_ratio",
           "spikes", "active_neurons", "status", "timestamp", "backend_key", "experiment", "experiment_key",
           "run_label", "round", "spike_path"]


def make_task(root, backend="brian2cpp", t=0.1, n=2, rnd=1, label="lab"):
    return BenchmarkTask(run_label=label, round=rnd, backend=backend, experiment="sugar", t_run_s=t, n_run=n,
                         seed=0, connectome="auto", connectome_digest="", results_root=str(root))


def fake_result(task, n_spikes=50, status="success", seed=0):
    """Write a parquet and record as the worker would (a real parquet, hand-made numbers)."""
    paths = BundlePaths(task.results_root, task.run_label)
    rec = {"record_format": 1, "key": task.key, "run_label": task.run_label, "round": task.round,
           "backend": task.backend, "framework": "Brian2 (CPU)" if task.backend == "brian2cpp" else "PyTorch (CPU)",
           "experiment": "Sugar GRNs (200 Hz)", "experiment_key": "sugar", "t_run_s": task.t_run_s,
           "n_run": task.n_run, "seed": 0, "trials": list(range(task.n_run)), "status": status,
           "phases_s": {"load": 0.5, "build": 2.0, "setup": 0.25, "sim": 0.1, "collect": 0.01, "write": 0.02,
                        "total": 3.0}, "finished_utc": "2026-01-02T03:04:05Z", "drive": "events", "dtype": "float64"}
    if status == "success":
        rng = np.random.default_rng(seed)
        table = SpikeTable.from_arrays(rng.integers(0, task.n_run, n_spikes), rng.integers(0, 1000, n_spikes),
                                       rng.integers(0, 10, n_spikes))
        write_spikes(paths.parquet(task), table, np.arange(100, 110, dtype=np.int64), 0.1, task.stem)
        rec.update(spikes=n_spikes, active_neurons=int(np.unique(table.neuron).size),
                   parquet_sha256=sha256_file(paths.parquet(task)), parquet_bytes=paths.parquet(task).stat().st_size)
    write_json_atomic(paths.record(task), rec)
    return paths


def plan(*tasks):
    """Record the tasks as the label's plan (what `flyhpc bench` does before running them)."""
    submission.record_plan(list(tasks))


def state(t, deep=False):
    """The task's (state, reason) from its files."""
    paths = BundlePaths(t.results_root, t.run_label)
    return disk_state(paths.record(t), paths.parquet(t), key=t.key, deep=deep)
