"""One lazy trial on several threads: the neurons cut into contiguous id ranges, one worker per range.

Each worker owns its range's state rows (the shared (n, 4) rows and wheel links, written only by their owner),
its own timing wheel, touched and dirty lists and spike record, and applies only the inputs to its own
neurons: a synapse row is stably partitioned by target part (`split_layout`), so each worker reads only its
segment, and a target receives its inputs in the one-thread order (spikes ascending, then CSR order). That and
the exact crossing prediction (lazy and clock-driven states are bit-identical) make the spikes, step starts and
final states those of `lazy.lazy_trial`, whatever the cut.

Synchronisation without a barrier per step: a spike of step s reaches its targets at s + delay_steps, so a
worker delivering at step s waits only until every other worker has published the spikes of step s - delay
(`progress`, one cache line per worker, acquire/release atomics, pause then sched_yield while spinning, an
abort flag read in every wait; the last value read is kept, so a worker ahead costs no read). Spikes travel
through per-worker rings of 2 x delay + RING_EXTRA slots, each tagged with its step (ring_meta: step, count);
the parts are ascending id ranges, so a step's spikes in ascending id order are the workers' lists one after
the other. A lazy stretch is passed in one go only as far as the spikes it knows reach (`_quiet_stop`). Each
worker decides its own switch to clock-driven steps on its own work per neuron. The per-step loops (reset,
re-prediction, the return from clock-driven steps) are written out as in `lazy._run_steps`, not shared: numba
compiles inlined helpers that hold loops badly (measured: one-neuron atlas trials 1.7-2.5x slower, sugar +5 %),
so a change to one of those loops must be made in both files (tests/unit/backends/native/test_split.py
compares the two engines bit for bit). The worker's step loop (`_worker_steps`) is compiled without reference
counting and allocates nothing, as lazy's (see flyhpc.backends.native.lazy).
Entry points: `split_layout`, `split_worker`, `merge_records` (threads: flyhpc.backends.native.split_run).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from flyhpc.backends.native.kernel_cache import track_sources
from flyhpc.backends.native.lazy import (CARRY, FIRST, _apply_inputs, _carry_stats, _grow, _link, _sort_span,
                                        _take_state, _unlink)
from flyhpc.backends.native.predict import (BEYOND_SCAN, SCAN_STEPS, cannot_cross, peak_ruled_out, predict_crossing,
                                           quick_bounds, ruled_out, scan_crossing)

PAD = 8  # int64 slots per worker in `progress`: one cache line each (no false sharing)
RING_EXTRA = 2  # ring slots beyond 2 x delay (a worker publishes a step's spikes before its deliveries)
SPINS = 32  # pause-spins before each sched_yield: both workers on one CPU 1.2x one thread (4096: 3.7x)


def _element_ptr(context, builder, signature, args):
    ary_ty, i_ty = signature.args[0], signature.args[1]
    ary = context.make_array(ary_ty)(context, builder, args[0])
    i = context.cast(builder, args[1], i_ty, types.intp)
    return cgutils.get_item_pointer(context, builder, ary_ty, ary, [i], wraparound=False)


@intrinsic
def _load_acquire(typingctx, arr, i):
    """arr[i] (int64, 1-D) as an atomic acquire load: never hoisted out of a loop, later reads not before it."""
    sig = types.int64(arr, i)

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_element_ptr(context, builder, signature, args), "acquire", 8)

    return sig, codegen


@intrinsic
def _store_release(typingctx, arr, i, value):
    """arr[i] = value (int64, 1-D) as an atomic release store: every earlier write is visible before it."""
    sig = types.void(arr, i, types.int64)

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, _element_ptr(context, builder, signature, args), "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _pause(typingctx):
    """The spin-wait hint (x86 `pause`): eases the sibling hyper-thread and the memory bus."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _sched_yield(typingctx):
    """libc's sched_yield(): give the CPU to another thread (called by symbol: numba's cache keeps no address)."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True, nogil=True, inline="always")  # a call with arrays costs reference counts
def _wait_all(progress, w, n_workers, need, seen):
    """Spin until every other worker's progress is >= need; False when the abort flag is raised. seen[v]: the
    last progress read of worker v (progress only grows: no read, so no cache-line transfer, while it suffices)."""
    for v in range(n_workers):
        if v == w or seen[v] >= need:
            continue
        spins = 0
        seen[v] = _load_acquire(progress, v * PAD)
        while seen[v] < need:
            if _load_acquire(progress, n_workers * PAD) != 0:
                return False
            spins += 1
            if spins < SPINS:
                _pause()
            else:
                _sched_yield()
                spins = 0
            seen[v] = _load_acquire(progress, v * PAD)
    return True


@njit(cache=True, nogil=True, inline="always")  # a call with arrays costs reference counts
def _known(progress, w, n_workers, own, seen):
    """Steps below this have their spikes published by every worker (own: this worker's progress)."""
    k = own
    for v in range(n_workers):
        if v != w:
            seen[v] = _load_acquire(progress, v * PAD)
            k = min(k, seen[v])
    return k


@njit(cache=True, nogil=True)
def part_of_neurons(n, bounds):
    """The part (int32) of every neuron: part p holds ids bounds[p] .. bounds[p + 1] - 1."""
    part = np.empty(n, np.int32)
    for p in range(bounds.shape[0] - 1):
        part[bounds[p]:bounds[p + 1]] = p
    return part


@njit(cache=True, nogil=True)
def split_layout(indptr, indices, part):
    """Row split points (n, P + 1): row pre's part-p targets at [split[pre, p], split[pre, p + 1]) once each row
    is stably partitioned by target part, and whether every row already is (no copy needed)."""
    n = indptr.shape[0] - 1
    n_parts = int(part.max()) + 1 if n > 0 else 1
    split = np.empty((n, n_parts + 1), np.int64)
    ordered = True
    for pre in range(n):
        lo, hi = indptr[pre], indptr[pre + 1]
        split[pre, 1:] = 0
        last = 0
        for e in range(lo, hi):
            p = part[indices[e]]
            split[pre, p + 1] += 1
            if p < last:
                ordered = False
            last = p
        split[pre, 0] = lo
        for p in range(n_parts):
            split[pre, p + 1] += split[pre, p]
    return split, ordered


@njit(cache=True, nogil=True)
def partition_rows(indptr, indices, weights, part, split):
    """indices and weights with each row stably partitioned by target part (the order `split` describes)."""
    out_i = np.empty_like(indices)
    out_w = np.empty_like(weights)
    pos = np.empty(split.shape[1], np.int64)
    for pre in range(indptr.shape[0] - 1):
        pos[:] = split[pre]
        for e in range(indptr[pre], indptr[pre + 1]):
            p = part[indices[e]]
            out_i[pos[p]] = indices[e]
            out_w[pos[p]] = weights[e]
            pos[p] += 1
    return out_i, out_w


@njit(cache=True, nogil=True, _nrt=False)
def _clock_threshold_range(step, lo, hi, st, pow_a, coef_c, u_th, out, n_out):
    """Clock-driven thresholds of `step` over neurons lo .. hi - 1, spikers appended (ascending) to out."""
    last = pow_a.shape[0] - 1
    for j in range(lo, hi):
        k = step - int(st[j, 2])
        if k > 0:
            if k > last:
                k = last
            if st[j, 0] * pow_a[k] + st[j, 1] * coef_c[k] > u_th:
                out[n_out] = j
                n_out += 1
    return n_out


@njit(cache=True, nogil=True, inline="always")  # a call with arrays costs reference counts
def _quiet_stop(step, n_steps, known, kick_stop, delay_steps, ring_meta, block_work, block_len, window_steps):
    """The first step from `step` on at which a worker with nothing queued may have work, as far as it knows:
    its next kick, a delivery of a spike published by any worker (steps < known), or known + delay (spikes not
    yet published); before a block end when the block has work (`lazy._quiet_until`)."""
    stop = min(kick_stop, known + delay_steps)
    n_slots = ring_meta.shape[1]
    src = max(step - delay_steps, 0)
    while src < stop - delay_steps:
        slot = src % n_slots
        for v in range(ring_meta.shape[0]):
            if ring_meta[v, slot, 0] == src and ring_meta[v, slot, 1] > 0:
                stop = src + delay_steps
                break
        src += 1
    if block_work > 0.0:
        stop = min(stop, step + window_steps - block_len - 1)
    return max(min(stop, n_steps), step)


@njit(cache=True, nogil=True)
def split_worker(w, bounds, split, indices, weights, weight_unit, refractory_steps, pow_a, pow_b, coef_c, u_th,
                 u_rst, kick_mv, delay_steps, n_steps, kick_steps, kick_neurons, log_a, log_b, kappa, peak_bound,
                 peak_per_ratio, coef_c_max, props, wheel_bits, clock_on, clock_off, window_steps, predict_cost, st,
                 pred, queued, nxt, prv, touched, dirty, starts, rec, ring, ring_meta, progress):
    """Worker w's share of one lazy trial: neurons bounds[w] .. bounds[w + 1] - 1 (see the module docstring;
    arguments as `lazy.lazy_trial`, the kicks those of its own neurons in drive order, `split` from
    `split_layout` with `indices`/`weights` in that order). touched and dirty hold the part, rec grows.

    Returns (ok, starts, state ids, anchor, u0, g0, stats, rec): ok False when another worker aborted; starts
    and rec this worker's own spikes (merge with `merge_records`); stats as lazy_trial's over its part.
    """
    head = np.full(1 << wheel_bits, -1, np.int32)
    seen = np.zeros(bounds.shape[0] - 1, np.int64)
    carry = np.zeros(CARRY + 1, np.int64)  # lazy's loop state, then ok
    carry[CARRY] = 1
    block_work = np.zeros(1)
    while not _worker_steps(w, bounds, split, indices, weights, weight_unit, refractory_steps, pow_a, pow_b, coef_c,
                            u_th, u_rst, kick_mv, delay_steps, n_steps, kick_steps, kick_neurons, log_a, log_b, kappa,
                            peak_bound, peak_per_ratio, coef_c_max, props, wheel_bits, clock_on, clock_off,
                            window_steps, predict_cost, st, pred, queued, nxt, prv, touched, dirty, starts, rec, ring,
                            ring_meta, progress, head, seen, carry, block_work):
        rec = _grow(rec)
    ok = carry[CARRY] != 0
    if ok:
        _store_release(progress, w * PAD, n_steps)
    starts[n_steps] = carry[1]
    stats = _carry_stats(carry)
    ids, anchor, u0, g0 = _take_state(st, pred, queued, nxt, prv, dirty, carry[2])
    return ok, starts, ids, anchor, u0, g0, stats, rec


@njit(cache=True, nogil=True, _nrt=False)
def _worker_steps(w, bounds, split, indices, weights, weight_unit, refractory_steps, pow_a, pow_b, coef_c, u_th,
                  u_rst, kick_mv, delay_steps, n_steps, kick_steps, kick_neurons, log_a, log_b, kappa, peak_bound,
                  peak_per_ratio, coef_c_max, props, wheel_bits, clock_on, clock_off, window_steps, predict_cost, st,
                  pred, queued, nxt, prv, touched, dirty, starts, rec, ring, ring_meta, progress, head, seen, carry,
                  block_work_carry):
    """The step loop of `split_worker`, from the state in carry (lazy.CARRY entries as `lazy._run_steps`'s, then
    ok) and block_work_carry[0]. Returns True when the part is done or a worker aborted (carry[CARRY] 0), False
    (state saved) when rec has no room for every neuron of the part spiking in the next step: the caller grows
    rec and calls again. Compiled without reference counting, as `lazy._run_steps`.
    """
    n_workers = bounds.shape[0] - 1
    lo, hi = bounds[w], bounds[w + 1]
    n_part = hi - lo
    n_slots = ring_meta.shape[1]
    last = pow_a.shape[0] - 1
    mask = (1 << wheel_bits) - 1
    no_weights = weights[:0]
    a1 = pow_a[1] if last >= 1 else math.exp(log_a)
    b1 = pow_b[1] if last >= 1 else math.exp(log_b)
    t_quick, lo_quick = quick_bounds(u_th, kappa, coef_c_max)  # as lazy._run_steps
    n_kicks = kick_steps.shape[0]
    step, n_rec, n_dirty, kp, queue, max_queue = carry[0], carry[1], carry[2], carry[3], carry[4], carry[5]
    n_predictions, n_events, clock = carry[6], carry[7], carry[8] != 0
    clock_steps, switches, block_len = carry[9], carry[10], carry[11]
    block_work = block_work_carry[0]
    ok = True
    while step < n_steps:
        if not clock and queue == 0:
            if not _wait_all(progress, w, n_workers, step - delay_steps + 1, seen):
                ok = False
                break
            known = _known(progress, w, n_workers, step, seen)
            kick_stop = kick_steps[kp] if kp < n_kicks else n_steps
            stop = _quiet_stop(step, n_steps, known, kick_stop, delay_steps, ring_meta, block_work, block_len,
                               window_steps)
            if stop > step:  # nothing to do before `stop`: no spike recorded, none published
                for s in range(step, stop):  # loops, not slices: no array view (reference counts) per step
                    starts[s] = n_rec
                block_len = (block_len + stop - step) % window_steps if window_steps > 0 else block_len + stop - step
                step = stop
                _store_release(progress, w * PAD, step)
                continue
        starts[step] = n_rec
        if n_rec + n_part > rec.shape[0]:  # no room for every neuron of the part spiking: the caller grows rec
            break
        if clock:
            clock_steps += 1
            n_rec = _clock_threshold_range(step, lo, hi, st, pow_a, coef_c, u_th, rec, n_rec)
        else:
            j = head[step & mask]
            while j >= 0:
                following = nxt[j]
                if pred[j] == step:
                    _unlink(j, pred, queued, nxt, prv, head, mask)
                    queue -= 1
                    rec[n_rec] = j
                    n_rec += 1
                j = following
            _sort_span(rec, starts[step], n_rec)
        slot = step % n_slots  # publish (the slot's last reader is done: see the ring size)
        count = n_rec - starts[step]
        for i in range(count):
            ring[w, slot, i] = rec[starts[step] + i]
        ring_meta[w, slot, 0] = step
        ring_meta[w, slot, 1] = count
        _store_release(progress, w * PAD, step + 1)
        for i in range(starts[step], n_rec):
            j = rec[i]
            r = refractory_steps[j]
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
        listed = 0
        events_before = n_events
        if step >= delay_steps:
            if not _wait_all(progress, w, n_workers, step - delay_steps + 1, seen):
                ok = False
                break
            src = step - delay_steps
            src_slot = src % n_slots
            for v in range(n_workers):  # ascending ids: the parts in order, each list ascending
                if ring_meta[v, src_slot, 0] != src:
                    continue
                for i in range(ring_meta[v, src_slot, 1]):
                    pre = ring[v, src_slot, i]
                    a, b = split[pre, w], split[pre, w + 1]
                    if b > a:
                        n_events += b - a
                        listed, n_dirty = _apply_inputs(step, indices[a:b], 0.0, weights[a:b], weight_unit, st,
                                                        props, touched, listed, dirty, n_dirty, queued, t_quick,
                                                        lo_quick, coef_c_max)
        block_work += n_events - events_before
        kp_end = kp
        while kp_end < n_kicks and kick_steps[kp_end] == step:
            kp_end += 1
        if kp_end > kp:
            listed, n_dirty = _apply_inputs(step, kick_neurons[kp:kp_end], kick_mv, no_weights, 1.0, st, props,
                                            touched, listed, dirty, n_dirty, queued, t_quick, lo_quick,
                                            coef_c_max)
            kp = kp_end
        n_touched = listed & (FIRST - 1)
        block_work += predict_cost * (listed // FIRST)  # as lazy._run_steps
        if not clock:
            n_predictions += n_touched
            for i in range(n_touched):
                t = np.uint32(touched[i])  # unsigned: no wraparound code (as lazy._run_steps)
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
        block_len += 1
        if block_len == window_steps:
            per_step = block_work / (window_steps * n_part) if n_part > 0 else 0.0
            if not clock and clock_on > 0.0 and per_step > clock_on:
                clock = True
                switches += 1
                head[:] = -1  # only this part's wheel links: the other rows are another worker's
                pred[lo:hi] = -1
                queued[lo:hi] = 0
                nxt[lo:hi] = -1
                prv[lo:hi] = -1
                queue = 0
            elif clock and per_step < clock_off:
                clock = False
                switches += 1
                n_predictions += n_dirty
                for i in range(n_dirty):
                    j = dirty[i]
                    a0 = int(st[j, 2])
                    kmin = max(step + 1 - a0, 1)
                    m = predict_crossing(a0, st[j, 0], st[j, 1], kmin, n_steps, pow_a, pow_b, coef_c, u_th, log_a,
                                         log_b, kappa)
                    if m >= 0:
                        _link(j, m, pred, queued, nxt, prv, head, mask)
                        queue += 1
                max_queue = max(max_queue, queue)
            block_work = 0.0
            block_len = 0
        step += 1
    done = step >= n_steps or not ok
    carry[0], carry[1], carry[2], carry[3], carry[4], carry[5] = step, n_rec, n_dirty, kp, queue, max_queue
    carry[6], carry[7], carry[8] = n_predictions, n_events, 1 if clock else 0
    carry[9], carry[10], carry[11] = clock_steps, switches, block_len
    carry[CARRY] = 1 if ok else 0
    block_work_carry[0] = block_work
    return done


@njit(cache=True, nogil=True)
def merge_records(starts_all, flat, offsets):
    """One trial's spikes from the workers' records (worker w's: flat[offsets[w]:offsets[w + 1]], its step starts
    starts_all[w]): each step's lists concatenated in part order, i.e. ascending ids."""
    n_workers, n1 = starts_all.shape
    starts = np.zeros(n1, np.int64)
    for w in range(n_workers):
        starts += starts_all[w]
    out = np.empty(starts[n1 - 1], np.int32)
    for s in range(n1 - 1):
        pos = starts[s]
        for w in range(n_workers):
            a, b = offsets[w] + starts_all[w, s], offsets[w] + starts_all[w, s + 1]
            out[pos:pos + b - a] = flat[a:b]
            pos += b - a
    return out, starts


# the worker compiles in lazy.py's and predict.py's functions (numba's cache tracks only this file)
track_sources(_worker_steps, "flyhpc.backends.native.lazy", "flyhpc.backends.native.predict")
track_sources(split_worker, "flyhpc.backends.native.lazy", "flyhpc.backends.native.predict")
