"""Suite-wide rule: a test that needs a service CI provides fails instead of skipping when CI requires it.

`.ci/run` sets FLYHPC_REQUIRE_SLURM=1 (tests marked `slurm`: the loopback Slurm of
scripts/local-slurm/start.sh) and FLYHPC_REQUIRE_LMOD=1 (tests marked `lmod`). Under those flags a
skip of such a test — a missing sbatch, a cluster that does not answer, no Lmod — is reported as a
failure with the skip's reason, so these tests cannot quietly vanish from a green run.
"""

from __future__ import annotations

import os

import pytest

REQUIRED_BY_MARKER = {"slurm": "FLYHPC_REQUIRE_SLURM", "lmod": "FLYHPC_REQUIRE_LMOD"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped:
        return
    for marker, variable in REQUIRED_BY_MARKER.items():
        if item.get_closest_marker(marker) is not None and os.environ.get(variable) == "1":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            report.outcome = "failed"
            report.longrepr = f"{variable}=1 but this {marker} test would be skipped: {reason}"
            return
