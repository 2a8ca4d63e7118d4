"""Parity metrics between two spike files (seed-spec §5), streamed one trial at a time.

Spike-count ratio, active-set Jaccard/precision/recall, rate Pearson/RMSE/MAE over shared neurons
(`compare_counts`), and greedy spike-time matching per (trial, neuron) (`match_times`). Reads files
through `results.spike_files` only, so memory stays bounded; writes nothing. Entry points: `CountMetrics`,
`compare_counts`, `pearson`, `TimingMetrics`, `match_times`, `greedy_match`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flyhpc.results.spike_files import SpikeFile, iter_trials, merge_counts

_FLOAT_EPS_MS = 1e-9  # on-grid times like 0.1 * k carry rounding error; |dt| <= tol is tested with this slack

@dataclass(frozen=True)
class CountMetrics:
    """Spike counts, active sets and rates of two files (a = reference, b = comparison)."""

    spikes_a: int
    spikes_b: int
    active_a: int
    active_b: int
    shared: int
    union: int
    jaccard: float
    precision: float  # shared / active_b
    recall: float  # shared / active_a
    pearson: float | None
    rmse_hz: float | None
    mae_hz: float | None
    union_ids: np.ndarray
    rate_a_hz: np.ndarray  # over union_ids, 0 for silent
    rate_b_hz: np.ndarray

    @property
    def ratio(self) -> float | None:
        return self.spikes_b / self.spikes_a if self.spikes_a else None


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation; None with fewer than 2 points or zero variance."""
    if x.size < 2:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / den if den > 0 else None


def compare_counts(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], t_run_s: float,
                   n_run: int) -> CountMetrics:
    """Count, active-set and rate metrics from two (sorted ids, counts) tables.

    Rate of a neuron = its spikes over all trials / (t_run x n_run); correlation, RMSE and MAE use
    the neurons active in both files only.
    """
    ids_a, cnt_a = a
    ids_b, cnt_b = b
    union = np.union1d(ids_a, ids_b)
    scale = 1.0 / (t_run_s * n_run)
    ra = np.zeros(union.size)
    rb = np.zeros(union.size)
    ra[np.searchsorted(union, ids_a)] = cnt_a * scale
    rb[np.searchsorted(union, ids_b)] = cnt_b * scale
    both = (ra > 0) & (rb > 0)
    n_shared = int(both.sum())
    diff = rb[both] - ra[both]
    return CountMetrics(
        spikes_a=int(cnt_a.sum()), spikes_b=int(cnt_b.sum()), active_a=int(ids_a.size), active_b=int(ids_b.size),
        shared=n_shared, union=int(union.size), jaccard=n_shared / union.size if union.size else 0.0,
        precision=n_shared / ids_b.size if ids_b.size else 0.0, recall=n_shared / ids_a.size if ids_a.size else 0.0,
        pearson=pearson(ra[both], rb[both]), rmse_hz=float(np.sqrt(np.mean(diff ** 2))) if n_shared else None,
        mae_hz=float(np.mean(np.abs(diff))) if n_shared else None, union_ids=union, rate_a_hz=ra, rate_b_hz=rb)


def _greedy_kernel():
    from numba import njit

    @njit(cache=False, nogil=True)
    def greedy(a_id, a_t, b_id, b_t, tol):  # pragma: no cover - compiled
        i = 0
        j = 0
        m = 0
        dts = np.empty(min(a_id.size, b_id.size), np.float64)
        while i < a_id.size and j < b_id.size:
            if a_id[i] < b_id[j]:
                i += 1
            elif a_id[i] > b_id[j]:
                j += 1
            else:
                d = abs(b_t[j] - a_t[i])
                if d <= tol:
                    dts[m] = d
                    m += 1
                    i += 1
                    j += 1
                elif a_t[i] < b_t[j]:
                    i += 1
                else:
                    j += 1
        return dts[:m]

    return greedy


_KERNEL: list = []


def greedy_match(a_id: np.ndarray, a_t: np.ndarray, b_id: np.ndarray, b_t: np.ndarray, tol_ms: float) -> np.ndarray:
    """Greedy two-pointer matching of one trial; returns |dt| (ms) of every matched pair.

    Spikes are grouped by neuron and sorted by time (done here); within a neuron, a pair closer
    than `tol_ms` matches and both advance, otherwise the earlier spike is dropped (seed-spec §5.2).
    """
    if not _KERNEL:
        _KERNEL.append(_greedy_kernel())
    oa = np.lexsort((a_t, a_id))
    ob = np.lexsort((b_t, b_id))
    return _KERNEL[0](a_id[oa], a_t[oa], b_id[ob], b_t[ob], float(tol_ms) + _FLOAT_EPS_MS)


@dataclass(frozen=True)
class TimingMetrics:
    matches: int
    f1: float | None
    precision: float | None  # matches / spikes_b
    recall: float | None  # matches / spikes_a
    mean_abs_dt_ms: float | None
    median_abs_dt_ms: float | None


def _weighted_median(values: np.ndarray, counts: np.ndarray) -> float | None:
    total = int(counts.sum())
    if total == 0:
        return None
    cum = np.cumsum(counts)
    lo = values[np.searchsorted(cum, (total - 1) // 2, side="right")]
    hi = values[np.searchsorted(cum, total // 2, side="right")]
    return float((lo + hi) / 2.0)


def match_times(fa: SpikeFile, fb: SpikeFile, tol_ms: float) -> tuple[TimingMetrics, tuple, tuple]:
    """Stream two files trial by trial and match spike times per (trial, neuron).

    Returns
    -------
    (TimingMetrics, counts_a, counts_b)
        The timing metrics and each file's (sorted ids, counts) table, gathered on the same pass.
    """
    counts = [(np.zeros(0, np.int64), np.zeros(0, np.int64)), (np.zeros(0, np.int64), np.zeros(0, np.int64))]
    hist_v, hist_c = np.zeros(0), np.zeros(0, np.int64)
    sum_dt, matches = 0.0, 0
    streams = [iter_trials(fa), iter_trials(fb)]
    heads = [next(s, None) for s in streams]
    while heads[0] is not None or heads[1] is not None:
        ka = heads[0][0] if heads[0] is not None else math.inf
        kb = heads[1][0] if heads[1] is not None else math.inf
        k = min(ka, kb)
        cur = [heads[i] if (heads[i] is not None and heads[i][0] == k) else None for i in range(2)]
        for i in range(2):
            if cur[i] is not None:
                u, c = np.unique(cur[i][1], return_counts=True)
                counts[i] = merge_counts(*counts[i], u, c)
                heads[i] = next(streams[i], None)
        if cur[0] is not None and cur[1] is not None:
            dts = greedy_match(cur[0][1], cur[0][2], cur[1][1], cur[1][2], tol_ms)
            matches += int(dts.size)
            sum_dt += float(dts.sum())
            v, c = np.unique(dts, return_counts=True)
            allv = np.concatenate([hist_v, v])
            uv, inv = np.unique(allv, return_inverse=True)
            hist_c = np.bincount(inv, weights=np.concatenate([hist_c, c]), minlength=uv.size).astype(np.int64)
            hist_v = uv
    na, nb = int(counts[0][1].sum()), int(counts[1][1].sum())
    metrics = TimingMetrics(
        matches=matches, f1=2 * matches / (na + nb) if na + nb else None, precision=matches / nb if nb else None,
        recall=matches / na if na else None, mean_abs_dt_ms=sum_dt / matches if matches else None,
        median_abs_dt_ms=_weighted_median(hist_v, hist_c))
    return metrics, counts[0], counts[1]
