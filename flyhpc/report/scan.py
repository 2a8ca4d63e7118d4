"""One streaming pass over a spike parquet into a bounded summary: per (trial, neuron) counts, a spike digest,
and the first trial's opening spikes for a raster.

Reads record batches (`results.spike_files.spike_batches`, `BATCH_ROWS` rows at a time) of the needed
columns only, so memory grows with trials x active neurons, never with spikes. Files with a
`neuron_index` column (flyhpc's and the seed's) take one pass; others (the paper's examples) two.
Knows no metrics. Entry points: `scan_spikes`, `SpikeStats`, `StatsCache`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from flyhpc.errors import DataError
from flyhpc.results.spike_files import BATCH_ROWS, neuron_counts, open_spike_file, spike_batches

RASTER_WINDOW_S = 1.0  # the raster shows at most the first second of the first trial
RowsRead = Callable[[int], None]
"""Called with the number of rows just read (for progress display)."""


@dataclass(frozen=True)
class SpikeStats:
    """What one pass over a spike file found.

    `ids` are the flywire ids of the neurons that spiked (sorted), `per_trial` their spike counts
    per trial (rows: `trials`, columns: `ids`). `digest` hashes the (trial, time_ms, flywire_id)
    columns in file order — equal digests mean identical spikes (flyhpc files are canonically
    sorted) — and is None for files without `time_ms`. `raster_*` hold the spikes of the first
    trial before `raster_window_ms`.
    """

    path: Path
    t_run_s: float
    n_trials: int
    spikes: int
    trials: np.ndarray
    ids: np.ndarray
    per_trial: np.ndarray
    digest: str | None
    raster_trial: int
    raster_window_ms: float
    raster_ids: np.ndarray
    raster_times_ms: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """Spikes per neuron (aligned with `ids`) over all trials."""
        return self.per_trial.sum(axis=0)

    @property
    def rates_hz(self) -> np.ndarray:
        """Mean rate per neuron (aligned with `ids`): spikes / (t_run x trials)."""
        return self.counts / (self.t_run_s * self.n_trials)

    @property
    def spikes_per_trial_s(self) -> float:
        return self.spikes / (self.t_run_s * self.n_trials)

    @property
    def active_per_trial(self) -> np.ndarray:
        """Neurons with at least one spike, per trial in `trials`, with silent trials as 0."""
        active = (self.per_trial > 0).sum(axis=1)
        return np.concatenate([active, np.zeros(max(0, self.n_trials - active.size), np.int64)])


class _Grid:
    """Per-(trial, neuron slot) counts that grow as larger trials or slots appear."""

    def __init__(self) -> None:
        self.counts = np.zeros((0, 0), np.int64)

    def add(self, trial: np.ndarray, slot: np.ndarray) -> None:
        n_t = max(self.counts.shape[0], int(trial.max()) + 1)
        n_s = max(self.counts.shape[1], int(slot.max()) + 1)
        if (n_t, n_s) != self.counts.shape:
            grown = np.zeros((n_t, n_s), np.int64)
            grown[:self.counts.shape[0], :self.counts.shape[1]] = self.counts
            self.counts = grown
        key = trial * n_s + slot
        lo = int(key.min())
        found = np.bincount(key - lo)  # only the span this batch covers (a trial or two in a sorted file)
        self.counts.reshape(-1)[lo:lo + found.size] += found


def scan_spikes(path: Path, t_run_s: float, n_trials: int, raster_window_ms: float | None = None,
                on_rows: RowsRead | None = None) -> SpikeStats:
    """Stream a spike parquet once (twice without `neuron_index`) into a `SpikeStats`.

    Raises
    ------
    DataError
        The file is missing, truncated, not a spike parquet, or has negative trial numbers.
    """
    sf = open_spike_file(Path(path), t_run_s)
    names = sf.columns
    window_ms = float(raster_window_ms if raster_window_ms is not None else min(t_run_s, RASTER_WINDOW_S) * 1000.0)
    has_index = "neuron_index" in names
    known = None if has_index else neuron_counts(sf)[0]  # first pass: the ids, to give each a slot
    hashers = [hashlib.sha256() for _ in range(3)] if sf.time_column == "time_ms" else None
    grid, slot_ids = _Grid(), np.zeros(0, np.int64)
    raster_trial, raster = None, []
    columns = ["trial", "flywire_id", sf.time_column] + (["neuron_index"] if has_index else [])
    for batch in spike_batches(sf.path, columns, BATCH_ROWS):
        if batch.num_rows == 0:
            continue
        raw = [c.to_numpy(zero_copy_only=False) for c in batch.columns]
        trial, ids = raw[0].astype(np.int64, copy=False), raw[1].astype(np.int64, copy=False)
        if hashers is not None:  # int64 trial and id, float64 ms: equal spikes hash equal in any batching
            for h, arr in zip(hashers, (trial, raw[2].astype(np.float64, copy=False), ids)):
                h.update(np.ascontiguousarray(arr))
        first = int(trial.min())
        if first < 0:
            raise DataError(f"{sf.path}: negative trial numbers")
        if has_index:
            slot = raw[3].astype(np.int64, copy=False)
            if slot.max() >= slot_ids.size:
                slot_ids = np.concatenate([slot_ids, np.zeros(int(slot.max()) + 1 - slot_ids.size, np.int64)])
            slot_ids[slot] = ids
        else:
            slot = np.searchsorted(known, ids)
        grid.add(trial, slot)
        if raster_trial is None or first < raster_trial:
            raster_trial, raster = first, []
        if first == raster_trial:  # a batch of later trials only holds nothing for the raster
            times = raw[2].astype(np.float64, copy=False) * sf.time_scale_ms
            keep = (trial == raster_trial) & (times < window_ms)
            if keep.any():
                raster.append((ids[keep], times[keep]))
        if on_rows:
            on_rows(batch.num_rows)
    counts = grid.counts
    active = np.flatnonzero(counts.sum(axis=0)) if counts.size else np.zeros(0, np.int64)
    flywire = (slot_ids if has_index else known)[active] if active.size else np.zeros(0, np.int64)
    order = np.argsort(flywire, kind="stable")
    present = np.flatnonzero(counts.sum(axis=1)) if counts.size else np.zeros(0, np.int64)
    digest = None
    if hashers is not None:
        digest = hashlib.sha256(b"".join(h.digest() for h in hashers)).hexdigest()
    r_ids = np.concatenate([r[0] for r in raster]) if raster else np.zeros(0, np.int64)
    r_times = np.concatenate([r[1] for r in raster]) if raster else np.zeros(0)
    return SpikeStats(path=sf.path, t_run_s=float(t_run_s), n_trials=int(n_trials), spikes=sf.n_rows,
                      trials=present, ids=flywire[order], per_trial=counts[np.ix_(present, active[order])],
                      digest=digest, raster_trial=raster_trial if raster_trial is not None else 0,
                      raster_window_ms=window_ms, raster_ids=r_ids, raster_times_ms=r_times)


class StatsCache:
    """Scans each spike file at most once per report (keyed by path)."""

    def __init__(self, on_rows: RowsRead | None = None, on_file: Callable[[Path], None] | None = None) -> None:
        self.on_rows = on_rows
        self.on_file = on_file
        self._memo: dict[Path, SpikeStats] = {}

    def get(self, path: Path, t_run_s: float, n_trials: int) -> SpikeStats:
        path = Path(path)
        if path not in self._memo:
            if self.on_file:
                self.on_file(path)
            self._memo[path] = scan_spikes(path, t_run_s, n_trials, on_rows=self.on_rows)
        return self._memo[path]
