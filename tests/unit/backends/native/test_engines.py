"""The native engines: lazy == clock bit for bit, clock == a plain step-by-step transcription of the
contract, exact threshold prediction on adversarial near-threshold cases, and the runaway fallback."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from flyhpc.drive import TrialDrive
from flyhpc.backends.native.predict import BEYOND_SCAN, SCAN_STEPS, predict_crossing, scan_crossing
from flyhpc.backends.native.trials import EngineNetwork, LazySettings, run_trial, run_trials
from flyhpc.backends.native.tables import make_tables
from flyhpc.errors import ConfigError, UnsupportedFeature
from flyhpc.model import Params

P = Params()
PURE_LAZY = LazySettings(clock_on=0.0)


def random_net(n, mean_degree, scale, seed, n_driven=20):
    """Random CSR: Poisson out-degrees, lognormal synapse counts, 30 % inhibitory, weights x scale."""
    rng = np.random.default_rng(seed)
    degree = rng.poisson(mean_degree, n)
    indptr = np.zeros(n + 1, np.int64)
    indptr[1:] = np.cumsum(degree)
    indices = rng.integers(0, n, indptr[-1]).astype(np.int32)
    counts = np.maximum(1, rng.lognormal(0.8, 0.9, indptr[-1]).astype(np.int64))
    sign = np.where(rng.random(indptr[-1]) < 0.7, 1, -1)
    refractory = np.full(n, P.refractory_steps, np.int64)
    refractory[:n_driven] = 0
    return indptr, indices, counts * sign * P.w_syn_mv * scale, refractory


def poisson_drive(driven, n_steps, rate_hz, seed, trial=0):
    rng = np.random.default_rng(seed)
    parts = [(np.flatnonzero(rng.random(n_steps) < rate_hz * P.dt_ms / 1000), j) for j in driven]
    steps = np.concatenate([s for s, _ in parts]).astype(np.int64)
    neurons = np.concatenate([np.full(s.size, j, np.int32) for s, j in parts])
    order = np.lexsort((neurons, steps))
    return TrialDrive(trial, steps[order], neurons[order])


def same_state(a, b):
    return (np.array_equal(a.spike_neurons, b.spike_neurons) and np.array_equal(a.step_starts, b.step_starts)
            and np.array_equal(a.anchor, b.anchor) and np.array_equal(a.u0_mv, b.u0_mv)
            and np.array_equal(a.g0_mv, b.g0_mv))


def plain_stepping(indptr, indices, weights, refractory, n_steps, trial):
    """The contract literally, one step at a time, state (u, g) propagated by the one-step map (numpy)."""
    n = indptr.shape[0] - 1
    a, b = P.decay_m, P.decay_s
    c = P.tau_s_ms / (P.tau_s_ms - P.tau_m_ms) * (b - a)
    u_th, u_rst = P.v_th_mv - P.v_0_mv, P.v_rst_mv - P.v_0_mv
    u, g = np.zeros(n), np.zeros(n)
    last_spike = np.full(n, -10 ** 9)
    pre = np.repeat(np.arange(n), np.diff(indptr))
    history = []
    for step in range(n_steps):
        integrating = (step - last_spike) >= refractory
        u_new = a * u + c * g
        g_new = b * g
        u = np.where(integrating, u_new, u)
        g = np.where(integrating, g_new, g)
        spiking = integrating & (u > u_th)
        history.append(np.flatnonzero(spiking))
        accept = integrating & ~spiking  # Brian2 drops inputs to refractory (and spiking) neurons
        if step >= P.delay_steps:
            src = np.zeros(n, bool)
            src[history[step - P.delay_steps]] = True
            edges = src[pre]
            np.add.at(g, indices[edges], np.where(accept[indices[edges]], weights[edges], 0.0))
        sel = trial.steps == step
        kicked = trial.neurons[sel]
        u[kicked] += np.where(accept[kicked], P.kick_mv, 0.0)
        u[spiking], g[spiking] = u_rst, 0.0
        last_spike[spiking] = step
    return history


# ---- tables and prediction ---------------------------------------------------------------------

def test_tables_values_and_zero_tail():
    short = make_tables(P, 100)
    assert short.pow_a.shape == (101,) and short.pow_a[0] == 1.0 and short.coef_c[0] == 0.0
    assert short.pow_a[1] == pytest.approx(P.decay_m, rel=1e-15)
    assert short.coef_c[1] == pytest.approx((P.decay_m - P.decay_s) / 3, rel=1e-13)
    long = make_tables(P, 10_000_000)
    assert long.pow_a.shape[0] < 200_000  # tables stop where a^k and b^k are exactly 0
    assert long.pow_a[-1] == 0.0 and long.pow_b[-1] == 0.0 and long.coef_c[-1] == 0.0
    assert long.pow_a[-2] > 0.0 or long.pow_b[-2] > 0.0


def test_tables_reject_unmodelled_parameters():
    with pytest.raises(UnsupportedFeature, match="tau_m != tau_s"):
        make_tables(Params(tau_m_ms=5.0), 10)
    with pytest.raises(UnsupportedFeature, match="v_th > v_0"):
        make_tables(Params(v_th_mv=-60.0), 10)


def test_peak_bounds_cover_the_shape_and_are_tight():
    tabs = make_tables(P, 100)
    bound, per_ratio = tabs.peak_bound, tabs.peak_bins_per_ratio
    t = np.arange(0, 3000, 0.25)
    ea, eb = np.exp(tabs.log_a * t), np.exp(tabs.log_b * t)
    rng = np.random.default_rng(2)
    for r in np.concatenate([rng.uniform(0, bound.size / per_ratio, 300), [0.0, 0.25, 1.0]]):
        sup = np.max(ea - r * eb)
        b = bound[int(r * per_ratio)]
        assert b >= sup  # an upper bound for every ratio in the bin
        assert b - sup < 1e-3  # and tight: 1/per_ratio wide bins, slope of the sup <= 1
    # the peak of a pure conductance (u0 = 0) is ~0.47 of the old bound p = |kappa| g0
    assert bound[int(1.0 * per_ratio)] == pytest.approx(0.4725, abs=2e-3)


def test_peak_reject_never_drops_a_crossing():
    from flyhpc.backends.native.predict import peak_ruled_out
    tabs = make_tables(P, 3000)
    rng = np.random.default_rng(8)
    u0 = rng.uniform(-30, 8, 4000)
    g0 = rng.uniform(0, 60, 4000)
    rejected = 0
    for u, g in zip(u0, g0):
        if peak_ruled_out(u, g, tabs.u_th_mv, tabs.kappa, tabs.peak_bound, tabs.peak_bins_per_ratio):
            rejected += 1
            assert brute_first_crossing(tabs, 0, u, g, 0, 3000) == -1
    assert rejected > 500  # the test exercises the reject path


def brute_first_crossing(tabs, a0, u0, g0, kmin, n_steps):
    k = np.arange(kmin, n_steps - a0)
    kk = np.minimum(k, tabs.pow_a.shape[0] - 1)
    hit = np.flatnonzero(u0 * tabs.pow_a[kk] + g0 * tabs.coef_c[kk] > tabs.u_th_mv)
    return int(a0 + k[hit[0]]) if hit.size else -1


def predict(tabs, a0, u0, g0, kmin, n_steps):
    return predict_crossing(a0, u0, g0, kmin, n_steps, tabs.pow_a, tabs.pow_b, tabs.coef_c, tabs.u_th_mv,
                            tabs.log_a, tabs.log_b, tabs.kappa)


def test_prediction_equals_brute_force_on_random_states():
    n_steps = 3000
    tabs = make_tables(P, n_steps)
    rng = np.random.default_rng(5)
    u0 = rng.uniform(-40, 20, 3000)
    g0 = np.concatenate([rng.uniform(-100, 150, 2000), rng.lognormal(3, 1.5, 1000)])
    kmin = rng.integers(1, 40, u0.size)
    hits = 0
    for i in range(u0.size):
        want = brute_first_crossing(tabs, 100, u0[i], g0[i], kmin[i], n_steps)
        assert predict(tabs, 100, u0[i], g0[i], int(kmin[i]), n_steps) == want, (u0[i], g0[i], kmin[i])
        hits += want >= 0
    assert 300 < hits < 2700  # both outcomes exercised


@pytest.mark.parametrize("n_steps", [3, 9, 17, 26, 33])
def test_prediction_equals_brute_force_where_the_scan_meets_the_run_end(n_steps):
    """Short runs: the eight-at-a-time scan stops at the run's (and the table's) end, the rest one by one."""
    tabs = make_tables(P, n_steps)
    rng = np.random.default_rng(n_steps)
    hits = 0
    for u0, g0, a0 in zip(rng.uniform(-20, 14, 600), rng.lognormal(3.5, 1.0, 600), rng.integers(0, 3, 600)):
        want = brute_first_crossing(tabs, int(a0), u0, g0, 1, n_steps)
        assert predict(tabs, int(a0), u0, g0, 1, n_steps) == want, (u0, g0, a0)
        hits += want >= 0
    assert 0 < hits < 600


def test_the_inlined_first_scan_then_the_prediction_beyond_it_equal_brute_force():
    """The engine's re-prediction: `scan_crossing` (steps 1 .. SCAN_STEPS), then `predict_crossing` from
    SCAN_STEPS + 1 only when the scan says BEYOND_SCAN; crossings on both sides of the scan's end, runs ending
    inside it and after it."""
    rng = np.random.default_rng(11)
    outcomes = set()
    for n_steps in (20, 30, 3000):
        tabs = make_tables(P, n_steps)
        for u0, g0 in zip(rng.uniform(-20, 14, 1500), rng.lognormal(3.0, 1.2, 1500)):
            m = scan_crossing(0, u0, g0, 1, n_steps, tabs.pow_a, tabs.coef_c, tabs.u_th_mv)
            if m == BEYOND_SCAN:
                outcomes.add("beyond")
                m = predict(tabs, 0, u0, g0, SCAN_STEPS + 1, n_steps)
            else:
                outcomes.add("in scan" if m >= 0 else "run ends")
            assert m == brute_first_crossing(tabs, 0, u0, g0, 1, n_steps), (n_steps, u0, g0)
            outcomes.add(("crossing after the scan", m > SCAN_STEPS) if m >= 0 else "none")
    assert outcomes >= {"beyond", "in scan", "run ends", ("crossing after the scan", True), "none"}


def adversarial_weights(tabs, k_star, u0=0.0, n_ulps=4):
    """Weights g0 whose table value at step k_star sits within a few ulps of the threshold."""
    g = (tabs.u_th_mv - u0 * tabs.pow_a[k_star]) / tabs.coef_c[k_star]
    out = [g]
    up = down = g
    for _ in range(n_ulps):
        up, down = np.nextafter(up, np.inf), np.nextafter(down, -np.inf)
        out += [up, down]
    return np.array(out)


def test_prediction_is_exact_at_one_ulp_from_threshold():
    """g0 tuned so that u0 a^k + g0 c_k lands on either side of v_th by an ulp, on the rising flank,
    at the continuous maximum (a flat top) and on the falling flank; prediction == brute force."""
    n_steps = 2000
    tabs = make_tables(P, n_steps)
    peak = int(np.argmax(tabs.coef_c))
    sides = set()
    for u0 in (0.0, 3.5, -6.0):
        for k_star in (1, 7, 40, peak - 1, peak, peak + 1, 160):
            for g0 in adversarial_weights(tabs, k_star, u0):
                want = brute_first_crossing(tabs, 0, u0, g0, 1, n_steps)
                assert predict(tabs, 0, u0, g0, 1, n_steps) == want, (u0, k_star, g0)
                if k_star == peak:
                    sides.add(want >= 0)
    assert sides == {True, False}  # the flat top was really hit from both sides


# ---- whole trials ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def active_net():
    """1,000 neurons, ~50 edges each, weights x3: about 15 % of the neurons fire."""
    n_steps = 3000
    arrays = random_net(1000, 50, 3.0, seed=1)
    net = EngineNetwork.from_arrays(*arrays, P, n_steps)
    return arrays, net, poisson_drive(range(20), n_steps, 200.0, seed=2)


def test_lazy_equals_clock_bit_for_bit(active_net):
    _, net, trial = active_net
    clock = run_trial(net, trial, "clock")
    lazy = run_trial(net, trial, "lazy", PURE_LAZY)
    assert len(clock.spike_neurons) > 1000 and np.unique(clock.spike_neurons).size > 100
    assert same_state(clock, lazy)
    assert lazy.stats["clock_steps"] == 0 and lazy.stats["predictions"] > 0
    assert lazy.stats["max_queue"] <= net.n_neurons


def test_clock_equals_plain_stepping_of_the_contract(active_net):
    arrays, _, _ = active_net
    n_steps = 1200
    net = EngineNetwork.from_arrays(*arrays, P, n_steps)
    trial = poisson_drive(range(20), n_steps, 200.0, seed=3)
    clock = run_trial(net, trial, "clock")
    history = plain_stepping(*arrays, n_steps, trial)
    for step in range(n_steps):
        got = clock.spike_neurons[clock.step_starts[step]:clock.step_starts[step + 1]]
        assert got.tolist() == history[step].tolist(), step
    assert clock.spike_neurons.size > 300


def test_adversarial_network_lazy_equals_clock():
    """Driver 0 fires at step 1; 600 targets get one delivery at step 19 with a weight an ulp or so
    around the value that just reaches threshold at k steps later (several k, flat top included),
    and targets of a second driver carry an earlier small PSP (u0 != 0 at the critical input)."""
    n_steps = 600
    tabs = make_tables(P, n_steps)
    peak = int(np.argmax(tabs.coef_c))
    weights = np.concatenate([adversarial_weights(tabs, k, 0.0, 10) for k in (1, 5, 30, peak, peak + 3, 150)])
    n_t = weights.size
    n = 2 + 2 * n_t
    pre = np.concatenate([np.zeros(n_t, np.int64), np.ones(n_t, np.int64), np.zeros(n_t, np.int64)])
    post = np.concatenate([np.arange(2, 2 + n_t), np.arange(2 + n_t, n), np.arange(2 + n_t, n)])
    w = np.concatenate([weights, np.full(n_t, 20.0), weights])
    order = np.lexsort((post, pre))
    indptr = np.zeros(n + 1, np.int64)
    indptr[1:] = np.cumsum(np.bincount(pre, minlength=n))
    refractory = np.full(n, 22, np.int64)
    refractory[:2] = 0
    net = EngineNetwork.from_arrays(indptr, post[order], w[order], refractory, P, n_steps)
    trial = TrialDrive(0, np.array([0, 0], np.int64), np.array([0, 1], np.int32))
    clock = run_trial(net, trial, "clock")
    lazy = run_trial(net, trial, "lazy", PURE_LAZY)
    assert same_state(clock, lazy)
    fired = np.unique(clock.spike_neurons)
    first = fired[(fired >= 2) & (fired < 2 + n_t)]
    assert 0 < first.size < n_t  # the ulp steps put targets on both sides of the threshold


def test_runaway_switches_to_clock_with_identical_spikes_and_bounded_queue():
    """Weights x3 of a network that already runs at x1 (x9 overall): activity explodes, the lazy
    engine goes clock-driven, spikes and state stay identical, and the queue never holds more than
    n_neurons entries (one intrusive slot per neuron)."""
    n_steps = 2000
    indptr, indices, w, refractory = random_net(1000, 50, 3.0, seed=1)
    net = EngineNetwork.from_arrays(indptr, indices, 3.0 * w, refractory, P, n_steps)
    trial = poisson_drive(range(20), n_steps, 200.0, seed=2)
    clock = run_trial(net, trial, "clock")
    switching = run_trial(net, trial, "lazy")
    pure = run_trial(net, trial, "lazy", PURE_LAZY)
    assert clock.spike_neurons.size > 10 * n_steps  # runaway: > 1/4 of the maximal rate 1000/22 per step
    assert same_state(clock, switching) and same_state(clock, pure)
    assert switching.stats["clock_steps"] > n_steps // 2 and switching.stats["switches"] >= 1
    assert pure.stats["clock_steps"] == 0
    assert pure.stats["max_queue"] <= net.n_neurons and switching.stats["max_queue"] <= net.n_neurons


def test_many_inputs_per_neuron_in_a_step_list_each_neuron_once():
    """40 neurons, each exciting all 40 strongly: a step with several spikes delivers several inputs to every
    neuron, most left able to cross. Each neuron is re-predicted at most once per step it is reached in (the
    touched list holds n entries), and the spikes stay the clock engine's."""
    n, n_steps, refractory = 40, 400, 22
    indptr = np.arange(n + 1, dtype=np.int64) * n
    indices = np.tile(np.arange(n, dtype=np.int32), n)
    net = EngineNetwork.from_arrays(indptr, indices, np.full(n * n, 20 * P.w_syn_mv),
                                    np.full(n, refractory, np.int64), P, n_steps)
    trial = poisson_drive(range(n), n_steps, 300.0, seed=5)
    clock = run_trial(net, trial, "clock")
    lazy = run_trial(net, trial, "lazy", PURE_LAZY)
    assert same_state(clock, lazy)
    counts = np.diff(clock.step_starts)
    d = net.delay_steps
    assert (counts[:n_steps - d] > 1).sum() > 50  # steps delivering several inputs to each neuron
    frozen = np.zeros((n_steps, n), bool)
    for step, j in zip(clock.spike_steps, clock.spike_neurons):
        frozen[step:step + refractory, j] = True
    reached = np.zeros((n_steps, n), bool)
    reached[d:][counts[:n_steps - d] > 0] = True
    reached[trial.steps, trial.neurons] = True
    assert 0.5 * (reached & ~frozen).sum() < lazy.stats["predictions"] <= (reached & ~frozen).sum()


def test_switching_back_and_forth_keeps_identity(active_net):
    """Thresholds so low that the engine flips mode every few windows: still bit-identical."""
    _, net, trial = active_net
    clock = run_trial(net, trial, "clock")
    flappy = run_trial(net, trial, "lazy", LazySettings(clock_on=0.01, clock_off=0.008, window_steps=8))
    assert flappy.stats["switches"] >= 4 and 0 < flappy.stats["clock_steps"] < net.n_steps
    assert same_state(clock, flappy)


def test_quiet_stretches_are_passed_with_the_same_spikes_and_switches(active_net):
    """One neuron driven in short bursts with long quiet gaps (an atlas trial): the lazy engine passes the gaps
    in one step each, yet a block whose burst was busy enough still switches to clock-driven at its end."""
    _, net, _ = active_net
    steps = np.concatenate([np.arange(start, start + 40, 2) for start in (100, 1100, 2100)]).astype(np.int64)
    trial = TrialDrive(0, steps, np.zeros(steps.size, np.int32))
    clock = run_trial(net, trial, "clock")
    flappy = run_trial(net, trial, "lazy", LazySettings(clock_on=1e-4, clock_off=1e-5, window_steps=64))
    quiet = run_trial(net, trial, "lazy")
    assert clock.spike_neurons.size > 10 and same_state(clock, flappy) and same_state(clock, quiet)
    assert flappy.stats["switches"] >= 2 and 0 < flappy.stats["clock_steps"] < net.n_steps // 2
    assert quiet.stats["clock_steps"] == 0


def test_threads_give_the_same_trials_in_order(active_net):
    _, net, _ = active_net
    trials = [poisson_drive(range(20), net.n_steps, 200.0, seed=10 + k, trial=7 + k) for k in range(3)]
    serial = run_trials(net, trials, "lazy", n_threads=1)
    parallel = run_trials(net, trials, "lazy", n_threads=2)
    assert [r.trial for r in parallel] == [7, 8, 9]
    assert all(same_state(s, p) for s, p in zip(serial, parallel))
    assert not np.array_equal(serial[0].spike_neurons, serial[1].spike_neurons)


def test_bad_drive_and_engine_are_named():
    net = EngineNetwork.from_arrays(np.array([0, 0, 0]), np.zeros(0), np.zeros(0), np.array([0, 22]), P, 10)
    with pytest.raises(ConfigError, match=r"event steps \[10\]"):
        run_trial(net, TrialDrive(3, np.array([10]), np.array([0])))
    with pytest.raises(ConfigError, match=r"neurons \[5\]"):
        run_trial(net, TrialDrive(3, np.array([1]), np.array([5])))
    with pytest.raises(ConfigError, match="not sorted"):
        run_trial(net, TrialDrive(3, np.array([4, 1]), np.array([0, 0])))
    with pytest.raises(ConfigError, match="unknown engine 'fast'"):
        run_trial(net, TrialDrive(3, np.array([1]), np.array([0])), "fast")
    with pytest.raises(ConfigError, match="n_steps must be >= 1"):
        EngineNetwork.from_arrays(np.array([0, 0]), np.zeros(0), np.zeros(0), np.array([0]), P, 0)


# ---- screens: zero weights, per-trial reset, one drive check ------------------------------------

def _without_rows(indptr, indices, weights, rows):
    """The CSR with the out-edges of `rows` removed (what a rebuild of an "outgoing" silencing gives)."""
    keep = np.ones(indices.size, bool)
    for r in rows:
        keep[indptr[r]:indptr[r + 1]] = False
    degree = np.diff(indptr) * np.isin(np.arange(indptr.size - 1), rows, invert=True)
    return np.concatenate([[0], np.cumsum(degree)]), indices[keep], weights[keep]


@pytest.mark.parametrize("engine", ["lazy", "clock"])
def test_zeroed_weights_equal_removed_edges_and_touch_nothing(active_net, engine):
    """Zeroing a neuron's outgoing weights is bit-identical to removing those edges, and a target that only
    that neuron reaches stays untouched (anchor -1), although the silenced neuron itself fires."""
    (indptr, indices, weights, refractory), net, trial = active_net
    clock = run_trial(net, trial, "clock")
    silenced = np.unique(clock.spike_neurons)[:5]
    zeroed = weights.copy()
    for r in silenced:
        zeroed[indptr[r]:indptr[r + 1]] = 0.0
    with_zeros = EngineNetwork.from_arrays(indptr, indices, zeroed, refractory, P, net.n_steps)
    removed = EngineNetwork.from_arrays(*_without_rows(indptr, indices, weights, silenced), refractory, P,
                                        net.n_steps)
    a = run_trial(with_zeros, trial, engine)
    b = run_trial(removed, trial, engine)
    assert same_state(a, b) and np.isin(silenced, a.spike_neurons).all()
    assert np.array_equal(np.sort(a.state_neurons), np.sort(b.state_neurons))
    targets = np.unique(indices[np.concatenate([np.arange(indptr[r], indptr[r + 1]) for r in silenced])])
    untouched = targets[a.anchor[targets] == -1]
    assert untouched.size and (clock.anchor[untouched] >= 0).all()  # reached before silencing, not after


def test_zero_kick_touches_nothing():
    net = EngineNetwork.from_arrays(np.array([0, 1, 1]), np.array([1]), np.array([30.0]), np.array([0, 22]),
                                    Params(f_poisson=0.0), 40)
    trial = TrialDrive(0, np.array([0, 5], np.int64), np.array([0, 0], np.int32))
    for engine in ("lazy", "clock"):
        result = run_trial(net, trial, engine)
        assert result.state_neurons.size == 0 and result.spike_neurons.size == 0


def test_workspace_is_left_at_rest_and_reused(active_net):
    """A trial puts back only what it touched: after it the thread's workspace is exactly at rest, and a trial
    run after another equals the same trial on a fresh workspace."""
    from flyhpc.backends.native import trials as mod

    _, net, trial = active_net
    other = poisson_drive(range(20), net.n_steps, 200.0, seed=99, trial=1)
    mod._LOCAL.lazy = None
    fresh = run_trial(net, trial, "lazy", PURE_LAZY)
    run_trial(net, other, "lazy", PURE_LAZY)
    again = run_trial(net, trial, "lazy", PURE_LAZY)
    assert same_state(fresh, again)
    st, pred, queued, nxt, prv = mod._LOCAL.lazy[:5]
    assert (st[:, :2] == 0.0).all() and (st[:, 2:] == -1.0).all()
    assert (pred == -1).all() and not queued.any() and (nxt == -1).all() and (prv == -1).all()
    assert 0 < fresh.state_neurons.size < net.n_neurons and np.unique(fresh.state_neurons).size == \
        fresh.state_neurons.size


@pytest.mark.parametrize("settings", [PURE_LAZY, LazySettings(clock_on=0.01, clock_off=0.008, window_steps=8)])
def test_a_record_buffer_that_fills_up_grows_mid_trial_with_the_same_results(active_net, settings):
    """The step loop returns to be given a larger spike record and goes on where it stopped (lazy or
    clock-driven, its counts and mode-switch window kept): from an empty record, several times in the trial."""
    from flyhpc.backends.native import trials as mod

    _, net, trial = active_net
    clock = run_trial(net, trial, "clock")
    mod._LOCAL.lazy = None
    roomy = run_trial(net, trial, "lazy", settings)  # on a fresh workspace: room for this trial's spikes
    mod._LOCAL.lazy[7] = np.empty(0, np.int32)
    grown = run_trial(net, trial, "lazy", settings)
    assert same_state(clock, grown) and grown.stats == roomy.stats  # the same switches at the same steps
    # 0 -> 1024 -> 2048 -> 4096 entries (room for n more spikes before each step): the last two mid-trial
    assert mod._LOCAL.lazy[7].size == 4096 and 2048 - net.n_neurons < grown.spike_neurons.size <= 4096
    if settings is not PURE_LAZY:
        assert grown.stats["switches"] >= 4


def test_each_drive_is_checked_once(active_net, monkeypatch):
    from flyhpc.backends.native import trials as mod

    _, net, trial = active_net
    calls = []
    check = mod._check_drive
    monkeypatch.setattr(mod, "_check_drive", lambda n, t: calls.append(t.trial) or check(n, t))
    trials = [poisson_drive(range(20), net.n_steps, 200.0, seed=k, trial=k) for k in range(3)]
    run_trials(net, trials, "lazy", n_threads=2)
    assert calls == [0, 1, 2]
    with pytest.raises(ConfigError, match="unknown engine"):
        run_trials(net, trials, "fast")


@pytest.mark.parametrize("threads", [1, 2])
def test_finished_trials_are_handed_over_in_order_and_the_last_ones_returned(active_net, threads):
    _, net, _ = active_net
    trials = [poisson_drive(range(20), net.n_steps, 200.0, seed=10 + k, trial=7 + k) for k in range(4)]
    whole = run_trials(net, trials, "lazy", n_threads=threads)
    handed = []
    rest = run_trials(net, trials, "lazy", n_threads=threads, hand_over=handed.append)
    assert rest and [r.trial for r in handed + rest] == [7, 8, 9, 10]  # the last trial is never handed over
    assert all(same_state(a, b) for a, b in zip(whole, handed + rest))


def test_a_failed_hand_over_starts_no_trial_queued_after_it(active_net, monkeypatch):
    import flyhpc.backends.native.trials as trials_module

    _, net, _ = active_net
    trials = [poisson_drive(range(20), net.n_steps, 200.0, seed=10 + k, trial=k) for k in range(8)]
    ran = []
    real = trials_module._run_checked
    failed = threading.Event()

    def run(*a):  # later trials wait for the hand-over to fail (a fast engine would otherwise finish them all)
        ran.append(a[1])
        if a[1] > 0:
            failed.wait(10)
        return real(*a)

    monkeypatch.setattr(trials_module, "_run_checked", run)

    def refuse(result):
        failed.set()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        run_trials(net, trials, "lazy", n_threads=1, hand_over=refuse)
    assert len(ran) <= 3  # trial 0, the one running when it was handed over, at most one more
