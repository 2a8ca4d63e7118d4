"""Bundles from records, without simulators: collect (every planned task in the manifest, checksums of
intact files only, idempotent, locked, exit codes), verify (integrity and completeness), the global CSV.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import shutil
import subprocess
import sys

import pytest

from flyhpc import collect
from flyhpc.errors import Busy, ConfigError
from flyhpc.files import label_lock
from flyhpc.results.manifest import GLOBAL_KEY, RESULT_COLUMNS
from flyhpc.results.tables import upsert_rows
from flyhpc.cluster.status import EXIT_UNFINISHED

from tests.unit.bundles import SEED_18, fake_result, make_task, plan


def test_collect_lists_every_planned_task_and_checksums_only_intact_files(tmp_path):
    a, b = make_task(tmp_path, "brian2cpp"), make_task(tmp_path, "pytorch", t=1, n=1, rnd=2)
    err = make_task(tmp_path, "brian2cpp", t=1.0, n=4)
    never = make_task(tmp_path, "pytorch", t=0.1, n=1)
    flipped = make_task(tmp_path, "brian2cpp", t=10.0, n=1)
    plan(a, b, err, never, flipped)
    fake_result(a, 40)
    paths = fake_result(b, 60, seed=1)
    fake_result(err, status="error: DataError: bad file")
    fake_result(flipped, 30)
    data = bytearray(paths.parquet(flipped).read_bytes())
    data[10] ^= 0xFF
    paths.parquet(flipped).write_bytes(bytes(data))

    report = collect.collect(tmp_path, "lab")
    assert report.exit_code == EXIT_UNFINISHED
    assert report.rows == 3  # two done, one error
    states = {r.key: (r.state, r.reason) for r in report.status.rows}
    assert states[a.key] == ("done", "") and states[b.key] == ("done", "")
    assert states[err.key] == ("failed", "error: DataError: bad file")
    assert states[never.key] == ("missing", "no task record")
    assert states[flipped.key][0] == "corrupt" and "sha256 differs" in states[flipped.key][1]
    rows = list(csv.DictReader(open(paths.results_csv)))
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
    assert {m["task_key"]: m["state"] for m in manifest} == {
        a.key: "done", b.key: "done", err.key: "failed", never.key: "missing", flipped.key: "corrupt"}
    done_row = [m for m in manifest if m["task_key"] == a.key][0]
    assert done_row["spike_time_unit"] == "ms" and len(done_row["sha256"]) == 64
    assert all(m["sha256"] == "" for m in manifest if m["state"] != "done")
    assert "sha256 differs" in [m for m in manifest if m["task_key"] == flipped.key][0]["reason"]

    listed = [ln.split("  ")[1] for ln in paths.checksums.read_text().splitlines()]
    assert listed == sorted(listed)
    assert "round_01/brian2cpp_t10.0s_n1.parquet" not in listed  # the corrupt file gets no checksum
    assert "round_01/brian2cpp_t10.0s_n1.json" not in listed
    assert "round_01/brian2cpp_t1.0s_n4.json" in listed  # the error record is an intact file
    assert shutil.which("sha256sum"), "sha256sum (coreutils) is needed"
    subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=paths.label_dir, check=True)

    before = {p: p.read_bytes() for p in (paths.results_csv, paths.manifest, paths.checksums)}
    collect.collect(tmp_path, "lab")
    assert {p: p.read_bytes() for p in before} == before  # idempotent
    verdict = collect.verify(tmp_path, "lab")
    assert verdict.exit_code == 5 and any("sha256 differs" in c for c in verdict.corrupt)
    assert any(never.key in line and "missing" in line for line in verdict.incomplete)


def test_a_complete_bundle_verifies_and_exits_zero(tmp_path):
    tasks = [make_task(tmp_path, t=0.1), make_task(tmp_path, t=1.0)]
    plan(*tasks)
    for k, t in enumerate(tasks):
        fake_result(t, seed=k)
    assert collect.collect(tmp_path, "lab").exit_code == 0
    verdict = collect.verify(tmp_path, "lab")
    assert verdict.ok and verdict.exit_code == 0 and verdict.checked == 6  # 2 parquets, 2 records, csv, manifest


def test_collect_is_locked_against_a_concurrent_collect(tmp_path):
    t = make_task(tmp_path)
    plan(t)
    paths = fake_result(t)
    with label_lock(paths.lock, "test"):
        with pytest.raises(Busy, match="holds .*lock") as caught:
            collect.collect(tmp_path, "lab")
        assert caught.value.exit_code == 75  # try again later, as for tasks still running
    assert not paths.results_csv.exists()  # nothing written while locked out
    assert collect.collect(tmp_path, "lab").exit_code == 0


def test_unknown_label_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown run label 'nope'"):
        collect.collect(tmp_path, "nope")
    with pytest.raises(ConfigError, match="run label"):
        collect.verify(tmp_path, "../etc")


def test_verify_names_missing_extra_corrupt_and_disagreeing_records(tmp_path):
    a, b, c = make_task(tmp_path, t=0.1), make_task(tmp_path, t=1.0), make_task(tmp_path, t=10.0)
    plan(a, b, c)
    for k, t in enumerate((a, b, c)):
        paths = fake_result(t, seed=k)
    collect.collect(tmp_path, "lab")
    assert collect.verify(tmp_path, "lab").ok
    paths.parquet(a).unlink()  # missing
    fake_result(make_task(tmp_path, t=100.0))  # extra (after collect, not planned)
    rec = json.loads(paths.record(b).read_text())  # record disagrees with its parquet
    rec["spikes"] = 7
    paths.record(b).write_text(json.dumps(rec))
    data = bytearray(paths.parquet(c).read_bytes())  # corrupt
    data[-20] ^= 1
    paths.parquet(c).write_bytes(bytes(data))
    report = collect.verify(tmp_path, "lab")
    text = "\n".join(report.missing + report.extra + report.corrupt)
    assert not report.ok and report.exit_code == 5
    assert any("brian2cpp_t0.1s_n2.parquet" in m for m in report.missing)
    assert any("brian2cpp_t100.0s_n2.parquet" in e for e in report.extra)
    assert "brian2cpp_t1.0s_n2.json: sha256 differs" in text  # the edited record
    assert "rows, its record says 7 spikes" in text
    assert "brian2cpp_t10.0s_n2.parquet" in text


def test_global_csv_upsert_keys_on_label_and_round(tmp_path):
    plan(make_task(tmp_path))
    fake_result(make_task(tmp_path))
    out = tmp_path / "all.csv"
    out.write_text("framework,n_run,t_run,experiment_key,run_label,round,spikes,legacy\n"
                   "Brian2 (CPU),2,0.1,sugar,lab,1,1,x\nBrian2 (CPU),2,0.1,sugar,other,1,9,y\n")
    collect.collect(tmp_path, "lab", global_csv=out)
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 2
    assert {r["run_label"]: r["spikes"] for r in rows} == {"lab": "50", "other": "9"}
    collect.collect(tmp_path, "lab", global_csv=out)
    assert len(list(csv.DictReader(open(out)))) == 2


def test_an_intact_bundle_with_timed_out_and_cancelled_tasks_verifies_as_incomplete_not_damaged(tmp_path):
    """One rule: incomplete (timeout, cancelled, failed, missing) -> 4, damaged -> 5. The records of
    interrupted tasks are intact files: collect lists them, and verify names the tasks, not the files."""
    done, timed_out, cancelled, failed = (make_task(tmp_path, t=t) for t in (0.1, 0.2, 0.3, 0.4))
    plan(done, timed_out, cancelled, failed)
    paths = fake_result(done)
    fake_result(timed_out, status="timeout: SIGTERM at the job's time limit (SLURM_JOB_END_TIME X)")
    fake_result(cancelled, status="cancelled: SIGTERM (scancel, or Slurm ending the job)")
    fake_result(failed, status="error: RuntimeError: boom")
    assert collect.collect(tmp_path, "lab").exit_code == EXIT_UNFINISHED
    listed = paths.checksums.read_text()
    assert paths.relative(paths.record(timed_out)) in listed and paths.relative(paths.record(cancelled)) in listed
    subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=paths.label_dir, check=True)
    verdict = collect.verify(tmp_path, "lab")
    assert verdict.intact, (verdict.missing, verdict.extra, verdict.corrupt)
    assert verdict.exit_code == EXIT_UNFINISHED
    assert sorted(line.split(": ")[1].split(" ")[0] for line in verdict.incomplete) == ["cancelled", "failed", "timeout"]
    paths.record(cancelled).write_text(paths.record(cancelled).read_text().replace("scancel", "scancel!"))
    assert collect.verify(tmp_path, "lab").exit_code == 5  # an edited record is damage



def _upsert_many(out, label, n, start):
    start.wait()
    for k in range(n):  # one row per call: many read-change-rewrite rounds racing with the other processes
        row = {c: "" for c in RESULT_COLUMNS}
        row.update(framework="Brian2 (CPU)", n_run="1", t_run=repr(float(k)), experiment_key="sugar", run_label=label,
                   round="1")
        upsert_rows(out, [row], RESULT_COLUMNS, GLOBAL_KEY)


def test_concurrent_upserts_into_one_global_csv_keep_every_row(tmp_path):
    """Four processes upsert 25 rows each into one global CSV at the same time: all 100 stay (before: the
    file was read, changed and rewritten without a lock, and a concurrent rewrite dropped rows)."""
    ctx = multiprocessing.get_context("fork")
    out, start = tmp_path / "all.csv", ctx.Barrier(4)
    procs = [ctx.Process(target=_upsert_many, args=(out, f"l{i}", 25, start)) for i in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 100 and len({(r["run_label"], r["t_run"]) for r in rows}) == 100, len(rows)


def test_concurrent_collects_of_three_labels_into_one_global_csv_all_exit_0_and_keep_every_row(tmp_path):
    """The `flyhpc collect --global-csv` of three labels at once: every one exits 0 and all 12 rows are there."""
    labels = ("la", "lb", "lc")
    for label in labels:
        tasks = [make_task(tmp_path, t=t, label=label) for t in (0.1, 0.2, 0.3, 0.4)]
        plan(*tasks)
        for k, task in enumerate(tasks):
            fake_result(task, seed=k)
    out = tmp_path / "all.csv"
    procs = [subprocess.Popen([sys.executable, "-m", "flyhpc", "collect", label, "--results-root", str(tmp_path),
                               "--global-csv", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for label in labels]
    for proc in procs:
        text = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, text
    rows = list(csv.DictReader(open(out)))
    assert sorted((r["run_label"], r["t_run"]) for r in rows) == sorted(
        (label, t) for label in labels for t in ("0.1", "0.2", "0.3", "0.4")), len(rows)
