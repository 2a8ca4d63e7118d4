"""Atomic writes: the old file or the whole new one, never a part, and fsync only where it is asked for."""

from __future__ import annotations

import pytest

from flyhpc import files


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

