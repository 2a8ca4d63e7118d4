"""Brian2 itself, pinned: the schedule facts the model contract (DESIGN §1, §1a) rests on.

Runtime-mode Brian2 (numpy target, same clock-driven schedule as standalone) on tiny networks with
fixed inputs, values checked against arithmetic written out here; then the same network through
the brian2cpp standalone backend (spikes equal to runtime, build cache, device reset on close).
a = exp(-dt/tau_m) = exp(-0.005), b = exp(-dt/tau_s) = exp(-0.02); u = v - v_0.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

b2 = pytest.importorskip("brian2")

from flyhpc.backends.brian2.network import build_brian_network, spike_steps  # noqa: E402
from flyhpc.model import Params  # noqa: E402
from tests.contract.conftest import skip_unless_runnable  # noqa: E402

from tests.contract.conftest import CONTRACT_STEPS, HAND_TRIALS, contract_spec, hand_drive, tiny_spec  # noqa: E402

A = 0.9950124791926823  # exp(-0.1 / 20)
B = 0.9801986733067553  # exp(-0.1 / 5)
V0 = -52.0


@pytest.fixture(autouse=True)
def runtime_numpy():
    """Runtime device, numpy code generation (no compiler), preferences restored afterwards."""
    from brian2.devices.device import get_device, runtime_device

    assert get_device() is runtime_device, "a backend left Brian2 on a standalone device"
    saved = b2.prefs.codegen.target
    b2.prefs.codegen.target = "numpy"
    yield
    b2.prefs.codegen.target = saved


def simulate(spec, n_steps, trial=None, init_g_mv=None):
    """Run `spec` in runtime mode; return (spike steps, spike neurons, v_mv[n, step], g_mv, not_refractory).

    The StateMonitor records in the 'end' slot: column k is the state after every slot of step k.
    """
    net = build_brian_network(spec, n_steps, trial=trial)
    if init_g_mv is not None:
        net.neurons.g = np.asarray(init_g_mv) * b2.mV
    mon = b2.StateMonitor(net.neurons, ["v", "g", "not_refractory"], record=True, when="end",
                          name="flyhpc_test_state")
    net.network.add(mon)
    net.network.run(n_steps * spec.params.dt_ms * b2.ms)
    steps, neurons = spike_steps(net)
    # Copies (np.array), not views: Brian2 >= 2.10's C++ dynamic arrays do not outlive the network.
    return steps, neurons, mon.v_[:] * 1e3, mon.g_[:] * 1e3, np.array(mon.not_refractory[:], bool)


@pytest.fixture(scope="module")
def contract_trial0():
    """The contract network's hand trial 0 in runtime Brian2, 200 steps (every event is before 130)."""
    spec = contract_spec()
    saved = b2.prefs.codegen.target
    b2.prefs.codegen.target = "numpy"
    try:
        return simulate(spec, 200, hand_drive(200, {0: HAND_TRIALS[0]}).trials[0])
    finally:
        b2.prefs.codegen.target = saved


def spikes(result, neuron):
    steps, neurons = result[0], result[1]
    return steps[neurons == neuron].tolist()


def test_propagator_coefficients():
    """One neuron starting at v = v_0 with g = 3 mV, no input: after k steps
    g = 3 b^k and u = (3/3)(a^k - b^k)  (the linear propagator with tau_s/(tau_s - tau_m) = -1/3).
    Step 1: g = 3 x 0.98019867 = 2.94059602 mV, u = 0.99501248 - 0.98019867 = 0.01481381 mV."""
    p = Params()
    assert p.decay_m == A and p.decay_s == B
    spec = tiny_spec(1)
    _, _, v, g, _ = simulate(spec, 60, init_g_mv=[3.0])
    k = np.arange(1, 61)
    assert g[0, 0] == pytest.approx(2.94059602, abs=1e-8)
    assert v[0, 0] == pytest.approx(-51.98518619, abs=1e-8)
    np.testing.assert_allclose(g[0], 3.0 * B ** k, rtol=1e-12)
    np.testing.assert_allclose(v[0] - V0, (A ** k - B ** k), rtol=1e-10)


def test_kick_at_step_k_spikes_at_k_plus_1(contract_trial0):
    """D4 kicked at 100 (synapses slot): v = -52 + 68.75 = 16.75 mV after step 100; at 101 it
    integrates to -52 + 68.75 a = 16.4071 mV > -45, spikes and is reset to -52 with g = 0."""
    _, _, v, g, _ = contract_trial0
    assert v[4, 99] == pytest.approx(V0, abs=1e-9)
    assert v[4, 100] == pytest.approx(16.75, abs=1e-9)
    assert spikes(contract_trial0, 4) == [101]
    assert v[4, 101] == pytest.approx(V0, abs=1e-9) and g[4, 101] == 0.0


def test_driven_neuron_cannot_spike_on_consecutive_steps(contract_trial0):
    """D3 (refractory 0) kicked at 30, 31, 32, 33, 34: the kick of 31 lands in the step D3 spikes and
    is lost; 32 gives 16.75 mV again -> spike at 33; so spikes at 31, 33, 35 (two steps apart)."""
    _, _, v, _, nr = contract_trial0
    assert spikes(contract_trial0, 3) == [31, 33, 35]
    assert v[3, 31] == pytest.approx(V0, abs=1e-9)        # kick of step 31 gone
    assert v[3, 32] == pytest.approx(16.75, abs=1e-9)
    assert nr[3, 32]                                       # refractory 0: integrating again at s+1


def test_delay_is_18_steps_g_then_v(contract_trial0):
    """D2 spikes at 1: E's g jumps by 24.75 mV in step 1 + 18 = 19, v moves first at step 20:
    v(20) = -52 + (24.75/3)(a - b) = -52 + 8.25 x 0.01481381 = -51.87778 mV (D1's delivery at 20
    is added to g after step 20's integration: g(20) = 24.75 b + 24.75)."""
    _, _, v, g, _ = contract_trial0
    assert g[12, 18] == 0.0 and g[12, 19] == pytest.approx(24.75, abs=1e-9)
    assert v[12, 19] == pytest.approx(V0, abs=1e-9)
    assert v[12, 20] == pytest.approx(V0 + 8.25 * (A - B), abs=1e-9)
    assert v[12, 20] == pytest.approx(-51.87778, abs=1e-5)
    assert g[12, 20] == pytest.approx(24.75 * B + 24.75, abs=1e-9)
    assert spikes(contract_trial0, 13) == [120]            # F: D4 spike 101 + 18 + 1


def test_refractory_neuron_is_frozen_and_drops_input(contract_trial0):
    """B1 spikes at 20 (reset: -52, g = 0). D0's spike at 11 delivers 1500.125 mV at 29 and D7's
    (spike 23) at 41: Brian2 writes variables flagged (unless refractory) only where not_refractory,
    so both are dropped; v and g stay at -52 / 0 through step 41 and not_refractory is False there."""
    _, _, v, g, nr = contract_trial0
    assert spikes(contract_trial0, 9) == [20]
    assert np.all(g[9, 20:60] == 0.0)
    np.testing.assert_allclose(v[9, 20:60], V0, atol=1e-9)
    assert not nr[9, 20:42].any() and nr[9, 42:60].all()   # frozen steps 20..41 (spike step included)
    assert nr[9, 19]


def test_input_mid_refractory_leaves_no_trace_in_g_or_v(contract_trial0):
    """H spikes at 20 (D0's delivery at 19); D0's second spike delivers 1500.125 mV at 29, mid-window. The paper's
    equations (v and g `(unless refractory)`, `on_pre: g += w`) drop it: v = v_rst and g = 0 through step 41 (the
    window, spike step included); at 42 H integrates again and D8's 24.75 mV arrives into g = 0, so from 43 on v is
    exactly one PSP, u(n) = 8.25 (a^(n-42) - b^(n-42)), as if nothing had come at 29. Kept (frozen or decaying),
    g would be over 1100 mV at 42 and H would spike at 43."""
    _, _, v, g, nr = contract_trial0
    assert spikes(contract_trial0, 17) == [20]
    assert g[17, 19] == pytest.approx(1500.125, abs=1e-9)            # the delivery that makes it spike
    assert np.all(g[17, 20:42] == 0.0) and g[17, 29] == 0.0          # the one at 29: gone, not stored
    np.testing.assert_allclose(v[17, 20:43], V0, atol=1e-9)
    assert not nr[17, 20:42].any() and nr[17, 42:].all()
    assert g[17, 42] == pytest.approx(24.75, abs=1e-9)
    n = np.arange(43, 200)
    np.testing.assert_allclose(v[17, 43:200] - V0, 8.25 * (A ** (n - 42) - B ** (n - 42)), rtol=1e-10)
    np.testing.assert_allclose(g[17, 42:199], 24.75 * B ** (n - 43), rtol=1e-10)
    assert (v[17, 43:200] - V0).max() == pytest.approx(3.9, abs=0.05)   # one PSP: far below the 7 mV threshold


def test_refractory_window_ends_after_22_steps(contract_trial0):
    """B2 spikes at 20; D8 (spike 24) delivers at 42 = 20 + 22, the first step B2 integrates again:
    kept (g = 1500.125 after step 42), integrated at 43: u = 500.04 x 0.01481381 = 7.4075 > 7 -> spike."""
    _, _, v, g, nr = contract_trial0
    assert g[10, 41] == 0.0 and g[10, 42] == pytest.approx(1500.125, abs=1e-9)
    assert v[10, 42] == pytest.approx(V0, abs=1e-9)
    assert spikes(contract_trial0, 10) == [20, 43]
    assert Params().refractory_steps == 22


def test_delivery_in_the_spiking_step_is_lost(contract_trial0):
    """C spikes at 20 (delivery 19 from D2); D1's 1500.125 mV arrives at 20, after C's threshold:
    after step 20 g = 0, and C does not spike at 42 when it integrates again."""
    _, _, v, g, _ = contract_trial0
    assert spikes(contract_trial0, 11) == [20]
    assert g[11, 20] == 0.0 and v[11, 20] == pytest.approx(V0, abs=1e-9)
    assert np.all(g[11, 20:100] == 0.0)


def test_threshold_through_summed_psps(contract_trial0):
    """E: u(n) = 8.25 [(a^(n-19) - b^(n-19)) + (a^(n-20) - b^(n-20))] for n >= 20, strictly
    below 7 mV at n = 73 (6.9674), above at 74 (7.0165): spike at 74, as the closed form says."""
    _, _, v, _, _ = contract_trial0
    u = lambda n: 8.25 * ((A ** (n - 19) - B ** (n - 19)) + (A ** (n - 20) - B ** (n - 20)))  # noqa: E731
    n = np.arange(20, 74)
    np.testing.assert_allclose(v[12, 20:74] - V0, u(n), rtol=1e-10)
    assert u(73) == pytest.approx(6.9674, abs=1e-4) and u(74) == pytest.approx(7.0165, abs=1e-4)
    assert spikes(contract_trial0, 12) == [74]


def test_refractory_zero_equals_kicks_only(contract_trial0):
    """rfc = refractory_steps x dt: 22 steps for 2.2 ms (Brian2 counts timestep(2.2 ms) = 22)."""
    assert math.floor((2.2 + 1e-4) / 0.1) == 22


# ---- through the standalone backend ------------------------------------------------------------

@pytest.fixture(scope="module")
def standalone(build_root):
    from flyhpc.backends.brian2.cpp import Brian2CppBackend

    skip_unless_runnable(Brian2CppBackend, "brian2cpp")
    spec = contract_spec()
    drive = hand_drive(CONTRACT_STEPS, HAND_TRIALS)
    backend = Brian2CppBackend(n_threads=1, work_root=build_root)
    try:
        first = backend.build(spec, CONTRACT_STEPS)
        run = backend.run(drive)
        table = backend.spikes()
    finally:
        backend.close()
    return {"spec": spec, "drive": drive, "build": first, "run": run, "table": table}


def test_standalone_equals_runtime(standalone):
    """Every hand trial: the compiled C++ binary gives the same spike steps as runtime Brian2."""
    spec = standalone["spec"]
    saved = b2.prefs.codegen.target
    for trial in standalone["drive"].trials:
        steps, neurons, *_ = simulate(spec, CONTRACT_STEPS, trial)
        order = np.lexsort((neurons, steps))
        got = standalone["table"].of_trial(trial.trial)
        assert got.step.tolist() == steps[order].tolist(), trial.trial
        assert got.neuron.tolist() == neurons[order].tolist(), trial.trial
    assert b2.prefs.codegen.target == saved
    assert standalone["run"].inner_s is not None and standalone["run"].inner_s > 0


def test_standalone_build_is_cached_across_instances_and_processes(standalone, build_root):
    """Same network and duration: the next backend instance, and a new Python process, reuse the
    build directory without recompiling (BuildReport.cached, binary untouched)."""
    from flyhpc.backends.brian2.cpp import Brian2CppBackend

    work_dir = Path(standalone["build"].work_dir)
    assert work_dir.parent == build_root / "brian2cpp" and (work_dir / "main").is_file()
    mtime = (work_dir / "main").stat().st_mtime_ns
    backend = Brian2CppBackend(n_threads=1, work_root=build_root)
    try:
        again = backend.build(standalone["spec"], CONTRACT_STEPS)
        backend.run(standalone["drive"])
        assert backend.spikes().equals(standalone["table"])
    finally:
        backend.close()
    assert again.cached and again.work_dir == str(work_dir)
    here = Path(__file__).parent
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from conftest import contract_spec, CONTRACT_STEPS\n"
            "from flyhpc.backends.brian2.cpp import Brian2CppBackend\n"
            "b = Brian2CppBackend(n_threads=1, work_root=%r)\n"
            "r = b.build(contract_spec(), CONTRACT_STEPS); b.close()\n"
            "print('CACHED', r.cached, r.work_dir)\n") % (str(here), str(build_root))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"CACHED True {work_dir}" in out.stdout
    assert (work_dir / "main").stat().st_mtime_ns == mtime
    assert not any(p.name.startswith("results_") for p in work_dir.iterdir())


def test_other_duration_gets_its_own_build_dir(standalone):
    from flyhpc.backends.brian2.cpp import build_key

    spec = standalone["spec"]
    key = Path(standalone["build"].work_dir).name
    assert key == build_key(spec.digest(), CONTRACT_STEPS, b2.__version__, 0, "cpp_standalone")
    assert key != build_key(spec.digest(), CONTRACT_STEPS + 1, b2.__version__, 0, "cpp_standalone")
    assert key != build_key(spec.digest(), CONTRACT_STEPS, b2.__version__, 2, "cpp_standalone")


# ---- the drive bit table ----------------------------------------------------------------------

def test_drive_table_bits_and_errors():
    from flyhpc.backends.brian2.network import BITS_PER_COLUMN, drive_table
    from flyhpc.drive import TrialDrive
    from flyhpc.errors import ConfigError

    driven = np.array([3, 7, 40] + list(range(100, 100 + BITS_PER_COLUMN)), dtype=np.int32)  # 35 neurons
    trial = TrialDrive(0, np.array([0, 0, 5, 9]), np.array([3, 131, 7, 40], dtype=np.int32))
    table = drive_table(trial, driven, 10)
    assert table.shape == (10, 2) and table.dtype == np.float64
    assert table[0, 0] == 1.0 and table[0, 1] == 2.0 ** (34 - 32)   # neuron 131 is driver 34
    assert table[5, 0] == 2.0 and table[9, 0] == 4.0 and table.sum() == 1 + 4 + 2 + 4
    for steps, neurons, msg in (([1], [4], "not in the network's drive sets"), ([10], [3], "outside 0..9"),
                                ([2, 2], [3, 3], "twice in one step")):
        with pytest.raises(ConfigError, match=msg):
            drive_table(TrialDrive(0, np.array(steps), np.array(neurons, dtype=np.int32)), driven, 10)


def test_more_than_32_driven_neurons_use_a_second_column():
    """40 driven neurons, neuron k kicked at step k: each spikes at k + 1 (bits of column 2 included)."""
    n = 40
    spec = tiny_spec(n, driven=tuple(range(n)))
    trial = hand_drive(60, {0: [(k, k) for k in range(n)]}).trials[0]
    steps, neurons, *_ = simulate(spec, 60, trial)
    assert sorted(zip(neurons.tolist(), steps.tolist())) == [(k, k + 1) for k in range(n)]


def test_backend_refuses_bad_calls(build_root):
    from flyhpc.backends.brian2.cpp import Brian2CppBackend
    from flyhpc.errors import ConfigError

    backend = Brian2CppBackend(n_threads=1, work_root=build_root)
    with pytest.raises(ConfigError, match="before build"):
        backend.run(hand_drive(10, {0: []}))
    with pytest.raises(ConfigError, match="before run"):
        backend.spikes()
    backend.close()
    backend.close()  # idempotent


def test_standalone_run_leaves_the_process_environment_as_it_was(tmp_path):
    """Brian2's device.run sets LD_BIND_NOW=1 in os.environ; later subprocesses (sbatch) must not inherit it."""
    import os

    from flyhpc import backends
    from flyhpc.drive import Drive, TrialDrive

    cls = backends.get("brian2cpp")
    if not cls.probe().ok:
        pytest.skip(cls.probe().reason)
    before = dict(os.environ)
    spec = tiny_spec(2, edges=[(0, 1, 5.0)], driven=(0,))
    backend = cls(n_threads=1, work_root=tmp_path)
    try:
        backend.build(spec, 50)
        backend.run(Drive(n_steps=50, base_seed=0, round=1,
                          trials=(TrialDrive(0, np.array([5], np.int64), np.array([0], np.int32)),)))
    finally:
        backend.close()
    assert dict(os.environ) == before
