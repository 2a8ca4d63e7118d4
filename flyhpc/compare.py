"""Parity metrics between spike files, and the seed's three comparisons over a result bundle.

Metrics (seed-spec §5): spike-count ratio, active-set Jaccard/precision/recall, rate Pearson/RMSE/
MAE over shared neurons, and greedy spike-time matching per (trial, neuron). Files are streamed
(compare_io.py), one trial at a time, so memory stays bounded. Writes only comparison outputs.
Entry points: `compare_counts`, `match_times`, `ground_truth`, `pairwise`, `backend_vs_reference`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from flyhpc import backends
from flyhpc.bundle import BundlePaths, framework_name
from flyhpc.compare_io import SpikeFile, iter_trials, neuron_counts, open_spike_file
from flyhpc.errors import ConfigError
from flyhpc.files import write_json_atomic, write_text_atomic

REFERENCE = "brian2cpp"
PAPER_T_RUN_S = (0.1, 1.0, 10.0, 100.0)
PAPER_N_RUN = (1, 4, 8, 16, 32)
PAIR_COLUMNS = ("framework_a", "framework_b", "backend_a", "backend_b", "t_run", "n_run", "tolerance_ms", "spikes_a",
                "spikes_b", "spike_count_ratio_b_over_a", "active_a", "active_b", "active_shared", "active_jaccard",
                "active_precision_b_over_a", "active_recall_b_over_a", "rate_pearson_shared", "rate_rmse_hz_shared",
                "rate_mae_hz_shared", "timing_matches", "timing_f1", "timing_precision_b_over_a",
                "timing_recall_b_over_a", "timing_mean_abs_dt_ms", "timing_median_abs_dt_ms")
PAIR_RATE_COLUMNS = ("backend_a", "framework_a", "backend_b", "framework_b", "t_run", "n_run", "flywire_id",
                     "rate_a_hz", "rate_b_hz")
VS_COLUMNS = ("run_label", "round", "reference_framework", "comparison_framework", "reference_backend",
              "comparison_backend", "n_run", "t_run", "tolerance_ms", "spikes_reference", "spikes_comparison",
              "spike_count_ratio_comparison_over_reference", "active_reference", "active_comparison", "active_shared",
              "active_union", "active_jaccard", "active_precision_comparison_over_reference",
              "active_recall_comparison_over_reference", "rate_pearson_shared", "rate_rmse_hz_shared",
              "rate_mae_hz_shared", "timing_matches", "timing_f1", "timing_precision_comparison_over_reference",
              "timing_recall_comparison_over_reference", "timing_mean_abs_dt_ms", "timing_median_abs_dt_ms",
              "reference_spike_path", "comparison_spike_path")
VS_RATE_COLUMNS = ("run_label", "round", "reference_backend", "reference_framework", "comparison_backend",
                   "comparison_framework", "t_run", "n_run", "flywire_id", "reference_rate_hz", "comparison_rate_hz")
_FLOAT_EPS_MS = 1e-9  # on-grid times like 0.1 * k carry rounding error; |dt| <= tol is tested with this slack


# The seed's backend keys in the seed's order (its comparison tables list them so).
SEED_ORDER = ("brian2cpp", "brian2cuda", "pytorch", "nestgpu", "genn", "brian2genn")


def comparable_backends() -> list[str]:
    """The seed's backend keys in the seed's order, then every other registered one."""
    return list(SEED_ORDER) + [b for b in backends.names() if b not in SEED_ORDER]


def _r(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


# ----------------------------------------------------------------------------- metrics

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
    from flyhpc.compare_io import merge_counts

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


# ----------------------------------------------------------------------------- bundle plumbing

def _bundle(results_root: str | Path, run_label: str) -> BundlePaths:
    paths = BundlePaths(results_root, run_label)
    if not paths.label_dir.is_dir():
        raise ConfigError(f"unknown run label {run_label!r}: {paths.label_dir} does not exist")
    return paths


def _framework(paths: BundlePaths, parquet: Path, backend: str) -> str:
    rec = parquet.with_suffix(".json")
    if rec.is_file():
        try:
            name = json.loads(rec.read_text()).get("framework")
            if name:
                return str(name)
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    return framework_name(backend)


def _check_backend(key: str, flag: str = "--backend") -> str:
    known = comparable_backends()
    if key not in known:
        raise ConfigError(f"{flag} {key!r}: unknown backend; known: {', '.join(known)}")
    return key


def _csv(columns: Sequence[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


def _write_outputs(out_dir: Path, files: dict[str, Any]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (kind, payload) in files.items():
        path = out_dir / name
        if kind == "json":
            write_json_atomic(path, payload)
        else:
            write_text_atomic(path, payload)
        written.append(path)
    return written


def _measure(fa: SpikeFile, fb: SpikeFile, t_run_s: float, n_run: int, tol_ms: float | None):
    if tol_ms is None:
        cm = compare_counts(neuron_counts(fa), neuron_counts(fb), t_run_s, n_run)
        return cm, None
    tm, ca, cb = match_times(fa, fb, tol_ms)
    return compare_counts(ca, cb, t_run_s, n_run), tm


def _timing_fields(tm: TimingMetrics | None, prefix_p: str, prefix_r: str) -> dict:
    if tm is None:
        return {"timing_matches": None, "timing_f1": None, prefix_p: None, prefix_r: None,
                "timing_mean_abs_dt_ms": None, "timing_median_abs_dt_ms": None}
    return {"timing_matches": tm.matches, "timing_f1": _r(tm.f1, 8), prefix_p: _r(tm.precision, 8),
            prefix_r: _r(tm.recall, 8), "timing_mean_abs_dt_ms": _r(tm.mean_abs_dt_ms, 8),
            "timing_median_abs_dt_ms": _r(tm.median_abs_dt_ms, 8)}


# ----------------------------------------------------------------------------- the three comparisons

def ground_truth(results_root, run_label: str, round_: int = 1, t_run_s: float = 1.0, n_run: int = 1,
                 output: Path | None = None) -> tuple[dict, Path]:
    """Each backend vs brian2cpp at one grid point (seed-spec §5.1): JSON with a verdict per backend.

    Raises
    ------
    ConfigError
        Unknown label, or no brian2cpp file for this point (the ground truth).
    DataError
        A spike file that is truncated or not a spike parquet.
    """
    paths = _bundle(results_root, run_label)
    gt_path = paths.spike_file(round_, REFERENCE, t_run_s, n_run)
    if not gt_path.is_file():
        raise ConfigError(f"no ground truth for round {round_}, t_run {float(t_run_s)} s, n_run {n_run}: "
                          f"{gt_path} does not exist")
    gt = open_spike_file(gt_path, t_run_s)
    gt_counts = neuron_counts(gt)
    experiment = ""
    if gt_path.with_suffix(".json").is_file():
        experiment = json.loads(gt_path.with_suffix(".json").read_text()).get("experiment", "")
    result: dict[str, Any] = {
        "ground_truth": _framework(paths, gt_path, REFERENCE), "experiment": experiment,
        "t_run_sec": float(t_run_s), "n_run": n_run, "run_label": run_label, "round": round_,
        "ground_truth_spikes": int(gt_counts[1].sum()), "ground_truth_active_neurons": int(gt_counts[0].size),
        "comparisons": {}}
    for key in comparable_backends():
        if key == REFERENCE:
            continue
        path = paths.spike_file(round_, key, t_run_s, n_run)
        if not path.is_file():
            result["comparisons"][framework_name(key)] = {"status": "no data", "backend_key": key}
            continue
        cm = compare_counts(gt_counts, neuron_counts(open_spike_file(path, t_run_s)), t_run_s, n_run)
        result["comparisons"][_framework(paths, path, key)] = _gt_entry(key, cm, paths.relative(path))
    out = output or paths.comparisons / "ground-truth-comparison.json"
    write_json_atomic(Path(out), result)
    return result, Path(out)


def _gt_entry(key: str, cm: CountMetrics, rel_path: str) -> dict:
    both = (cm.rate_a_hz > 0) & (cm.rate_b_hz > 0)
    gt_r, other_r, ids = cm.rate_a_hz[both], cm.rate_b_hz[both], cm.union_ids[both]
    pct = np.abs(other_r - gt_r) / gt_r * 100.0 if ids.size else np.zeros(0)
    top = np.argsort(-pct, kind="stable")[:10]
    r = cm.pearson
    verdict = ("MATCH" if r is not None and r > 0.99 and cm.jaccard > 0.90 else
               "CLOSE" if r is not None and r > 0.95 and cm.jaccard > 0.80 else "DEVIATED")
    return {
        "backend_key": key, "spike_path": rel_path,
        "spike_count": {"ground_truth": cm.spikes_a, "backend": cm.spikes_b, "ratio": _r(cm.ratio, 4)},
        "active_neurons": {"ground_truth": cm.active_a, "backend": cm.active_b, "shared": cm.shared,
                           "gt_only": cm.active_a - cm.shared, "backend_only": cm.active_b - cm.shared,
                           "jaccard": _r(cm.jaccard, 4), "precision": _r(cm.precision, 4),
                           "recall": _r(cm.recall, 4)},
        "firing_rate": {"pearson_correlation": _r(r, 6),
                        "median_pct_diff": _r(float(np.median(pct)), 2) if pct.size else None,
                        "mean_pct_diff": _r(float(np.mean(pct)), 2) if pct.size else None},
        "top_deviations": [{"flywire_id": int(ids[i]), "gt_rate_hz": _r(gt_r[i], 6),
                            "other_rate_hz": _r(other_r[i], 6), "pct_diff": _r(pct[i], 2)} for i in top],
        "verdict": verdict,
    }


def pairwise(results_root, run_label: str, round_: int = 1, t_run_s: Sequence[float] = PAPER_T_RUN_S,
             n_run: Sequence[int] = PAPER_N_RUN, tolerance_ms: float = 1.0,
             output_dir: Path | None = None) -> tuple[list[dict], list[Path]]:
    """All pairs of backends with spike-time matching (seed-spec §5.2).

    Writes pairwise_summary.csv/.json, parity_rates.csv and missing_inputs.json into `output_dir`
    (default <label>/comparisons). Returns the summary rows and the files written.
    """
    paths = _bundle(results_root, run_label)
    if tolerance_ms < 0:
        raise ConfigError(f"--tolerance-ms must be >= 0, got {tolerance_ms}")
    rows, rate_rows, missing = [], [], []
    for n in n_run:
        for t in t_run_s:
            present = []
            for key in comparable_backends():
                path = paths.spike_file(round_, key, t, n)
                if path.is_file():
                    present.append((key, _framework(paths, path, key), open_spike_file(path, t)))
                else:
                    missing.append({"backend": key, "framework": framework_name(key), "t_run": float(t), "n_run": n,
                                    "path": paths.relative(path)})
            for (ka, fa_name, fa), (kb, fb_name, fb) in itertools.combinations(present, 2):
                cm, tm = _measure(fa, fb, t, n, tolerance_ms)
                rows.append({
                    "framework_a": fa_name, "framework_b": fb_name, "backend_a": ka, "backend_b": kb,
                    "t_run": float(t), "n_run": n, "tolerance_ms": tolerance_ms, "spikes_a": cm.spikes_a,
                    "spikes_b": cm.spikes_b, "spike_count_ratio_b_over_a": _r(cm.ratio, 6), "active_a": cm.active_a,
                    "active_b": cm.active_b, "active_shared": cm.shared, "active_jaccard": _r(cm.jaccard, 6),
                    "active_precision_b_over_a": _r(cm.precision, 6), "active_recall_b_over_a": _r(cm.recall, 6),
                    "rate_pearson_shared": _r(cm.pearson, 8), "rate_rmse_hz_shared": _r(cm.rmse_hz, 6),
                    "rate_mae_hz_shared": _r(cm.mae_hz, 6),
                    **_timing_fields(tm, "timing_precision_b_over_a", "timing_recall_b_over_a")})
                rate_rows += [{"backend_a": ka, "framework_a": fa_name, "backend_b": kb, "framework_b": fb_name,
                               "t_run": float(t), "n_run": n, "flywire_id": int(i), "rate_a_hz": _r(a, 6),
                               "rate_b_hz": _r(b, 6)}
                              for i, a, b in zip(cm.union_ids, cm.rate_a_hz, cm.rate_b_hz)]
    files = {"pairwise_summary.csv": ("text", _csv(PAIR_COLUMNS, rows)),
             "pairwise_summary.json": ("json", rows),
             "parity_rates.csv": ("text", _csv(PAIR_RATE_COLUMNS, rate_rows)),
             "missing_inputs.json": ("json", missing)}
    return rows, _write_outputs(Path(output_dir or paths.comparisons), files)


def backend_vs_reference(results_root, run_label: str, backend: str, rounds: Sequence[int] = (1, 2, 3, 4, 5),
                         t_run_s: Sequence[float] = PAPER_T_RUN_S, n_run: Sequence[int] = PAPER_N_RUN,
                         tolerance_ms: float = 1.0, include_timing: bool = False,
                         output_dir: Path | None = None) -> tuple[list[dict], list[Path]]:
    """One backend vs brian2cpp across rounds (seed-spec §5.3); rates only unless `include_timing`.

    Writes <backend>_vs_brian2_rate_summary.csv/.json, <backend>_vs_brian2_rate_parity.csv and
    <backend>_vs_brian2_missing_inputs.json. Undefined correlations are null, never NaN.

    Raises
    ------
    ConfigError
        Unknown label or backend, or `backend` is brian2cpp itself.
    """
    paths = _bundle(results_root, run_label)
    _check_backend(backend)
    if backend == REFERENCE:
        raise ConfigError(f"--backend {REFERENCE} is the reference; compare another backend against it")
    rows, rate_rows, missing = [], [], []
    for rnd in rounds:
        for n in n_run:
            for t in t_run_s:
                files = {}
                for key in (REFERENCE, backend):
                    path = paths.spike_file(rnd, key, t, n)
                    if path.is_file():
                        files[key] = (path, open_spike_file(path, t))
                    else:
                        missing.append({"backend": key, "framework": framework_name(key), "round": rnd,
                                        "t_run": float(t), "n_run": n, "path": paths.relative(path)})
                if len(files) < 2:
                    continue
                (ref_path, ref), (cmp_path, cmp_) = files[REFERENCE], files[backend]
                cm, tm = _measure(ref, cmp_, t, n, tolerance_ms if include_timing else None)
                ref_fw, cmp_fw = _framework(paths, ref_path, REFERENCE), _framework(paths, cmp_path, backend)
                rows.append({
                    "run_label": run_label, "round": rnd, "reference_framework": ref_fw,
                    "comparison_framework": cmp_fw, "reference_backend": REFERENCE, "comparison_backend": backend,
                    "n_run": n, "t_run": float(t), "tolerance_ms": tolerance_ms, "spikes_reference": cm.spikes_a,
                    "spikes_comparison": cm.spikes_b, "spike_count_ratio_comparison_over_reference": _r(cm.ratio, 6),
                    "active_reference": cm.active_a, "active_comparison": cm.active_b, "active_shared": cm.shared,
                    "active_union": cm.union, "active_jaccard": _r(cm.jaccard, 6),
                    "active_precision_comparison_over_reference": _r(cm.precision, 6),
                    "active_recall_comparison_over_reference": _r(cm.recall, 6),
                    "rate_pearson_shared": _r(cm.pearson, 8), "rate_rmse_hz_shared": _r(cm.rmse_hz, 6),
                    "rate_mae_hz_shared": _r(cm.mae_hz, 6),
                    **_timing_fields(tm, "timing_precision_comparison_over_reference",
                                     "timing_recall_comparison_over_reference"),
                    "reference_spike_path": paths.relative(ref_path),
                    "comparison_spike_path": paths.relative(cmp_path)})
                rate_rows += [{"run_label": run_label, "round": rnd, "reference_backend": REFERENCE,
                               "reference_framework": ref_fw, "comparison_backend": backend,
                               "comparison_framework": cmp_fw, "t_run": float(t), "n_run": n, "flywire_id": int(i),
                               "reference_rate_hz": _r(a, 6), "comparison_rate_hz": _r(b, 6)}
                              for i, a, b in zip(cm.union_ids, cm.rate_a_hz, cm.rate_b_hz)]
    stem = f"{backend}_vs_brian2"
    files = {f"{stem}_rate_summary.csv": ("text", _csv(VS_COLUMNS, rows)),
             f"{stem}_rate_summary.json": ("json", rows),
             f"{stem}_rate_parity.csv": ("text", _csv(VS_RATE_COLUMNS, rate_rows)),
             f"{stem}_missing_inputs.json": ("json", missing)}
    return rows, _write_outputs(Path(output_dir or paths.comparisons), files)
