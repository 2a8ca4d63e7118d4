"""Streaming reads of spike files: seed files with t in seconds or ms and unsorted trials; damaged or
foreign files are data errors.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flyhpc.compare import metrics
from flyhpc.results.spike_files import iter_trials, open_spike_file
from flyhpc.errors import DataError


def test_seed_files_with_t_in_seconds_or_ms_and_unsorted_trials(tmp_path, bundle):
    ref = open_spike_file(bundle.spike_file(1, "brian2cpp", 0.1, 2), 0.1)
    frame = pq.read_table(ref.path).to_pandas()
    shuffled = frame.sample(frac=1.0, random_state=3)
    for unit, scale in (("s", 1.0), ("ms", 1000.0)):
        legacy = tmp_path / f"legacy_{unit}.parquet"
        table = pa.table({"t": shuffled["t"] * scale, "trial": shuffled["trial"],
                          "neuron_index": shuffled["neuron_index"], "flywire_id": shuffled["flywire_id"]})
        pq.write_table(table, legacy, row_group_size=2)
        sf = open_spike_file(legacy, 0.1)
        assert sf.time_column == "t" and sf.time_scale_ms == (1000.0 if unit == "s" else 1.0)
        trials = list(iter_trials(sf))
        assert [k for k, _, _ in trials] == [0, 1]
        assert sorted(trials[0][2].round(6).tolist()) == [1.0, 2.0, 5.0, 9.0]
        tm, _, _ = metrics.match_times(sf, open_spike_file(bundle.spike_file(1, "pytorch", 0.1, 2), 0.1), 1.0)
        assert tm.matches == 4


def test_truncated_or_foreign_file_is_a_data_error(tmp_path, bundle):
    bad = tmp_path / "trunc.parquet"
    bad.write_bytes(bundle.spike_file(1, "brian2cpp", 0.1, 2).read_bytes()[:-30])
    with pytest.raises(DataError, match="trunc.parquet: unreadable"):
        open_spike_file(bad, 0.1)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    with pytest.raises(DataError, match="lacks columns"):
        open_spike_file(other, 0.1)
