"""A full or read-only results folder: every writing command says so in one line, exits 74 and leaves no
half-written file, pickle or folder behind.

The full disk is real: a 1 MiB tmpfs mounted for the test and filled up (read-only: the same mount remounted
`ro`). Mounting needs root; elsewhere these tests skip, unless FLYHPC_REQUIRE_TMPFS=1 makes that a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flyhpc.bundle import BundlePaths
from flyhpc.errors import OutputError
from flyhpc.files import write_text_atomic

from tests.unit.bundles import fake_result, make_task, plan

EXIT_OUTPUT = 74


@pytest.fixture()
def small_fs(tmp_path):
    """A 1 MiB tmpfs at tmp_path/fs; yields (mount point, fill(), read_only())."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        reason = f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not root'})"
        if os.environ.get("FLYHPC_REQUIRE_TMPFS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)

    def fill() -> None:
        with open(mnt / "filler", "wb", buffering=0) as fh:
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 4096)

    def read_only() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)

    try:
        yield mnt, fill, read_only
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture(scope="module")
def conn_dir(tmp_path_factory):
    from tests.integration.test_quick_grid import write_tiny_connectome

    return write_tiny_connectome(tmp_path_factory.mktemp("conn") / "conn", n_neurons=300, n_edges=5000, seed=2)


def _flyhpc(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "flyhpc", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp") or
                  (p.suffix == ".pkl" and p.stat().st_size == 0))


def _label_on(mnt: Path, tmp_path: Path) -> BundlePaths:
    task = make_task(tmp_path / "src")
    plan(task)
    fake_result(task)
    shutil.copytree(tmp_path / "src" / "lab", mnt / "lab")
    return BundlePaths(mnt, "lab")


def test_atomic_write_on_a_full_disk_is_an_output_error_and_leaves_no_temp_file(small_fs):
    mnt, fill, _ = small_fs
    fill()
    with pytest.raises(OutputError, match=r"cannot write .*out.txt: No space left on device \(ENOSPC\); free space"):
        write_text_atomic(mnt / "out.txt", "x" * 100_000)
    assert sorted(p.name for p in mnt.iterdir()) == ["filler"]


def test_collect_on_a_full_or_read_only_disk_exits_74_in_one_line(small_fs, tmp_path):
    mnt, fill, read_only = small_fs
    paths = _label_on(mnt, tmp_path)
    fill()
    out = _flyhpc("collect", "lab", "--results-root", mnt)
    assert out.returncode == EXIT_OUTPUT, out.stderr
    assert out.stderr.startswith("Error: cannot write") and "Traceback" not in out.stderr
    assert _leftovers(mnt) == [] and not paths.checksums.exists()
    read_only()
    out = _flyhpc("collect", "lab", "--results-root", mnt)
    assert out.returncode == EXIT_OUTPUT and "Read-only file system (EROFS)" in out.stderr, out.stderr


def test_submit_on_a_full_disk_exits_74_and_leaves_no_pickle_nor_label(small_fs, tmp_path, conn_dir):
    mnt, fill, _ = small_fs
    fill()
    out = _flyhpc("submit", "--grid", "quick", "--backend", "native", "--experiment", "index:0,1@200", "--t-run", "0.05",
                  "--n-run", "1", "--rounds", "1", "--connectome", conn_dir, "--results-root", mnt, "--run-label", "full")
    assert out.returncode == EXIT_OUTPUT and "No space left on device" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert sorted(p.name for p in mnt.iterdir()) == ["filler"]  # no label folder, no 0-byte pickle


def test_report_on_a_full_disk_exits_74_and_removes_what_it_wrote(small_fs, tmp_path):
    pytest.importorskip("matplotlib")
    mnt, fill, _ = small_fs
    task = make_task(tmp_path)
    plan(task)
    fake_result(task)
    assert _flyhpc("collect", "lab", "--results-root", tmp_path).returncode == 0
    with open(mnt / "filler", "wb") as fh:  # leave a few kB: the report gets some files out, then fails
        fh.write(b"\0" * (1024 * 1024 - 40 * 1024))
    out = _flyhpc("report", "lab", "--results-root", tmp_path, "--out", mnt / "report")
    assert out.returncode == EXIT_OUTPUT and "No space left on device" in out.stderr, out.stderr
    assert sorted(p.name for p in mnt.iterdir()) == ["filler"]
