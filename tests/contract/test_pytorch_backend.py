"""The pytorch backend against the model contract: spike-for-spike parity and its edge cases.

A plain numpy clock-driven loop of the contract (written here, independently of the backend) is the
reference on a 1,000-neuron random network with silencing and two drive sets; where Brian2 can run,
brian2cpp is compared too. Hand-made tiny networks pin the refractory and same-step details.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flyhpc import backends  # noqa: E402
from flyhpc.backends.pytorch import PyTorchBackend, PyTorchOptions  # noqa: E402
from flyhpc.data.connectome import connectome_from_edges  # noqa: E402
from flyhpc.drive import make_drive  # noqa: E402
from flyhpc.errors import ConfigError, UnsupportedFeature  # noqa: E402
from flyhpc.model import Experiment, Params  # noqa: E402
from flyhpc.network import NetworkSpec, build_network  # noqa: E402
from flyhpc.results.spikes import SpikeTable  # noqa: E402

from tests.contract.conftest import hand_drive, spikes_of, tiny_spec  # noqa: E402


def reference_spikes(spec: NetworkSpec, drive) -> SpikeTable:
    """The contract as a plain per-step numpy loop, one trial at a time (v-form, explicit masks).

    As real Brian2 2.9 does (tests/contract/test_brian2_schedule.py pins it), a neuron frozen in its
    refractory window ignores deliveries and kicks; in its spike step the reset wipes them.
    """
    p = spec.params
    a, b = np.exp(-p.dt_ms / p.tau_m_ms), np.exp(-p.dt_ms / p.tau_s_ms)
    coef = p.tau_s_ms / (p.tau_s_ms - p.tau_m_ms) * (b - a)
    n, delay = spec.n_neurons, p.delay_steps
    ref = spec.refractory_steps.astype(np.int64)
    rows = [spec.indices[spec.indptr[i]:spec.indptr[i + 1]] for i in range(n)]
    wts = [spec.weights_mv[spec.indptr[i]:spec.indptr[i + 1]] for i in range(n)]
    trials, steps, neurons = [], [], []
    for td in drive.trials:
        v = np.full(n, p.v_0_mv)
        g = np.zeros(n)
        last = np.full(n, -10**9, dtype=np.int64)
        fired: list[np.ndarray] = []
        bounds = np.searchsorted(td.steps, np.arange(drive.n_steps + 1))
        for step in range(drive.n_steps):
            active = (step - last) >= ref
            v = np.where(active, p.v_0_mv + a * (v - p.v_0_mv) + coef * g, v)
            g = np.where(active, b * g, g)
            spike = active & (v > p.v_th_mv)
            dg, dv = np.zeros(n), np.zeros(n)
            if step >= delay:
                for pre in fired[step - delay]:
                    np.add.at(dg, rows[pre], wts[pre])
            np.add.at(dv, td.neurons[bounds[step]:bounds[step + 1]], p.kick_mv)
            g = np.where(active, g + dg, g)
            v = np.where(active, v + dv, v)
            idx = np.flatnonzero(spike)
            v[idx], g[idx], last[idx] = p.v_rst_mv, 0.0, step
            fired.append(idx)
            trials.append(np.full(idx.size, td.trial))
            steps.append(np.full(idx.size, step))
            neurons.append(idx)
    return SpikeTable.from_arrays(np.concatenate(trials), np.concatenate(steps), np.concatenate(neurons))


def random_spec(n_neurons: int = 1000, seed: int = 7) -> NetworkSpec:
    """A random network with strong feed-forward fan-out, silencing and two drive sets."""
    rng = np.random.default_rng(seed)
    n_edges = 60 * n_neurons
    pre = rng.integers(0, n_neurons, n_edges)
    post = rng.integers(0, n_neurons, n_edges)
    counts = rng.integers(1, 16, n_edges) * np.where(rng.random(n_edges) < 0.7, 1, -1)
    ids = np.arange(10_000, 10_000 + n_neurons, dtype=np.int64)
    conn = connectome_from_edges(ids, pre, post, counts, source="synthetic:test", digest="test")
    experiment = Experiment(name="parity", by="index", activate=tuple(range(0, 20)), rate_hz=200.0,
                            activate2=tuple(range(20, 30)), rate2_hz=90.0, silence=tuple(range(30, 45)))
    return build_network(conn, experiment, Params())


@pytest.fixture(scope="module")
def network():
    spec = random_spec()
    n_steps = spec.params.n_steps(0.5)
    drive = make_drive(spec, n_steps, n_trials=3, base_seed=11)
    return spec, drive, reference_spikes(spec, drive)


def simulate(spec, drive, **kwargs):
    backend = PyTorchBackend(PyTorchOptions(device="cpu"), **kwargs)
    try:
        backend.build(spec, drive.n_steps)
        backend.setup()
        report = backend.run(drive)
        return backend.spikes(), report
    finally:
        backend.close()


def test_registered_under_its_name():
    assert backends.get("pytorch") is PyTorchBackend
    assert PyTorchBackend.name == "pytorch"
    caps = PyTorchBackend.caps
    assert (caps.device, caps.batching, caps.drive, caps.precisions) == ("cpu", "batched", "events",
                                                                         ("float64", "float32"))
    assert PyTorchBackend.probe().ok


def test_float64_matches_numpy_reference_spike_for_spike(network):
    spec, drive, expected = network
    got, report = simulate(spec, drive, n_threads=1)
    assert report.notes["dtype"] == "float64"
    # the network must exercise recurrence, silencing and both drive sets, or parity means little
    driven = np.concatenate([s.indices for s in spec.drive_sets])
    recurrent = ~np.isin(expected.neuron, driven)
    assert recurrent.sum() > 2000 and np.unique(expected.neuron[recurrent]).size > 100
    assert not np.isin(expected.neuron, spec.silenced).any()
    assert np.isin(spec.drive_sets[1].indices, expected.neuron).all()
    assert set(np.unique(expected.trial)) == {0, 1, 2}
    assert len(got) == len(expected)
    assert got.equals(expected)


def test_batch_is_independent_of_trials_alongside(network):
    spec, drive, expected = network
    alone = dataclasses.replace(drive, trials=(drive.trials[1],))
    got, _ = simulate(spec, alone, n_threads=2)
    assert got.equals(expected.of_trial(1))


def test_float32_runs_and_is_recorded_as_float32(network):
    spec, drive, expected = network
    got, report = simulate(spec, drive, n_threads=1, precision="float32")
    assert report.notes["dtype"] == "float32"
    assert len(got) > 0
    assert abs(len(got) - len(expected)) <= 0.05 * len(expected)


def test_same_drive_gives_same_spikes(network):
    spec, drive, _ = network
    first, _ = simulate(spec, drive, n_threads=1)
    second, _ = simulate(spec, drive, n_threads=1)
    assert first.equals(second)


def test_matches_brian2cpp(network, tmp_path):
    """Spike-for-spike identical to Brian2's C++ standalone on the same network and drive."""
    try:
        cls = backends.get("brian2cpp")
    except Exception as exc:
        pytest.skip(f"brian2cpp: {exc}")
    if not cls.probe().ok:
        pytest.skip(f"brian2cpp: {cls.probe().reason}")
    spec, drive, expected = network
    brian = cls(n_threads=1, work_root=tmp_path)
    try:
        brian.build(spec, drive.n_steps)
        brian.setup()
        brian.run(drive)
        reference = brian.spikes()
    finally:
        brian.close()
    got, _ = simulate(spec, drive, n_threads=1)
    assert len(reference) == len(expected)
    assert got.equals(reference)


# -- tiny hand-made networks: the contract's details, against the reference and by hand ----------

def test_delivery_into_frozen_neuron_is_dropped_and_kept_from_release():
    """Inside the window (spike+1 .. spike+21) a delivery is lost; at spike+22 it counts again."""
    d = Params().delay_steps
    spec = tiny_spec(3, [(0, 1, 200.0), (2, 1, 60.0)], driven=(0, 2))
    only_first, _ = simulate(spec, hand_drive(300, {0: [(5, 0)]}), n_threads=1)
    first = spikes_of(only_first, 0, 1)
    assert len(first) == 1 and first[0] > 6 + d  # 0 fires at 6, its delivery lands at 6 + d
    s1 = first[0]
    # neuron 2 fires one step after its kick; its 60 mV reach neuron 1 d steps later
    drive = hand_drive(300, {0: [(5, 0), (s1 + 21 - d - 1, 2)], 1: [(5, 0), (s1 + 22 - d - 1, 2)]})
    got, _ = simulate(spec, drive, n_threads=1)
    assert got.equals(reference_spikes(spec, drive))
    assert spikes_of(got, 0, 1) == [s1]  # landed at s1 + 21: frozen, dropped
    late = spikes_of(got, 1, 1)  # landed at s1 + 22: integrates again, kept
    assert late[0] == s1 and len(late) == 2 and late[1] > s1 + 22


def test_same_step_kick_is_wiped_by_the_reset():
    """A kick in the step a neuron spikes is lost (v = v_rst); the next step's kick fires it again."""
    spec = tiny_spec(2, [], driven=(0,))
    drive = hand_drive(40, {0: [(10, 0), (11, 0), (12, 0)]})
    got, _ = simulate(spec, drive, n_threads=1)
    assert spikes_of(got, 0, 0) == [11, 13]
    assert got.equals(reference_spikes(spec, drive))


def test_kick_into_frozen_neuron_is_dropped():
    """A neuron with the 22-step window ignores kicks at spike+1 .. spike+21, obeys one at +22."""
    spec = tiny_spec(2, [], driven=(0,))
    refractory = spec.refractory_steps.copy()
    refractory[:] = spec.params.refractory_steps  # driven neuron 0 with the full 22-step window
    spec = dataclasses.replace(spec, refractory_steps=refractory)
    drive = hand_drive(120, {0: [(2, 0), (10, 0), (24, 0), (60, 0)], 1: [(2, 0), (25, 0)]})
    got, _ = simulate(spec, drive, n_threads=1)
    assert got.equals(reference_spikes(spec, drive))
    assert spikes_of(got, 0, 0) == [3, 61]
    assert spikes_of(got, 1, 0) == [3, 26]


def test_release_and_delivery_orders_with_varied_windows():
    """Per-neuron windows (including 1 and 30 steps) match the reference on a small random net."""
    spec = random_spec(200, seed=3)
    rng = np.random.default_rng(5)
    refractory = spec.refractory_steps.copy()
    free = refractory > 0
    refractory[free] = rng.choice([1, 2, 22, 30], size=free.sum())
    spec = dataclasses.replace(spec, refractory_steps=refractory)
    drive = make_drive(spec, 1500, n_trials=2, base_seed=2)
    got, _ = simulate(spec, drive, n_threads=1)
    expected = reference_spikes(spec, drive)
    assert len(expected) > 100
    assert got.equals(expected)


# -- bad input ------------------------------------------------------------------------------------

def test_bad_options_and_misuse_raise_clear_errors(network):
    spec, drive, _ = network
    with pytest.raises(ConfigError, match="device"):
        PyTorchOptions(device="tpu")
    with pytest.raises(ConfigError, match="block_size"):
        PyTorchOptions(block_size=100)
    with pytest.raises(UnsupportedFeature, match="float16"):
        PyTorchBackend(precision="float16")
    backend = PyTorchBackend(PyTorchOptions(device="cpu"), n_threads=1)
    with pytest.raises(ConfigError, match="before build"):
        backend.run(drive)
    backend.build(spec, drive.n_steps + 1)
    with pytest.raises(ConfigError, match="steps"):
        backend.run(drive)
    with pytest.raises(ConfigError, match="before run"):
        backend.spikes()
    backend.close()
    backend.close()
