"""Suite-wide rule: a test that needs something CI provides fails instead of skipping when CI requires it.

`.ci/run` sets one flag per marker (REQUIRED_BY_MARKER): `slurm` (the loopback Slurm of
scripts/local-slurm/start.sh), `lmod`, `nvcc` (a CUDA compiler; .ci/run installs one from PyPI where
the machine has none), `shared_data` (../shared beside the repository: the FlyWire lists and the
paper's example outputs) and `netns` (`unshare -n`: the offline kit's install step without a network). ../shared is reached only through the `shared_dir` fixture (directly or
through `examples_dir`), and every test using it is marked `shared_data` here. Under those flags a
skip of such a test — from a marker, a `skipif`, or `pytest.skip` in a fixture or the test body — is
reported as a failure with the skip's reason, so these tests cannot quietly vanish from a green run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REQUIRED_BY_MARKER = {"slurm": "FLYHPC_REQUIRE_SLURM", "lmod": "FLYHPC_REQUIRE_LMOD", "nvcc": "FLYHPC_REQUIRE_NVCC",
                      "shared_data": "FLYHPC_REQUIRE_SHARED", "netns": "FLYHPC_REQUIRE_NETNS"}
REPO = Path(__file__).resolve().parents[1]
# ../shared relative to the repository root (never an absolute path of one machine): CI and the
# developers' machines lay it beside the checkout.
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository root; the test skips when it is absent (fails under FLYHPC_REQUIRE_SHARED=1)."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not present (../shared beside the repository: the FlyWire lists and the paper's "
                    "examples)")
    return SHARED


@pytest.fixture(scope="session")
def examples_dir(shared_dir) -> Path:
    """The paper's example outputs (../shared/data/paper-examples: the pinned copies, test fixtures only)."""
    return shared_dir / "data" / "paper-examples"


def pytest_collection_modifyitems(items):
    for item in items:
        if "shared_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):  # an expected failure is no skip
        return
    for marker, variable in REQUIRED_BY_MARKER.items():
        if item.get_closest_marker(marker) is not None and os.environ.get(variable) == "1":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            report.outcome = "failed"
            report.longrepr = f"{variable}=1 but this {marker} test would be skipped: {reason}"
            return
