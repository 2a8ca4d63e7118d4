"""Bundles without simulators: task states, collect (CSV/manifest/checksums, idempotent, locked), verify,
and the worker's failure path (error record, traceback in the log, no parquet)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import numpy as np
import pytest

from flyhpc import collect, worker
from flyhpc.bundle import BundlePaths
from flyhpc.errors import ConfigError, FlyhpcError, TaskFailed
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


def test_task_state_from_files(tmp_path):
    t = _task(tmp_path)
    assert worker.task_state(t) == "missing"
    paths = fake_result(t)
    assert worker.task_state(t) == "done"
    data = bytearray(paths.parquet(t).read_bytes())
    data[10] ^= 0xFF
    paths.parquet(t).write_bytes(bytes(data))
    assert worker.task_state(t) == "corrupt"
    assert worker.task_state(t, hash_parquet=False) == "done"  # the fast view trusts the recorded size
    paths.parquet(t).write_bytes(bytes(data[:-1]))
    assert worker.task_state(t, hash_parquet=False) == "corrupt"
    paths.parquet(t).unlink()
    assert worker.task_state(t) == "corrupt"
    paths.record(t).write_text("{not json")
    assert worker.task_state(t) == "corrupt"
    fake_result(t, status="error: RuntimeError: boom")
    assert worker.task_state(t) == "error"


def test_collect_writes_seed_columns_and_passes_sha256sum(tmp_path):
    a, b = _task(tmp_path, "brian2cpp"), _task(tmp_path, "pytorch", t=1, n=1, rnd=2)
    fake_result(a, 40)
    paths = fake_result(b, 60, seed=1)
    err = _task(tmp_path, "brian2cpp", t=1.0, n=4)
    fake_result(err, status="error: DataError: bad file")
    running = _task(tmp_path, "pytorch", t=0.1, n=1)
    write_spikes(paths.parquet(running), SpikeTable.from_arrays([0], [1], [2]), np.arange(10), 0.1, "x")

    report = collect.collect(tmp_path, "lab")
    assert report.rows == 3 and report.done == 2 and len(report.errors) == 1
    assert report.in_progress == ["round_01/pytorch_t0.1s_n1.parquet"]
    with open(paths.results_csv) as fh:
        rows = list(csv.DictReader(fh))
    header = paths.results_csv.read_text().splitlines()[0].split(",")
    assert header[:18] == SEED_18 and "load_time" in header and "image_digest" in header
    first = rows[0]
    assert first["framework"] == "Brian2 (CPU)" and first["t_run"] == "0.1" and first["n_run"] == "2"
    assert first["setup_time"] == "0.250" and first["build_time"] == "2.000"
    assert first["realtime_ratio"] == "2.0000"  # 0.1 s x 2 trials / 0.1 s sim
    assert first["timestamp"] == "2026-01-02 03:04:05" and first["spike_path"] == "round_01/brian2cpp_t0.1s_n2.parquet"
    error_row = [r for r in rows if r["status"].startswith("error")][0]
    assert error_row["spike_path"] == "" and error_row["realtime_ratio"] == ""
    manifest = list(csv.DictReader(open(paths.manifest)))
    assert [m["backend_key"] for m in manifest] == ["brian2cpp", "pytorch"]
    assert manifest[0]["spike_time_unit"] == "ms" and len(manifest[0]["sha256"]) == 64
    assert not any(m["spike_path"].startswith("/") for m in manifest)

    lines = paths.checksums.read_text().splitlines()
    assert [ln.split("  ")[1] for ln in lines] == sorted(ln.split("  ")[1] for ln in lines)
    assert "round_01/pytorch_t0.1s_n1.parquet" not in paths.checksums.read_text()
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=paths.label_dir, check=True)

    before = {p: p.read_bytes() for p in (paths.results_csv, paths.manifest, paths.checksums)}
    collect.collect(tmp_path, "lab")
    assert {p: p.read_bytes() for p in before} == before  # idempotent
    assert collect.verify(tmp_path, "lab").ok is False  # the in-flight parquet is extra
    paths.parquet(running).unlink()
    assert collect.verify(tmp_path, "lab").ok


def test_collect_leaves_corrupt_tasks_out(tmp_path):
    t = _task(tmp_path)
    paths = fake_result(t)
    with open(paths.parquet(t), "r+b") as fh:
        fh.truncate(100)
    report = collect.collect(tmp_path, "lab")
    assert report.done == 0 and len(report.corrupt) == 1 and "size differs" in report.corrupt[0]
    assert "brian2cpp" not in paths.checksums.read_text()


def test_collect_is_locked_against_a_concurrent_collect(tmp_path):
    t = _task(tmp_path)
    paths = fake_result(t)
    with collect.label_lock(paths):
        with pytest.raises(FlyhpcError, match="holds .*lock"):
            collect.collect(tmp_path, "lab")
    assert not paths.results_csv.exists()  # nothing written while locked out
    collect.collect(tmp_path, "lab")


def test_unknown_label_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown run label 'nope'"):
        collect.collect(tmp_path, "nope")
    with pytest.raises(ConfigError, match="run label"):
        collect.verify(tmp_path, "../etc")


def test_verify_names_missing_extra_corrupt_and_disagreeing_records(tmp_path):
    a, b, c = _task(tmp_path, t=0.1), _task(tmp_path, t=1.0), _task(tmp_path, t=10.0)
    for k, t in enumerate((a, b, c)):
        paths = fake_result(t, seed=k)
    collect.collect(tmp_path, "lab")
    assert collect.verify(tmp_path, "lab").ok
    paths.parquet(a).unlink()  # missing
    fake_result(_task(tmp_path, t=100.0))  # extra (after collect)
    rec = json.loads(paths.record(b).read_text())  # record disagrees with its parquet
    rec["spikes"] = 7
    paths.record(b).write_text(json.dumps(rec))
    data = bytearray(paths.parquet(c).read_bytes())  # corrupt
    data[-20] ^= 1
    paths.parquet(c).write_bytes(bytes(data))
    report = collect.verify(tmp_path, "lab")
    text = "\n".join(report.missing + report.extra + report.corrupt)
    assert not report.ok
    assert any("brian2cpp_t0.1s_n2.parquet" in m for m in report.missing)
    assert any("brian2cpp_t100.0s_n2.parquet" in e for e in report.extra)
    assert "brian2cpp_t1.0s_n2.json: sha256 differs" in text  # the edited record
    assert "rows but its record says 7" in text
    assert "brian2cpp_t10.0s_n2.parquet: sha256 differs" in text


def test_global_csv_upsert_keys_on_label_and_round(tmp_path):
    fake_result(_task(tmp_path))
    out = tmp_path / "all.csv"
    out.write_text("framework,n_run,t_run,experiment_key,run_label,round,spikes,legacy\n"
                   "Brian2 (CPU),2,0.1,sugar,lab,1,1,x\nBrian2 (CPU),2,0.1,sugar,other,1,9,y\n")
    collect.collect(tmp_path, "lab", global_csv=out)
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 2
    assert {r["run_label"]: r["spikes"] for r in rows} == {"lab": "50", "other": "9"}
    collect.collect(tmp_path, "lab", global_csv=out)
    assert len(list(csv.DictReader(open(out)))) == 2


def test_worker_failure_leaves_error_record_and_log_and_no_parquet(tmp_path):
    t = BenchmarkTask(run_label="lab", round=1, backend="brian2cpp", experiment="sugar", t_run_s=0.01, n_run=1,
                      seed=0, connectome=str(tmp_path / "no_such_folder"), connectome_digest="",
                      results_root=str(tmp_path))
    paths = BundlePaths(tmp_path, "lab")
    paths.round_dir(1).mkdir(parents=True)
    paths.parquet(t).write_bytes(b"stale")
    with pytest.raises(TaskFailed) as info:
        worker.run(t)
    assert info.value.task_key == t.key and info.value.log_path == str(paths.log(t))
    rec = json.loads(paths.record(t).read_text())
    assert rec["status"].startswith("error: ConfigError") and "no_such_folder" in rec["status"]
    assert not paths.parquet(t).exists()
    assert "Traceback" in paths.log(t).read_text()
    assert worker.task_state(t) == "error"
    report = collect.collect(tmp_path, "lab")
    assert report.rows == 1 and report.done == 0 and report.errors


def test_worker_records_an_unknown_experiment_as_an_error(tmp_path):
    t = BenchmarkTask(run_label="lab", round=1, backend="brian2cpp", experiment="walking", t_run_s=0.01, n_run=1,
                      seed=0, connectome="auto", connectome_digest="", results_root=str(tmp_path))
    with pytest.raises(TaskFailed, match="unknown experiment 'walking'"):
        worker.run(t)
    assert worker.task_state(t) == "error"
