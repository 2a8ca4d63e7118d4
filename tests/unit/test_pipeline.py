"""The one run pipeline (`pipeline.execute`): `flyhpc run` and the task worker write one record schema,
and the same run gives the same spike rows whichever of them ran it; the record's CPU times are plausible;
impossible spikes from a backend are named."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from flyhpc import pipeline, worker
from flyhpc.bundle import BundlePaths
from flyhpc.drive import Drive, TrialDrive
from flyhpc.errors import FlyhpcError
from flyhpc.model import Experiment
from flyhpc.pipeline import run_experiment
from flyhpc.results.spikes import SpikeTable
from flyhpc.tasks import BenchmarkTask

from tests.integration.test_quick_grid import write_tiny_connectome

EXPERIMENT = Experiment(name="indices 0,1,2 (200 Hz)", key="index:0,1,2@200", activate=(0, 1, 2), rate_hz=200.0,
                        by="index")


def test_run_and_worker_share_the_pipeline_and_its_record(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYHPC_THREADS", "1")
    conn = write_tiny_connectome(tmp_path / "conn")
    outcome = run_experiment(backend="native", experiment=EXPERIMENT, t_run_s=0.2, n_run=2, out_dir=tmp_path / "run",
                             connectome=str(conn), data_dir=tmp_path / "data", n_threads=1)
    task = BenchmarkTask(run_label="lab", round=1, backend="native", experiment="index:0,1,2@200", t_run_s=0.2,
                         n_run=2, seed=0, connectome=str(conn), connectome_digest=outcome.record["connectome_digest"],
                         results_root=str(tmp_path / "results"))
    record = worker.run(task)
    run_record = json.loads((tmp_path / "run" / "native_t0.2s_n2.json").read_text())
    assert run_record == outcome.record
    pipeline_keys = set(run_record) - {"rates_csv"}
    assert pipeline_keys <= set(record)  # the worker adds who ran it (task key, job, attempt), never less
    assert {"key", "run_label", "attempt", "job_id", "started_utc"} <= set(record) - pipeline_keys
    for field in ("spikes", "active_neurons", "connectome_digest", "experiment_key", "trials", "n_steps"):
        assert record[field] == run_record[field], field
    assert record["spikes"] > 0
    wall, cpu = record["phases_s"], record["phases_cpu_s"]  # CPU time measured, and plausible whatever the load
    assert set(cpu) == set(wall) and record["sim_threads"] == 1 and record["sim_device"] == "cpu"
    assert 0 < cpu["total"] <= wall["total"] * record["cpus_usable"] * 1.1 + 0.05
    assert 0 <= cpu["sim"] <= wall["sim"] * record["sim_threads"] * 1.1 + 0.01
    assert len(record["load_avg_start"]) == len(record["load_avg_end"]) == 3
    assert 1 <= record["cpus_usable"] <= record["cpu_count"]
    task_parquet = BundlePaths(task.results_root, "lab").parquet(task)
    run_parquet = tmp_path / "run" / "native_t0.2s_n2.parquet"
    assert pq.read_table(task_parquet).equals(pq.read_table(run_parquet))  # same rows; the task's file names its key
    assert pq.read_schema(task_parquet).metadata[b"flyhpc.task"] == task.key.encode()


def test_impossible_spikes_are_named():
    """The sanity check of a backend's spikes counts the drive's trials by bisection (no pass over every spike)
    and still names a trial the drive does not have."""
    empty = TrialDrive(0, np.zeros(0, np.int64), np.zeros(0, np.int32))
    drive = Drive(n_steps=10, base_seed=0, round=1, trials=(empty, TrialDrive(1, empty.steps, empty.neurons)))
    spec = type("Spec", (), {"n_neurons": 5})()
    good = SpikeTable.from_arrays([0, 0, 1, 1, 1, 1, 1], [1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 0, 1])
    pipeline._check_spikes("native", good, spec, drive)
    bad = SpikeTable.from_arrays([0, 0, 1, 1, 1, 1, 7], [1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 0, 1])
    with pytest.raises(FlyhpcError, match=r"trials \[7\] not in the drive"):
        pipeline._check_spikes("native", bad, spec, drive)


def test_a_streamed_run_writes_the_same_files_and_books_its_overlap(tmp_path, monkeypatch):
    """native hands trials to the spike file while later ones run: the same parquet (several row groups), rates
    and summary as the whole-table path, and the sim's CPU seconds spent on them are booked as collect/write."""
    from flyhpc.backends.native.backend import NativeBackend
    from flyhpc.files import sha256_file
    from flyhpc.results import spikes

    monkeypatch.setattr(spikes, "ROW_GROUP_ROWS", 100)
    conn = write_tiny_connectome(tmp_path / "conn")
    run = dict(backend="native", experiment=EXPERIMENT, t_run_s=0.2, n_run=4, connectome=str(conn),
               data_dir=tmp_path / "data", n_threads=2)
    streamed = run_experiment(out_dir=tmp_path / "streamed", **run)
    monkeypatch.setattr(NativeBackend, "streams", classmethod(lambda cls: False))
    whole = run_experiment(out_dir=tmp_path / "whole", **run)
    for name in ("native_t0.2s_n4.parquet", "native_t0.2s_n4_rates.csv"):
        assert sha256_file(tmp_path / "streamed" / name) == sha256_file(tmp_path / "whole" / name), name
    assert pq.ParquetFile(tmp_path / "whole" / "native_t0.2s_n4.parquet").metadata.num_row_groups > 2
    assert streamed.summary == whole.summary and streamed.rates.equals(whole.rates)
    overlapped, cpu = streamed.record["phases_overlapped_cpu_s"], streamed.record["phases_cpu_s"]
    assert set(overlapped) == {"collect", "write"} and whole.record["phases_overlapped_cpu_s"] == {}
    assert overlapped["write"] <= cpu["write"] and overlapped["collect"] <= cpu["collect"] and cpu["sim"] >= 0
