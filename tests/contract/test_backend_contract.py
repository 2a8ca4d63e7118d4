"""Scenario tests every registered backend must pass: exact spike steps derived by hand from the contract.

The scenarios themselves (the network, the hand-made and seeded drives, the expected spikes and their derivations)
live in `flyhpc.contract`, which `flyhpc check` also runs; each becomes one test here, run on every registered
backend that can run here. The expected steps follow from DESIGN §1 / §1a and were checked against Brian2 itself in
test_brian2_schedule.py. `contract_runs_of` and `SCENARIOS` (the tests, named test_<scenario>) let another test
run the same scenarios on a backend class of its own (tests/unit/backends/test_adding_a_backend.py).
"""

from __future__ import annotations

import pytest

from flyhpc import backends, contract
from flyhpc.contract import contract_runs_of  # noqa: F401  (re-exported for other tests)


@pytest.fixture(scope="session")
def contract_runs(backend_key, build_root):
    """(spec, hand SpikeTable, random Drive, random SpikeTable, repeat SpikeTable, build report) of one backend."""
    return contract_runs_of(backends.get(backend_key), build_root)


def _as_test(scenario):
    def test(contract_runs):
        try:
            scenario(contract_runs)
        except contract.ScenarioSkipped as exc:
            pytest.skip(str(exc))

    test.__name__ = test.__qualname__ = f"test_{scenario.__name__}"
    test.__doc__ = scenario.__doc__
    return test


# Every scenario, in order: each takes the dict of `contract_runs_of` and raises AssertionError if the backend breaks it.
SCENARIOS = tuple(_as_test(scenario) for scenario in contract.SCENARIOS)
globals().update({test.__name__: test for test in SCENARIOS})
