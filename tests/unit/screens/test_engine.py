"""The screen runners: one engine network changed per experiment in place gives the spikes of a fresh build.

A busy 300-neuron network (a sixth of it spiking; with clock_on 0.15 the lazy engine switches to clock-driven
steps and back 6-20 times per trial): silencing several active neurons in either mode, on both engines, equals
`NativeBackend` on `build_network`'s network; the shared network is put back after each experiment (a driven
neuron's refractory period, masked weights); any other backend runs through `BackendRunner` with the same spikes.
"""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc.backends.native.backend import NativeBackend, NativeOptions
from flyhpc.data.connectome import connectome_from_edges
from flyhpc.drive import make_drive
from flyhpc.model import Experiment, Params
from flyhpc.network import build_network
from flyhpc.screens.engine import BackendRunner, NativeRunner, make_runner
from tests.contract.conftest import BIG
from tests.unit.backends.networks import busy_connectome

N_STEPS = 2000


@pytest.fixture(scope="module")
def busy():
    return busy_connectome("busy", "busy-v1")


def _fresh(conn, experiment, options=None, n_run=2, seed=5):
    spec = build_network(conn, experiment, Params())
    backend = NativeBackend(NativeOptions(**(options or {})), n_threads=1)
    try:
        backend.build(spec, N_STEPS)
        backend.run(make_drive(spec, N_STEPS, n_run, base_seed=seed))
        return backend.spikes()
    finally:
        backend.close()


def _exp(**kw):
    return Experiment(name="e", by="index", activate=tuple(range(8)), rate_hz=200.0, **kw)


@pytest.mark.parametrize("options", [{}, {"clock_on": 0.15, "clock_off": 0.12}, {"engine": "clock"}],
                         ids=["lazy", "lazy-switching", "clock"])
def test_in_place_silencing_equals_a_fresh_network(busy, options):
    runner = NativeRunner(busy, Params(), N_STEPS, options=options)
    base = runner.run(_exp(), 2, 5).spikes
    assert len(np.unique(base.neuron)) > 40 and base.equals(_fresh(busy, _exp(), options))
    counts = np.bincount(base.neuron, minlength=busy.n_neurons)
    counts[:8] = 0
    loud = tuple(int(i) for i in np.argsort(-counts, kind="stable")[:5])
    for mode in ("both", "outgoing"):
        exp = _exp(silence=loud, silence_mode=mode)
        got = runner.run(exp, 2, 5).spikes
        assert got.equals(_fresh(busy, exp, options)), mode
        assert not got.equals(base)
        assert (np.isin(got.neuron, loud).sum() == 0) == (mode == "both")
    assert runner.run(_exp(), 2, 5).spikes.equals(base)  # the shared network was put back


def test_refractory_period_of_a_driven_neuron_is_restored():
    # 0 -> 1 strong enough to make 1 spike on every input it does not drop as refractory
    conn = connectome_from_edges(np.arange(10, 13, dtype=np.int64), np.array([0]), np.array([1]), np.array([BIG]),
                                 "pair", "pair-v1")
    both = Experiment(name="a", by="index", activate=(0, 1), rate_hz=900.0)
    alone = Experiment(name="b", by="index", activate=(0,), rate_hz=900.0)
    runner = NativeRunner(conn, Params(), N_STEPS)
    runner.run(both, 1, 0)
    assert runner.run(alone, 1, 0).spikes.equals(_fresh(conn, alone, n_run=1, seed=0))


def test_other_backends_run_through_the_pipeline(busy):
    pytest.importorskip("torch")
    runner = make_runner("pytorch", busy, Params(), N_STEPS, n_threads=1)
    assert isinstance(runner, BackendRunner)
    exp = _exp(silence=(20, 30), silence_mode="outgoing")
    run = runner.run(exp, 2, 5)
    assert run.spikes.equals(_fresh(busy, exp)) and run.engine_s > 0
