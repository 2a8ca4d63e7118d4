"""A label's spikes beside the paper's own example outputs (Shiu et al. 2024: real FlyWire v630, 30 x 1 s).

The label's task is a done task of the experiment an example ran (sugar: sugarR.parquet), on the
ground-truth backend if it has one, closest to 1 s, most trials. Per-neuron parity (count ratio,
Jaccard, rate r, top neurons side by side) is only meaningful on the real connectome: on a
synthetic one the comparison is the rate distribution alone (spikes per trial-second, active
neurons, rate quantiles), the evidence that the synthetic workload is representative. Writes only
`write_outputs`' files. Entry points: `compare_with_paper`, `PaperComparison`, `write_outputs`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flyhpc import paper_examples
from flyhpc.compare.metrics import pearson
from flyhpc.errors import ConfigError
from flyhpc.files import write_json_atomic, write_text_atomic
from flyhpc.report.label import LabelData, TaskRow
from flyhpc.report.scan import SpikeStats, StatsCache
from flyhpc.report.tables import csv_text

DISTRIBUTION_COLUMNS = ("source", "description", "trials", "t_run_s", "spikes_per_trial_s", "active_per_trial_mean",
                        "active_all_trials", "rate_median_hz", "rate_p90_hz", "rate_max_hz", "neurons_over_10hz",
                        "neurons_over_50hz")
TOP_COLUMNS = ("flywire_id", "paper_rate_hz", "label_rate_hz")
TOP_N = 20


@dataclass(frozen=True)
class PaperParity:
    """Per-neuron agreement of the label's task with the paper's example of the same experiment."""

    example: str
    spikes_per_trial_s_ratio: float | None  # label / paper
    jaccard: float
    pearson: float | None
    shared: int
    union: int
    ids: np.ndarray
    paper_hz: np.ndarray
    label_hz: np.ndarray


@dataclass(frozen=True)
class PaperComparison:
    """The label's task, the connectome it ran on, the distributions, and parity where meaningful."""

    task: TaskRow
    connectome: str
    synthetic: bool
    verdict: str
    distributions: list[dict[str, Any]]
    label_stats: SpikeStats
    example_stats: dict[str, SpikeStats]
    parity: PaperParity | None

    def top_rows(self, n: int = TOP_N) -> list[dict[str, Any]]:
        """The paper's most active neurons with both rates (0 where silent)."""
        if self.parity is None:
            return []
        p = self.parity
        order = np.lexsort((p.ids, -p.paper_hz))[:n]
        return [dict(zip(TOP_COLUMNS, (int(p.ids[i]), float(p.paper_hz[i]), float(p.label_hz[i])))) for i in order]

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (what `flyhpc compare paper` writes)."""
        par = self.parity
        return {"task": self.task.name, "backend": self.task.backend, "connectome": self.connectome,
                "synthetic_connectome": self.synthetic, "verdict": self.verdict,
                "distributions": self.distributions,
                "parity": None if par is None else {
                    "example": par.example, "spikes_per_trial_s_ratio_label_over_paper": _finite(
                        par.spikes_per_trial_s_ratio), "active_jaccard": par.jaccard,
                    "rate_pearson_r_shared": _finite(par.pearson), "active_shared": par.shared,
                    "active_union": par.union, "top_neurons": self.top_rows()}}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _experiment(task: TaskRow) -> str:
    return str(task.record.get("experiment_key") or "")


def _choose_task(data: LabelData, reference: str) -> TaskRow:
    done = [t for t in data.done if t.record]
    wanted = {e.experiment for e in paper_examples.EXAMPLES if e.experiment}
    matching = [t for t in done if _experiment(t) in wanted] or done
    return min(matching, key=lambda t: (abs(math.log(t.t_run_s / paper_examples.T_RUN_S)), -t.n_run,
                                        t.backend != reference, t.round))


def distribution(name: str, description: str, stats: SpikeStats) -> dict[str, Any]:
    """One row of the rate-distribution table."""
    rates = stats.rates_hz
    q = (lambda p: float(np.quantile(rates, p))) if rates.size else (lambda p: 0.0)
    return dict(zip(DISTRIBUTION_COLUMNS, (
        name, description, stats.n_trials, stats.t_run_s, stats.spikes_per_trial_s,
        float(stats.active_per_trial.mean()) if stats.n_trials else 0.0, int(stats.ids.size), q(0.5), q(0.9),
        float(rates.max()) if rates.size else 0.0, int((rates > 10).sum()), int((rates > 50).sum()))))


def _parity(example: str, paper: SpikeStats, label: SpikeStats) -> PaperParity:
    ids = np.union1d(paper.ids, label.ids)
    pr, lr = np.zeros(ids.size), np.zeros(ids.size)
    pr[np.searchsorted(ids, paper.ids)] = paper.rates_hz
    lr[np.searchsorted(ids, label.ids)] = label.rates_hz
    both = (pr > 0) & (lr > 0)
    ratio = label.spikes_per_trial_s / paper.spikes_per_trial_s if paper.spikes else None
    return PaperParity(example, ratio, int(both.sum()) / ids.size if ids.size else 0.0, pearson(pr[both], lr[both]),
                       int(both.sum()), int(ids.size), ids, pr, lr)


def compare_with_paper(data: LabelData, examples: list[tuple[Any, Path]], cache: StatsCache,
                       reference: str = "brian2cpp") -> PaperComparison:
    """Set the label's best-matching task beside every example file given.

    Raises
    ------
    ConfigError
        No example file given (run `flyhpc data fetch --examples`).
    DataError
        An example or spike file that cannot be read.
    """
    if not examples:
        raise ConfigError("no paper example files; run `flyhpc data fetch --examples`")
    task = _choose_task(data, reference)
    label_stats = cache.get(task.parquet, task.t_run_s, task.n_run)
    source = str(task.record.get("connectome_source") or "unknown")
    synthetic = bool(task.record.get("synthetic_connectome")) or source.startswith("synthetic")
    ex_stats = {spec.name: cache.get(path, paper_examples.T_RUN_S, paper_examples.N_TRIALS) for spec, path in examples}
    rows = [distribution(f"this label: {task.name}", f"{task.framework}, {_experiment(task) or '?'} on {source}",
                         label_stats)]
    rows += [distribution(f"paper: {spec.name}", spec.description, ex_stats[spec.name]) for spec, _ in examples]
    same = next((spec for spec, _ in examples if spec.experiment and spec.experiment == _experiment(task)), None)
    parity = None
    if synthetic:
        verdict = (f"{source} is a synthetic connectome: its neurons are wired at random, so per-neuron parity with "
                   "the paper is meaningless; compare the rate distributions only")
    elif same is None:
        verdict = (f"the label ran {_experiment(task) or 'an unknown experiment'!r}, which none of the paper's "
                   "examples ran: rate distributions only")
    else:
        parity = _parity(same.name, ex_stats[same.name], label_stats)
        verdict = (f"{source} against the paper's {paper_examples.CONNECTOME} run of the same experiment "
                   f"({same.name})" + ("" if source.endswith("630") else
                                       "; the FlyWire versions differ, so ids that changed count as unshared"))
    return PaperComparison(task, source, synthetic, verdict, rows, label_stats, ex_stats, parity)


def write_outputs(comparison: PaperComparison, out_dir: Path) -> list[Path]:
    """paper-examples-comparison.json and paper-examples-distributions.csv (+ top neurons when parity)."""
    out_dir = Path(out_dir)
    written = [out_dir / "paper-examples-comparison.json", out_dir / "paper-examples-distributions.csv"]
    write_json_atomic(written[0], comparison.summary())
    write_text_atomic(written[1], csv_text(DISTRIBUTION_COLUMNS, comparison.distributions))
    if comparison.parity is not None:
        written.append(out_dir / "paper-examples-top-neurons.csv")
        write_text_atomic(written[-1], csv_text(TOP_COLUMNS, comparison.top_rows()))
    return written
