"""Spike tables: the canonical in-memory form, the seed-compatible parquet, rates and summaries.

Backends hand over integer steps, so every backend's spikes turn into the same float times.
The parquet has one row per spike, sorted by (trial, time_ms, neuron_index), columns
t (s), time_ms, trial, neuron_index, flywire_id, exp_name; identical spikes give a
byte-identical file. Entry points: `SpikeTable`, `write_spikes`, `read_spikes`, `rates`, `summarize`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flyhpc.errors import DataError
from flyhpc.files import atomic_path

SCHEMA_VERSION = "1"
SPIKE_SCHEMA = pa.schema([
    ("t", pa.float64()),
    ("time_ms", pa.float64()),
    ("trial", pa.int32()),
    ("neuron_index", pa.int32()),
    ("flywire_id", pa.int64()),
    ("exp_name", pa.string()),
])


@dataclass(frozen=True)
class SpikeTable:
    """Every spike of a run as three aligned arrays, sorted by (trial, step, neuron)."""

    trial: np.ndarray  # int32
    step: np.ndarray  # int64
    neuron: np.ndarray  # int32

    @classmethod
    def from_arrays(cls, trial, step, neuron) -> "SpikeTable":
        """Build a table from unsorted arrays (sorted here)."""
        trial = np.asarray(trial, dtype=np.int32)
        step = np.asarray(step, dtype=np.int64)
        neuron = np.asarray(neuron, dtype=np.int32)
        order = np.lexsort((neuron, step, trial))
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
        lo, hi = np.searchsorted(self.trial, [trial, trial + 1])
        return SpikeTable(self.trial[lo:hi], self.step[lo:hi], self.neuron[lo:hi])


def write_spikes(path, table: SpikeTable, flywire_ids: np.ndarray, dt_ms: float, exp_name: str,
                 metadata: dict[str, str] | None = None) -> None:
    """Write the spike parquet atomically (zstd, fixed row groups, deterministic metadata)."""
    time_ms = table.step.astype(np.float64) * dt_ms
    arrow = pa.Table.from_arrays([
        pa.array(time_ms / 1000.0),
        pa.array(time_ms),
        pa.array(table.trial, pa.int32()),
        pa.array(table.neuron, pa.int32()),
        pa.array(flywire_ids[table.neuron] if len(table) else np.zeros(0, np.int64), pa.int64()),
        pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(table), np.int32)), pa.array([exp_name])).cast(pa.string()),
    ], schema=SPIKE_SCHEMA)
    meta = {"flyhpc.spike_schema_version": SCHEMA_VERSION, "flyhpc.spike_time_column": "time_ms",
            "flyhpc.spike_time_unit": "ms", **(metadata or {})}
    arrow = arrow.replace_schema_metadata({k: str(v) for k, v in sorted(meta.items())})
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp, compression="zstd", row_group_size=1 << 20, write_statistics=True)


def read_spikes(path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a spike parquet; raises DataError naming the file if it is truncated or not a parquet."""
    try:
        return pq.read_table(path, columns=columns).to_pandas()
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: unreadable spike parquet ({exc})") from None


def parquet_metadata(path) -> dict[str, str]:
    """The key/value metadata flyhpc stored in a spike parquet."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()}


def rates(table: SpikeTable, flywire_ids: np.ndarray, t_run_s: float, n_run: int) -> pd.DataFrame:
    """Per-neuron rate over trials, as the paper's get_rate: mean and std (ddof=1) of count/t_run.

    Only neurons with at least one spike are listed, sorted by mean rate (highest first).
    """
    if len(table) == 0:
        return pd.DataFrame({"neuron_index": np.zeros(0, np.int32), "flywire_id": np.zeros(0, np.int64),
                             "spikes": np.zeros(0, np.int64), "rate_mean_hz": np.zeros(0),
                             "rate_std_hz": np.zeros(0)})
    n = len(flywire_ids)
    per_trial = np.zeros((n_run, n), dtype=np.int64)
    np.add.at(per_trial, (table.trial, table.neuron), 1)
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


def summarize(table: SpikeTable, t_run_s: float, n_run: int) -> SpikeSummary:
    """Total spikes, active neurons (union over trials), and per-trial-second activity."""
    per_trial_active = [np.unique(table.of_trial(k).neuron).size for k in range(n_run)]
    return SpikeSummary(
        spikes=len(table),
        active_neurons=int(np.unique(table.neuron).size),
        spikes_per_trial_second=len(table) / (t_run_s * n_run),
        active_per_trial_mean=float(np.mean(per_trial_active)) if per_trial_active else 0.0,
    )
