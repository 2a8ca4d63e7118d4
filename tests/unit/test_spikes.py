"""Spike parquet: schema, sort order, byte-identity, atomicity; rates as the paper's get_rate."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from flyhpc.errors import DataError
from flyhpc.files import sha256_file
from flyhpc.spikes import SpikeTable, parquet_metadata, rates, read_spikes, summarize, write_spikes

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
    import flyhpc.spikes as spikes

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(spikes.pq, "write_table", boom)
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
