"""Timings that say when they were disturbed (flyhpc.timing): a phase's CPU seconds count the process's children;
the verdict on records with known numbers; and a real task starved by a busy loop pinned to its CPU is flagged
in its record, by `collect` and by `flyhpc collect`, while its CPU time stays plausible."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from flyhpc import collect, worker
from flyhpc.bundle import BundlePaths
from flyhpc.cli import cli
from flyhpc.tasks import BenchmarkTask
from flyhpc.timing import MIN_JUDGED_S, SHARE_FLOOR, PhaseTimer, disturbance, host_state, sim_share, usable_cpus

from tests.integration.test_quick_grid import write_tiny_connectome
from tests.unit.bundles import plan


def _rec(cpu_s, wall_s, threads=2, device="cpu", usable=2):
    return {"phases_s": {"sim": wall_s}, "phases_cpu_s": {"sim": cpu_s}, "sim_threads": threads,
            "sim_device": device, "cpus_usable": usable, "cpu_count": 64, "load_avg_start": [14.2, 10.0, 9.0],
            "load_avg_end": [15.04, 11.0, 9.1]}


def test_the_verdict_names_share_threads_and_load():
    assert disturbance(_rec(0.62, 1.0)) == ("sim CPU share 0.31 < 0.8 of 2 threads; "
                                            "load 14.2 at start, 15.0 at end on 2 of 64 CPUs")
    assert disturbance(_rec(1.7, 1.0)) == ""  # 0.85 of two threads
    assert disturbance(_rec(0.5, 1.0, threads=1)).startswith("sim CPU share 0.50 < 0.8 of 1 thread;")
    assert disturbance(_rec(SHARE_FLOOR * 2, 1.0)) == ""  # the floor itself is not below it


def test_threads_count_at_most_the_cpus_the_process_may_use():
    share = sim_share(_rec(1.8, 1.0, threads=8, usable=2))
    assert (share.threads, round(share.value, 3)) == (2, 0.9) and disturbance(_rec(1.8, 1.0, threads=8)) == ""
    assert sim_share(_rec(1.8, 1.0, threads=8, usable=1)).threads == 1


def test_gpu_sims_short_sims_and_old_records_are_not_judged():
    gpu = sim_share(_rec(0.05, 5.0, device="gpu"))
    assert gpu.threads == 1 and not gpu.judged and disturbance(_rec(0.05, 5.0, device="gpu")) == ""
    short = _rec(0.01, MIN_JUDGED_S / 2)
    assert not sim_share(short).judged and disturbance(short) == ""
    old = {"phases_s": {"sim": 3.0}, "threads": 2}  # a record from before CPU time was measured
    assert sim_share(old) is None and disturbance(old) == ""


def test_a_phase_counts_the_cpu_of_its_children():
    timer = PhaseTimer()
    spin = "import time\nwhile time.process_time() < 0.3:\n    pass"  # the child's own clock: load cannot shorten it
    with timer.phase("build"):
        subprocess.run([sys.executable, "-c", spin], check=True)
    assert timer.cpu["build"] >= 0.3
    assert timer.cpu["build"] <= timer.seconds["build"] * usable_cpus() + 0.05
    timer.finish()
    assert timer.cpu_dict()["total"] >= timer.cpu_dict()["build"] and timer.cpu_dict()["sim"] == 0.0
    host = host_state()
    assert len(host["load_avg"]) == 3 and 1 <= host["cpus_usable"] <= host["cpu_count"]


def test_overlapped_work_moves_cpu_not_wall():
    """A streamed run's hand-overs during the sim: their CPU seconds become collect's and write's (never more than
    the sim had), the wall seconds stay the sim's."""
    timer = PhaseTimer(seconds={"sim": 2.0}, cpu={"sim": 3.0, "write": 0.5})
    timer.overlap("write", "sim", 0.25)
    timer.overlap("collect", "sim", 5.0)
    assert timer.cpu == {"sim": 0.0, "write": 0.75, "collect": 2.75} and timer.seconds == {"sim": 2.0}
    assert timer.overlapped_cpu == {"write": 0.25, "collect": 2.75}


@pytest.fixture
def spinner():
    """A busy loop pinned to this process's first CPU, already spinning; that CPU's number."""
    cpu = min(os.sched_getaffinity(0))
    proc = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{cpu}}})\n"
                             "print('spinning', flush=True)\nwhile True:\n    pass"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "spinning"
        yield cpu
    finally:
        proc.kill()
        proc.wait()


def test_a_task_sharing_its_cpu_with_a_busy_loop_is_flagged(tmp_path, monkeypatch, spinner):
    monkeypatch.setenv("FLYHPC_THREADS", "1")
    conn = write_tiny_connectome(tmp_path / "conn")
    task = BenchmarkTask(run_label="lab", round=1, backend="pytorch", experiment="index:0,1,2@200", t_run_s=1.0,
                         n_run=1, seed=0, connectome=str(conn), connectome_digest="", results_root=str(tmp_path))
    plan(task)
    mask = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {spinner})  # this thread, and the threads it starts, share the spinner's CPU
    try:
        record = worker.run(task)
    finally:
        os.sched_setaffinity(0, mask)
    wall, cpu = record["phases_s"], record["phases_cpu_s"]
    assert set(cpu) == set(wall) and record["cpus_usable"] == 1 and record["sim_threads"] == 1
    assert record["sim_device"] == "cpu" and len(record["load_avg_start"]) == len(record["load_avg_end"]) == 3
    assert wall["sim"] >= MIN_JUDGED_S  # long enough to be judged
    assert 0 < cpu["sim"] <= wall["sim"] * 1.05 + 0.01  # one CPU: never more CPU than wall
    assert cpu["sim"] / wall["sim"] < SHARE_FLOOR  # the busy loop took its half (or more) of the CPU
    reason = disturbance(record)
    assert reason.startswith("sim CPU share ") and "of 1 thread; load " in reason and "on 1 of " in reason

    report = collect.collect(tmp_path, "lab")
    assert report.disturbed == [(task.key, reason)]
    (row,) = csv.DictReader(open(BundlePaths(tmp_path, "lab").results_csv))
    assert row["disturbed"] == reason and float(row["cpu_share"]) < SHARE_FLOOR and row["sim_threads"] == "1"
    assert float(row["sim_cpu_time"]) == pytest.approx(cpu["sim"], abs=1e-6) and row["load_start"] != ""
    res = CliRunner().invoke(cli, ["collect", "lab", "--results-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "1 disturbed timing(s)" in res.output and f"disturbed {task.key}: sim CPU share" in res.output
