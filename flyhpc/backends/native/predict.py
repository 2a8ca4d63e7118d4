"""Where the lazy engine's neuron next crosses the threshold: the reject bounds and the crossing prediction.

A neuron anchored at (u0, g0) has the table value u0 a^k + g0 c_k after k steps (the clock engine's value,
flyhpc.backends.native.tables) and the continuous shape u(t) = P a^t + Q b^t with P = u0 - kappa g0, Q = kappa g0.
Three reject tests, cheapest first, rule most neurons out with no exp, log or division: `cannot_cross`
(max(u0, 0) + max(g0, 0) max c_k), `ruled_out` (the positive terms from the first step on), `peak_ruled_out`
(the tabulated sup of the shape, tables.peak_bounds); the engine's input pass runs `quickly_below`, a weaker
`cannot_cross` against a constant (`quick_bounds`). `predict_crossing` then reads the table values of the next
SCAN_STEPS steps, eight at a time (`_first_above`: one vector of table values, the same IEEE multiplications and
addition per lane, -5 % on sugar trials; `scan_crossing` is that scan inlined in the engines' step loops, which
call `predict_crossing` only beyond it, -5 % again), and beyond them locates the candidate step on the
continuous shape (k = kmin test, then a bisection up to its maximum) and decides on the table value, v > v_th
strictly, so a skipped step is always <= u_th - margin, far below the value's rounding.
Compiled into `lazy.lazy_trial`, whose numba cache is told of this file (see `kernel_cache`).
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

SCAN_STEPS = 24  # table values read one by one before the search (cheaper than log + bisection there)
SCAN_LANES = 8  # table values compared at once (one 512-bit vector; LLVM splits it where the CPU has less)


@intrinsic
def _first_above(typingctx, pow_a, coef_c, k, u0, g0, u_th):
    """The first j < SCAN_LANES with u0 pow_a[k + j] + g0 coef_c[k + j] > u_th, SCAN_LANES if none (k +
    SCAN_LANES - 1 must be a valid index): the table values of eight steps as one vector, each lane computed with
    the scalar scan's operations in its order (no fused multiply-add), so the answer is the scalar scan's."""
    for name, ary in (("pow_a", pow_a), ("coef_c", coef_c)):
        if not (isinstance(ary, types.Array) and ary.dtype == types.float64 and ary.ndim == 1 and ary.layout == "C"):
            raise TypingError(f"_first_above: {name} must be a C-contiguous 1-d float64 array, got {ary}")
    sig = types.int64(pow_a, coef_c, types.intp, types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        vec = ir.VectorType(ir.DoubleType(), SCAN_LANES)
        a_ary = context.make_array(signature.args[0])(context, builder, args[0])
        c_ary = context.make_array(signature.args[1])(context, builder, args[1])
        k = args[2]

        def lanes(ary):
            return builder.load(builder.bitcast(builder.gep(ary.data, [k]), vec.as_pointer()), align=8)

        def splat(x):
            one = builder.insert_element(ir.Constant(vec, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                          ir.Constant(ir.VectorType(ir.IntType(32), SCAN_LANES), [0] * SCAN_LANES))

        value = builder.fadd(builder.fmul(splat(args[3]), lanes(a_ary)), builder.fmul(splat(args[4]), lanes(c_ary)))
        above = builder.bitcast(builder.fcmp_ordered(">", value, splat(args[5])), ir.IntType(SCAN_LANES))
        cttz = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(SCAN_LANES), [
            ir.IntType(SCAN_LANES), ir.IntType(1)]), f"llvm.cttz.i{SCAN_LANES}")
        return builder.zext(builder.call(cttz, [above, ir.Constant(ir.IntType(1), 0)]), ir.IntType(64))

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def cannot_cross(u0, g0, u_th, kappa, coef_c_max):
    """True when every table value u0 a^k + g0 c_k stays <= u_th - margin: a^k <= 1 and 0 <= c_k <= coef_c_max
    bound it by max(u0, 0) + max(g0, 0) coef_c_max (the first and cheapest reject test, the C peer's)."""
    margin = 1e-10 * (1.0 + abs(u0) + abs(g0) * (1.0 + abs(kappa)))
    return max(u0, 0.0) + max(g0, 0.0) * coef_c_max <= u_th - margin


@njit(cache=True, nogil=True, inline="always")
def quick_bounds(u_th, kappa, coef_c_max):
    """(t, lo) for `quickly_below`: every state it passes has |u0|, |g0| <= lo, so its margin in `cannot_cross`
    is at most m = 1e-10 (1 + lo + lo (1 + |kappa|)), and t = u_th - 2 m stays below u_th - margin whatever
    the rounding. Without tables to bound by (coef_c_max 0) t is -inf: nothing passes."""
    if not coef_c_max > 0.0:
        return -math.inf, 0.0
    lo = max(1e3, 2.0 * u_th, 2.0 * u_th / coef_c_max)
    return u_th - 2e-10 * (1.0 + lo + lo * (1.0 + abs(kappa))), lo


@njit(cache=True, nogil=True, inline="always")
def quickly_below(u0, g0, t, lo, coef_c_max):
    """`cannot_cross` without its margin to compute (t, lo from `quick_bounds`): true only where it is true
    (the same bound, computed alike, against a lower constant), false also within ~1e-7 mV of its limit."""
    return (max(u0, 0.0) + max(g0, 0.0) * coef_c_max <= t) & (min(u0, g0) >= -lo)  # one branch, not two


@njit(cache=True, nogil=True, inline="always")
def ruled_out(u0, g0, ea, eb, u_th, kappa):
    """The cheap bound of `predict_crossing` (scalars only, so inlining costs no reference counting)."""
    p = u0 - kappa * g0
    q = kappa * g0
    margin = 1e-10 * (1.0 + abs(u0) + abs(g0) * (1.0 + abs(kappa)))
    return max(p, 0.0) * ea + max(q, 0.0) * eb <= u_th - margin


@njit(cache=True, nogil=True, inline="always")
def peak_ruled_out(u0, g0, u_th, kappa, peak_bound, peak_per_ratio):
    """True when the continuous shape from (u0, g0) stays <= u_th - margin at every t >= 0 (p > 0 > q only),
    by the tabulated sup of a^t - r b^t (decreasing in r, so the bin's lower edge bounds it)."""
    p = u0 - kappa * g0
    q = kappa * g0
    if not (p > 0.0 and q < 0.0):
        return False
    x = (-q / p) * peak_per_ratio
    if not (x < peak_bound.shape[0]):
        return False
    margin = 1e-10 * (1.0 + abs(u0) + abs(g0) * (1.0 + abs(kappa)))
    return p * peak_bound[int(x)] <= u_th - margin


@njit(cache=True, nogil=True, inline="always")
def _shape(p, q, pow_a, pow_b, log_a, log_b, k):
    """The continuous closed form P a^k + Q b^k (only used to locate candidates, never to decide), with a^k and
    b^k from the tables where they reach (the same values as exp to an ulp, far inside the margin)."""
    if k < pow_a.shape[0]:
        return p * pow_a[k] + q * pow_b[k]
    return p * math.exp(log_a * k) + q * math.exp(log_b * k)


BEYOND_SCAN = -2  # `scan_crossing`: no crossing in the steps it read, and the run goes on after them


@njit(cache=True, nogil=True, inline="always")
def scan_crossing(a0, u0, g0, kmin, n_steps, pow_a, coef_c, u_th):
    """The table values of steps kmin .. kmin + SCAN_STEPS - 1 read one by one (eight at a time), the definition
    itself: the first step a0 + k there (step < n_steps) with table value > u_th; -1 when there is none and the
    run ends within them; BEYOND_SCAN when there is none and the run goes on (then `predict_crossing` from kmin +
    SCAN_STEPS answers). `predict_crossing` starts with it; the engines' step loops call it inlined before
    `predict_crossing` (most crossings come within it: the call is then saved)."""
    kmax = n_steps - 1 - a0
    last = pow_a.shape[0] - 1
    k = kmin
    stop = min(kmax, kmin + SCAN_STEPS - 1)
    while k + SCAN_LANES - 1 <= min(stop, last):
        j = _first_above(pow_a, coef_c, k, u0, g0, u_th)
        if j < SCAN_LANES:
            return a0 + k + j
        k += SCAN_LANES
    while k <= stop:
        if u0 * pow_a[min(k, last)] + g0 * coef_c[min(k, last)] > u_th:
            return a0 + k
        k += 1
    return -1 if k > kmax else BEYOND_SCAN


@njit(cache=True, nogil=True, _nrt=False)  # allocates nothing: no reference counting of its arrays
def predict_crossing(a0, u0, g0, kmin, n_steps, pow_a, pow_b, coef_c, u_th, log_a, log_b, kappa):
    """First step a0 + k (k >= kmin, step < n_steps) where the table value u0 a^k + g0 c_k > u_th; -1 if none.

    Exact: every k skipped has continuous value <= u_th - margin, far below the value's rounding.
    """
    kmax = n_steps - 1 - a0
    if kmin > kmax:
        return -1
    last = pow_a.shape[0] - 1
    if kmin <= last:
        ea, eb = pow_a[kmin], pow_b[kmin]
    else:
        ea, eb = math.exp(log_a * kmin), math.exp(log_b * kmin)
    # cheap bound: positive terms only decay from kmin on, negative ones only lower the value
    if ruled_out(u0, g0, ea, eb, u_th, kappa):
        return -1
    # most crossings come within a few steps (sugar: median 14): read those table values first, the
    # definition itself; the search below then starts after them
    m = scan_crossing(a0, u0, g0, kmin, n_steps, pow_a, coef_c, u_th)
    if m != BEYOND_SCAN:
        return m
    kmin += SCAN_STEPS
    p = u0 - kappa * g0
    q = kappa * g0
    theta = u_th - 1e-10 * (1.0 + abs(u0) + abs(g0) * (1.0 + abs(kappa)))
    # {t >= kmin: shape(t) > theta} is one interval (one critical point at most, limit 0 < theta)
    if _shape(p, q, pow_a, pow_b, log_a, log_b, kmin) > theta:
        k = kmin
    else:
        if p == 0.0:
            return -1
        ratio = -q * log_b / (p * log_a)
        if ratio <= 0.0:
            return -1
        t_star = math.log(ratio) / (log_a - log_b)
        if not (p * log_a * (log_a - log_b) < 0.0 and t_star > kmin):  # a maximum after kmin
            return -1
        k_peak = int(math.floor(t_star))
        if _shape(p, q, pow_a, pow_b, log_a, log_b, k_peak) > theta:
            lo, hi = kmin, k_peak  # shape(lo) <= theta < shape(hi), increasing in between
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _shape(p, q, pow_a, pow_b, log_a, log_b, mid) > theta:
                    hi = mid
                else:
                    lo = mid
            k = hi
        elif _shape(p, q, pow_a, pow_b, log_a, log_b, k_peak + 1) > theta:
            k = k_peak + 1
        else:
            return -1
    first = k
    while k <= kmax:
        kk = k if k < last else last
        if u0 * pow_a[kk] + g0 * coef_c[kk] > u_th:
            return a0 + k
        if k > first and _shape(p, q, pow_a, pow_b, log_a, log_b, k) <= theta:
            return -1
        k += 1
    return -1
