"""A screen's tables: their schemas, declared once, and their readers. A chunk's tidy rates parquet
(`<stem>.parquet`, and the merged `screen.parquet`, which concatenates them in plan order), its experiments CSV
(`<stem>_experiments.csv`, merged into `experiments.csv`) and the merged `neuron-effects.parquet`. Written by
`flyhpc.screens.results` (per chunk) and `flyhpc.screens.merge` (per label) through `flyhpc.results.parquet`;
read here by the screen task, collect's merge, the screen page and the Python API, every error naming the file.
Entry points: `TIDY_SCHEMA`, `ROLES`, `SUMMARY_COLUMNS`, `read_screen_table`, `read_screen_frame`,
`read_neuron_effects`, `screen_metadata`, `read_experiments`.
"""

from __future__ import annotations

import pyarrow as pa

from flyhpc.results.parquet import read_metadata, read_table
from flyhpc.results.spikes import SPIKE_SCHEMA

# A neuron is named by the spike parquet's columns, types included (`neuron_index`, `flywire_id`).
TIDY_SCHEMA = pa.schema([
    ("experiment_key", pa.string()),
    ("experiment_name", pa.string()),
    SPIKE_SCHEMA.field("neuron_index"),
    SPIKE_SCHEMA.field("flywire_id"),
    ("spikes", pa.int64()),
    ("rate_mean_hz", pa.float64()),
    ("rate_std_hz", pa.float64()),
    ("n_trials", pa.int32()),
    ("role", pa.string()),
    ("trial_spikes", pa.list_(pa.int32())),
])
ROLES = ("", "driven", "silenced")  # a row's role: code 0, 1, 2
TIDY_COLUMNS = tuple(TIDY_SCHEMA.names)
SUMMARY_COLUMNS = ("experiment_key", "experiment_name", "n_trials", "spikes", "active_neurons", "drive_s",
                   "prepare_s", "engine_s", "collect_s", "rates_s")


def read_screen_table(path, columns: list[str] | None = None) -> pa.Table:
    """A chunk's tidy rates or the merged screen.parquet (its `columns`) as an Arrow table.

    Raises
    ------
    DataError
        The file is missing, truncated, not a parquet or lacks a column asked for (naming it).
    """
    return read_table(path, columns, "screen table")


def read_screen_frame(path, columns: list[str] | None = None):
    """`read_screen_table` as a pandas DataFrame."""
    return read_screen_table(path, columns).to_pandas()


def read_neuron_effects(path):
    """A label's neuron-effects.parquet as a pandas DataFrame (DataError naming a missing or damaged file)."""
    return read_table(path, None, "neuron-effects table").to_pandas()


def screen_metadata(path) -> dict[str, str]:
    """The key/value metadata of screen.parquet (or a chunk's rates): `flyhpc.base_key`, `flyhpc.plan_sha256`, ..."""
    return read_metadata(path, "screen table")


def read_experiments(path):
    """A chunk's or a label's experiments CSV (or readout CSV) as a pandas DataFrame, keys kept as strings."""
    import pandas as pd

    return pd.read_csv(path, dtype={"experiment_key": str})
