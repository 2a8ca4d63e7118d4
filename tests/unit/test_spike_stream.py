"""The spike file written trial by trial (`SpikeStream`): the same bytes as `write_spikes` of the whole table, the
same summary and rates, trials refused out of order, nothing left behind by a failed run."""

import numpy as np
import pytest

from flyhpc.errors import FlyhpcError
from flyhpc.files import sha256_file
from flyhpc.results import spikes
from flyhpc.results.spike_stream import SpikeCounts, SpikeStream
from flyhpc.results.spikes import SpikeTable, rates, summarize, write_spikes

IDS = np.arange(1000, 1040, dtype=np.int64)
META = {"flyhpc.backend": "native", "flyhpc.task": "k"}


def _trials(sizes, seed=0):
    """One sorted table per trial (trial ids 0, 1, ...), `sizes[k]` spikes in trial k."""
    rng = np.random.default_rng(seed)
    out = []
    for k, n in enumerate(sizes):
        out.append(SpikeTable.from_arrays(np.full(n, k), rng.integers(0, 5000, n), rng.integers(0, IDS.size, n)))
    return out


def _streamed(path, trials, n_run, defer_after=None, per_neuron=True):
    counts = SpikeCounts(IDS.size, n_run, per_neuron=per_neuron)
    with SpikeStream(path, IDS, 0.1, "native_t0.5s_n4", META, counts) as stream:
        for k, table in enumerate(trials):
            if k == defer_after:
                stream.defer()
            stream.add(table)
        stream.finish()
    return counts


@pytest.mark.parametrize("sizes", [[0, 0, 0], [5, 0, 700, 3], [256, 256, 512], [1000, 1, 299, 2000], [37]])
@pytest.mark.parametrize("defer_after", [None, 1])
def test_same_bytes_summary_and_rates_as_the_whole_table(tmp_path, monkeypatch, sizes, defer_after):
    """Row groups of 256 rows cut across trials, trials without spikes, an exact multiple, no spike at all."""
    monkeypatch.setattr(spikes, "ROW_GROUP_ROWS", 256)
    trials, n_run = _trials(sizes), len(sizes)
    counts = _streamed(tmp_path / "s.parquet", trials, n_run, defer_after)
    whole = SpikeTable.concat(trials)
    write_spikes(tmp_path / "w.parquet", whole, IDS, 0.1, "native_t0.5s_n4", META)
    assert sha256_file(tmp_path / "s.parquet") == sha256_file(tmp_path / "w.parquet")
    assert counts.summary(0.5) == summarize(whole, 0.5, n_run)
    assert counts.rates(IDS, 0.5).equals(rates(whole, IDS, 0.5, n_run))


def test_counts_without_rates_give_the_summary(tmp_path):
    trials = _trials([40, 0, 90])
    counts = _streamed(tmp_path / "s.parquet", trials, 3, per_neuron=False)
    assert counts.summary(1.0) == summarize(SpikeTable.concat(trials), 1.0, 3)


def test_trials_out_of_order_or_mixed_are_refused_and_nothing_is_left(tmp_path):
    a, b = _trials([20, 30])
    with pytest.raises(FlyhpcError, match="trial 0 handed over after trial 1"):
        with SpikeStream(tmp_path / "s.parquet", IDS, 0.1, "n") as stream:
            stream.add(b)
            stream.add(a)
    mixed = SpikeTable.concat([a, b])
    with pytest.raises(FlyhpcError, match="one trial's spikes"):
        with SpikeStream(tmp_path / "s.parquet", IDS, 0.1, "n") as stream:
            stream.add(mixed)
    assert list(tmp_path.iterdir()) == []


def test_nothing_is_at_the_path_before_finish(tmp_path, monkeypatch):
    monkeypatch.setattr(spikes, "ROW_GROUP_ROWS", 16)
    with SpikeStream(tmp_path / "s.parquet", IDS, 0.1, "n") as stream:
        for table in _trials([100, 50]):
            stream.add(table)
        assert not (tmp_path / "s.parquet").exists() and stream.write_cpu_s > 0  # full groups already written
        stream.finish()
    assert spikes.read_spikes(tmp_path / "s.parquet").shape[0] == 150


def test_a_run_that_fails_before_its_first_row_group_touches_no_folder(tmp_path):
    target = tmp_path / "out" / "s.parquet"
    with pytest.raises(RuntimeError, match="bad option"):
        with SpikeStream(target, IDS, 0.1, "n") as stream:
            stream.add(_trials([10])[0])
            raise RuntimeError("bad option")
    assert not (tmp_path / "out").exists()
