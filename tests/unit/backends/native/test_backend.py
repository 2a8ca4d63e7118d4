"""The native backend around the engines: options, errors, notes, engines agreeing through the API."""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc import backends
from flyhpc.backends.native.backend import NativeBackend, NativeOptions
from flyhpc.drive import make_drive
from flyhpc.errors import ConfigError, UnsupportedFeature
from flyhpc.model import Experiment, Params
from flyhpc.network import build_network
from flyhpc.results.spikes import SpikeTable

from tests.unit.backends.networks import busy_connectome


def small_spec():
    conn = busy_connectome("small", "small-v1")
    exp = Experiment(name="small", by="index", activate=tuple(range(10)), rate_hz=200.0,
                     activate2=(10, 11), rate2_hz=50.0, silence=(12,))
    return build_network(conn, exp, Params())


def test_registered_with_its_capabilities():
    cls = backends.get("native")
    assert cls is NativeBackend and cls.name == "native"
    caps = cls.caps
    assert (caps.device, caps.batching, caps.drive, caps.precisions, caps.compiles, caps.deterministic,
            caps.image, caps.verified_here) == ("cpu", "parallel", "events", ("float64",), True, True,
                                                "flyhpc-base", "yes")
    probe = cls.probe()
    assert probe.ok and "numba" in probe.versions


def test_options_are_checked():
    with pytest.raises(ConfigError, match="engine must be one of lazy, clock, got 'gpu'"):
        NativeOptions(engine="gpu")
    with pytest.raises(ConfigError, match="clock_on must be a number >= 0"):
        NativeOptions(clock_on=-1)
    with pytest.raises(ConfigError, match="clock_off"):
        NativeOptions(clock_on=0.1, clock_off=0.5)
    with pytest.raises(UnsupportedFeature, match="float32"):
        NativeBackend(precision="float32")


def test_engines_agree_and_trials_keep_their_numbers():
    spec = small_spec()
    drive = make_drive(spec, 2000, n_trials=3, base_seed=4, first_trial=5)
    tables = {}
    for engine in ("lazy", "clock"):
        backend = NativeBackend(NativeOptions(engine=engine), n_threads=2)
        backend.build(spec, 2000)
        backend.setup()
        report = backend.run(drive)
        tables[engine] = backend.spikes()
        assert backend.spikes() is tables[engine]
        assert report.notes["engine"] == engine and report.notes["threads"] == "2"
        backend.close()
        backend.close()
    lazy = tables["lazy"]
    assert lazy.equals(tables["clock"]) and len(lazy) > 500
    assert sorted(set(lazy.trial.tolist())) == [5, 6, 7]
    assert not np.isin(lazy.neuron, [12]).any()


def test_misuse_is_named():
    spec = small_spec()
    backend = NativeBackend(n_threads=1)
    with pytest.raises(ConfigError, match="run\\(\\) called before build\\(\\)"):
        backend.run(make_drive(spec, 100, 1))
    with pytest.raises(ConfigError, match="spikes\\(\\) called before run\\(\\)"):
        backend.spikes()
    backend.build(spec, 100)
    with pytest.raises(ConfigError, match="drive has 50 steps but the build was made for 100"):
        backend.run(make_drive(spec, 50, 1))


def test_a_streamed_run_hands_over_the_same_spikes_trial_by_trial():
    spec = small_spec()
    drive = make_drive(spec, 2000, n_trials=4, base_seed=4, first_trial=5)
    backend = NativeBackend(n_threads=2)
    backend.build(spec, 2000)
    backend.run(drive)
    whole = backend.spikes()
    handed = []
    report = backend.run(drive, handed.append)
    during_sim = len(handed)
    backend.drain()
    assert during_sim < len(handed) == 4 and [int(t.trial[0]) for t in handed] == [5, 6, 7, 8]
    assert SpikeTable.concat(handed).equals(whole) and report.notes["threads"] == "2"
    assert len(report.notes["synaptic_events"].split(",")) == 4  # every trial's stats, handed over or not
    with pytest.raises(ConfigError, match="handed its spikes to a sink"):
        backend.spikes()
    backend.run(drive)
    with pytest.raises(ConfigError, match="drain\\(\\) without a completed run"):
        backend.drain()
    backend.close()


def test_only_a_streaming_backend_takes_a_sink():
    from flyhpc.backends.brian2.cpp import Brian2CppBackend

    assert NativeBackend.streams() and not Brian2CppBackend.streams()
    with pytest.raises(UnsupportedFeature, match="'brian2cpp' cannot hand over trials"):
        Brian2CppBackend(n_threads=1).run(make_drive(small_spec(), 100, 1), print)
