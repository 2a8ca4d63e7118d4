"""Propagator tables shared by the lazy and clock engines: a^k, b^k and the g->u coefficient c_k.

A neuron anchored at (u0, g0) holds, k integration steps later, g = g0 b^k and
u = u0 a^k + g0 c_k with c_k = kappa (b^k - a^k), kappa = tau_s / (tau_s - tau_m). Both engines read
these same float64 tables, which is what makes their states bit-identical. The lazy engine's inputs read
them as one row per k (`propagators`: a^k, b^k, c_k side by side, one cache line instead of three). Also a
table of upper bounds on the peak of the continuous shape (the lazy engine's reject test). No numba here.
Entry points: `Tables`, `make_tables`, `peak_bounds`, `aligned_rows`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flyhpc.errors import UnsupportedFeature
from flyhpc.model import Params


@dataclass(frozen=True)
class Tables:
    """Propagator powers for k = 0 .. len - 1; the last entry is exactly 0 when the run is longer.

    pow_a, pow_b, coef_c: a^k, b^k, kappa (b^k - a^k) as float64 arrays of equal length.
    log_a, log_b: ln a and ln b (the continuous shape used only to locate threshold crossings).
    kappa: tau_s / (tau_s - tau_m); u_th_mv, u_rst_mv: threshold and reset relative to v_0.
    propagators: (len, 4) float64, row k = (a^k, b^k, c_k, 0) on a 32-byte boundary (the same values).
    peak_bound, peak_bins_per_ratio: see `peak_bounds`.
    coef_c_max: the largest c_k (every c_k is >= 0: kappa and b^k - a^k have the same sign), so that
    u0 a^k + g0 c_k <= max(u0, 0) + max(g0, 0) coef_c_max at every k (the lazy engine's cheapest reject test).
    """

    pow_a: np.ndarray
    pow_b: np.ndarray
    coef_c: np.ndarray
    propagators: np.ndarray
    log_a: float
    log_b: float
    kappa: float
    u_th_mv: float
    u_rst_mv: float
    peak_bound: np.ndarray
    peak_bins_per_ratio: float
    coef_c_max: float


def aligned_rows(n: int) -> np.ndarray:
    """An (n, 4) float64 array whose 32-byte rows start on 64-byte boundaries (one cache line each)."""
    buf = np.empty(4 * n + 8)
    skip = (-buf.ctypes.data % 64) // 8
    return buf[skip:skip + 4 * n].reshape(n, 4)


PEAK_RATIO_MAX = 8.0
PEAK_BINS = 8192


def peak_bounds(log_a: float, log_b: float, ratio_max: float = PEAK_RATIO_MAX,
                n_bins: int = PEAK_BINS) -> tuple[np.ndarray, float]:
    """Upper bounds F_i >= sup_{t >= 0} (a^t - r b^t) for every r >= r_i = i ratio_max / n_bins.

    For a state with p = u0 - kappa g0 > 0 > q = kappa g0 and r = -q / p, the continuous shape
    p a^t + q b^t never exceeds p F_i with i = floor(r n_bins / ratio_max): the sup decreases in r.
    Each sup is the larger of t = 0, t -> inf (0) and the one critical point; F_i carries a margin
    (1e-12 relative + 1e-9) far above the rounding of its own evaluation.

    Returns
    -------
    (bounds, bins_per_ratio): float64 array of n_bins entries and n_bins / ratio_max.
    """
    r = np.arange(n_bins, dtype=np.float64) * (ratio_max / n_bins)
    best = np.maximum(1.0 - r, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = r * log_b / log_a
        t_star = np.where(x > 0.0, np.log(np.where(x > 0.0, x, 1.0)) / (log_a - log_b), -1.0)
    ok = t_star > 0.0
    value = np.exp(log_a * t_star[ok]) - r[ok] * np.exp(log_b * t_star[ok])
    best[ok] = np.maximum(best[ok], value)
    return best * (1.0 + 1e-12) + 1e-9, n_bins / ratio_max


def make_tables(params: Params, n_steps: int) -> Tables:
    """Tables for a run of `n_steps` steps under `params`.

    Their length is min(n_steps + 1, first k where a^k and b^k are both exactly 0.0), so indexing
    with min(k, len - 1) is exact for every k a run can reach.

    Raises
    ------
    UnsupportedFeature
        If tau_m == tau_s (the propagator has another form), or the threshold is not above rest
        and reset (a neuron would then fire without input, which the engines do not model).
    """
    if params.tau_m_ms == params.tau_s_ms:
        raise UnsupportedFeature(f"engine needs tau_m != tau_s, got tau_m_ms = tau_s_ms = {params.tau_m_ms}")
    u_th = params.v_th_mv - params.v_0_mv
    u_rst = params.v_rst_mv - params.v_0_mv
    if not (u_th > 0.0 and u_rst <= u_th):
        raise UnsupportedFeature(
            f"engine needs v_th > v_0 and v_rst <= v_th, got v_0={params.v_0_mv}, v_th={params.v_th_mv}, "
            f"v_rst={params.v_rst_mv} mV")
    log_a = -params.dt_ms / params.tau_m_ms
    log_b = -params.dt_ms / params.tau_s_ms
    kappa = params.tau_s_ms / (params.tau_s_ms - params.tau_m_ms)
    # exp(x) == 0.0 in float64 for x < -745.2
    zero_at = int(math.ceil(746.0 / min(-log_a, -log_b))) + 1
    length = int(min(int(n_steps) + 1, zero_at))
    k = np.arange(length, dtype=np.float64)
    pow_a = np.exp(k * log_a)
    pow_b = np.exp(k * log_b)
    coef_c = kappa * (pow_b - pow_a)
    if length < n_steps + 1:  # trim to the first k where both powers vanish
        zero = np.flatnonzero((pow_a == 0.0) & (pow_b == 0.0))
        end = int(zero[0]) + 1
        pow_a, pow_b, coef_c = pow_a[:end], pow_b[:end], coef_c[:end] + 0.0  # -0.0 -> 0.0
    propagators = aligned_rows(pow_a.shape[0])
    propagators[:, 0], propagators[:, 1], propagators[:, 2], propagators[:, 3] = pow_a, pow_b, coef_c, 0.0
    bound, bins_per_ratio = peak_bounds(log_a, log_b)
    return Tables(pow_a=pow_a, pow_b=pow_b, coef_c=coef_c, propagators=propagators, log_a=log_a, log_b=log_b,
                  kappa=kappa, u_th_mv=u_th, u_rst_mv=u_rst, peak_bound=bound, peak_bins_per_ratio=bins_per_ratio,
                  coef_c_max=float(coef_c.max()))
