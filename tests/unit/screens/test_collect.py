"""Collecting a screen label without a scheduler: chunks run by the worker in this process, then `flyhpc.collect.collect`.

Incomplete labels get no merged files (and lose stale ones); a complete one gets them, byte-identical on a second
collect; a damaged chunk CSV is caught (sha256 in the chunk's record) and the label is incomplete again.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import pyarrow.parquet as pq

from flyhpc import worker
from flyhpc.bundle import BundlePaths
from flyhpc.cluster.profiles import load_profile
from flyhpc.cluster.status import EXIT_DONE, EXIT_UNFINISHED
from flyhpc.cluster.submission import record_plan
from flyhpc.collect import collect as collect_label
from flyhpc.screens.plan_file import write_plan
from flyhpc.screen_submission import plan_screen

from tests.unit.screens.test_spec import GOOD

SCREEN = GOOD.replace("silence_each = [5, 9]", "silence_each = [3, 4, 5, 6]")  # base + 4 experiments


def _label(tmp_path, conn_dir, write_screen, keep_spikes=False):
    sub = plan_screen(str(write_screen(SCREEN)), "lab", tmp_path / "results", load_profile("local"),
                      connectome=str(conn_dir), max_per_task=2, keep_spikes=keep_spikes)
    tasks = [t for a in sub.submit_plan.arrays for t in a.tasks]
    write_plan(BundlePaths(tmp_path / "results", "lab").screen_plan, sub.plan)
    record_plan(tasks)
    return tasks


def test_only_a_complete_label_gets_merged_files_and_collect_is_idempotent(tmp_path, conn_dir, write_screen):
    tasks = _label(tmp_path, conn_dir, write_screen)
    paths = BundlePaths(tmp_path / "results", "lab")
    assert [(t.first, t.stop) for t in tasks] == [(0, 2), (2, 4), (4, 5)]
    worker.run(tasks[0])
    report = collect_label(tmp_path / "results", "lab")
    assert report.exit_code == EXIT_UNFINISHED and report.rows == 1
    assert not paths.screen_rates.exists()
    for task in tasks[1:]:
        worker.run(task)
    report = collect_label(tmp_path / "results", "lab")
    assert report.exit_code == EXIT_DONE and report.rows == 3
    files = {p: p.read_bytes() for p in (paths.screen_rates, paths.screen_experiments, paths.screen_effects,
                                         paths.manifest, paths.checksums)}
    merged = pq.read_table(paths.screen_rates).to_pandas()
    parts = pd.concat([pq.read_table(paths.parquet(t)).to_pandas() for t in tasks], ignore_index=True)
    assert merged.equals(parts) and merged["experiment_key"].nunique() == 5
    listed = paths.checksums.read_text()
    for name in ("screen-plan.parquet", "screen.parquet", "effects.csv", "chunks/chunk_00002_experiments.csv"):
        assert f"  {name}\n" in listed
    collect_label(tmp_path / "results", "lab")
    assert {p: p.read_bytes() for p in files} == files  # a second collect writes the same bytes

    damaged = paths.parquet(tasks[1]).parent / "chunk_00001_experiments.csv"
    damaged.write_text(damaged.read_text().replace(",2,", ",3,", 1))  # same size, other content
    report = collect_label(tmp_path / "results", "lab")
    assert report.exit_code == EXIT_UNFINISHED
    assert [r.state for r in report.status.rows] == ["done", "corrupt", "done"]
    assert "chunk_00001_experiments.csv: sha256 differs" in report.status.rows[1].reason
    assert not paths.screen_rates.exists() and "chunk_00001" not in paths.checksums.read_text()


def test_the_chunk_record_says_what_the_chunk_did(tmp_path, conn_dir, write_screen):
    task = _label(tmp_path, conn_dir, write_screen)[0]
    rec = worker.run(dataclasses.replace(task))
    assert rec["status"] == "success" and rec["kind"] == "screen" and rec["experiments"] == 2
    assert rec["parquet_rows"] == pq.ParquetFile(BundlePaths(tmp_path / "results", "lab").parquet(task)).metadata.num_rows
    assert set(rec["extra_files"]) == {"chunk_00000_experiments.csv"}
    assert rec["phases_s"]["sim"] > 0 and rec["overhead_per_trial_s"] > 0
    assert worker.files_state(task) == "done"


def test_keep_spikes_writes_every_spike_of_the_chunk_and_records_it(tmp_path, conn_dir, write_screen):
    task = _label(tmp_path, conn_dir, write_screen, keep_spikes=True)[0]
    rec = worker.run(task)
    folder = BundlePaths(tmp_path / "results", "lab").parquet(task).parent
    assert set(rec["extra_files"]) == {"chunk_00000_experiments.csv", "chunk_00000_spikes.parquet"}
    spikes = pq.read_table(folder / "chunk_00000_spikes.parquet").to_pandas()
    assert list(spikes.columns) == ["experiment_key", "trial", "time_ms", "neuron_index", "flywire_id"]
    rates = pq.read_table(folder / "chunk_00000.parquet").to_pandas()
    counts = spikes.groupby(["experiment_key", "neuron_index"], observed=True).size()
    assert counts.sum() == rates["spikes"].sum() == rec["spikes"] > 0
    spiking = rates[rates["spikes"] > 0]  # rows of quiet driven or silenced neurons have 0 spikes
    assert counts.to_dict() == {(k, n): c for k, n, c in spiking[["experiment_key", "neuron_index", "spikes"]].itertuples(
        index=False)}
    assert not (folder / "chunk_00000.progress").exists()
