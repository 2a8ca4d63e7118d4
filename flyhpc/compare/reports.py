"""The seed's three comparisons over a result bundle, written as its CSV and JSON outputs.

`ground_truth` (every backend of one grid point against brian2cpp), `pairwise` (every pair of
backends over the paper's grid points) and `backend_vs_reference` (one backend against the
reference over rounds). Metrics come from `compare.metrics`; writes only comparison outputs,
atomically. Entry points: `ground_truth`, `pairwise`, `backend_vs_reference`, `comparable_backends`.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from flyhpc import backends
from flyhpc.bundle import BundlePaths
from flyhpc.pipeline import framework_name
from flyhpc.results.spike_files import SpikeFile, neuron_counts, open_spike_file
from flyhpc.compare.metrics import CountMetrics, TimingMetrics, compare_counts, match_times
from flyhpc.errors import ConfigError
from flyhpc.files import write_json_atomic, write_text_atomic
from flyhpc.results.records import record_beside

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


def comparable_backends() -> list[str]:
    """Every registered backend in registry order: the seed's keys in the seed's order (its comparison tables list
    them so), then the others."""
    return backends.names()


def _r(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _bundle(results_root: str | Path, run_label: str) -> BundlePaths:
    paths = BundlePaths(results_root, run_label)
    if not paths.label_dir.is_dir():
        raise ConfigError(f"unknown run label {run_label!r}: {paths.label_dir} does not exist")
    paths.require_benchmark("compare")
    return paths


def _framework(paths: BundlePaths, parquet: Path, backend: str) -> str:
    name = record_beside(parquet).get("framework")
    return str(name) if name else framework_name(backend)


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
    experiment = record_beside(gt_path).get("experiment", "")
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
