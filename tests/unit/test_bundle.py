"""Task states from files alone (`results.records.disk_state`): cheap checks (size, footer, row count), the deep
hash, error and signal records, and records made for another task key.
"""

from __future__ import annotations

import dataclasses
import json


from flyhpc.bundle import BundlePaths
from flyhpc.results.records import disk_state
from flyhpc.files import write_json_atomic

from tests.unit.bundles import fake_result, make_task, state


def test_disk_state_cheap_and_deep_checks(tmp_path):
    t = make_task(tmp_path)
    assert state(t) == ("missing", "no task record")
    paths = fake_result(t)
    assert state(t) == ("done", "") and state(t, deep=True) == ("done", "")
    good = paths.parquet(t).read_bytes()
    data = bytearray(good)
    data[10] ^= 0xFF  # same size, in a data page, footer intact: only the hash sees it
    paths.parquet(t).write_bytes(bytes(data))
    assert state(t)[0] == "done"
    assert state(t, deep=True) == ("corrupt", f"{t.stem}.parquet: sha256 differs from its record")
    data = bytearray(good)
    data[-6] ^= 0xFF  # the footer length: the cheap check reads the footer
    paths.parquet(t).write_bytes(bytes(data))
    found, reason = state(t)
    assert found == "corrupt" and "unreadable parquet footer" in reason
    paths.parquet(t).write_bytes(good[:-1])
    assert state(t)[0] == "corrupt" and "bytes, its record says" in state(t)[1]
    paths.parquet(t).unlink()
    assert state(t) == ("corrupt", f"{t.stem}.parquet: missing although its record says success")
    paths.record(t).write_text("{not json")
    assert state(t)[0] == "corrupt"
    fake_result(t, status="error: RuntimeError: boom")
    assert state(t) == ("error", "error: RuntimeError: boom")
    fake_result(t, status="timeout: SIGUSR2 (Slurm's pre-timeout warning) at X, then SIGTERM")
    assert state(t)[0] == "interrupted"


def test_disk_state_row_count_must_match_the_record(tmp_path):
    t = make_task(tmp_path)
    paths = fake_result(t, 40)
    rec = json.loads(paths.record(t).read_text())
    rec["spikes"] = 41
    write_json_atomic(paths.record(t), rec)
    assert state(t) == ("corrupt", f"{t.stem}.parquet: 40 rows, its record says 41 spikes")


def test_a_record_of_another_experiment_is_never_done(tmp_path):
    t = make_task(tmp_path)
    fake_result(t)
    other = dataclasses.replace(t, experiment="p9")
    assert other.name == t.name and other.key != t.key  # same file, other meaning
    paths = BundlePaths(tmp_path, "lab")
    state, reason = disk_state(paths.record(other), paths.parquet(other), key=other.key)
    assert state == "stale" and t.key in reason
    assert dataclasses.replace(t, seed=1).key != t.key
    assert dataclasses.replace(t, connectome_digest="ab" * 32).key != t.key
