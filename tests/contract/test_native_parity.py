"""native == brian2cpp, spike for spike, on a 1,200-neuron random network for 0.5 s.

Same NetworkSpec (silencing applied, two activation sets at their own rates) and the same seeded
drive through both backends; every spike of both trials must agree, and the lazy and clock engines
of the native backend must agree with each other (so the clock-driven fallback of a runaway trial,
bit-identical to the lazy engine in tests/unit/backends/native/test_engines.py, is covered too).
Counts x4: a quarter of the neurons fire. One Brian2 compilation (~30 s). Skipped where Brian2 cannot
build here.
"""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc.data.connectome import connectome_from_edges
from flyhpc.drive import make_drive
from flyhpc.model import Experiment, Params
from flyhpc.network import build_network

N_NEURONS = 1200
N_STEPS = 5000  # 0.5 s
SET1 = tuple(range(0, 16))
SET2 = tuple(range(16, 24))
SILENCED = tuple(range(24, 40))
COUNT_SCALE = 4


def parity_spec(count_scale: int):
    """Random graph (Poisson out-degree 50, lognormal counts x count_scale, 30 % inhibitory) + experiment."""
    rng = np.random.default_rng(2024)
    degree = rng.poisson(50, N_NEURONS)
    pre = np.repeat(np.arange(N_NEURONS), degree)
    post = rng.integers(0, N_NEURONS, pre.size)
    counts = count_scale * np.maximum(1, rng.lognormal(0.8, 0.9, pre.size).astype(np.int64))
    signed = np.where(rng.random(pre.size) < 0.7, counts, -counts)
    ids = np.arange(10_000, 10_000 + N_NEURONS, dtype=np.int64)
    conn = connectome_from_edges(ids, pre, post, signed, source="parity", digest="parity-v1")
    experiment = Experiment(name="parity", key="parity", by="index", activate=SET1, rate_hz=200.0,
                            activate2=SET2, rate2_hz=90.0, silence=SILENCED)
    return build_network(conn, experiment, Params())


@pytest.fixture(scope="module")
def runs(build_root):
    from flyhpc import backends

    spec = parity_spec(COUNT_SCALE)
    drive = make_drive(spec, N_STEPS, n_trials=2, base_seed=7, round_=1)
    out = {"spec": spec}
    for key, options in (("brian2cpp", None), ("native", None), ("native-clock", "clock")):
        name = key.split("-")[0]
        try:
            cls = backends.get(name)
        except Exception as exc:
            pytest.skip(f"{name}: {exc}")
        probe = cls.probe()
        if not probe.ok:
            pytest.skip(f"{name}: {probe.reason}")
        opts = cls.Options(engine=options) if options else None
        backend = cls(opts, n_threads=2, work_root=build_root)
        try:
            backend.build(spec, N_STEPS)
            backend.setup()
            report = backend.run(drive)
            out[key] = backend.spikes()
            if key == "native":
                out["notes"] = report.notes
        finally:
            backend.close()
    return out


def test_network_is_active_and_experiment_applied(runs):
    table, spec = runs["native"], runs["spec"]
    for trial in (0, 1):
        t = table.of_trial(trial)
        assert len(t) > 3_000 and np.unique(t.neuron).size > 0.2 * N_NEURONS, trial
    assert not np.isin(table.neuron, SILENCED).any()
    silent_in = spec.indices[np.isin(spec.indices, SILENCED)]
    assert silent_in.size == 0 and np.diff(spec.indptr)[list(SILENCED)].sum() == 0
    driven2 = np.isin(table.neuron, SET2)
    assert driven2.sum() > 100  # the second activation set is driven at its own rate


def test_native_equals_brian2cpp_spike_for_spike(runs):
    native, brian = runs["native"], runs["brian2cpp"]
    for trial in (0, 1):
        a, b = native.of_trial(trial), brian.of_trial(trial)
        if not a.equals(b):
            n = min(len(a), len(b))
            first = int(np.argmax((a.step[:n] != b.step[:n]) | (a.neuron[:n] != b.neuron[:n])))
            pytest.fail(f"trial {trial}: {len(a)} native vs {len(b)} brian2cpp spikes, first difference at "
                        f"spike {first}: native {(a.step[first], a.neuron[first])} "
                        f"brian2cpp {(b.step[first], b.neuron[first])}")
    assert native.equals(brian)


def test_lazy_equals_clock_engine(runs):
    assert runs["native"].equals(runs["native-clock"])
    assert runs["notes"]["clock_steps"] == "0,0"  # the lazy engine stayed lazy at this activity
