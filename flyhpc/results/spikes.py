"""Spike tables: the canonical in-memory form, the seed-compatible parquet, rates and summaries.

Backends hand over integer steps, so every backend's spikes turn into the same float times.
The parquet has one row per spike, sorted by (trial, time_ms, neuron_index), columns
t (s), time_ms, trial, neuron_index, flywire_id, exp_name; identical spikes give a
byte-identical file. Tens of millions of spikes are handled without per-spike Python: an
already sorted table is not sorted again, and the file is written one row group at a time while
a second thread prepares the next one. A screen chunk's kept spikes use the same columns (less `t` and
`exp_name`) keyed by experiment (`write_experiment_spikes`). Entry points: `SpikeTable`, `write_spikes`,
`write_experiment_spikes`, `read_spikes`, `rates`, `summarize`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from flyhpc.results.parquet import parquet_writer, read_metadata, read_table, write_parquet

SCHEMA_VERSION = "1"
SPIKE_SCHEMA = pa.schema([
    ("t", pa.float64()),
    ("time_ms", pa.float64()),
    ("trial", pa.int32()),
    ("neuron_index", pa.int32()),
    ("flywire_id", pa.int64()),
    ("exp_name", pa.string()),
])
# A screen chunk's kept spikes (`--keep-spikes`): the same columns, less `t` and `exp_name`, each row keyed by
# its experiment (a dictionary column first).
EXPERIMENT_SPIKE_SCHEMA = pa.schema([pa.field("experiment_key", pa.dictionary(pa.int32(), pa.string()))] +
                                    [SPIKE_SCHEMA.field(n) for n in ("trial", "time_ms", "neuron_index", "flywire_id")])
# What is handed to the parquet writer: exp_name as a one-entry dictionary (written as is, never
# materialised per row). The file keeps no Arrow schema, so it reads back as SPIKE_SCHEMA.
_WRITE_SCHEMA = SPIKE_SCHEMA.set(5, pa.field("exp_name", pa.dictionary(pa.int32(), pa.string())))
ROW_GROUP_ROWS = 1 << 20
# Encodings measured on 58 M spikes (docs/NOTES.md): dictionaries only where values repeat
# (neurons, exp_name), plain trial and t, byte-stream-split time_ms, zstd level -1; statistics on
# every column but the constant exp_name (its min/max cost more than any other column's encoding).
_WRITE_OPTIONS = dict(compression="zstd", compression_level=-1, store_schema=False,
                      write_statistics=["t", "time_ms", "trial", "neuron_index", "flywire_id"],
                      use_dictionary=["neuron_index", "flywire_id", "exp_name"],
                      column_encoding={"t": "PLAIN", "time_ms": "BYTE_STREAM_SPLIT", "trial": "PLAIN"})


@dataclass(frozen=True)
class SpikeTable:
    """Every spike of a run as three aligned arrays, sorted by (trial, step, neuron)."""

    trial: np.ndarray  # int32
    step: np.ndarray  # int64
    neuron: np.ndarray  # int32

    @classmethod
    def from_arrays(cls, trial, step, neuron) -> "SpikeTable":
        """Build a table from arrays in any order (sorted here; arrays already in order are kept as they are)."""
        trial = np.asarray(trial, dtype=np.int32)
        step = np.asarray(step, dtype=np.int64)
        neuron = np.asarray(neuron, dtype=np.int32)
        if _is_sorted(trial, step, neuron):
            return cls(trial, step, neuron)
        order = _sort_order(trial, step, neuron)
        return cls(trial[order], step[order], neuron[order])

    @classmethod
    def concat(cls, tables: list["SpikeTable"]) -> "SpikeTable":
        if not tables:
            return cls.from_arrays([], [], [])
        return cls.from_arrays(np.concatenate([t.trial for t in tables]),
                               np.concatenate([t.step for t in tables]),
                               np.concatenate([t.neuron for t in tables]))

    def __len__(self) -> int:
        return int(self.step.shape[0])

    def equals(self, other: "SpikeTable") -> bool:
        return (len(self) == len(other) and np.array_equal(self.trial, other.trial)
                and np.array_equal(self.step, other.step) and np.array_equal(self.neuron, other.neuron))

    def of_trial(self, trial: int) -> "SpikeTable":
        lo, hi = np.searchsorted(self.trial, np.array([trial, trial + 1], self.trial.dtype))  # no int64 copy
        return SpikeTable(self.trial[lo:hi], self.step[lo:hi], self.neuron[lo:hi])


_KEY_CHUNK = 1 << 22


def _key_scales(trial, step, neuron):
    """(offsets, multipliers) that pack (trial, step, neuron) into one order-preserving int64, or None
    when the value ranges do not fit in 63 bits."""
    lows = [int(a.min()) for a in (trial, step, neuron)]
    spans = [int(a.max()) - low + 1 for a, low in zip((trial, step, neuron), lows)]
    if spans[0] * spans[1] * spans[2] >= 1 << 63:
        return None
    return lows, (spans[1] * spans[2], spans[2], 1)


def _packed(trial, step, neuron, scales, lo: int, hi: int) -> np.ndarray:
    lows, mults = scales
    return ((trial[lo:hi].astype(np.int64) - lows[0]) * mults[0] + (step[lo:hi] - lows[1]) * mults[1]
            + (neuron[lo:hi].astype(np.int64) - lows[2]))


def _is_sorted(trial, step, neuron) -> bool:
    """Whether the rows are in (trial, step, neuron) order, checked chunk by chunk (bounded memory)."""
    n = trial.shape[0]
    scales = _key_scales(trial, step, neuron) if n > 1 else None
    if scales is None:
        return n <= 1 or bool(np.all(np.diff(np.lexsort((neuron, step, trial))) == 1))
    previous = None
    for lo in range(0, n, _KEY_CHUNK):
        key = _packed(trial, step, neuron, scales, lo, min(n, lo + _KEY_CHUNK))
        if np.any(key[1:] < key[:-1]) or (previous is not None and key[0] < previous):
            return False
        previous = key[-1]
    return True


def _sort_order(trial, step, neuron) -> np.ndarray:
    """The stable (trial, step, neuron) order (one int64 key when the ranges allow: faster than lexsort)."""
    scales = _key_scales(trial, step, neuron)
    if scales is None:
        return np.lexsort((neuron, step, trial))
    return np.argsort(_packed(trial, step, neuron, scales, 0, trial.shape[0]), kind="stable")


def _row_group(table: SpikeTable, flywire_ids: np.ndarray, dt_ms: float, name: pa.Array, zeros: pa.Array,
               lo: int) -> pa.Table:
    """Rows lo .. lo + ROW_GROUP_ROWS of the file as an Arrow table of _WRITE_SCHEMA (zero-copy where it can)."""
    hi = min(lo + ROW_GROUP_ROWS, len(table))
    time_ms = table.step[lo:hi].astype(np.float64) * dt_ms
    neuron = table.neuron[lo:hi]
    return pa.Table.from_arrays([
        pa.array(time_ms / 1000.0),
        pa.array(time_ms),
        pa.array(table.trial[lo:hi], pa.int32()),
        pa.array(neuron, pa.int32()),
        pa.array(flywire_ids[neuron] if hi > lo else np.zeros(0, np.int64), pa.int64()),
        pa.DictionaryArray.from_arrays(zeros[:hi - lo], name),
    ], schema=_WRITE_SCHEMA)


def _row_groups(table: SpikeTable, flywire_ids: np.ndarray, dt_ms: float, exp_name: str) -> Iterator[pa.Table]:
    """The file's row groups in order; with more than one, group i + 1 is prepared on a second thread while
    the caller writes group i (pyarrow releases the GIL while it encodes)."""
    name = pa.array([exp_name], pa.string())
    zeros = pa.array(np.zeros(min(len(table), ROW_GROUP_ROWS), np.int32))
    prepare = functools.partial(_row_group, table, flywire_ids, dt_ms, name, zeros)
    starts = range(0, max(len(table), 1), ROW_GROUP_ROWS)
    if len(starts) == 1:
        yield prepare(0)
        return
    with ThreadPoolExecutor(1, thread_name_prefix="flyhpc-spikes") as pool:
        pending = pool.submit(prepare, starts[0])
        for lo in starts[1:]:
            group = pending.result()
            pending = pool.submit(prepare, lo)
            yield group
        yield pending.result()


def file_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """A spike parquet's key/value metadata: the schema's own keys and the caller's (`parquet_writer` sorts them)."""
    return {"flyhpc.spike_schema_version": SCHEMA_VERSION, "flyhpc.spike_time_column": "time_ms",
            "flyhpc.spike_time_unit": "ms", **(metadata or {})}


def write_spikes(path, table: SpikeTable, flywire_ids: np.ndarray, dt_ms: float, exp_name: str,
                 metadata: dict[str, str] | None = None) -> None:
    """Write the spike parquet atomically (zstd, fixed row groups of ROW_GROUP_ROWS, deterministic metadata).

    The bytes depend only on the spikes, the names and the metadata (not on the threads that prepare them).
    `flyhpc.results.spike_stream.SpikeStream` writes the same bytes from trials handed over one by one.
    """
    with parquet_writer(path, _WRITE_SCHEMA, file_metadata(metadata), **_WRITE_OPTIONS) as writer:
        for group in _row_groups(table, flywire_ids, dt_ms, exp_name):
            writer.write_table(group, row_group_size=ROW_GROUP_ROWS)


def read_spikes(path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a spike parquet (a path or a buffer) whole; raises DataError naming the file if it is missing,
    truncated or not a parquet. Streaming reads: `flyhpc.results.spike_files`."""
    return read_table(path, columns, "spike parquet").to_pandas()


def parquet_metadata(path) -> dict[str, str]:
    """The key/value metadata flyhpc stored in a spike parquet."""
    return read_metadata(path, "spike parquet")


def rates(table: SpikeTable, flywire_ids: np.ndarray, t_run_s: float, n_run: int) -> pd.DataFrame:
    """Per-neuron rate over trials, as the paper's get_rate: mean and std (ddof=1) of count/t_run.

    Only neurons with at least one spike are listed, sorted by mean rate (highest first).
    """
    n = len(flywire_ids)
    per_trial = (np.bincount(table.trial.astype(np.int64) * n + table.neuron, minlength=n_run * n).reshape(n_run, n)
                 if len(table) else None)
    return rates_from_counts(per_trial, flywire_ids, t_run_s, n_run)


def rates_from_counts(per_trial: np.ndarray | None, flywire_ids: np.ndarray, t_run_s: float,
                      n_run: int) -> pd.DataFrame:
    """`rates` from each trial's spike count per neuron (`per_trial`: n_run x n_neurons; None: no spike)."""
    if per_trial is None or not per_trial.any():
        return pd.DataFrame({"neuron_index": np.zeros(0, np.int32), "flywire_id": np.zeros(0, np.int64),
                             "spikes": np.zeros(0, np.int64), "rate_mean_hz": np.zeros(0),
                             "rate_std_hz": np.zeros(0)})
    active = np.flatnonzero(per_trial.sum(axis=0))
    r = per_trial[:, active] / t_run_s
    std = r.std(axis=0, ddof=1) if n_run > 1 else np.full(active.size, np.nan)
    frame = pd.DataFrame({
        "neuron_index": active.astype(np.int32),
        "flywire_id": flywire_ids[active],
        "spikes": per_trial[:, active].sum(axis=0),
        "rate_mean_hz": r.mean(axis=0),
        "rate_std_hz": std,
    })
    return frame.sort_values(["rate_mean_hz", "neuron_index"], ascending=[False, True], ignore_index=True)


@dataclass(frozen=True)
class SpikeSummary:
    spikes: int
    active_neurons: int
    spikes_per_trial_second: float
    active_per_trial_mean: float


def n_distinct(neurons: np.ndarray) -> int:
    """Number of distinct neuron indices (>= 0), by a presence mask: linear, unlike np.unique's sort or hash."""
    if neurons.size == 0:
        return 0
    if neurons.min() < 0:
        return int(np.unique(neurons).size)
    seen = np.zeros(int(neurons.max()) + 1, bool)
    seen[neurons] = True
    return int(np.count_nonzero(seen))


def summarize(table: SpikeTable, t_run_s: float, n_run: int) -> SpikeSummary:
    """Total spikes, active neurons (union over trials), and per-trial-second activity."""
    per_trial_active = [n_distinct(table.of_trial(k).neuron) for k in range(n_run)]
    return SpikeSummary(
        spikes=len(table),
        active_neurons=n_distinct(table.neuron),
        spikes_per_trial_second=len(table) / (t_run_s * n_run),
        active_per_trial_mean=float(np.mean(per_trial_active)) if per_trial_active else 0.0,
    )


def write_experiment_spikes(path, spikes: dict, flywire_ids: np.ndarray, dt_ms: float) -> None:
    """Every kept spike of a screen chunk (`spikes`: experiment key -> the experiment's trial/step/neuron arrays),
    atomically, in `EXPERIMENT_SPIKE_SCHEMA`."""
    keys = list(spikes)
    sizes = np.array([len(spikes[k]) for k in keys], np.int64)
    which = np.repeat(np.arange(len(keys), dtype=np.int32), sizes)
    cat = lambda attr, dtype: (np.concatenate([getattr(spikes[k], attr) for k in keys]) if keys  # noqa: E731
                               else np.zeros(0, dtype))
    neuron = cat("neuron", np.int32)
    table = pa.table({
        "experiment_key": pa.DictionaryArray.from_arrays(pa.array(which), pa.array(keys, pa.string())),
        "trial": pa.array(cat("trial", np.int32), pa.int32()),
        "time_ms": pa.array(cat("step", np.int64) * dt_ms, pa.float64()),
        "neuron_index": pa.array(neuron, pa.int32()),
        "flywire_id": pa.array(flywire_ids[neuron], pa.int64()),
    }, schema=EXPERIMENT_SPIKE_SCHEMA)
    write_parquet(path, table)
