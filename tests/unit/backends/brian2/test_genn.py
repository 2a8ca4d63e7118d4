"""Brian2GeNN backend without Brian2GeNN: where it finds GeNN, its per-trial build folders (one per network, round,
trial and drive, each built, run and removed under its lock; Brian2GeNN's device is replaced by a recorder), and the
refusal of a read-only GeNN 4.9 without its libraries.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from flyhpc.backends.base import Probe
from flyhpc.backends.brian2 import genn as b2g
from flyhpc.backends.brian2.genn import genn_path
from flyhpc.contract import contract_spec
from flyhpc.drive import make_drive
from flyhpc.errors import BackendUnavailable
from flyhpc.files import build_lock_path


def test_genn_path_prefers_brian2genn_variable():
    assert genn_path({"GENN_PATH": "/a", "BRIAN2GENN_GENN_PATH": "/b"}) == "/b"
    assert genn_path({}) is None


def _lock_held(folder: Path) -> bool:
    """Whether this process holds the folder's build lock (its lock file names this pid)."""
    lock = build_lock_path(folder)
    return lock.is_file() and f"pid={os.getpid()}\n" in lock.read_text()


@pytest.fixture
def recording_backend(monkeypatch, tmp_path):
    """A Brian2GeNN backend whose device work is replaced: it records each trial's folder, whether that folder's
    lock is held, and writes a file there (as the generated project would)."""
    seen = []

    class Device:
        _last_run_time = 0.0

        def reinit(self):
            pass

    def fake_device(self, spec, trial, n_steps, work_dir, compile_and_run):
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "main.cpp").write_text(f"trial {trial.trial}: {trial.n_events} events baked in\n")
        seen.append((work_dir, _lock_held(work_dir)))
        return object(), Device()

    monkeypatch.setattr(b2g.Brian2GeNNBackend, "probe", classmethod(lambda cls: Probe(True, "", {"genn_path": "/g"})))
    monkeypatch.setattr(b2g.Brian2GeNNBackend, "_build_probe", lambda self: self.probe())
    monkeypatch.setattr(b2g.Brian2GeNNBackend, "_on_genn_device", fake_device)
    monkeypatch.setattr(b2g.Brian2GeNNBackend, "_leave_genn_device", staticmethod(lambda: None))
    import flyhpc.backends.brian2.network as network

    monkeypatch.setattr(network, "spike_steps", lambda net: (np.zeros(0, np.int64), np.zeros(0, np.int32)))
    return seen


def test_each_round_and_trial_builds_in_its_own_folder_under_its_lock(tmp_path, recording_backend):
    """Before: `<digest>_trial<k>`, the same for every round and task, unlocked and deleted after each trial, so
    concurrent tasks could run a project generated with another round's drive baked in."""
    spec = contract_spec()
    be = b2g.Brian2GeNNBackend(b2g.Brian2GeNNOptions(use_gpu=False), work_root=tmp_path)
    be.build(spec, 200)
    for round_ in (1, 2):
        be.run(make_drive(spec, 200, 2, base_seed=3, round_=round_))
    be.run(make_drive(spec, 200, 2, base_seed=4, round_=1))  # another task's seed, same round and trials
    folders = [folder for folder, _ in recording_backend]
    assert len(folders) == 6 and len(set(folders)) == 6
    assert all(held for _, held in recording_backend)
    assert folders[0].name.startswith(f"{spec.digest()[:12]}_r1_t0_") and folders[3].name.startswith(
        f"{spec.digest()[:12]}_r2_t1_")
    assert not any(f.exists() for f in folders)  # removed (keep_builds is false), lock files stay


def test_the_same_trial_maps_to_the_same_folder(tmp_path, recording_backend):
    spec = contract_spec()
    be = b2g.Brian2GeNNBackend(b2g.Brian2GeNNOptions(use_gpu=False), work_root=tmp_path)
    be.build(spec, 200)
    drive = make_drive(spec, 200, 1, base_seed=3)
    assert be.trial_dir(drive, drive.trials[0]) == be.trial_dir(drive, make_drive(spec, 200, 1, base_seed=3).trials[0])
    gpu = b2g.Brian2GeNNBackend(b2g.Brian2GeNNOptions(use_gpu=True), work_root=tmp_path)
    gpu.build(spec, 200)
    assert gpu.trial_dir(drive, drive.trials[0]) != be.trial_dir(drive, drive.trials[0])


def test_read_only_genn_without_its_libraries_is_refused(tmp_path, monkeypatch):
    genn = tmp_path / "genn-4.9"
    (genn / "bin").mkdir(parents=True)
    (genn / "bin" / "genn-buildmodel.sh").write_text("")
    (genn / "lib").mkdir()
    monkeypatch.setattr(b2g.Brian2GeNNBackend, "probe",
                        classmethod(lambda cls: Probe(True, "", {"genn_path": str(genn)})))
    monkeypatch.setattr(b2g.os, "access", lambda path, mode: False)  # as in an image (root can write anywhere)
    be = b2g.Brian2GeNNBackend(b2g.Brian2GeNNOptions(use_gpu=False), work_root=tmp_path)
    with pytest.raises(BackendUnavailable, match="lacks libgenn.a, libgenn_single_threaded_cpu_backend.a"):
        be.build(contract_spec(), 100)
    for name in ("libgenn.a", "libgenn_single_threaded_cpu_backend.a"):
        (genn / "lib" / name).write_text("")
    be.build(contract_spec(), 100)
    with pytest.raises(BackendUnavailable, match="lacks libgenn_cuda_backend.a"):
        b2g.Brian2GeNNBackend(b2g.Brian2GeNNOptions(use_gpu=True), work_root=tmp_path).build(contract_spec(), 100)
