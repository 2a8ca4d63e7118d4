"""Spike parquet: schema, sort order, byte-identity, atomicity; rates as the paper's get_rate."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from flyhpc.errors import DataError
from flyhpc.files import sha256_file
from flyhpc.results.spikes import SpikeTable, parquet_metadata, rates, read_spikes, summarize, write_spikes

IDS = np.array([100, 200, 300, 400], dtype=np.int64)


def _table():
    return SpikeTable.from_arrays(trial=[1, 0, 0, 1, 0], step=[5, 10, 3, 5, 3], neuron=[2, 1, 3, 0, 0])


def test_parquet_schema_and_order(tmp_path):
    path = tmp_path / "x.parquet"
    write_spikes(path, _table(), IDS, 0.1, "brian2cpp_t1.0s_n2", {"flyhpc.backend": "brian2cpp"})
    frame = read_spikes(path)
    assert list(frame.columns) == ["t", "time_ms", "trial", "neuron_index", "flywire_id", "exp_name"]
    assert frame["trial"].tolist() == [0, 0, 0, 1, 1]
    assert frame["neuron_index"].tolist() == [0, 3, 1, 0, 2]
    assert frame["time_ms"].tolist() == pytest.approx([0.3, 0.3, 1.0, 0.5, 0.5])
    assert frame["t"].tolist() == pytest.approx([0.0003, 0.0003, 0.001, 0.0005, 0.0005])
    assert frame["flywire_id"].tolist() == [100, 400, 200, 100, 300]
    assert set(frame["exp_name"]) == {"brian2cpp_t1.0s_n2"}
    assert parquet_metadata(path)["flyhpc.backend"] == "brian2cpp"
    assert pq.read_schema(path).field("flywire_id").type == "int64"


def test_identical_spikes_give_identical_bytes(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_spikes(a, _table(), IDS, 0.1, "n")
    shuffled = SpikeTable.from_arrays(trial=[0, 1, 0, 1, 0], step=[3, 5, 10, 5, 3], neuron=[0, 0, 1, 2, 3])
    write_spikes(b, shuffled, IDS, 0.1, "n")
    assert sha256_file(a) == sha256_file(b)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", boom)
    with pytest.raises(RuntimeError):
        write_spikes(tmp_path / "x.parquet", _table(), IDS, 0.1, "n")
    assert list(tmp_path.iterdir()) == []


def test_truncated_parquet_is_named(tmp_path):
    path = tmp_path / "x.parquet"
    write_spikes(path, _table(), IDS, 0.1, "n")
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match="x.parquet"):
        read_spikes(path)


def test_rates_mean_and_std_over_trials():
    # neuron 0: 2 spikes in trial 0, 0 in trial 1 -> per-trial rates 4 Hz, 0 Hz over 0.5 s
    table = SpikeTable.from_arrays(trial=[0, 0, 1, 0], step=[1, 2, 3, 4], neuron=[0, 0, 1, 1])
    r = rates(table, IDS, t_run_s=0.5, n_run=2).set_index("neuron_index")
    assert r.loc[0, "rate_mean_hz"] == pytest.approx(2.0)
    assert r.loc[0, "rate_std_hz"] == pytest.approx(np.std([4.0, 0.0], ddof=1))
    assert r.loc[1, "rate_mean_hz"] == pytest.approx(2.0) and r.loc[1, "rate_std_hz"] == pytest.approx(0.0)
    assert r.loc[1, "flywire_id"] == 200
    assert 2 not in r.index


def test_summary_counts_union_of_active_neurons():
    s = summarize(_table(), t_run_s=0.001, n_run=2)
    assert s.spikes == 5 and s.active_neurons == 4
    assert s.spikes_per_trial_second == pytest.approx(2500.0)
    assert s.active_per_trial_mean == pytest.approx(2.5)


def _reference_file(path, table, ids, dt_ms, exp_name, metadata):
    """The spike parquet as flyhpc wrote it before the row-group writer (one pa.Table, Arrow schema stored)."""
    import pyarrow as pa

    from flyhpc.results.spikes import SCHEMA_VERSION, SPIKE_SCHEMA

    time_ms = table.step.astype(np.float64) * dt_ms
    arrow = pa.Table.from_arrays([
        pa.array(time_ms / 1000.0), pa.array(time_ms), pa.array(table.trial, pa.int32()),
        pa.array(table.neuron, pa.int32()), pa.array(ids[table.neuron] if len(table) else np.zeros(0, np.int64)),
        pa.array([exp_name] * len(table), pa.string())], schema=SPIKE_SCHEMA)
    meta = {"flyhpc.spike_schema_version": SCHEMA_VERSION, "flyhpc.spike_time_column": "time_ms",
            "flyhpc.spike_time_unit": "ms", **metadata}
    pq.write_table(arrow.replace_schema_metadata(dict(sorted(meta.items()))), path, compression="zstd",
                   row_group_size=1 << 20)


def _random_table(n, seed=0):
    rng = np.random.default_rng(seed)
    return SpikeTable.from_arrays(rng.integers(0, 3, n), rng.integers(0, 20_000, n), rng.integers(0, 4, n))


@pytest.mark.parametrize("n", [0, 1, 5, 2_500])
def test_file_reads_back_as_the_previous_format(tmp_path, monkeypatch, n):
    """Schema (types, nullability, metadata) and every value as the one-table writer had them; several row
    groups (made small here) come out as one table."""
    import flyhpc.results.spikes as spikes

    monkeypatch.setattr(spikes, "ROW_GROUP_ROWS", 1000)
    table = _random_table(n)
    write_spikes(tmp_path / "new.parquet", table, IDS, 0.1, "native_t1.0s_n3", {"flyhpc.backend": "native"})
    _reference_file(tmp_path / "old.parquet", table, IDS, 0.1, "native_t1.0s_n3", {"flyhpc.backend": "native"})
    new, old = pq.read_table(tmp_path / "new.parquet"), pq.read_table(tmp_path / "old.parquet")
    assert new.schema.equals(old.schema, check_metadata=True) and new.equals(old)
    assert read_spikes(tmp_path / "new.parquet").equals(read_spikes(tmp_path / "old.parquet"))
    assert pq.ParquetFile(tmp_path / "new.parquet").metadata.num_row_groups == max(1, -(-n // 1000))


def test_many_row_groups_are_byte_identical_every_time(tmp_path, monkeypatch):
    import flyhpc.results.spikes as spikes

    monkeypatch.setattr(spikes, "ROW_GROUP_ROWS", 256)
    table = _random_table(5_000, seed=3)
    digests = set()
    for k in range(3):
        write_spikes(tmp_path / f"{k}.parquet", table, IDS, 0.1, "n", {"flyhpc.backend": "x"})
        digests.add(sha256_file(tmp_path / f"{k}.parquet"))
    assert len(digests) == 1


def test_sorted_arrays_are_kept_and_unsorted_ones_sorted_as_lexsort():
    rng = np.random.default_rng(7)
    trial, step, neuron = rng.integers(0, 4, 3000), rng.integers(0, 500, 3000), rng.integers(0, 50, 3000)
    order = np.lexsort((neuron, step, trial))
    table = SpikeTable.from_arrays(trial, step, neuron)
    assert np.array_equal(table.trial, trial[order]) and np.array_equal(table.step, step[order])
    assert np.array_equal(table.neuron, neuron[order])
    again = SpikeTable.from_arrays(table.trial, table.step, table.neuron)
    assert again.step is table.step and again.neuron is table.neuron  # no copy, no sort
    wide = SpikeTable.from_arrays([1, 0, 0], [2 ** 62, 5, -(2 ** 62)], [0, 9, 3])  # ranges beyond one int64 key
    assert wide.step.tolist() == [-(2 ** 62), 5, 2 ** 62] and wide.neuron.tolist() == [3, 9, 0]
