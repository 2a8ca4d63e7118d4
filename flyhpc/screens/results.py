"""A chunk's results: per-neuron rates of every experiment (tidy parquet), the readout table and a summary.

Rates are computed as `flyhpc.results.spikes.rates` does (count / t_run per trial; mean and std with ddof=1 over
trials, NaN std for one trial), for every neuron that spiked at least once and for every neuron the experiment
drives or silences (spiking or not: `role` "driven" or "silenced", else ""), with the spike count of each
trial (`trial_spikes`, what the paired effects of `flyhpc.screens.effects` need). Files, each written
atomically: `<stem>.parquet` (one row per (experiment, neuron), experiments in chunk order then neurons by
index), `<stem>_experiments.csv` (one row per experiment, spiking or not, with its timings) and, when the
screen has readout neurons, `<stem>_readout.csv` (experiments x readout neurons, mean rates in Hz); their
schemas are declared in `flyhpc.results.screen_tables`. Entry points: `NeuronRates`, `neuron_rates`,
`ChunkTables`, `ChunkFiles`.
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
from flyhpc.screens.engine import ExperimentRun
from flyhpc.screens.expand import ScreenExperiment
from flyhpc.results.spikes import SpikeTable


@dataclass(frozen=True)
class NeuronRates:
    """Rates of the neurons that spiked in one experiment (and, after `with_roles`, of those it drives or
    silences), by ascending row index; `per_trial` is the (n_run x neurons) spike count table."""

    neuron_index: np.ndarray  # int32
    spikes: np.ndarray  # int64, summed over trials
    rate_mean_hz: np.ndarray
    rate_std_hz: np.ndarray
    per_trial: np.ndarray  # int64, n_run x neurons
    role: np.ndarray | None = None  # int8 codes of ROLES; None: every row is a spiking network neuron

    def with_roles(self, driven: np.ndarray, silenced: np.ndarray, t_run_s: float) -> "NeuronRates":
        """These rates with a row for every driven and silenced neuron (0 spikes where it did not spike)."""
        perturbed = np.union1d(np.asarray(driven, np.int32), np.asarray(silenced, np.int32))
        rows = np.union1d(self.neuron_index, perturbed).astype(np.int32)
        per_trial = np.zeros((self.per_trial.shape[0], rows.size), np.int64)
        per_trial[:, np.searchsorted(rows, self.neuron_index)] = self.per_trial
        role = np.zeros(rows.size, np.int8)
        role[np.searchsorted(rows, np.asarray(driven, np.int32))] = 1
        role[np.searchsorted(rows, np.asarray(silenced, np.int32))] = 2
        return _from_counts(rows, per_trial, t_run_s, role)


def _from_counts(neuron_index: np.ndarray, per_trial: np.ndarray, t_run_s: float,
                 role: np.ndarray | None = None) -> NeuronRates:
    r = per_trial / t_run_s
    std = r.std(axis=0, ddof=1) if per_trial.shape[0] > 1 else np.full(neuron_index.size, np.nan)
    return NeuronRates(neuron_index=neuron_index.astype(np.int32), spikes=per_trial.sum(axis=0),
                       rate_mean_hz=r.mean(axis=0), rate_std_hz=std, per_trial=per_trial, role=role)


def neuron_rates(spikes: SpikeTable, n_run: int, t_run_s: float, n_neurons: int = 0) -> NeuronRates:
    """Per-neuron spike counts and rates over trials 0 .. n_run - 1, arithmetic as `flyhpc.results.spikes.rates`.

    With `n_neurons` (the connectome's) and many spikes, the active neurons come from one bincount over all
    neurons and the per-trial counts from a second over the active ones, instead of sorting the spikes (the
    same numbers; 10 trials of sugar: 1.8 ms, against 3.0 ms for one (trial, neuron) bincount and 15 ms sorted)."""
    if n_neurons and len(spikes) * 8 > n_neurons:
        total = np.bincount(spikes.neuron, minlength=n_neurons)
        active = np.flatnonzero(total)
        if n_run == 1:
            per_trial = total[active][np.newaxis, :]
        else:
            column = np.empty(n_neurons, np.int64)
            column[active] = np.arange(active.size)
            per_trial = np.bincount(spikes.trial.astype(np.int64) * active.size + column[spikes.neuron],
                                    minlength=n_run * active.size).reshape(n_run, active.size)
    else:
        active, column = np.unique(spikes.neuron, return_inverse=True)
        per_trial = np.bincount(spikes.trial.astype(np.int64) * active.size + column,
                                minlength=n_run * active.size).reshape(n_run, active.size)
    return _from_counts(active, per_trial, t_run_s)


@dataclass(frozen=True)
class ChunkFiles:
    """The files a chunk wrote (`readout` is None without readout neurons)."""

    rates: Path
    experiments: Path
    readout: Path | None


class ChunkTables:
    """Collects each experiment's rates, readout row and summary, in order; `write` writes the chunk's files."""

    def __init__(self, flywire_ids: np.ndarray, n_run: int, readout_rows: np.ndarray | None = None,
                 readout_labels: tuple[str, ...] = ()):
        self._ids, self._n_run = flywire_ids, int(n_run)
        self._readout_rows = np.zeros(0, np.int32) if readout_rows is None else np.asarray(readout_rows, np.int32)
        self._readout_labels = tuple(readout_labels)
        self._rates: list[NeuronRates] = []
        self._summary: list[tuple] = []
        self._readout: list[np.ndarray] = []
        self._experiments: list[ScreenExperiment] = []

    @property
    def n_experiments(self) -> int:
        """Experiments added so far."""
        return len(self._experiments)

    def add(self, experiment: ScreenExperiment, rates: NeuronRates, run: ExperimentRun, rates_s: float) -> None:
        self._experiments.append(experiment)
        self._rates.append(rates)
        self._summary.append((experiment.key, experiment.name, self._n_run, int(rates.spikes.sum()),
                              int(np.count_nonzero(rates.spikes)), run.drive_s, run.prepare_s, run.engine_s, run.collect_s,
                              rates_s))
        readout = np.zeros(self._readout_rows.size)
        if rates.neuron_index.size and readout.size:
            pos = np.minimum(np.searchsorted(rates.neuron_index, self._readout_rows), rates.neuron_index.size - 1)
            hit = rates.neuron_index[pos] == self._readout_rows
            readout[hit] = rates.rate_mean_hz[pos[hit]]
        self._readout.append(readout)

    def rates_table(self, metadata: dict[str, str] | None = None) -> pa.Table:
        """The tidy table of every experiment added so far (metadata: the parquet's key/value pairs)."""
        sizes = np.array([r.neuron_index.size for r in self._rates], np.int64)
        which = np.repeat(np.arange(len(self._rates), dtype=np.int32), sizes)
        rows = np.concatenate([r.neuron_index for r in self._rates]) if self._rates else np.zeros(0, np.int32)

        def text(values: list[str]) -> pa.Array:
            return pa.DictionaryArray.from_arrays(pa.array(which), pa.array(values, pa.string())).cast(pa.string())

        def column(attr: str, dtype) -> np.ndarray:
            return np.concatenate([getattr(r, attr) for r in self._rates]) if self._rates else np.zeros(0, dtype)

        roles = np.concatenate([np.zeros(r.neuron_index.size, np.int8) if r.role is None else r.role
                                for r in self._rates]) if self._rates else np.zeros(0, np.int8)
        counts = np.concatenate([r.per_trial.T.ravel() for r in self._rates]) if self._rates else np.zeros(0)
        trial_spikes = pa.ListArray.from_arrays(pa.array(np.arange(0, rows.size + 1, dtype=np.int32) * self._n_run),
                                                pa.array(counts.astype(np.int32), pa.int32()))
        table = pa.Table.from_arrays([
            text([e.key for e in self._experiments]), text([e.name for e in self._experiments]),
            pa.array(rows, pa.int32()), pa.array(self._ids[rows], pa.int64()),
            pa.array(column("spikes", np.int64), pa.int64()), pa.array(column("rate_mean_hz", np.float64)),
            pa.array(column("rate_std_hz", np.float64)), pa.array(np.full(rows.size, self._n_run, np.int32)),
            pa.DictionaryArray.from_arrays(pa.array(roles), pa.array(ROLES, pa.string())).cast(pa.string()),
            trial_spikes,
        ], schema=TIDY_SCHEMA)
        return table.replace_schema_metadata({k: str(v) for k, v in sorted((metadata or {}).items())})

    def write(self, out_dir: Path, stem: str, metadata: dict[str, str] | None = None) -> ChunkFiles:
        """Write `<stem>.parquet`, `<stem>_experiments.csv` and (with readout neurons) `<stem>_readout.csv`."""
        out_dir = Path(out_dir)
        files = ChunkFiles(rates=out_dir / f"{stem}.parquet", experiments=out_dir / f"{stem}_experiments.csv",
                           readout=out_dir / f"{stem}_readout.csv" if self._readout_labels else None)
        write_parquet(files.rates, self.rates_table(metadata))
        with atomic_path(files.experiments) as tmp:
            pd.DataFrame(self._summary, columns=list(SUMMARY_COLUMNS)).to_csv(tmp, index=False)
        if files.readout:
            frame = pd.DataFrame(np.array(self._readout).reshape(len(self._readout), len(self._readout_labels)),
                                 columns=list(self._readout_labels))
            frame.insert(0, "experiment_name", [e.name for e in self._experiments])
            frame.insert(0, "experiment_key", [e.key for e in self._experiments])
            with atomic_path(files.readout) as tmp:
                frame.to_csv(tmp, index=False)
        return files
