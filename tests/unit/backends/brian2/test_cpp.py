"""brian2cpp's `reclaim_litter`: what killed runs leave in a build directory, on real files and pids.

A results folder names its host and process (`results_<host>_<pid>_<tag>`); it is removed once that
process is gone from this host, never while it lives, never for another host or this process.
Run-argument arrays (`static_arrays/init_*_<md5>.dat`) are removed only when half-written (content md5
differs from the name) and their Brian2 lock is free; lock files only when their array is gone.
Nothing here imports Brian2.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess

import numpy as np

from flyhpc.backends.brian2.cpp import RESULTS_RE, host_name, pid_alive, reclaim_litter, results_dir_name


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    assert proc.wait() == 0
    assert not pid_alive(proc.pid)
    return proc.pid


def results_folder(work_dir, pid: int, host: str | None = None, tag: str = "0123abcd"):
    path = work_dir / f"results_{host or host_name()}_{pid}_{tag}"
    path.mkdir(parents=True)
    (path / "stdout.txt").write_text("partial output\n")
    return path


def test_results_name_parses_back_to_this_host_and_pid():
    m = RESULTS_RE.match(results_dir_name())
    assert m and m["host"] == host_name() and int(m["pid"]) == os.getpid()
    assert RESULTS_RE.match(results_dir_name(pid=12)).group("pid") == "12"


def test_dead_process_folder_is_removed_and_live_ones_are_kept(tmp_path):
    gone = results_folder(tmp_path, dead_pid())
    mine = results_folder(tmp_path, os.getpid())
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        alive = results_folder(tmp_path, sleeper.pid)
        other_host = results_folder(tmp_path, dead_pid(), host="some-other-node.cluster")
        legacy = tmp_path / f"results_{dead_pid()}_0123abcd"  # old name without a host: kept
        legacy.mkdir()
        unrelated = tmp_path / "results_notes"
        unrelated.mkdir()
        removed = reclaim_litter(tmp_path)
        assert removed == [gone]
        assert not gone.exists()
        for kept in (mine, alive, other_host, legacy, unrelated):
            assert kept.is_dir(), kept
        # The same folder goes once its process is killed and reaped.
        sleeper.kill()
        sleeper.wait()
        assert reclaim_litter(tmp_path) == [alive] and not alive.exists()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    assert mine.is_dir() and reclaim_litter(tmp_path) == []


def test_missing_work_dir_is_nothing_to_do(tmp_path):
    assert reclaim_litter(tmp_path / "not-built-yet") == []


def run_arg_array(static, name: str, values: np.ndarray, written: int | None = None):
    """Brian2's naming: init_<group>_<var>_<md5 of the array bytes>.dat; `written` bytes only if given."""
    data = values.tobytes()
    path = static / f"init_{name}_{hashlib.md5(data).hexdigest()}.dat"
    path.write_bytes(data if written is None else data[:written])
    (static / (path.name + ".lock")).touch()
    return path


def test_half_written_run_arg_arrays_and_orphan_locks_are_removed(tmp_path):
    static = tmp_path / "static_arrays"
    static.mkdir()
    table = np.arange(4096, dtype=np.uint64)
    complete = run_arg_array(static, "drive_values", table)
    torn = run_arg_array(static, "drive_values", table + 1, written=1000)
    busy = run_arg_array(static, "drive_values", table + 2, written=8)
    orphan_lock = static / ("init_drive_values_" + "f" * 32 + ".dat.lock")
    orphan_lock.touch()
    build_array = static / "_static_array__array_neurongroup_i"  # the build's own arrays: never touched
    build_array.write_bytes(b"\0" * 16)
    with open(static / (busy.name + ".lock"), "a") as held:  # a live writer inside Brian2's lock
        fcntl.flock(held, fcntl.LOCK_EX)
        removed = reclaim_litter(tmp_path)
    assert sorted(removed) == sorted([torn, static / (torn.name + ".lock"), orphan_lock])
    assert complete.is_file() and (static / (complete.name + ".lock")).is_file()
    assert busy.is_file() and build_array.is_file()
    # Once the writer is gone the torn `busy` array is reclaimed too.
    assert sorted(reclaim_litter(tmp_path)) == sorted([busy, static / (busy.name + ".lock")])
    assert sorted(p.name for p in static.iterdir()) == sorted(
        [complete.name, complete.name + ".lock", build_array.name])
