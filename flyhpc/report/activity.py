"""Activity of one task: its most active neurons (by FlyWire id), their raster, and per-neuron rates.

The task is the one named, else the first done brian2cpp task (manifest order), else the first done
task. Everything comes from one streaming scan (`scan.StatsCache`). Entry points: `choose_task`,
`activity`, `Activity`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flyhpc.errors import ConfigError
from flyhpc.report.label import LabelData, TaskRow
from flyhpc.report.scan import SpikeStats, StatsCache

TOP_NEURONS = 30
TOP_COLUMNS = ("rank", "flywire_id", "spikes", "rate_mean_hz", "rate_std_hz")


@dataclass(frozen=True)
class Activity:
    """One task's activity: top neurons (ids, spikes, mean/std rate over trials) and its scan."""

    task: TaskRow
    stats: SpikeStats
    top_ids: np.ndarray
    top_spikes: np.ndarray
    top_rate_hz: np.ndarray
    top_rate_std_hz: np.ndarray

    def rows(self) -> list[dict]:
        return [dict(zip(TOP_COLUMNS, (i + 1, int(fid), int(n), float(r), None if np.isnan(s) else float(s))))
                for i, (fid, n, r, s) in enumerate(zip(self.top_ids, self.top_spikes, self.top_rate_hz,
                                                       self.top_rate_std_hz))]


def choose_task(data: LabelData, name: str | None = None) -> TaskRow:
    """The task named `round_XX/<stem>` (or `<stem>` in the first round that has it), else the default.

    Raises
    ------
    ConfigError
        `name` is not a done task of the label (the done ones are listed).
    """
    done = data.done
    if name:
        wanted = name.removesuffix(".parquet")
        for task in done:
            if wanted in (task.name, task.parquet.stem):
                return task
        raise ConfigError(f"--activity {name}: not a done task of {data.label}; done: "
                          + ", ".join(t.name for t in done[:12]) + (" ..." if len(done) > 12 else ""))
    return next((t for t in done if t.backend == "brian2cpp"), done[0])


def activity(data: LabelData, cache: StatsCache, name: str | None = None, top: int = TOP_NEURONS) -> Activity:
    """Scan the chosen task and rank its neurons by spikes (ties: lower FlyWire id first)."""
    task = choose_task(data, name)
    stats = cache.get(task.parquet, task.t_run_s, task.n_run)
    counts = stats.counts
    order = np.lexsort((stats.ids, -counts))[:top]
    per_trial_rates = np.zeros((task.n_run, order.size))
    per_trial_rates[:stats.per_trial.shape[0]] = stats.per_trial[:, order] / task.t_run_s
    std = per_trial_rates.std(axis=0, ddof=1) if task.n_run > 1 else np.full(order.size, np.nan)
    return Activity(task, stats, stats.ids[order], counts[order], stats.rates_hz[order], std)
