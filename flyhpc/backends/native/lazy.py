"""The exact lazy event-driven engine: a neuron is computed only when an input reaches it.

On every input the neuron is advanced to the current step from its anchor (shared propagator tables, the same
arithmetic as flyhpc.backends.native.clock, read as one row per k), the input is added, and the cheapest reject
test (`quickly_below`: `cannot_cross`'s bound against a constant) is run at once, in the same pass: only a
neuron it does not rule out, or one that is queued, is listed for re-prediction after the step's inputs. There
the first step at which it will cross the threshold is predicted (flyhpc.backends.native.predict: the reject
bounds again, on the step's final state, then the continuous closed form locates the step the table value
decides). Predictions live in a timing wheel
of intrusive doubly linked lists (one slot per neuron, so the queue never holds more than n_neurons entries and
nothing stale). When the estimated work per step exceeds a clock-driven step, the trial continues
clock-driven from the exact current state, and returns to lazy when activity falls.
State lives in one 32-byte row per neuron (u0, g0, anchor, frozen_until as float64; steps are exact
integers in float64), prefetched PREFETCH_AHEAD inputs ahead; rows may be ordered apart from neuron ids
(`row_order`, see `lazy_trial`). Weights are read as stored (int16 synapse
counts or float64 mV) times one unit. An input of exactly 0 mV (a zeroed weight) touches nothing, and a
trial's cost outside its inputs does not grow with n_neurons: the workspace is left at rest by
putting back only the neurons the trial reached, and a lazy stretch with nothing queued, delivered or
kicked is passed in one step (`_quiet_until`; a one-neuron atlas trial is mostly such stretches).
The step loop (`_run_steps`) is compiled without numba's reference counting (`_nrt=False`): it allocates
nothing (`lazy_trial` grows the spike record between its calls), and there an array passed to a helper, inlined
or not, or sliced costs no atomic increment and decrement (they were ~14 % of a sugar trial, and a call of a
compiled function taking arrays ~20 % of a one-neuron atlas trial). Its helpers are inlined (`inline="always"`).
Entry points: `lazy_trial`, `fresh_run`, `move_rows`, `clean_workspace`.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from flyhpc.backends.native.kernel_cache import track_sources
from flyhpc.backends.native.predict import (BEYOND_SCAN, SCAN_STEPS, cannot_cross, peak_ruled_out, predict_crossing,
                                           quick_bounds, quickly_below, ruled_out, scan_crossing)

CARRY = 12  # int64 loop state of _run_steps (see there)
PREFETCH_AHEAD = 16  # inputs between a row's prefetch and its use
FIRST = 1 << 32  # unit of the first-touch count packed in `listed` (see _apply_inputs)
LISTED = 2  # queued[j] bit: j is in this step's touched list (bit 0: j is in the wheel)


@intrinsic
def _prefetch_row(typingctx, rows, j):
    """Hint the CPU to fetch row j of a 2-D C array for writing (llvm.prefetch; no effect on values)."""
    sig = types.void(rows, j)

    def codegen(context, builder, signature, args):
        rows_ty, j_ty = signature.args
        ary = context.make_array(rows_ty)(context, builder, args[0])
        row = context.cast(builder, args[1], j_ty, types.intp)
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, rows_ty, ary, [row, zero], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(1), i32(3), i32(1)])  # write, keep, data
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _grow(buf):
    out = np.empty(max(1024, buf.shape[0] * 2), buf.dtype)
    out[:buf.shape[0]] = buf
    return out


@njit(cache=True, nogil=True, inline="always")
def _unlink(j, pred, queued, nxt, prv, head, mask):
    """Take neuron j out of the wheel (queued[j] & 1: the small mirror of pred[j] >= 0), clearing its marks."""
    queued[j] = 0
    if prv[j] >= 0:
        nxt[prv[j]] = nxt[j]
    else:
        head[pred[j] & mask] = nxt[j]
    if nxt[j] >= 0:
        prv[nxt[j]] = prv[j]
    nxt[j] = -1
    prv[j] = -1
    pred[j] = -1


@njit(cache=True, nogil=True, inline="always")
def _link(j, m, pred, queued, nxt, prv, head, mask):
    """Queue neuron j at its predicted step m (slot m & mask of the wheel).

    The wheel keeps `queued` itself (an inline helper doing that and counting the queue measured 4 % slower).
    """
    queued[j] = 1
    b = m & mask
    pred[j] = m
    prv[j] = -1
    nxt[j] = head[b]
    if head[b] >= 0:
        prv[head[b]] = j
    head[b] = j


@njit(cache=True, nogil=True, inline="always")
def _apply_inputs(step, targets, du, dg, unit, st, props, touched, listed, dirty, n_dirty, queued, t_quick, lo_quick,
                  coef_c_max):
    """Add du to u and dg[i] x unit to g of neuron targets[i] (in order) at `step`, advancing each from its
    anchor first (props[k] = (a^k, b^k, c_k, 0)); inputs to frozen neurons and inputs of exactly 0 mV (du == 0
    and dg[i] == 0, e.g. zeroed weights of a silenced neuron) are dropped without touching the target. A neuron
    goes to `touched` (to be re-predicted) once, after the first input that leaves it queued or not ruled out
    by `quickly_below` (t_quick, lo_quick: `quick_bounds`, computed once per call of the step loop; marked
    LISTED in `queued` until the re-prediction clears it: touched never holds more than n entries), to `dirty`
    at its first input of the trial. Testing here, while the state is in
    registers, measured 5-7 % faster than a second pass over every neuron an input reached, and
    `quickly_below` instead of `cannot_cross` (no margin to compute per input) 8 % faster again.
    `listed` packs two counts in one integer (an inlined helper returning a 3-tuple risks numba's slow code):
    FIRST x (neurons whose first input of the step this was) + (entries in touched).
    Returns the new (listed, dirty count).

    st[j] = (u0, g0, anchor, frozen_until), one 32-byte row: an input touches one cache line.
    anchor > step means frozen; anchor == step is either a later input of the step or the last frozen
    step, told apart by frozen_until; anchor -1 is the rest state nothing has reached yet.
    """
    last = props.shape[0] - 1
    f_step = float(step)
    has_dg = dg.shape[0] > 0
    n_in = targets.shape[0]
    if du == 0.0 and not has_dg:
        return listed, n_dirty
    for i in range(min(PREFETCH_AHEAD, n_in)):
        _prefetch_row(st, targets[i])
    for i in range(n_in):
        if i + PREFETCH_AHEAD < n_in:
            _prefetch_row(st, targets[i + PREFETCH_AHEAD])
        if du == 0.0 and dg[i] == 0.0:
            continue
        t = np.uint32(targets[i])  # unsigned indices (t, k, counts): no wraparound code, ~8 % of the engine
        a0 = st[t, 2]
        if a0 >= f_step:
            if a0 > f_step or st[t, 3] >= f_step:
                continue
            u = st[t, 0]
            g = st[t, 1]
        else:
            if a0 < 0.0:
                dirty[np.uint64(n_dirty)] = t
                n_dirty += 1
            k = step - int(a0)
            if k > last:
                k = last
            ku = np.uint64(k)
            u0 = st[t, 0]
            g0 = st[t, 1]
            u = u0 * props[ku, 0] + g0 * props[ku, 2]
            g = g0 * props[ku, 1]
            st[t, 2] = f_step
            listed += FIRST
        if du != 0.0:
            u = u + du
        if has_dg:
            g = g + dg[i] * unit
        st[t, 0] = u
        st[t, 1] = g
        q = queued[t]
        if q < LISTED and (q != 0 or not quickly_below(u, g, t_quick, lo_quick, coef_c_max)):
            queued[t] = q | LISTED
            touched[np.uint64(listed & (FIRST - 1))] = t
            listed += 1
    return listed, n_dirty


@njit(cache=True, nogil=True, inline="always")
def _deliver(step, first, stop, rec, indptr, indices, weights, unit, st, props, touched, listed, dirty, n_dirty,
             queued, t_quick, lo_quick, coef_c_max, slot, xlat, row_stamp, stamp):
    """Synapses slot: spikes rec[first:stop] (neuron ids, ascending) reach their targets in CSR order (weights x
    unit mV). With stamp > 0 the rows are ordered apart from ids: a neuron's targets are translated to rows
    (slot) into xlat the first time it spikes in the trial (row_stamp[pre] == stamp from then on).
    Returns (listed, dirty count, synaptic events), listed as `_apply_inputs`."""
    n_events = 0
    for i in range(first, stop):
        pre = rec[i]
        lo, hi = indptr[pre], indptr[pre + 1]
        n_events += hi - lo
        targets = indices
        if stamp > 0:
            if row_stamp[pre] != stamp:
                for e in range(lo, hi):
                    xlat[e] = slot[np.uint32(indices[e])]
                row_stamp[pre] = stamp
            targets = xlat
        listed, n_dirty = _apply_inputs(step, targets[lo:hi], 0.0, weights[lo:hi], unit, st, props, touched, listed,
                                        dirty, n_dirty, queued, t_quick, lo_quick, coef_c_max)
    return listed, n_dirty, n_events


@njit(cache=True, nogil=True, inline="always")
def _sort_span(a, lo, hi):
    """Sort a[lo:hi] in place (Shell sort, gaps 3h + 1; allocates nothing, unlike ndarray.sort)."""
    gap = 1
    while gap < (hi - lo) // 3:
        gap = 3 * gap + 1
    while gap > 0:
        for i in range(lo + gap, hi):
            x = a[i]
            j = i
            while j >= lo + gap and a[j - gap] > x:
                a[j] = a[j - gap]
                j -= gap
            a[j] = x
        gap //= 3


@njit(cache=True, nogil=True, _nrt=False)
def _clock_threshold(step, st, pow_a, coef_c, u_th, out, n_out):
    """Clock-driven thresholds of `step`: every neuron evaluated, spikers appended (ascending) to out."""
    last = pow_a.shape[0] - 1
    for j in range(st.shape[0]):
        k = step - int(st[j, 2])
        if k > 0:  # frozen neurons have anchor >= step
            if k > last:
                k = last
            if st[j, 0] * pow_a[k] + st[j, 1] * coef_c[k] > u_th:
                out[n_out] = j
                n_out += 1
    return n_out


@njit(cache=True, nogil=True, inline="always")
def _quiet_until(step, n_steps, queue, n_rec, starts, delay_steps, kick_steps, kp, block_work, block_len,
                 window_steps):
    """The first step from `step` on at which the lazy scheme may have work (`step` itself if it may).

    Nothing happens before it: no neuron queued, no kick, no delivery (the next one is delay_steps after the first
    step since step - delay_steps that spiked; steps passed record no spike). A block end in between decides
    nothing only when the block's work is 0 (no switch to clock-driven at per_step 0), so with work in the block
    the quiet stretch stops before the step that ends the block.
    """
    if queue > 0:
        return step
    stop = kick_steps[kp] if kp < kick_steps.shape[0] else n_steps
    src = step - delay_steps
    if src < 0:
        src = 0
    if src < step and n_rec > starts[src]:  # spikes of steps src .. step - 1 are in flight: the first is delivered next
        for s in range(src, step):
            if (starts[s + 1] if s + 1 < step else n_rec) > starts[s]:
                if s + delay_steps < stop:
                    stop = s + delay_steps
                break
    if block_work > 0.0:
        stop = min(stop, step + window_steps - block_len - 1)
    return stop


@njit(cache=True, nogil=True)
def clean_workspace(st, pred, queued, nxt, prv):
    """Put every neuron of a workspace at rest with nothing queued (a new workspace, or after an aborted trial)."""
    st[:, 0] = 0.0  # rows (u0, g0, anchor, frozen_until): one cache line per input
    st[:, 1] = 0.0
    st[:, 2] = -1.0
    st[:, 3] = -1.0
    pred[:] = -1
    queued[:] = 0  # small (L2-resident) mirror of pred >= 0
    nxt[:] = -1
    prv[:] = -1


@njit(cache=True, nogil=True)
def _carry_stats(carry):
    """lazy_trial's stats [clock steps, switches, max queue, predictions, synaptic events] from a step loop's
    carry (the layout `_run_steps` documents; `split._worker_steps` keeps the same)."""
    return np.array([carry[9], carry[10], carry[5], carry[6], carry[7]], np.int64)


@njit(cache=True, nogil=True, inline="always")
def _put_to_rest(j, st, pred, queued, nxt, prv):
    """Row j back to rest with nothing queued (as `clean_workspace` leaves every row)."""
    st[j, 0] = 0.0
    st[j, 1] = 0.0
    st[j, 2] = -1.0
    st[j, 3] = -1.0
    pred[j] = -1
    queued[j] = 0
    nxt[j] = -1
    prv[j] = -1


@njit(cache=True, nogil=True)
def _take_state(st, pred, queued, nxt, prv, dirty, n_dirty):
    """The final state of the neurons dirty[:n_dirty] (ids, anchor int64, u0, g0), each put back to rest."""
    ids = dirty[:n_dirty].copy()
    anchor = np.empty(n_dirty, np.int64)
    u0 = np.empty(n_dirty)
    g0 = np.empty(n_dirty)
    for i in range(n_dirty):
        j = ids[i]
        anchor[i] = int(st[j, 2])
        u0[i] = st[j, 0]
        g0[i] = st[j, 1]
        _put_to_rest(j, st, pred, queued, nxt, prv)
    return ids, anchor, u0, g0


def fresh_run(wheel_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run state `lazy_trial` starts a trial from: (head, carry, block_work), an empty wheel at step 0."""
    return np.full(1 << int(wheel_bits), -1, np.int32), np.zeros(CARRY, np.int64), np.zeros(1)


@njit(cache=True, nogil=True)
def move_rows(slot, st, pred, queued, nxt, prv, dirty, n_dirty, head):
    """Move a paused trial from rows by neuron id to rows slot[id]: the rows that left rest (dirty[:n_dirty],
    rewritten as the new rows) with their predictions, the wheel relinked (the order within a wheel slot decides
    nothing: a step's spikes are sorted). Every other row is at rest before and after."""
    mask = head.shape[0] - 1
    ids = dirty[:n_dirty].copy()
    rows = np.empty((n_dirty, 4))
    steps = np.empty(n_dirty, np.int64)
    for i in range(n_dirty):
        j = ids[i]
        rows[i, :] = st[j, :]
        steps[i] = pred[j]
        _put_to_rest(j, st, pred, queued, nxt, prv)
    head[:] = -1
    for i in range(n_dirty):
        j = slot[ids[i]]
        dirty[i] = j
        st[j, :] = rows[i, :]
        if steps[i] >= 0:
            _link(j, steps[i], pred, queued, nxt, prv, head, mask)


@njit(cache=True, nogil=True)
def lazy_trial(indptr, indices, weights, weight_unit, refractory_steps, pow_a, pow_b, coef_c, u_th, u_rst, kick_mv,
               delay_steps, n_steps, kick_steps, kick_neurons, log_a, log_b, kappa, peak_bound, peak_per_ratio,
               coef_c_max, props, slot, owner, xlat, row_stamp, stamp, wheel_bits,
               clock_on, clock_off, window_steps, predict_cost, st, pred, queued, nxt, prv, touched, starts,
               rec, dirty, head, carry, block_work, pause_at):
    """Simulate one trial lazily, switching to clock-driven steps while activity is high.

    st .. dirty are a reusable workspace (sizes (n, 4), n, n, n, n, n, n_steps + 1, any, n) that must
    come in clean (`clean_workspace`) for a new trial and is left clean when it ends: only the rows of the
    neurons an input reached (the `dirty` list) are read out and put back to rest, so a quiet trial costs nothing
    per neuron (and, lazy, nothing per step where nothing is queued, delivered or kicked).

    Mode switch: over each block of `window_steps` steps the work of the lazy scheme is estimated as
    predict_cost x (neurons an input reached) + (synaptic events); the trial goes clock-driven when that
    exceeds clock_on x n_neurons per step and back to lazy when it falls below clock_off x n_neurons
    (clock_on <= 0: never switches, a pure lazy run).

    Synapse e adds weights[e] x weight_unit mV (int16 synapse counts times w_syn, or float64 mV times 1.0).
    State rows need not follow neuron ids (`row_order`): row slot[o] holds neuron o, owner[j] is the neuron of
    row j, and stamp > 0 (this trial's number on this workspace) turns on the translation of out-rows into
    xlat (as long as indices; row_stamp: n int32, see `_deliver`). kick_neurons, the workspace and the returned
    state_neurons name rows; indptr, indices, refractory_steps and the spike record name neurons (spikes of a
    step ascend by neuron id, whatever the rows). With stamp 0 both maps are the identity, xlat and row_stamp
    are not read.
    Reject tests before a prediction: `cannot_cross` (max(u0, 0) + max(g0, 0) coef_c_max), `ruled_out` (sup
    over k >= 1 of the positive terms), then for
    p > 0 > q the tabulated sup of the continuous shape, p peak_bound[floor(r peak_per_ratio)] with
    r = -q / p (tables.peak_bounds); no exp or log on the common path.

    The run goes on from the state in the workspace, head (the wheel's 1 << wheel_bits list heads), carry and
    block_work (see `_run_steps`; a trial starts from `fresh_run`) up to step `pause_at` (n_steps: to the end).
    Paused (pause_at < n_steps; the spikes of the steps before carry[0] are in rec[:carry[1]]), it returns no spikes
    and no state, and another call continues the trial (`move_rows` may move it to other rows in between).

    Returns (spike_neurons, step_starts, state_rows, anchor, u0, g0, stats, rec): spikes as `clock_trial`,
    the final anchored state of the rows that left rest (every other one is at anchor -1, u0 = g0 = 0),
    stats int64 [clock steps, mode switches, max queue entries, predictions (neurons re-predicted), synaptic
    events] and rec the record buffer (grown if it had to be).
    """
    while not _run_steps(indptr, indices, weights, weight_unit, refractory_steps, pow_a, pow_b, coef_c, u_th, u_rst,
                         kick_mv, delay_steps, n_steps, kick_steps, kick_neurons, log_a, log_b, kappa, peak_bound,
                         peak_per_ratio, coef_c_max, props, slot, owner, xlat, row_stamp, stamp, wheel_bits, clock_on,
                         clock_off, window_steps, predict_cost, st, pred, queued, nxt, prv, touched, starts, rec,
                         dirty, head, carry, block_work, pause_at):
        rec = _grow(rec)
    n_rec = carry[1]
    stats = _carry_stats(carry)
    if carry[0] < n_steps:  # paused
        return (rec[:0].copy(), starts[:0].copy(), dirty[:0].copy(), starts[:0].copy(), st[:0, 0].copy(),
                st[:0, 1].copy(), stats, rec)
    ids, anchor, u0, g0 = _take_state(st, pred, queued, nxt, prv, dirty, carry[2])
    return rec[:n_rec].copy(), starts.copy(), ids, anchor, u0, g0, stats, rec


@njit(cache=True, nogil=True, _nrt=False)
def _run_steps(indptr, indices, weights, weight_unit, refractory_steps, pow_a, pow_b, coef_c, u_th, u_rst, kick_mv,
               delay_steps, n_steps, kick_steps, kick_neurons, log_a, log_b, kappa, peak_bound, peak_per_ratio,
               coef_c_max, props, slot, owner, xlat, row_stamp, stamp, wheel_bits, clock_on, clock_off, window_steps,
               predict_cost, st, pred, queued, nxt, prv, touched, starts, rec, dirty, head, carry, block_work_carry,
               pause_at):
    """The step loop of `lazy_trial`, from the state in carry (CARRY int64: step, spikes recorded, dirty rows,
    next kick, queue length, max queue, predictions, synaptic events, clock-driven, clock steps, switches, block
    length) and block_work_carry[0]. Returns True when the trial is done or has reached step `pause_at` (a quiet
    stretch may pass it), False (state saved) when rec has no room for every neuron spiking in the next step: the
    caller grows rec and calls again.
    Compiled without reference counting (see the module docstring): it allocates nothing.
    """
    n = indptr.shape[0] - 1
    last = pow_a.shape[0] - 1
    mask = (1 << wheel_bits) - 1
    no_weights = weights[:0]  # kicks add to u only (same array type: one compiled _apply_inputs)
    a1 = pow_a[1] if last >= 1 else math.exp(log_a)
    b1 = pow_b[1] if last >= 1 else math.exp(log_b)
    t_quick, lo_quick = quick_bounds(u_th, kappa, coef_c_max)  # the input pass's reject test (quickly_below)
    n_kicks = kick_steps.shape[0]
    step, n_rec, n_dirty, kp, queue, max_queue = carry[0], carry[1], carry[2], carry[3], carry[4], carry[5]
    n_predictions, n_events, clock = carry[6], carry[7], carry[8] != 0
    clock_steps, switches, block_len = carry[9], carry[10], carry[11]
    block_work = block_work_carry[0]
    while step < pause_at:
        if not clock:  # nothing queued, delivered or kicked before `stop`: those steps only record no spike
            stop = _quiet_until(step, n_steps, queue, n_rec, starts, delay_steps, kick_steps, kp, block_work,
                                block_len, window_steps)
            if stop > step:  # never beyond a step with work: `stop` is processed below
                for s in range(step, stop):  # a loop, not a slice: no array view (reference counts) per stretch
                    starts[s] = n_rec
                block_len = (block_len + stop - step) % window_steps if window_steps > 0 else block_len + stop - step
                step = stop
                continue
        starts[step] = n_rec
        if n_rec + n > rec.shape[0]:  # no room for every neuron spiking in this step: the caller grows rec
            break
        # 1 + 2: groups and thresholds
        if clock:
            clock_steps += 1
            n_rec = _clock_threshold(step, st, pow_a, coef_c, u_th, rec, n_rec)
            for i in range(starts[step], n_rec):  # rows to neuron ids, ascending
                rec[i] = owner[rec[i]]
            _sort_span(rec, starts[step], n_rec)
        else:
            j = head[step & mask]
            while j >= 0:
                following = nxt[j]
                if pred[j] == step:
                    _unlink(j, pred, queued, nxt, prv, head, mask)
                    queue -= 1
                    rec[n_rec] = owner[j]
                    n_rec += 1
                j = following
            _sort_span(rec, starts[step], n_rec)
        # 4 (applied first, same effect): reset, frozen through `until`, inputs of this step dropped
        for i in range(starts[step], n_rec):
            j = slot[rec[i]]
            r = refractory_steps[rec[i]]
            until = step + (r if r > 0 else 1) - 1
            st[j, 0] = u_rst
            st[j, 1] = 0.0
            st[j, 2] = float(until)
            st[j, 3] = float(until)
            if not clock and u_rst > 0.0:
                m = predict_crossing(until, u_rst, 0.0, 1, n_steps, pow_a, pow_b, coef_c, u_th, log_a, log_b,
                                     kappa)
                if m >= 0:
                    _link(j, m, pred, queued, nxt, prv, head, mask)
                    queue += 1
        # 3: synapses (spikes of step - delay in ascending order), then drive kicks
        listed = 0
        if step >= delay_steps:
            src = step - delay_steps
            first, stop = starts[src], starts[src + 1]
            if stop > first:
                listed, n_dirty, events = _deliver(step, first, stop, rec, indptr, indices, weights, weight_unit,
                                                   st, props, touched, listed, dirty, n_dirty, queued, t_quick,
                                                   lo_quick, coef_c_max, slot, xlat, row_stamp, stamp)
                n_events += events
                block_work += events
        kp_end = kp
        while kp_end < n_kicks and kick_steps[kp_end] == step:
            kp_end += 1
        if kp_end > kp:
            listed, n_dirty = _apply_inputs(step, kick_neurons[kp:kp_end], kick_mv, no_weights, 1.0, st, props,
                                            touched, listed, dirty, n_dirty, queued, t_quick, lo_quick,
                                            coef_c_max)
            kp = kp_end
        n_touched = listed & (FIRST - 1)
        block_work += predict_cost * (listed // FIRST)  # neurons an input reached: the estimate as a full pass
        # re-predict the neurons the inputs listed (queued, or not ruled out by quickly_below)
        if not clock:
            n_predictions += n_touched
            for i in range(n_touched):
                t = np.uint32(touched[i])  # unsigned: no wraparound code
                if queued[t] & 1:
                    _unlink(t, pred, queued, nxt, prv, head, mask)
                    queue -= 1
                else:
                    queued[t] = 0  # no longer listed
                u0 = st[t, 0]
                g0 = st[t, 1]
                if cannot_cross(u0, g0, u_th, kappa, coef_c_max):
                    continue
                if ruled_out(u0, g0, a1, b1, u_th, kappa):
                    continue
                if peak_ruled_out(u0, g0, u_th, kappa, peak_bound, peak_per_ratio):
                    continue
                m = scan_crossing(step, u0, g0, 1, n_steps, pow_a, coef_c, u_th)
                if m == BEYOND_SCAN:
                    m = predict_crossing(step, u0, g0, SCAN_STEPS + 1, n_steps, pow_a, pow_b, coef_c, u_th, log_a,
                                         log_b, kappa)
                if m >= 0:
                    _link(t, m, pred, queued, nxt, prv, head, mask)
                    queue += 1
            max_queue = max(max_queue, queue)
        else:
            for i in range(n_touched):  # clock-driven: nothing queued, only the marks to clear
                queued[np.uint32(touched[i])] = 0
        # strategy: compare the lazy work of the last block with clock-driven steps
        block_len += 1
        if block_len == window_steps:
            per_step = block_work / (window_steps * n) if n > 0 else 0.0
            if not clock and clock_on > 0.0 and per_step > clock_on:
                clock = True
                switches += 1
                head[:] = -1
                pred[:] = -1
                queued[:] = 0
                nxt[:] = -1
                prv[:] = -1
                queue = 0
            elif clock and per_step < clock_off:
                clock = False
                switches += 1
                n_predictions += n_dirty
                for i in range(n_dirty):  # a neuron at rest never crosses
                    j = dirty[i]
                    a0 = int(st[j, 2])
                    kmin = step + 1 - a0
                    if kmin < 1:
                        kmin = 1
                    m = predict_crossing(a0, st[j, 0], st[j, 1], kmin, n_steps, pow_a, pow_b, coef_c,
                                         u_th, log_a, log_b, kappa)
                    if m >= 0:
                        _link(j, m, pred, queued, nxt, prv, head, mask)
                        queue += 1
                max_queue = max(max_queue, queue)
            block_work = 0.0
            block_len = 0
        step += 1
    if step >= n_steps:
        starts[n_steps] = n_rec
    carry[0], carry[1], carry[2], carry[3], carry[4], carry[5] = step, n_rec, n_dirty, kp, queue, max_queue
    carry[6], carry[7], carry[8] = n_predictions, n_events, 1 if clock else 0
    carry[9], carry[10], carry[11] = clock_steps, switches, block_len
    block_work_carry[0] = block_work
    return step >= pause_at


# numba's cache keys a kernel on its own file only; both compile predict.py's functions in (trap: stale code)
track_sources(_run_steps, "flyhpc.backends.native.predict")
track_sources(lazy_trial, "flyhpc.backends.native.predict")
