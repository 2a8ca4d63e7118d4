"""Task states from files alone (`bundle.disk_state`): cheap checks (size, footer, row count), the deep
hash, error and signal records, and records made for another task key.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from flyhpc.bundle import BundlePaths, disk_state
from flyhpc.files import sha256_file, write_json_atomic
from flyhpc.spikes import SpikeTable, write_spikes
from flyhpc.tasks import BenchmarkTask

SEED_18 = ["framework", "n_run", "t_run", "setup_time", "build_time", "sim_time", "total_time", "realtime_ratio",
           "spikes", "active_neurons", "status", "timestamp", "backend_key", "experiment", "experiment_key",
           "run_label", "round", "spike_path"]


def _task(root, backend="brian2cpp", t=0.1, n=2, rnd=1, label="lab"):
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


def _state(t, deep=False):
    paths = BundlePaths(t.results_root, t.run_label)
    return disk_state(paths.record(t), paths.parquet(t), key=t.key, deep=deep)


def test_disk_state_cheap_and_deep_checks(tmp_path):
    t = _task(tmp_path)
    assert _state(t) == ("missing", "no task record")
    paths = fake_result(t)
    assert _state(t) == ("done", "") and _state(t, deep=True) == ("done", "")
    good = paths.parquet(t).read_bytes()
    data = bytearray(good)
    data[10] ^= 0xFF  # same size, in a data page, footer intact: only the hash sees it
    paths.parquet(t).write_bytes(bytes(data))
    assert _state(t)[0] == "done"
    assert _state(t, deep=True) == ("corrupt", f"{t.stem}.parquet: sha256 differs from its record")
    data = bytearray(good)
    data[-6] ^= 0xFF  # the footer length: the cheap check reads the footer
    paths.parquet(t).write_bytes(bytes(data))
    state, reason = _state(t)
    assert state == "corrupt" and "unreadable parquet footer" in reason
    paths.parquet(t).write_bytes(good[:-1])
    assert _state(t)[0] == "corrupt" and "bytes, its record says" in _state(t)[1]
    paths.parquet(t).unlink()
    assert _state(t) == ("corrupt", f"{t.stem}.parquet: missing although its record says success")
    paths.record(t).write_text("{not json")
    assert _state(t)[0] == "corrupt"
    fake_result(t, status="error: RuntimeError: boom")
    assert _state(t) == ("error", "error: RuntimeError: boom")
    fake_result(t, status="timeout: SIGUSR2 (Slurm's pre-timeout warning) at X, then SIGTERM")
    assert _state(t)[0] == "interrupted"


def test_disk_state_row_count_must_match_the_record(tmp_path):
    t = _task(tmp_path)
    paths = fake_result(t, 40)
    rec = json.loads(paths.record(t).read_text())
    rec["spikes"] = 41
    write_json_atomic(paths.record(t), rec)
    assert _state(t) == ("corrupt", f"{t.stem}.parquet: 40 rows, its record says 41 spikes")


def test_a_record_of_another_experiment_is_never_done(tmp_path):
    t = _task(tmp_path)
    fake_result(t)
    other = dataclasses.replace(t, experiment="p9")
    assert other.name == t.name and other.key != t.key  # same file, other meaning
    paths = BundlePaths(tmp_path, "lab")
    state, reason = disk_state(paths.record(other), paths.parquet(other), key=other.key)
    assert state == "stale" and t.key in reason
    assert dataclasses.replace(t, seed=1).key != t.key
    assert dataclasses.replace(t, connectome_digest="ab" * 32).key != t.key
