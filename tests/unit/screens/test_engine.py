"""The screen runner: one network changed per experiment in place gives the spikes of a fresh build.

A busy 300-neuron network (a sixth of it spiking; with clock_on 0.15 the lazy engine switches to clock-driven
steps and back 6-20 times per trial): silencing several active neurons in either mode, on both native engines and
on pytorch (the backends with the experiment hook), equals the same backend on `build_network`'s network; the
shared network is put back after each experiment (a driven neuron's refractory period, silenced synapses). A
backend without the hook (brian2cpp) is checked in test_chunk.py against `flyhpc run`.
"""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc import backends
from flyhpc.backends.base import make_options
from flyhpc.data.connectome import connectome_from_edges
from flyhpc.drive import make_drive
from flyhpc.model import Experiment, Params
from flyhpc.network import build_network
from flyhpc.screens.engine import ScreenRunner
from tests.contract.conftest import BIG
from tests.unit.backends.networks import busy_connectome

N_STEPS = 2000
CASES = [("native", {}), ("native", {"clock_on": 0.15, "clock_off": 0.12}), ("native", {"engine": "clock"}),
         ("pytorch", {"device": "cpu"})]
IDS = ["native-lazy", "native-lazy-switching", "native-clock", "pytorch"]


@pytest.fixture(scope="module")
def busy():
    return busy_connectome("busy", "busy-v1")


def _fresh(backend, conn, experiment, options=None, n_run=2, seed=5):
    """`backend` on `build_network`'s network of `experiment` (what `flyhpc run` simulates)."""
    cls = backends.get(backend)
    spec = build_network(conn, experiment, Params())
    sim = cls(make_options(cls, options or {}), n_threads=1)
    try:
        sim.build(spec, N_STEPS)
        sim.run(make_drive(spec, N_STEPS, n_run, base_seed=seed))
        return sim.spikes()
    finally:
        sim.close()


def _exp(**kw):
    return Experiment(name="e", by="index", activate=tuple(range(8)), rate_hz=200.0, **kw)


@pytest.mark.parametrize("backend,options", CASES, ids=IDS)
def test_in_place_silencing_equals_a_fresh_network(busy, backend, options):
    if backend == "pytorch":
        pytest.importorskip("torch")
    with ScreenRunner(backend, busy, Params(), N_STEPS, options=options) as runner:
        assert runner.in_place
        base = runner.run(_exp(), 2, 5).spikes
        assert len(np.unique(base.neuron)) > 40 and base.equals(_fresh(backend, busy, _exp(), options))
        counts = np.bincount(base.neuron, minlength=busy.n_neurons)
        counts[:8] = 0
        loud = tuple(int(i) for i in np.argsort(-counts, kind="stable")[:5])
        for mode in ("both", "outgoing"):
            exp = _exp(silence=loud, silence_mode=mode)
            got = runner.run(exp, 2, 5)
            assert got.spikes.equals(_fresh(backend, busy, exp, options)), mode
            assert not got.spikes.equals(base) and got.engine_s > 0
            assert (np.isin(got.spikes.neuron, loud).sum() == 0) == (mode == "both")
            np.testing.assert_array_equal(got.silenced, sorted(loud))
        assert runner.run(_exp(), 2, 5).spikes.equals(base)  # the shared network was put back


@pytest.mark.parametrize("backend", ["native", "pytorch"])
def test_refractory_period_of_a_driven_neuron_is_restored(backend):
    if backend == "pytorch":
        pytest.importorskip("torch")
    # 0 -> 1 strong enough to make 1 spike on every input it does not drop as refractory
    conn = connectome_from_edges(np.arange(10, 13, dtype=np.int64), np.array([0]), np.array([1]), np.array([BIG]),
                                 "pair", "pair-v1")
    both = Experiment(name="a", by="index", activate=(0, 1), rate_hz=900.0)
    alone = Experiment(name="b", by="index", activate=(0,), rate_hz=900.0)
    with ScreenRunner(backend, conn, Params(), N_STEPS) as runner:
        runner.run(both, 1, 0)
        got = runner.run(alone, 1, 0).spikes
    assert got.equals(_fresh(backend, conn, alone, n_run=1, seed=0))
    assert len(got) > 0 and not got.equals(_fresh(backend, conn, both, n_run=1, seed=0))

