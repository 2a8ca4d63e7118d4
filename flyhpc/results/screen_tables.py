"""The schemas of a screen's tables, declared once: a chunk's tidy rates parquet (`<stem>.parquet`, and the merged
`screen.parquet`, which concatenates them in plan order) and its experiments CSV (`<stem>_experiments.csv`,
merged into `experiments.csv`). Written by `flyhpc.screens.results` (per chunk) and `flyhpc.screens.merge`
(per label), read by the screen page, `flyhpc compare runs` and the Python API. No logic here.
"""

from __future__ import annotations

import pyarrow as pa

TIDY_SCHEMA = pa.schema([
    ("experiment_key", pa.string()),
    ("experiment_name", pa.string()),
    ("neuron_index", pa.int32()),
    ("flywire_id", pa.int64()),
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
