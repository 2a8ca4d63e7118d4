"""Atomic writes: the old file or the whole new one, never a part, and fsync only where it is asked for. The label
and build locks: lock files that work where flock does not, exclude a second process, and are taken over from a
holder that died (on this host at once, on another node once unrefreshed for the lease)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flyhpc import files
from flyhpc.errors import FlyhpcError

REPO = Path(__file__).resolve().parents[2]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "rates.csv"
    files.write_text_atomic(target, "old\n")
    with pytest.raises(RuntimeError), files.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rates.csv"]


@pytest.mark.parametrize("durable, fsyncs", [(True, 1), (False, 0)])
def test_durable_writes_are_fsynced_and_hints_are_not(tmp_path, monkeypatch, durable, fsyncs):
    calls = []
    monkeypatch.setattr(files.os, "fsync", lambda fd: calls.append(fd))
    files.write_text_atomic(tmp_path / "chunk.progress", "3 10\n", durable=durable)
    assert (tmp_path / "chunk.progress").read_text() == "3 10\n" and len(calls) == fsyncs
    assert (tmp_path / "chunk.progress").stat().st_mode & 0o777 == 0o666 & ~files._umask()



# -- locks: lock files that hold across nodes, not flock -------------------------------------------------------------
def test_locks_work_where_flock_is_unavailable(tmp_path, monkeypatch):
    """Lustre mounted without flock answers flock with ENOSYS: the former locks (fcntl.flock) raised OSError there."""
    import errno
    import fcntl

    def no_flock(fd, operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.raises(OSError), open(tmp_path / "probe", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
    folder = tmp_path / "build" / "abc"
    with files.build_lock(folder):
        assert f"pid={os.getpid()}" in files.build_lock_path(folder).read_text()
    assert not files.build_lock_path(folder).exists()  # removed on release
    lock = tmp_path / "label" / ".flyhpc.label-lock"
    with files.label_lock(lock, "collect lab"):
        with pytest.raises(FlyhpcError, match=rf"holds .*lock \(pid {os.getpid()} on .*flyhpc collect lab"):
            with files.label_lock(lock, "collect lab"):
                pass
    with files.label_lock(lock, "collect lab"):  # released: free again
        pass


HOLD = """
import sys, time
from flyhpc import files
with files.build_lock(sys.argv[1]):
    with open(sys.argv[2], "a") as log:
        log.write(f"start {sys.argv[3]}\\n")
    print("held", flush=True)
    time.sleep(float(sys.argv[4]))
    with open(sys.argv[2], "a") as log:
        log.write(f"end {sys.argv[3]}\\n")
"""


def _holder(tmp_path, name, hold_s):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "build"), str(tmp_path / "log"), name,
                             str(hold_s)], stdout=subprocess.PIPE, text=True, env=env)


def test_a_second_process_waits_for_the_first(tmp_path):
    first = _holder(tmp_path, "a", 1.0)
    assert first.stdout.readline().strip() == "held"
    second = _holder(tmp_path, "b", 0.0)  # asks while the first holds the lock
    assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0
    assert (tmp_path / "log").read_text().splitlines() == ["start a", "end a", "start b", "end b"]


def test_a_lock_left_by_a_dead_process_is_taken_over_at_once(tmp_path):
    proc = _holder(tmp_path, "dead", 600)
    assert proc.stdout.readline().strip() == "held"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    lock = files.build_lock_path(tmp_path / "build")
    assert f"pid={proc.pid}" in lock.read_text()  # left behind: nobody released it
    t0 = time.monotonic()
    with files.build_lock(tmp_path / "build"):
        assert f"pid={os.getpid()}" in lock.read_text()
    assert time.monotonic() - t0 < 10 < files.LOCK_LEASE_S  # the dead pid was seen, not the lease waited out


def _foreign_marker(path, age_s, lease_s):
    """A lock file as filelock writes it for a holder on another node (its pid there cannot be probed from here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"filelock/2\npid=4242\nhost=other-node\nmode=lease\ntoken={'ab' * 16}\nduration={lease_s!r}\n")
    os.utime(path, (time.time() - age_s, time.time() - age_s))


def test_a_lock_of_another_node_is_taken_over_only_once_unrefreshed_for_the_lease(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "LOCK_LEASE_S", 0.5)
    lock = tmp_path / "label" / ".flyhpc.label-lock"
    _foreign_marker(lock, 0, 0.5)  # refreshed just now: a live holder elsewhere
    with pytest.raises(FlyhpcError, match=r"holds .*label-lock \(pid 4242 on other-node\)"):
        with files.label_lock(lock, "submit"):
            pass
    _foreign_marker(lock, 60, 0.5)  # not refreshed for 60 s > the lease: its holder is gone
    with files.label_lock(lock, "submit"):
        assert f"pid={os.getpid()}" in lock.read_text()
    folder = tmp_path / "build"
    _foreign_marker(files.build_lock_path(folder), 0, 0.5)
    t0 = time.monotonic()
    with files.build_lock(folder):  # waits until it has seen the marker unrefreshed for the lease itself
        assert time.monotonic() - t0 >= 0.5
