"""Under FLYHPC_REQUIRE_CPU_BACKENDS=1 (.ci/run) a CPU backend whose probe fails fails the contract instead of
skipping it; without the flag (or for a GPU backend) it skips with the probe's reason."""

from __future__ import annotations

import pytest

from flyhpc.backends.base import Probe
from flyhpc.backends.genn import GeNNBackend
from flyhpc.backends.native.backend import NativeBackend
from tests.contract.conftest import skip_unless_runnable


def _broken(monkeypatch, cls):
    monkeypatch.setattr(cls, "probe", classmethod(lambda c: Probe(False, "broken on purpose")))


def test_a_cpu_backend_that_cannot_run_fails_when_required(monkeypatch):
    _broken(monkeypatch, NativeBackend)
    monkeypatch.setenv("FLYHPC_REQUIRE_CPU_BACKENDS", "1")
    with pytest.raises(pytest.fail.Exception, match="CPU backend native cannot run: broken on purpose"):
        skip_unless_runnable(NativeBackend, "native")
    monkeypatch.delenv("FLYHPC_REQUIRE_CPU_BACKENDS")
    with pytest.raises(pytest.skip.Exception, match="native: broken on purpose"):
        skip_unless_runnable(NativeBackend, "native")


def test_a_gpu_backend_that_cannot_run_still_skips_when_cpu_backends_are_required(monkeypatch):
    _broken(monkeypatch, GeNNBackend)
    monkeypatch.setenv("FLYHPC_REQUIRE_CPU_BACKENDS", "1")
    with pytest.raises(pytest.skip.Exception, match="genn: broken on purpose"):
        skip_unless_runnable(GeNNBackend, "genn")
