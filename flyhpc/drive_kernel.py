"""Compiled drawing for flyhpc.drive: numpy's Philox4x64-10 stream bit for bit, and the walk that turns it into trains.

`raw(key, counter, count)` returns what numpy's `np.random.Philox(key=key)` with state counter `counter` and an
empty buffer (buffer_pos 4) returns from `random_raw(count)`: the counter is incremented (with carry from
word 0 up to word 3) before each block of four outputs, so the first block is that of counter + 1
(numpy/random/src/philox/philox.h, `philox_next`, `philox4x64_R`; tests/unit/test_drive_kernel.py checks
it against numpy itself). `draw_trials` (whole trials, sorted) and `draw_set` (one set, neuron after neuron)
draw drive version 2's trains as flyhpc.drive defines them, without calling log1p: a gap's index
floor(log1p(-u) / log1p(-P)) is looked up among the 53-bit uniforms at which numpy's own np.log1p makes it step
(`thresholds`, found by flyhpc.drive with numpy), and a neuron with a uniform within `window` of such a step is
left to numpy (`unsure`), so the trains are numpy's whatever log1p this machine's numpy uses (numpy 2.3 on
AVX512 uses SVML's, which differs from glibc's — and numba's math.log1p — in the last bit for ~4 % of these
arguments; measured). Entry points: `raw`, `draw_trials`, `draw_set`.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_M0, _M1 = np.uint64(0xD2E7470EE14C6C93), np.uint64(0xCA5A826395121157)  # Philox4x64 multipliers
_W0, _W1 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBB67AE8584CAA73B)  # key bumps (Weyl constants)
_ZERO, _ONE, _SHIFT = np.uint64(0), np.uint64(1), np.uint64(11)
_UNIT = 1.0 / 9007199254740992.0  # 2^-53: a uniform is (raw >> 11) * 2^-53, as flyhpc.drive's numpy code


@intrinsic
def _mulhilo(typingctx, a, b):
    """(high, low) 64-bit halves of the 128-bit product a * b of two uint64."""
    if a != types.uint64 or b != types.uint64:
        return None
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        wide, word = ir.IntType(128), ir.IntType(64)
        product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        high = builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), word)
        return context.make_tuple(builder, signature.return_type, [high, builder.trunc(product, word)])

    return sig, codegen


@njit(cache=True, nogil=True)
def _round(c0, c1, c2, c3, k0, k1):
    """One Philox4x64 round (`_philox4x64round`)."""
    hi0, lo0 = _mulhilo(_M0, c0)
    hi1, lo1 = _mulhilo(_M1, c2)
    return hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0


@njit(cache=True, nogil=True)
def _increment(c0, c1, c2, c3):
    """counter + 1, word 0 lowest, carrying as numpy does."""
    c0 += _ONE
    if c0 == _ZERO:
        c1 += _ONE
        if c1 == _ZERO:
            c2 += _ONE
            if c2 == _ZERO:
                c3 += _ONE
    return c0, c1, c2, c3


@njit(cache=True, nogil=True)
def _fill(buf, c0, c1, c2, c3, k0, k1):
    """The next 8 outputs of the stream at counter (c0, c1, c2, c3) into buf: the Philox4x64-10 blocks of
    counter + 1 and counter + 2 (`philox_next`, `philox4x64_R`), their rounds interleaved (two independent
    multiply chains: the CPU runs them side by side); returns counter + 2."""
    a0, a1, a2, a3 = _increment(c0, c1, c2, c3)
    b0, b1, b2, b3 = _increment(a0, a1, a2, a3)
    counter = b0, b1, b2, b3
    for _ in range(10):
        a0, a1, a2, a3 = _round(a0, a1, a2, a3, k0, k1)
        b0, b1, b2, b3 = _round(b0, b1, b2, b3, k0, k1)
        k0 += _W0
        k1 += _W1
    buf[0], buf[1], buf[2], buf[3] = a0, a1, a2, a3
    buf[4], buf[5], buf[6], buf[7] = b0, b1, b2, b3
    return counter


@njit(cache=True, nogil=True)
def raw(key, counter, count):
    """The first `count` uint64 of the Philox stream of `key` (2 uint64) from `counter` (4 uint64)."""
    out = np.empty(count, np.uint64)
    buf = np.empty(8, np.uint64)
    c0, c1, c2, c3 = counter[0], counter[1], counter[2], counter[3]
    for i in range(0, count, 8):
        c0, c1, c2, c3 = _fill(buf, c0, c1, c2, c3, key[0], key[1])
        for k in range(min(8, count - i)):
            out[i + k] = buf[k]
    return out


@njit(cache=True, nogil=True)
def _grow(buf):
    """A copy of buf with twice the room (at least 1,024)."""
    out = np.empty(max(1024, buf.shape[0] * 2), buf.dtype)
    out[:buf.shape[0]] = buf
    return out


@njit(cache=True, nogil=True)
def _uniform(bits):
    """(bits >> 11) * 2^-53, converted through int64 (one instruction; the value is below 2^53, so exact)."""
    return np.float64(np.int64(bits >> _SHIFT)) * _UNIT


@njit(cache=True, nogil=True)
def _gap(bits, thresholds, first_gap, window):
    """(gap, unsure) of a 64-bit draw: gap = 1 + the index k with thresholds[k] <= bits >> 11 < thresholds[k + 1];
    unsure when bits >> 11 lies within `window` of either threshold."""
    r = np.int64(bits >> _SHIFT)
    k = np.int64(first_gap[r >> 41])  # the index at the start of r's 2^41-wide bucket (4,096 buckets)
    while thresholds[k + 1] <= r:
        k += 1
    return k + 1, (r - thresholds[k] < window) | (thresholds[k + 1] - r <= window)


@njit(cache=True, nogil=True)
def _walk(k0, k1, j, p, candidate_p, n_steps, steps, n_out, candidates, buf, thresholds, first_gap, window):
    """Append neuron j's kick steps to steps[n_out:]: (steps, new n_out, candidates, unsure). `candidates` is
    scratch for p > candidate_p; the arrays grow as needed (hence returned). An unsure neuron appends nothing.

    Candidate stream (counter (0, 0, j, 0)): (gap, mark) pairs, candidates at the cumulative gaps minus one, up to
    the first at or past n_steps; with p <= candidate_p a candidate is a kick where mark * candidate_p < p, else
    every candidate is one and so is each other step whose per-step uniform (counter (0, 0, j, 1)) is below
    (p - candidate_p) / (1 - candidate_p)."""
    start, step, n_cand, bad, done = n_out, np.int64(-1), 0, False, False
    per_step = not p <= candidate_p  # as flyhpc.drive tests it (a NaN rate takes this way there too)
    c0, c1, c2, c3 = _ZERO, _ZERO, np.uint64(j), _ZERO
    while not done:
        c0, c1, c2, c3 = _fill(buf, c0, c1, c2, c3, k0, k1)
        for pair in range(4):
            gap, bad = _gap(buf[2 * pair], thresholds, first_gap, window)
            step += gap
            if bad or step >= n_steps:
                done = True
                break
            if per_step:
                if n_cand == candidates.shape[0]:
                    candidates = _grow(candidates)
                candidates[n_cand] = step
                n_cand += 1
            else:  # written always, kept where a kick (no branch to mispredict)
                if n_out == steps.shape[0]:
                    steps = _grow(steps)
                steps[n_out] = step
                n_out += _uniform(buf[2 * pair + 1]) * candidate_p < p
    if bad:
        return steps, start, candidates, True
    if per_step:  # merge the candidates with the per-step stream's kicks
        above = (p - candidate_p) / (1.0 - candidate_p)
        c0, c1, c2, c3 = _ZERO, _ZERO, np.uint64(j), _ONE
        next_cand, ci = (candidates[0] if n_cand else n_steps), 0
        for base in range(0, n_steps, 8):
            c0, c1, c2, c3 = _fill(buf, c0, c1, c2, c3, k0, k1)
            for k in range(min(8, n_steps - base)):
                s = base + k
                candidate = s == next_cand
                if candidate:
                    ci += 1
                    next_cand = candidates[ci] if ci < n_cand else n_steps
                if n_out == steps.shape[0]:
                    steps = _grow(steps)
                steps[n_out] = s
                n_out += candidate | (_uniform(buf[k]) < above)
    return steps, n_out, candidates, False


@njit(cache=True, nogil=True)
def draw_set(key, neurons, p, n_steps, candidate_p, thresholds, first_gap, window):
    """Kick steps of each neuron of one set, neuron after neuron: (steps, counts per neuron, unsure per neuron).
    An unsure neuron gets no steps here (flyhpc.drive draws it with numpy)."""
    steps, candidates, buf = np.empty(1024, np.int64), np.empty(0, np.int64), np.empty(8, np.uint64)
    counts = np.zeros(neurons.size, np.int64)
    unsure = np.zeros(neurons.size, np.bool_)
    n_out = 0
    for row in range(neurons.size):
        start = n_out
        steps, n_out, candidates, bad = _walk(key[0], key[1], neurons[row], p, candidate_p, n_steps, steps, n_out,
                                              candidates, buf, thresholds, first_gap, window)
        counts[row], unsure[row] = n_out - start, bad
    return steps[:n_out].copy(), counts, unsure


@njit(cache=True, nogil=True)
def _sort_by_step(keys, n_steps):
    """Stable sort of packed keys (step << 32) | neuron by step: LSD radix passes of at most 11 bits of the step
    (one or two passes for up to 2^22 steps), between keys and a scratch copy."""
    bits = 1
    while (1 << bits) < n_steps:
        bits += 1
    passes = (bits + 10) // 11
    width = (bits + passes - 1) // passes
    mask = (1 << width) - 1
    src, dst = keys, np.empty_like(keys)
    count = np.empty(1 << width, np.int64)
    for shift in range(32, 32 + bits, width):
        count[:] = 0
        for key in src:
            count[(key >> shift) & mask] += 1
        total = 0
        for digit in range(count.size):
            count[digit], total = total, total + count[digit]
        for key in src:
            digit = (key >> shift) & mask
            dst[count[digit]] = key
            count[digit] += 1
        src, dst = dst, src
    if src is not keys:
        keys[:] = src


@njit(cache=True, nogil=True)
def draw_trials(keys, neurons, p, n_steps, candidate_p, thresholds, first_gap, window):
    """The events of one trial per Philox key (row of `keys`), each sorted by (step, neuron): neuron neurons[r]
    kicked with probability p[r] per step (n_steps < 2^31; neurons in ascending order, which a stable sort by
    step keeps within a step). Returns (steps, neurons, trial ends, unsure): trial i's events are
    [ends[i - 1], ends[i]); an unsure trial has none here (flyhpc.drive draws it with numpy)."""
    n_trials, n_rows = keys.shape[0], neurons.size
    steps, candidates, buf = np.empty(1024, np.int64), np.empty(0, np.int64), np.empty(8, np.uint64)
    ends, unsure = np.zeros(n_trials, np.int64), np.zeros(n_trials, np.bool_)
    n_out = 0
    for t in range(n_trials):
        start = n_out
        for row in range(n_rows):
            row_start = n_out
            steps, n_out, candidates, bad = _walk(keys[t, 0], keys[t, 1], neurons[row], p[row], candidate_p, n_steps,
                                                  steps, n_out, candidates, buf, thresholds, first_gap, window)
            if bad:
                unsure[t] = True
                n_out = start
                break
            if n_rows > 1:  # packed keys (step << 32) | neuron
                for i in range(row_start, n_out):
                    steps[i] = (steps[i] << 32) | neurons[row]
        ends[t] = n_out
        if n_rows > 1 and not unsure[t]:
            _sort_by_step(steps[start:n_out], n_steps)
    out = np.empty(n_out, np.int32)
    if n_rows == 1:
        out[:] = neurons[0]
    else:
        for i in range(n_out):
            out[i] = steps[i] & 0xFFFFFFFF
            steps[i] >>= 32
    return steps[:n_out].copy(), out, ends, unsure
