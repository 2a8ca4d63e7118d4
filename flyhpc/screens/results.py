"""A chunk's results: per-neuron rates of every experiment (tidy parquet), the readout table and a summary.

Rates are computed as `flyhpc.results.spikes.rates` does (count / t_run per trial; mean and std with ddof=1 over
trials, NaN std for one trial), for every neuron that spiked at least once and for every neuron the experiment
drives or silences (spiking or not: `role` "driven" or "silenced", else ""), with the spike count of each
trial (`trial_spikes`, what the paired effects of `flyhpc.screens.effects` need). Files, each written
atomically: `<stem>.parquet` (one row per (experiment, neuron), experiments in chunk order then neurons by
index), `<stem>_experiments.csv` (one row per experiment, spiking or not, with its timings) and, when the
screen has readout neurons, `<stem>_readout.csv` (experiments x readout neurons, mean rates in Hz); their
schemas are declared in `flyhpc.results.screen_tables`. Per experiment only its integer counts are kept
(`experiment_counts`); the rates are computed when the chunk is written. Entry points:
`NeuronRates`, `neuron_rates`, `ExperimentCounts`, `experiment_counts`, `ChunkTables`, `ChunkFiles`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from flyhpc.files import atomic_path
from flyhpc.results.parquet import write_parquet
from flyhpc.results.screen_tables import ROLES, SUMMARY_COLUMNS, TIDY_SCHEMA
from flyhpc.results.tables import frame_csv
from flyhpc.screens.engine import ExperimentRun
from flyhpc.screens.expand import ScreenExperiment
from flyhpc.results.spikes import SpikeTable


@dataclass(frozen=True)
class NeuronRates:
    """Rates of the neurons that spiked in one experiment, by ascending row index; `per_trial` is the
    (n_run x neurons) spike count table."""

    neuron_index: np.ndarray  # int32
    spikes: np.ndarray  # int64, summed over trials
    rate_mean_hz: np.ndarray
    rate_std_hz: np.ndarray
    per_trial: np.ndarray  # int64, n_run x neurons


def _rates(per_trial: np.ndarray, t_run_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spikes, mean rate, std rate) of every column of an (n_run x neurons) count table. With one trial the
    same for any number of columns; with more, numpy's summation order can depend on the table's shape (a
    single column of 8 or more trials is summed pairwise), so each experiment's own table is given."""
    r = per_trial / t_run_s
    std = r.std(axis=0, ddof=1) if per_trial.shape[0] > 1 else np.full(per_trial.shape[1], np.nan)
    return per_trial.sum(axis=0), r.mean(axis=0), std


def _unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True) for a 1-d array, the same arrays at a third of its cost on the few
    hundred values of a typical experiment (numpy's own checks and copies dominate there)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.empty(ordered.size, bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    inverse = np.empty(values.size, np.intp)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def _spike_counts(spikes: SpikeTable, n_run: int, n_neurons: int) -> tuple[np.ndarray, np.ndarray]:
    """(neurons that spiked ascending, their n_run x neurons counts). With `n_neurons` (the connectome's) and many
    spikes, the active neurons come from one bincount over all neurons and the per-trial counts from a second over
    the active ones, instead of sorting the spikes (10 trials of sugar: 1.8 ms, against 3.0 ms for one
    (trial, neuron) bincount and 15 ms sorted)."""
    if n_neurons and len(spikes) * 8 > n_neurons:
        total = np.bincount(spikes.neuron, minlength=n_neurons)
        active = np.flatnonzero(total)
        if n_run == 1:
            return active, total[active][np.newaxis, :]
        column = np.empty(n_neurons, np.int64)
        column[active] = np.arange(active.size)
        return active, np.bincount(spikes.trial.astype(np.int64) * active.size + column[spikes.neuron],
                                   minlength=n_run * active.size).reshape(n_run, active.size)
    active, column = _unique_inverse(np.asarray(spikes.neuron))
    return active, _per_trial(spikes, n_run, column, active.size)


def _per_trial(spikes: SpikeTable, n_run: int, column: np.ndarray, width: int) -> np.ndarray:
    """The n_run x width counts of the spikes whose neurons sit in columns `column`."""
    if n_run == 1:
        return np.bincount(column, minlength=width)[np.newaxis, :]
    return np.bincount(spikes.trial.astype(np.int64) * width + column, minlength=n_run * width).reshape(n_run, width)


def neuron_rates(spikes: SpikeTable, n_run: int, t_run_s: float, n_neurons: int = 0) -> NeuronRates:
    """Per-neuron spike counts and rates over trials 0 .. n_run - 1, arithmetic as `flyhpc.results.spikes.rates`
    (`n_neurons`: see `_spike_counts`)."""
    active, per_trial = _spike_counts(spikes, n_run, n_neurons)
    total, mean, std = _rates(per_trial, t_run_s)
    return NeuronRates(neuron_index=active.astype(np.int32), spikes=total, rate_mean_hz=mean, rate_std_hz=std,
                       per_trial=per_trial)


@dataclass(frozen=True)
class ExperimentCounts:
    """Spike counts of one experiment's rows: every neuron that spiked and every neuron it drives or silences
    (0 where it did not spike), by ascending row index; `role` codes of ROLES (driven 1, silenced 2, else 0)."""

    neuron_index: np.ndarray  # int32
    per_trial: np.ndarray  # int64, n_run x neurons
    role: np.ndarray  # int8


def experiment_counts(spikes: SpikeTable, n_run: int, n_neurons: int, driven: np.ndarray,
                      silenced: np.ndarray) -> ExperimentCounts:
    """The rows of one experiment and their counts: integers only (the rates come per chunk, `ChunkTables`)."""
    perturbed = np.concatenate([np.asarray(driven, np.int32), np.asarray(silenced, np.int32)])
    n_driven = len(driven)
    if n_neurons and len(spikes) * 8 > n_neurons:  # many spikes: count them, then add the perturbed rows
        active, counts = _spike_counts(spikes, n_run, n_neurons)
        rows, column = _unique_inverse(np.concatenate([active.astype(np.int32), perturbed]))
        per_trial = np.zeros((n_run, rows.size), np.int64)
        per_trial[:, column[:active.size]] = counts
    else:  # few: one sort of the spiking and the perturbed neurons together
        rows, column = _unique_inverse(np.concatenate([spikes.neuron.astype(np.int32), perturbed]))
        per_trial = _per_trial(spikes, n_run, column[:len(spikes)], rows.size)
    first = column.size - perturbed.size
    role = np.zeros(rows.size, np.int8)
    role[column[first:first + n_driven]] = 1
    role[column[first + n_driven:]] = 2
    return ExperimentCounts(neuron_index=rows.astype(np.int32), per_trial=per_trial, role=role)


@dataclass(frozen=True)
class ChunkFiles:
    """The files a chunk wrote (`readout` is None without readout neurons)."""

    rates: Path
    experiments: Path
    readout: Path | None


class ChunkTables:
    """Collects each experiment's counts and timings, in order; `write` computes every rate (at once for one trial,
    else per experiment: the arithmetic of `neuron_rates`), the readout rows and the summary, and writes the
    files."""

    def __init__(self, flywire_ids: np.ndarray, n_run: int, t_run_s: float, readout_rows: np.ndarray | None = None,
                 readout_labels: tuple[str, ...] = ()):
        self._ids, self._n_run, self._t_run_s = flywire_ids, int(n_run), float(t_run_s)
        self._readout_rows = np.zeros(0, np.int32) if readout_rows is None else np.asarray(readout_rows, np.int32)
        self._readout_labels = tuple(readout_labels)
        self._counts: list[ExperimentCounts] = []
        self._times: list[tuple[float, float, float, float, float]] = []
        self._experiments: list[ScreenExperiment] = []

    @property
    def n_experiments(self) -> int:
        """Experiments added so far."""
        return len(self._experiments)

    def add(self, experiment: ScreenExperiment, counts: ExperimentCounts, run: ExperimentRun, rates_s: float) -> None:
        self._experiments.append(experiment)
        self._counts.append(counts)
        self._times.append((run.drive_s, run.prepare_s, run.engine_s, run.collect_s, rates_s))

    def _columns(self) -> tuple[np.ndarray, ...]:
        """(experiment of each row, rows, counts n_run x rows, spikes, mean, std, roles) of the whole chunk."""
        sizes = np.array([c.neuron_index.size for c in self._counts], np.int64)
        which = np.repeat(np.arange(len(self._counts), dtype=np.int32), sizes)
        if not self._counts:
            empty = np.zeros(0)
            return (which, np.zeros(0, np.int32), np.zeros((self._n_run, 0), np.int64), empty.astype(np.int64),
                    empty, empty, np.zeros(0, np.int8))
        per_trial = np.concatenate([c.per_trial for c in self._counts], axis=1)
        if self._n_run == 1:  # one value per column: the same numbers from one call
            rates = _rates(per_trial, self._t_run_s)
        else:  # numpy sums 8 or more values pairwise in an order that depends on the table's shape: per experiment
            parts = [_rates(c.per_trial, self._t_run_s) for c in self._counts]
            rates = tuple(np.concatenate([part[k] for part in parts]) for k in range(3))
        return (which, np.concatenate([c.neuron_index for c in self._counts]), per_trial, *rates,
                np.concatenate([c.role for c in self._counts]))

    def _tables(self, metadata: dict[str, str] | None) -> tuple[pa.Table, pd.DataFrame, np.ndarray]:
        """The tidy table, the summary frame and the (experiments x readout neurons) mean rates."""
        which, rows, per_trial, spikes, mean, std, roles = self._columns()

        def text(values: list[str]) -> pa.Array:
            return pa.DictionaryArray.from_arrays(pa.array(which), pa.array(values, pa.string())).cast(pa.string())

        counts = per_trial.T.ravel()
        trial_spikes = pa.ListArray.from_arrays(pa.array(np.arange(0, rows.size + 1, dtype=np.int32) * self._n_run),
                                                pa.array(counts.astype(np.int32), pa.int32()))
        table = pa.Table.from_arrays([
            text([e.key for e in self._experiments]), text([e.name for e in self._experiments]),
            pa.array(rows, pa.int32()), pa.array(self._ids[rows], pa.int64()),
            pa.array(spikes, pa.int64()), pa.array(mean), pa.array(std),
            pa.array(np.full(rows.size, self._n_run, np.int32)),
            pa.DictionaryArray.from_arrays(pa.array(roles), pa.array(ROLES, pa.string())).cast(pa.string()),
            trial_spikes,
        ], schema=TIDY_SCHEMA)
        table = table.replace_schema_metadata({k: str(v) for k, v in sorted((metadata or {}).items())})
        ends = np.cumsum([c.neuron_index.size for c in self._counts], dtype=np.int64)

        def per_experiment(values: np.ndarray) -> np.ndarray:  # segment sums, exact for integers
            total = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
            return total[ends] - total[np.concatenate([[0], ends[:-1]])] if ends.size else ends

        summary = pd.DataFrame({"experiment_key": [e.key for e in self._experiments],
                                "experiment_name": [e.name for e in self._experiments],
                                "n_trials": self._n_run, "spikes": per_experiment(spikes),
                                "active_neurons": per_experiment(spikes != 0)}, columns=list(SUMMARY_COLUMNS[:5]))
        times = np.array(self._times, np.float64).reshape(len(self._times), 5)
        for k, name in enumerate(SUMMARY_COLUMNS[5:]):
            summary[name] = times[:, k]
        return table, summary, self._readout(which, rows, mean)

    def _readout(self, which: np.ndarray, rows: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Mean rate of each readout neuron in each experiment (0 where it did not spike)."""
        n_exp, wanted = len(self._counts), self._readout_rows
        out = np.zeros(n_exp * wanted.size)
        if rows.size and wanted.size:
            key = which.astype(np.int64) * self._ids.size + rows  # ascending: experiments in order, rows sorted
            query = (np.arange(n_exp, dtype=np.int64)[:, np.newaxis] * self._ids.size + wanted).ravel()
            pos = np.minimum(np.searchsorted(key, query), key.size - 1)
            hit = key[pos] == query
            out[hit] = mean[pos[hit]]
        return out.reshape(n_exp, wanted.size)

    def write(self, out_dir: Path, stem: str, metadata: dict[str, str] | None = None) -> ChunkFiles:
        """Write `<stem>.parquet`, `<stem>_experiments.csv` and (with readout neurons) `<stem>_readout.csv`."""
        out_dir = Path(out_dir)
        files = ChunkFiles(rates=out_dir / f"{stem}.parquet", experiments=out_dir / f"{stem}_experiments.csv",
                           readout=out_dir / f"{stem}_readout.csv" if self._readout_labels else None)
        table, summary, readout = self._tables(metadata)
        write_parquet(files.rates, table)
        with atomic_path(files.experiments) as tmp:
            tmp.write_text(frame_csv(summary, list(summary.columns)), encoding="utf-8")  # to_csv's text, 4x faster
        if files.readout:
            frame = pd.DataFrame(readout, columns=list(self._readout_labels))
            frame.insert(0, "experiment_name", [e.name for e in self._experiments])
            frame.insert(0, "experiment_key", [e.key for e in self._experiments])
            with atomic_path(files.readout) as tmp:
                frame.to_csv(tmp, index=False)
        return files
