"""Parity of each backend with the label's ground truth (brian2cpp unless told otherwise) at every grid point.

Metrics are flyhpc.compare's (spike-count ratio, active-set Jaccard, rate Pearson r over shared
neurons) plus "identical spikes" (equal digests of the (trial, time, neuron) streams). Outputs of
`flyhpc compare backend` (comparisons/<backend>_vs_brian2_rate_*.csv) are used when they are newer
than both parquets and agree with their spike counts; otherwise the files are scanned (streaming).
Entry points: `parity`, `Parity`, `ParityRow`, `Scatter`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flyhpc.compare.metrics import compare_counts
from flyhpc.report.label import LabelData, TaskRow
from flyhpc.report.scan import StatsCache
from flyhpc.results.tables import read_rows

PARITY_COLUMNS = ("backend", "framework", "round", "t_run_s", "n_run", "spikes_reference", "spikes_backend",
                  "spike_count_ratio", "active_jaccard", "rate_pearson_r", "identical_spikes", "source")


@dataclass(frozen=True)
class ParityRow:
    """One backend against the ground truth at one (round, t_run, n_run); `identical` None = not known."""

    backend: str
    framework: str
    round: int
    t_run_s: float
    n_run: int
    spikes_reference: int
    spikes_backend: int
    ratio: float | None
    jaccard: float | None
    pearson: float | None
    identical: bool | None
    source: str

    def as_dict(self) -> dict:
        return dict(zip(PARITY_COLUMNS, (self.backend, self.framework, self.round, self.t_run_s, self.n_run,
                                         self.spikes_reference, self.spikes_backend, self.ratio, self.jaccard,
                                         self.pearson, self.identical, self.source)))


@dataclass(frozen=True)
class Scatter:
    """Per-neuron rates of one backend and the ground truth at one point (union of active neurons)."""

    backend: str
    framework: str
    round: int
    t_run_s: float
    n_run: int
    ids: np.ndarray
    reference_hz: np.ndarray
    backend_hz: np.ndarray


@dataclass(frozen=True)
class Parity:
    """Every pair's metrics, the scatters at one point, and the tasks that had no ground truth to meet."""

    reference: str
    rows: list[ParityRow]
    scatters: list[Scatter]
    unpaired: list[str]


def _point(task: TaskRow) -> tuple[int, float, int]:
    return task.round, task.t_run_s, task.n_run


def _num(value: str | None) -> float | None:
    try:
        out = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return out if out is None or math.isfinite(out) else None


def _compare_outputs(data: LabelData, backend: str) -> dict[tuple[int, float, int], dict[str, str]]:
    path = data.paths.comparisons / f"{backend}_vs_brian2_rate_summary.csv"
    if not path.is_file():
        return {}
    return {(int(r["round"]), float(r["t_run"]), int(r["n_run"])): r for r in read_rows(path)[1]}


def _fresh(row: dict[str, str] | None, summary: Path, ref: TaskRow, task: TaskRow) -> bool:
    """A compare output row still describes these two files: newer than both, same spike counts."""
    if row is None or not summary.is_file():
        return False
    newest = max(ref.parquet.stat().st_mtime, task.parquet.stat().st_mtime)
    return (summary.stat().st_mtime >= newest and str(ref.record.get("spikes")) == row.get("spikes_reference")
            and str(task.record.get("spikes")) == row.get("spikes_comparison"))


def _identical_from_timing(row: dict[str, str]) -> bool | None:
    """Identical iff every spike of both files matched at |dt| = 0; unknown without timing columns."""
    n_ref, n_cmp = int(row["spikes_reference"]), int(row["spikes_comparison"])
    if n_ref != n_cmp:
        return False
    matches, mean_dt = _num(row.get("timing_matches")), _num(row.get("timing_mean_abs_dt_ms"))
    if matches is None:
        return None
    return int(matches) == n_ref and (n_ref == 0 or mean_dt == 0.0)


def parity(data: LabelData, cache: StatsCache, reference: str = "brian2cpp",
           point: tuple[float, int] | None = None) -> Parity:
    """Compare every done task of another backend with the done `reference` task of the same point.

    Scatters are drawn at `point` (t_run, n_run) when pairs exist there, else at the point with the
    most backends paired (ties: the most trial-seconds), in the first round that has them.
    """
    gt = {_point(t): t for t in data.done if t.backend == reference}
    rows, unpaired, pairs = [], [], []
    outputs: dict[str, dict] = {}
    for task in data.done:
        if task.backend == reference:
            continue
        ref = gt.get(_point(task))
        if ref is None:
            unpaired.append(task.name)
            continue
        pairs.append((ref, task))
        if reference == "brian2cpp" and task.backend not in outputs:
            outputs[task.backend] = _compare_outputs(data, task.backend)
        summary = data.paths.comparisons / f"{task.backend}_vs_brian2_rate_summary.csv"
        row = outputs.get(task.backend, {}).get(_point(task))
        if _fresh(row, summary, ref, task):
            rows.append(ParityRow(task.backend, task.framework, *_point(task), int(row["spikes_reference"]),
                                  int(row["spikes_comparison"]),
                                  _num(row["spike_count_ratio_comparison_over_reference"]),
                                  _num(row["active_jaccard"]), _num(row["rate_pearson_shared"]),
                                  _identical_from_timing(row), "flyhpc compare"))
            continue
        a = cache.get(ref.parquet, ref.t_run_s, ref.n_run)
        b = cache.get(task.parquet, task.t_run_s, task.n_run)
        cm = compare_counts((a.ids, a.counts), (b.ids, b.counts), task.t_run_s, task.n_run)
        identical = (a.digest == b.digest) if a.digest and b.digest else None
        rows.append(ParityRow(task.backend, task.framework, *_point(task), cm.spikes_a, cm.spikes_b, cm.ratio,
                              cm.jaccard if cm.union else None, cm.pearson, identical, "computed"))
    return Parity(reference, rows, _scatters(pairs, cache, point), unpaired)


def _scatters(pairs: list[tuple[TaskRow, TaskRow]], cache: StatsCache,
              point: tuple[float, int] | None) -> list[Scatter]:
    if not pairs:
        return []
    by_point: dict[tuple[float, int], set[str]] = {}
    for _, task in pairs:
        by_point.setdefault((task.t_run_s, task.n_run), set()).add(task.backend)
    if point not in by_point:
        point = max(by_point, key=lambda p: (len(by_point[p]), p[0] * p[1], p[1]))
    chosen: dict[str, tuple[TaskRow, TaskRow]] = {}
    for ref, task in sorted(pairs, key=lambda p: p[1].round):
        if (task.t_run_s, task.n_run) == point:
            chosen.setdefault(task.backend, (ref, task))
    out = []
    for backend, (ref, task) in sorted(chosen.items()):
        a = cache.get(ref.parquet, ref.t_run_s, ref.n_run)
        b = cache.get(task.parquet, task.t_run_s, task.n_run)
        cm = compare_counts((a.ids, a.counts), (b.ids, b.counts), task.t_run_s, task.n_run)
        out.append(Scatter(backend, task.framework, task.round, task.t_run_s, task.n_run, cm.union_ids,
                           cm.rate_a_hz, cm.rate_b_hz))
    return out
