"""The optional experiment hook of the backend lifecycle (`Backend.experiment`, `_apply` / `_restore`).

Native and pytorch change their built network in place and put it back bit for bit, also when the run inside
fails; the lifecycle refuses the hook before a build, on a build of an experiment's network, nested, for neurons
outside the network and on a backend that does not implement it; "both" leaves the silenced neurons' spikes out.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flyhpc import backends
from flyhpc.backends.base import make_options
from flyhpc.drive import experiment_drive
from flyhpc.errors import ConfigError, UnsupportedFeature
from flyhpc.model import Experiment, Params
from flyhpc.network import build_network
from tests.unit.backends.networks import busy_connectome

N_STEPS = 1000
OPTIONS = {"native": {}, "pytorch": {"device": "cpu"}}


@pytest.fixture(scope="module")
def busy():
    return busy_connectome("busy", "busy-v1")


def _arrays(sim) -> dict:
    """Copies of every array (and number) of the backend's built network that the hook may change."""
    net = sim._net
    if sim.name == "native":
        return {"weights_mv": net.weights_mv.copy(), "refractory_steps": net.refractory_steps.copy()}
    out = {}
    for f in dataclasses.fields(net):
        value = getattr(net, f.name)
        if hasattr(value, "clone"):
            out[f.name] = value.clone().cpu().numpy()
        elif isinstance(value, np.ndarray):
            out[f.name] = value.copy()
        elif isinstance(value, int):
            out[f.name] = value
    return out


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.asarray(a[k]).dtype == np.asarray(b[k]).dtype and np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(params=["native", "pytorch"])
def built(request, busy):
    if request.param == "pytorch":
        pytest.importorskip("torch")
    cls = backends.get(request.param)
    sim = cls(make_options(cls, OPTIONS[request.param]), n_threads=1)
    sim.build(build_network(busy, None, Params()), N_STEPS)
    sim.setup()
    yield sim
    sim.close()


def _exp(**kw):
    return Experiment(name="e", by="index", activate=tuple(range(8)), rate_hz=200.0, **kw)


def test_the_hook_puts_the_network_back_bit_for_bit(built, busy):
    assert type(built).reconfigurable()
    before = _arrays(built)
    exp = _exp(activate2=(40, 41), rate2_hz=50.0, silence=(100, 101, 102), silence_mode="outgoing")
    resolved = exp.resolve(busy.flywire_ids)
    with built.experiment(resolved):
        changed = _arrays(built)
        assert not _same(changed, before)
        built.run(experiment_drive(resolved.drive_sets, Params(), N_STEPS, 1, 5))
        assert len(built.spikes()) > 0
    assert _same(_arrays(built), before)
    with pytest.raises(ConfigError, match="outside"):  # an error inside still puts it back
        with built.experiment(resolved):
            drive = experiment_drive(resolved.drive_sets, Params(), N_STEPS, 1, 5)
            bad = dataclasses.replace(drive.trials[0], neurons=drive.trials[0].neurons + 10_000)
            built.run(dataclasses.replace(drive, trials=(bad,)))
    assert _same(_arrays(built), before)


def test_both_mode_leaves_the_silenced_neurons_spikes_out(built, busy):
    loud = None
    with built.experiment(_exp().resolve(busy.flywire_ids)) as sim:
        sim.run(experiment_drive(_exp().resolve(busy.flywire_ids).drive_sets, Params(), N_STEPS, 1, 5))
        counts = np.bincount(sim.spikes().neuron, minlength=busy.n_neurons)
        counts[:8] = 0
        loud = tuple(int(i) for i in np.argsort(-counts, kind="stable")[:3])
        assert counts[list(loud)].min() > 0
    for mode in ("outgoing", "both"):
        resolved = _exp(silence=loud, silence_mode=mode).resolve(busy.flywire_ids)
        with built.experiment(resolved) as sim:
            sim.run(experiment_drive(resolved.drive_sets, Params(), N_STEPS, 1, 5))
            heard = np.isin(sim.spikes().neuron, loud).sum()
        assert (heard == 0) == (mode == "both")
    with pytest.raises(ConfigError, match="before run"):  # leaving forgets the experiment's spikes
        built.spikes()


def test_the_lifecycle_refuses_the_hook_where_it_cannot_hold(built, busy):
    resolved = _exp().resolve(busy.flywire_ids)
    with built.experiment(resolved):
        with pytest.raises(ConfigError, match="inside experiment 'e'"):
            with built.experiment(resolved):
                pass
    far = Experiment(name="far", by="index", activate=(0,), rate_hz=10.0).resolve(np.arange(1000))
    far = dataclasses.replace(far, silenced=np.array([500], np.int32))
    with pytest.raises(ConfigError, match="outside the network's 0..299"):
        with built.experiment(far):
            pass
    built.build(build_network(busy, _exp(), Params()), N_STEPS)
    with pytest.raises(ConfigError, match="bare connectome"):
        with built.experiment(resolved):
            pass
    built.close()
    with pytest.raises(ConfigError, match="before build"):
        with built.experiment(resolved):
            pass


def test_a_backend_without_the_hook_is_refused_with_the_way_out(busy):
    cls = backends.get("brian2cpp")
    assert not cls.reconfigurable()
    with pytest.raises(UnsupportedFeature, match="build each experiment's network"):
        with cls().experiment(_exp().resolve(busy.flywire_ids)):
            pass
