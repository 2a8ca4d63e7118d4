"""The STAND-IN for NEST GPU's Python module (tests/support/nestgpu_standin), imported as `nestgpu`, fresh for each test,
and the spikes of the native backend that the worker's read-back is compared with."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
STAND_IN_DIR = REPO / "tests" / "support" / "nestgpu_standin"


@pytest.fixture
def standin(monkeypatch):
    """The stand-in, imported as `nestgpu` and fresh for each test."""
    monkeypatch.syspath_prepend(str(STAND_IN_DIR))
    monkeypatch.delitem(sys.modules, "nestgpu", raising=False)
    module = importlib.import_module("nestgpu")
    assert module.STAND_IN
    module.reset()
    return module


def native_spikes(spec, drive) -> list[tuple[int, int, int]]:
    """Sorted (trial, step, neuron) spikes of the native backend (float64, the contract's reference)."""
    from flyhpc.backends.native.backend import NativeBackend

    native = NativeBackend(n_threads=1)
    native.build(spec, drive.n_steps)
    native.setup()
    native.run(drive)
    table = native.spikes()
    native.close()
    return sorted(zip(table.trial.tolist(), table.step.tolist(), table.neuron.tolist()))
