"""Python side of the engines: typed arrays from a NetworkSpec, JIT warm-up, trials on threads.

`EngineNetwork.from_spec` fixes every array's dtype (weights as int16 synapse counts times w_syn when that
is exact, else float64 mV: two numba signatures per kernel), `run_trials`
runs the trials of a drive on a thread pool (the kernels release the GIL; long lazy runs with state rows
ordered by the activity of their first trial's first steps, `row_order` and `SharedPilot`), `warm_up` compiles or
loads the cached kernels on a tiny network. No backend protocol, files or timing here.
Entry points: `EngineNetwork`, `LazySettings`, `TrialResult`, `run_trials`, `SharedPilot`, `threads_per_trial`,
`warm_up`.
"""

from __future__ import annotations

import math
import mmap
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numba import njit

from flyhpc.drive import TrialDrive
from flyhpc.backends.native.clock import clock_trial
from flyhpc.backends.native.lazy import clean_workspace, fresh_run, lazy_trial, move_rows
from flyhpc.backends.native.row_order import RowOrder, identity_order, order_by_inputs
from flyhpc.backends.native.split_run import cut_for, run_split
from flyhpc.backends.native.tables import Tables, aligned_rows, make_tables
from flyhpc.errors import ConfigError
from flyhpc.model import Params
from flyhpc.timing import usable_cpus
from flyhpc.network import NetworkSpec

ENGINES = ("lazy", "clock")
STAT_NAMES = ("clock_steps", "switches", "max_queue", "predictions", "synaptic_events")


@dataclass(frozen=True)
class LazySettings:
    """When the lazy engine goes clock-driven and back (work per step in units of n_neurons).

    clock_on: switch to clock-driven stepping above this (<= 0: never); clock_off: back to lazy
    below this; window_steps: steps per decision; predict_cost: one prediction in synaptic events;
    wheel_bits: log2 of the timing wheel's slots; split_min_steps: see `threads_per_trial`;
    order_min_steps: `run_trials` orders state rows by a pilot's activity when each thread has this many
    steps of trials or more (`SharedPilot`); pilot_steps: the pilot's length, the first steps of the first trial
    (run once, with rows by id, then the trial goes on in the order).
    """

    clock_on: float = 0.5
    clock_off: float = 0.1
    window_steps: int = 32
    predict_cost: float = 6.0
    wheel_bits: int = 10
    split_min_steps: int = 20_000
    order_min_steps: int = 300_000
    pilot_steps: int = 5_000


COMPACT_BLOCK = 1 << 20  # weights checked per block (no full-size float64 temporaries)


def compact_weights(weights_mv: np.ndarray, unit_mv: float) -> np.ndarray | None:
    """int16 counts c with c x unit_mv == weights_mv exactly (float64 product, as the kernels compute it), or
    None when some weight is not such a multiple (or unit_mv is 0 or not finite)."""
    unit = float(unit_mv)
    if not (math.isfinite(unit) and unit != 0.0):
        return None
    weights = np.asarray(weights_mv, dtype=np.float64)
    counts = np.empty(weights.shape, np.int16)
    limit = np.iinfo(np.int16).max
    for lo in range(0, weights.size, COMPACT_BLOCK):
        block = weights[lo:lo + COMPACT_BLOCK]
        with np.errstate(invalid="ignore"):
            c = np.rint(block / unit)
        if not np.all(np.abs(c) <= limit):  # also NaN and inf
            return None
        counts[lo:lo + COMPACT_BLOCK] = c
        if not np.array_equal(counts[lo:lo + COMPACT_BLOCK] * unit, block):
            return None
    return counts


@dataclass(frozen=True)
class EngineNetwork:
    """A NetworkSpec in the engines' dtypes, with its propagator tables for `n_steps`.

    Synapse e adds weights_mv[e] x weight_unit_mv mV: int16 synapse counts times w_syn (a quarter of the bytes
    per synapse, identical sums) when every weight is such a multiple, else float64 mV times 1.0. Setting
    weights_mv[e] = 0 silences a synapse either way.
    """

    indptr: np.ndarray  # int64
    indices: np.ndarray  # int32
    weights_mv: np.ndarray  # int16 (counts) or float64 (mV)
    refractory_steps: np.ndarray  # int64
    tables: Tables
    kick_mv: float
    delay_steps: int
    n_steps: int
    weight_unit_mv: float = 1.0
    split_layouts: dict = field(default_factory=dict, compare=False, repr=False)  # split_run's cut and layout

    @property
    def n_neurons(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @cached_property
    def rows_by_id(self) -> RowOrder:
        """State rows in neuron id order (the maps made once per network)."""
        return identity_order(self.n_neurons)

    @classmethod
    def from_spec(cls, spec: NetworkSpec, n_steps: int) -> "EngineNetwork":
        """Convert `spec` for a run of `n_steps` steps.

        Raises
        ------
        ConfigError
            If n_steps < 1 or the delay is shorter than one step.
        UnsupportedFeature
            From `make_tables`, for parameters the engines do not model.
        """
        return cls.from_arrays(spec.indptr, spec.indices, spec.weights_mv, spec.refractory_steps, spec.params,
                               n_steps)

    @classmethod
    def from_arrays(cls, indptr, indices, weights_mv, refractory_steps, params: Params,
                    n_steps: int) -> "EngineNetwork":
        """Same as `from_spec` from bare CSR arrays (pre-synaptic rows) and per-neuron refractory steps."""
        if int(n_steps) < 1:
            raise ConfigError(f"n_steps must be >= 1, got {n_steps!r}")
        if params.delay_steps < 1:
            raise ConfigError(f"the engines need a synaptic delay of >= 1 step, got delay_ms={params.delay_ms} "
                              f"with dt_ms={params.dt_ms}")
        weights, unit = compact_weights(weights_mv, params.w_syn_mv), float(params.w_syn_mv)
        if weights is None:
            weights, unit = np.ascontiguousarray(weights_mv, dtype=np.float64), 1.0
        return cls(indptr=np.ascontiguousarray(indptr, dtype=np.int64),
                   indices=np.ascontiguousarray(indices, dtype=np.int32), weights_mv=weights,
                   refractory_steps=np.ascontiguousarray(refractory_steps, dtype=np.int64),
                   tables=make_tables(params, int(n_steps)), kick_mv=float(params.kick_mv),
                   delay_steps=int(params.delay_steps), n_steps=int(n_steps), weight_unit_mv=unit)


@dataclass(frozen=True)
class TrialResult:
    """One trial: spikes as neuron ids per step (step_starts), the final anchored state, engine stats.

    The state is kept for the neurons that left rest only (state_neurons, any order); every other
    neuron ends at anchor -1, u0 = g0 = 0. `anchor`, `u0_mv` and `g0_mv` expand it to all n_neurons.
    """

    trial: int
    spike_neurons: np.ndarray  # int32, ascending within a step
    step_starts: np.ndarray  # int64, n_steps + 1
    n_neurons: int
    state_neurons: np.ndarray  # int32
    state_anchor: np.ndarray  # int64: state (u0, g0) holds after this step
    state_u0_mv: np.ndarray
    state_g0_mv: np.ndarray
    stats: dict[str, int]

    @property
    def spike_steps(self) -> np.ndarray:
        """Step of every spike (int64), aligned with spike_neurons."""
        return np.repeat(np.arange(self.step_starts.shape[0] - 1, dtype=np.int64), np.diff(self.step_starts))

    def _full(self, values: np.ndarray, rest) -> np.ndarray:
        out = np.full(self.n_neurons, rest, values.dtype)
        out[self.state_neurons] = values
        return out

    @property
    def anchor(self) -> np.ndarray:
        """Final anchor of every neuron (int64; -1: never reached)."""
        return self._full(self.state_anchor, -1)

    @property
    def u0_mv(self) -> np.ndarray:
        """Final anchored u0 of every neuron."""
        return self._full(self.state_u0_mv, 0.0)

    @property
    def g0_mv(self) -> np.ndarray:
        """Final anchored g0 of every neuron."""
        return self._full(self.state_g0_mv, 0.0)


@njit(cache=True, nogil=True)
def _drive_fits(steps, neurons, n_steps, n_neurons):
    """Whether the events' steps ascend inside 0 .. n_steps - 1 and their neurons lie in 0 .. n_neurons - 1."""
    last = 0
    for i in range(steps.shape[0]):
        if steps[i] < last or steps[i] >= n_steps or neurons[i] < 0 or neurons[i] >= n_neurons:
            return False
        last = steps[i]
    return True


def _check_drive(net: EngineNetwork, trial: TrialDrive) -> tuple[np.ndarray, np.ndarray]:
    steps = np.ascontiguousarray(trial.steps, dtype=np.int64)
    neurons = np.ascontiguousarray(trial.neurons, dtype=np.int32)
    if steps.shape != neurons.shape:
        raise ConfigError(f"drive trial {trial.trial}: {steps.size} steps but {neurons.size} neurons")
    if steps.size and not _drive_fits(steps, neurons, net.n_steps, net.n_neurons):  # one pass; the error below
        if steps.min() < 0 or steps.max() >= net.n_steps:
            bad = steps[(steps < 0) | (steps >= net.n_steps)]
            raise ConfigError(f"drive trial {trial.trial}: event steps {bad[:5].tolist()} outside "
                              f"0..{net.n_steps - 1}")
        if np.any(steps[1:] < steps[:-1]):
            raise ConfigError(f"drive trial {trial.trial}: event steps are not sorted")
        if neurons.min() < 0 or neurons.max() >= net.n_neurons:
            bad = neurons[(neurons < 0) | (neurons >= net.n_neurons)]
            raise ConfigError(f"drive trial {trial.trial}: neurons {bad[:5].tolist()} outside "
                              f"0..{net.n_neurons - 1}")
    return steps, neurons


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")


_LOCAL = threading.local()


def _workspace(n: int, n_steps: int) -> list:
    """This thread's reusable lazy-engine buffers for n neurons and n_steps (warm pages, no faults), at rest.

    A trial leaves them at rest itself; they are cleaned here (O(n)) only when new, or when the last
    trial on this thread did not finish. Another n_steps (a pilot) only swaps the step-starts buffer.
    """
    ws = getattr(_LOCAL, "lazy", None)
    if ws is None or ws[0].shape[0] != n:
        ws = [aligned_rows(n), np.empty(n, np.int64), np.empty(n, np.uint8), np.empty(n, np.int32),
              np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n_steps + 1, np.int64),
              np.empty(max(1024, 2 * n), np.int32), np.empty(n, np.int32)]
        _LOCAL.lazy, _LOCAL.lazy_clean = ws, False
    if ws[6].shape[0] != n_steps + 1:
        ws[6] = np.empty(n_steps + 1, np.int64)
    if not _LOCAL.lazy_clean:
        clean_workspace(*ws[:5])
        _LOCAL.lazy_clean = True
    return ws


_NO_ROWS = np.empty(0, np.int32)
STAMP_MAX = np.iinfo(np.int32).max


def _translation(n_neurons: int, n_synapses: int) -> tuple:
    """This thread's out-row translation buffers (xlat, row_stamp) and a stamp no earlier trial on it used.

    xlat is as long as the synapse list but only the rows of neurons that spike are written: an anonymous map
    of small pages, each zeroed on first touch (numpy's large arrays get huge pages: 70 ms to first write a
    sugar trial's 390 rows at full scale, 2 ms here); row_stamp is cleared when the stamps wrap.
    """
    buffers = getattr(_LOCAL, "translation", None)
    if buffers is None or buffers[0].shape[0] != n_synapses or buffers[1].shape[0] != n_neurons:
        xlat = np.frombuffer(mmap.mmap(-1, 4 * max(1, n_synapses)), np.int32)[:n_synapses]
        buffers = _LOCAL.translation = [xlat, np.zeros(n_neurons, np.int32), 0]
    if buffers[2] == STAMP_MAX:
        buffers[1][:] = 0
        buffers[2] = 0
    buffers[2] += 1
    return buffers[0], buffers[1], buffers[2]


class SharedPilot:
    """The state-row order of one `run_trials` call, read from the spikes of the first `steps` steps of its
    first trial (`order_by_inputs`; rows by id when there are none) and shared by all its trials (at most
    n_steps - 1 steps: a trial paused has a step left).

    That stretch is not run twice: the first trial of each thread runs its first `steps` steps with rows by id,
    the first trial publishes the order from its spikes, and each goes on in the order from where it paused
    (`lazy.move_rows`); the other trials run in it from the start.
    """

    def __init__(self, net: EngineNetwork, steps: int):
        self.net, self.steps = net, max(0, min(int(steps), net.n_steps - 1))
        self._order: Future = Future()

    def publish(self, spike_neurons: np.ndarray) -> None:
        net = self.net
        self._order.set_result(order_by_inputs(net.indptr, net.indices, spike_neurons) if spike_neurons.size
                               else net.rows_by_id)

    def fail(self, exc: BaseException) -> None:
        """No order will come (the first trial failed before it): every trial waiting for it raises `exc`."""
        self._order.set_exception(exc)

    def wait(self) -> RowOrder:
        return self._order.result()


@dataclass(frozen=True)
class PilotTurn:
    """A trial's part in a SharedPilot: `pauses` (runs the pilot's steps by id first), `publishes` (the trial
    whose spikes give the order)."""

    pilot: SharedPilot
    pauses: bool
    publishes: bool


def _lazy_call(net: EngineNetwork, common: tuple, settings: LazySettings, ws: list, run: tuple, order: RowOrder,
               pause_at: int):
    """`lazy_trial` on this thread's workspace from the run state `run`, rows in `order`, up to step `pause_at`."""
    t = net.tables
    if order.identity:
        kicks, translation = common[-1], (_NO_ROWS, _NO_ROWS, 0)
    else:
        kicks, translation = order.slot[common[-1]], _translation(net.n_neurons, net.indices.shape[0])
    *arrays, stats, ws[7] = lazy_trial(*common[:-1], kicks, t.log_a, t.log_b, t.kappa, t.peak_bound,
                                       float(t.peak_bins_per_ratio), float(t.coef_c_max), t.propagators,
                                       order.slot, order.owner, *translation, int(settings.wheel_bits),
                                       float(settings.clock_on), float(settings.clock_off),
                                       int(settings.window_steps), float(settings.predict_cost), *ws, *run, pause_at)
    return arrays, stats


def _pilot_rows(net: EngineNetwork, common: tuple, settings: LazySettings, ws: list, run: tuple,
                turn: PilotTurn) -> RowOrder:
    """The rows a trial with this `turn` goes on in: it runs the pilot's steps by id first when it pauses (and
    publishes the order from their spikes), waits for the order and moves its rows there."""
    head, carry, _ = run  # carry[1]: spikes recorded, carry[2]: rows that left rest (lazy._run_steps)
    if turn.pauses:
        try:
            _lazy_call(net, common, settings, ws, run, net.rows_by_id, turn.pilot.steps)
            if turn.publishes:
                turn.pilot.publish(ws[7][:carry[1]])
        except BaseException as exc:
            if turn.publishes:
                turn.pilot.fail(exc)
            raise
    order = turn.pilot.wait()
    if turn.pauses and not order.identity:
        move_rows(order.slot, *ws[:5], ws[8], carry[2], head)
    return order


def _run_lazy(net: EngineNetwork, common: tuple, settings: LazySettings, parts: int = 1, bounds=None,
              order: RowOrder | PilotTurn | None = None):
    """One lazy trial, on `parts` threads when > 1 (or on len(bounds) - 1, the cut given: tests), else with
    state rows in `order` (None: by id; a PilotTurn: the pilot's)."""
    ws = _workspace(net.n_neurons, net.n_steps)
    _LOCAL.lazy_clean = False
    if bounds is not None or parts > 1:
        steps, neurons = common[-2:]
        cut = cut_for(net, parts) if bounds is None else np.asarray(bounds, np.int64)
        *arrays, stats = run_split(net, steps, neurons, settings, cut, ws[:5])
    else:
        run = fresh_run(settings.wheel_bits)
        if isinstance(order, PilotTurn):
            order = _pilot_rows(net, common, settings, ws, run, order)
        order = net.rows_by_id if order is None else order
        arrays, stats = _lazy_call(net, common, settings, ws, run, order, net.n_steps)
        if not order.identity:
            arrays[2] = order.owner[arrays[2]]  # the rows that left rest, as neuron ids
    _LOCAL.lazy_clean = True
    return (*arrays, dict(zip(STAT_NAMES, stats.tolist())))


def _run_clock(net: EngineNetwork, common: tuple):
    rec, starts, anchor, u0, g0 = clock_trial(*common)
    ids = np.flatnonzero(anchor >= 0).astype(np.int32)
    return rec, starts, ids, anchor[ids], u0[ids], g0[ids], {"clock_steps": net.n_steps}


def _run_checked(net: EngineNetwork, trial_id: int, steps: np.ndarray, neurons: np.ndarray, engine: str,
                 settings: LazySettings, parts: int = 1, bounds=None,
                 order: RowOrder | PilotTurn | None = None) -> TrialResult:
    """One trial whose drive (`_check_drive`) and engine name are already checked (lazy on `parts` threads, or
    with state rows in `order`)."""
    t = net.tables
    common = (net.indptr, net.indices, net.weights_mv, net.weight_unit_mv, net.refractory_steps, t.pow_a, t.pow_b,
              t.coef_c,
              t.u_th_mv, t.u_rst_mv, net.kick_mv, net.delay_steps, net.n_steps, steps, neurons)
    out = _run_lazy(net, common, settings, parts, bounds, order) if engine == "lazy" else _run_clock(net, common)
    rec, starts, ids, anchor, u0, g0, stats = out
    return TrialResult(trial=int(trial_id), spike_neurons=rec, step_starts=starts, n_neurons=net.n_neurons,
                       state_neurons=ids, state_anchor=anchor, state_u0_mv=u0, state_g0_mv=g0, stats=stats)


def run_trial(net: EngineNetwork, trial: TrialDrive, engine: str = "lazy",
              settings: LazySettings = LazySettings(), n_threads: int = 1, bounds=None,
              order: RowOrder | None = None) -> TrialResult:
    """Simulate one trial with the `engine` ("lazy" or "clock"); releases the GIL while stepping. The lazy
    engine runs on `n_threads` threads (split_run: the same result), cut at `bounds` when given, or on one with
    state rows in `order` (row_order: the same result).

    Raises
    ------
    ConfigError
        If an event names a step or neuron outside the network, or the engine is unknown.
    """
    steps, neurons = _check_drive(net, trial)
    _check_engine(engine)
    parts = max(1, min(int(n_threads), net.n_neurons))
    return _run_checked(net, trial.trial, steps, neurons, engine, settings, parts, bounds, order)


def threads_per_trial(net: EngineNetwork, n_trials: int, n_threads: int, engine: str,
                      settings: LazySettings) -> int:
    """Threads each trial of `run_trials` runs on: n_threads // n_trials for lazy trials of split_min_steps or
    more, at most the CPUs this process may use (split workers wait on each other step by step: on fewer CPUs
    than workers they would take turns), else 1."""
    if engine != "lazy" or net.n_steps < settings.split_min_steps or n_trials < 1:
        return 1
    return max(1, min(int(n_threads) // n_trials, usable_cpus(), net.n_neurons))


def _turns(net: EngineNetwork, n_jobs: int, engine: str, workers: int, parts: int,
           settings: LazySettings) -> list:
    """Each job's PilotTurn in one SharedPilot of settings.pilot_steps, for lazy trials on one thread each when
    every thread has order_min_steps steps or more to run (else None each: rows by id). The first `workers` jobs
    are the first on their threads (the pool takes jobs in order)."""
    if engine != "lazy" or parts > 1 or n_jobs * net.n_steps < settings.order_min_steps * workers:
        return [None] * n_jobs
    pilot = SharedPilot(net, settings.pilot_steps)
    return [PilotTurn(pilot, pauses=k < workers, publishes=k == 0) for k in range(n_jobs)]


def run_trials(net: EngineNetwork, trials, engine: str = "lazy", n_threads: int = 1,
               settings: LazySettings = LazySettings(), hand_over=None) -> list[TrialResult]:
    """Simulate every trial, `n_threads` at a time (results in the order of `trials`); with fewer lazy trials
    than threads, each runs on `threads_per_trial` threads (split_run: the same results).

    Every drive is checked once, before any work (errors as `run_trial`). With `hand_over`, each finished trial
    goes to `hand_over(result)` on the calling thread, in the order of `trials`, while later trials still run;
    the trials that are finished when the last one ends are returned instead (the caller hands them over after
    the sim), so a trial handed over is never held here.
    """
    _check_engine(engine)
    jobs = [(tr.trial, *_check_drive(net, tr)) for tr in trials]
    workers = max(1, min(int(n_threads), len(jobs)))
    parts = threads_per_trial(net, len(jobs), n_threads, engine, settings)
    turns = _turns(net, len(jobs), engine, workers, parts, settings)
    if workers == 1 and hand_over is None:
        return [_run_checked(net, *job, engine, settings, parts, None, turn) for job, turn in zip(jobs, turns)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flyhpc-native") as pool:
        futures = [pool.submit(_run_checked, net, *job, engine, settings, parts, None, turn)
                   for job, turn in zip(jobs, turns)]
        if hand_over is None:
            return [f.result() for f in futures]
        try:
            for k in range(len(futures)):
                result = futures[k].result()
                if all(f.done() for f in futures[k + 1:]):  # the sim is over: the rest is the caller's
                    return [result] + [f.result() for f in futures[k + 1:]]
                futures[k] = None  # handed over: not kept alive by the list
                hand_over(result)
                del result
        except BaseException:
            pool.shutdown(cancel_futures=True)  # a failed hand-over: no trial starts after it
            raise
    return []  # no trial at all


def warm_up() -> None:
    """Compile (or load from numba's cache) both kernels, for both weight types, on a 3-neuron network."""
    params = Params()
    trial = TrialDrive(trial=0, steps=np.array([0, 5], np.int64), neurons=np.array([0, 0], np.int32))
    for weights in ([30.1, -3.0], [100 * params.w_syn_mv, -10 * params.w_syn_mv]):  # float64, int16 counts
        net = EngineNetwork.from_arrays(np.array([0, 1, 2, 2]), np.array([1, 2]), np.array(weights),
                                        np.array([0, 22, 22]), params, 40)
        for engine in ENGINES:
            run_trial(net, trial, engine)
