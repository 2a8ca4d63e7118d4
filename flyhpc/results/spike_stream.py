"""A spike parquet written while the simulation still runs: trials handed over one by one, in trial order.

`SpikeStream` takes each trial's spikes (a one-trial `SpikeTable`, trial ids ascending) as a backend finishes
it (`Backend.run(drive, sink)`), cuts the rows into the very row groups `write_spikes` writes (ROW_GROUP_ROWS
rows each, the last one shorter), writes each group as soon as it is full, and counts what `summarize` and
`rates` need (`SpikeCounts`); `finish` writes what is left and the footer and renames the file into place. The
same spikes give the same bytes as `write_spikes` of the whole table (tested), and the run's spikes never sit
in memory as one table: at most the trials not yet written. Entry points: `SpikeStream`, `SpikeCounts`.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pandas as pd
import pyarrow as pa

from flyhpc.errors import FlyhpcError
from flyhpc.results import spikes
from flyhpc.results.parquet import parquet_writer
from flyhpc.results.spikes import SpikeSummary, SpikeTable, n_distinct, rates_from_counts


class SpikeCounts:
    """What `summarize` (and, with `per_neuron`, `rates`) computes from a whole table, counted trial by trial:
    the same numbers from the same spikes. Trials outside 0..n_run - 1 count in the totals only, as there."""

    def __init__(self, n_neurons: int, n_run: int, per_neuron: bool = False):
        self.spikes = 0
        self._n_run = n_run
        self._seen = np.zeros(n_neurons, bool)
        self._active = np.zeros(n_run, np.int64)  # distinct neurons per trial
        self._per_trial = np.zeros((n_run, n_neurons), np.int64) if per_neuron else None

    def add(self, table: SpikeTable) -> None:
        """Count one trial's spikes (neurons already checked to lie in the network)."""
        if not len(table):
            return
        self.spikes += len(table)
        self._seen[table.neuron] = True
        trial = int(table.trial[0])
        if 0 <= trial < self._n_run:
            if self._per_trial is not None:
                self._per_trial[trial] = np.bincount(table.neuron, minlength=self._seen.size)
                self._active[trial] = np.count_nonzero(self._per_trial[trial])
            else:
                self._active[trial] = n_distinct(table.neuron)

    def summary(self, t_run_s: float) -> SpikeSummary:
        return SpikeSummary(spikes=self.spikes, active_neurons=int(np.count_nonzero(self._seen)),
                            spikes_per_trial_second=self.spikes / (t_run_s * self._n_run),
                            active_per_trial_mean=float(np.mean(self._active)) if self._n_run else 0.0)

    def rates(self, flywire_ids: np.ndarray, t_run_s: float) -> pd.DataFrame:
        """`spikes.rates` of the counted trials (needs `per_neuron`)."""
        return rates_from_counts(self._per_trial if self.spikes else None, flywire_ids, t_run_s, self._n_run)


class SpikeStream:
    """A spike parquet written trial by trial, atomically: nothing is at `path` until `finish` (and nothing is
    left when the `with` block that holds the stream raises). `add` is the sink a streaming backend calls. The
    file is opened at the first row group (or at `finish`), so a run that fails before it touches no folder.

    `write_cpu_s`: CPU seconds of the calling thread spent making and writing row groups so far (the caller
    tells the sim's share from the rest). After `defer()`, `add` only keeps rows; `finish` writes them.
    """

    def __init__(self, path, flywire_ids: np.ndarray, dt_ms: float, exp_name: str,
                 metadata: dict[str, str] | None = None, counts: SpikeCounts | None = None):
        self._path, self._meta, self._ids, self._dt_ms, self.counts = path, metadata, flywire_ids, dt_ms, counts
        self._name = pa.array([exp_name], pa.string())
        self._zeros = pa.array(np.zeros(spikes.ROW_GROUP_ROWS, np.int32))
        self._pending: list[SpikeTable] = []
        self._rows = 0
        self._last_trial: int | None = None
        self._deferred = False
        self.write_cpu_s = 0.0
        self._groups = 0
        self._files = contextlib.ExitStack()  # the writer's block, left in `finish` (or on an error: `__exit__`)
        self._writer = None

    def __enter__(self) -> "SpikeStream":
        return self

    def __exit__(self, *exc) -> bool:
        return self._files.__exit__(*exc)

    def add(self, table: SpikeTable) -> None:
        """One trial's spikes (the next trial id), kept in (step, neuron) order; full row groups are written.

        Raises
        ------
        FlyhpcError
            For rows of more than one trial, or a trial id not above the last one (the file would be out of order).
        """
        if len(table):
            trial = int(table.trial[0])
            if np.any(table.trial != trial):
                raise FlyhpcError("spike stream: a hand-over must hold one trial's spikes")
            if self._last_trial is not None and trial <= self._last_trial:
                raise FlyhpcError(f"spike stream: trial {trial} handed over after trial {self._last_trial}")
            self._last_trial = trial
            self._pending.append(SpikeTable.from_arrays(table.trial, table.step, table.neuron))  # sorted as it is
            self._rows += len(table)
        if self.counts is not None:
            self.counts.add(table)
        if not self._deferred:
            self._write(whole_groups_only=True)

    def defer(self) -> None:
        """From now on keep the rows handed over; `finish` writes them (the sim is over: the rest is `write`)."""
        self._deferred = True

    def finish(self) -> None:
        """Write the rows left (the last, shorter row group; one empty group for a run without spikes), the footer,
        and rename the file onto its path."""
        self._write(whole_groups_only=False)
        self._files.close()

    def _write(self, whole_groups_only: bool) -> None:
        start = time.thread_time()
        size = spikes.ROW_GROUP_ROWS
        while self._rows >= size or (self._rows and not whole_groups_only):
            self._write_group(self._take(min(size, self._rows)))
        if not (whole_groups_only or self._groups):  # no spike at all: one empty group, as write_spikes writes
            self._write_group(SpikeTable.from_arrays([], [], []))
        self.write_cpu_s += time.thread_time() - start

    def _write_group(self, group: SpikeTable) -> None:
        if self._writer is None:
            self._writer = self._files.enter_context(parquet_writer(
                self._path, spikes._WRITE_SCHEMA, spikes.file_metadata(self._meta), **spikes._WRITE_OPTIONS))
        self._writer.write_table(spikes._row_group(group, self._ids, self._dt_ms, self._name, self._zeros, 0),
                                 row_group_size=spikes.ROW_GROUP_ROWS)
        self._groups += 1

    def _take(self, n: int) -> SpikeTable:
        """The first n pending rows as one table (a view when they lie in one trial)."""
        parts = []
        while n:
            head = self._pending[0]
            if len(head) <= n:
                parts.append(self._pending.pop(0))
            else:
                parts.append(SpikeTable(head.trial[:n], head.step[:n], head.neuron[:n]))
                self._pending[0] = SpikeTable(head.trial[n:], head.step[n:], head.neuron[n:])
            n -= len(parts[-1])
            self._rows -= len(parts[-1])
        if len(parts) == 1:
            return parts[0]
        return SpikeTable(*(np.concatenate([getattr(p, c) for p in parts]) for c in ("trial", "step", "neuron")))
