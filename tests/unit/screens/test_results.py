"""Per-neuron rates of one experiment: the counting and the sorting path give the same numbers as `spikes.rates`;
an experiment's counts and a chunk's rates, computed at once, equal each experiment's own."""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc.screens.engine import ExperimentRun
from flyhpc.screens.expand import ScreenExperiment
from flyhpc.screens.results import ChunkTables, experiment_counts, neuron_rates
from flyhpc.results.spikes import SpikeTable, rates


def _even_neuron_spikes(seed: int, n_run: int, n_neurons: int) -> SpikeTable:
    """400 random spikes over n_run trials and 1000 steps, of the even neurons only."""
    rng = np.random.default_rng(seed)
    return SpikeTable.from_arrays(rng.integers(0, n_run, 400), rng.integers(0, 1000, 400),
                                  rng.integers(0, n_neurons, 400) // 2 * 2)


@pytest.mark.parametrize("n_run", [1, 3])
def test_both_counting_paths_equal_spikes_rates(n_run):
    n_neurons = 50
    table = _even_neuron_spikes(5, n_run, n_neurons)
    sparse = neuron_rates(table, n_run, 0.1)
    dense = neuron_rates(table, n_run, 0.1, n_neurons=n_neurons)  # 400 * 8 > 50: the counting path
    want = rates(table, np.arange(n_neurons, dtype=np.int64), 0.1, n_run).sort_values("neuron_index")
    for got in (sparse, dense):
        np.testing.assert_array_equal(got.neuron_index, want["neuron_index"].to_numpy())
        np.testing.assert_array_equal(got.spikes, want["spikes"].to_numpy())
        np.testing.assert_array_equal(got.rate_mean_hz, want["rate_mean_hz"].to_numpy())
        np.testing.assert_array_equal(got.rate_std_hz, want["rate_std_hz"].to_numpy())
    assert dense.neuron_index.dtype == np.int32 and (dense.neuron_index % 2 == 0).all()


@pytest.mark.parametrize("n_run", [1, 3])
def test_experiment_counts_both_paths_add_the_perturbed_rows(n_run):
    n_neurons = 50
    table = _even_neuron_spikes(6, n_run, n_neurons)
    driven, silenced = np.array([3, 4], np.int32), np.array([7, 49], np.int32)  # 3, 7, 49 never spike
    sparse = experiment_counts(table, n_run, 0, driven, silenced)
    dense = experiment_counts(table, n_run, n_neurons, driven, silenced)  # 400 * 8 > 50: the counting path
    spiking = neuron_rates(table, n_run, 0.1)
    want = np.union1d(spiking.neuron_index, [3, 4, 7, 49])
    for got in (sparse, dense):
        np.testing.assert_array_equal(got.neuron_index, want)
        assert got.neuron_index.dtype == np.int32 and got.per_trial.shape == (n_run, want.size)
        np.testing.assert_array_equal(got.per_trial[:, np.searchsorted(want, spiking.neuron_index)],
                                      spiking.per_trial)
        assert got.per_trial[:, np.searchsorted(want, [3, 7, 49])].sum() == 0
        np.testing.assert_array_equal(got.role, np.where(np.isin(want, driven), 1, np.where(np.isin(want, silenced),
                                                                                            2, 0)))


@pytest.mark.parametrize("n_run", [1, 4, 12])
def test_a_chunks_rates_equal_each_experiments_own(n_run):
    """Bit for bit what each experiment's own (n_run x its rows) table gives: numpy sums 8 or more values pairwise
    in an order that depends on the table's shape, so a chunk-wide table would differ in the last bit."""
    rng = np.random.default_rng(8)
    t_run_s, n_neurons = 0.7, 30
    tables = ChunkTables(np.arange(1000, 1000 + n_neurons, dtype=np.int64), n_run, t_run_s, np.array([2, 5], np.int32),
                         ("two", "five"))
    wanted = []
    for k in range(12):
        size = int(rng.integers(0, 30 * n_run))  # every other experiment: only its driven neuron spikes (one row)
        table = SpikeTable.from_arrays(rng.integers(0, n_run, size), rng.integers(0, 100, size),
                                       rng.integers(0, n_neurons, size) if k % 2 else np.full(size, k))
        counts = experiment_counts(table, n_run, n_neurons, np.array([k], np.int32), np.zeros(0, np.int32))
        run = ExperimentRun(spikes=table, drive_s=0.1, prepare_s=0.2, engine_s=0.3, collect_s=0.4,
                            driven=np.array([k]), silenced=np.zeros(0, np.int32))
        tables.add(ScreenExperiment(key=f"e{k}", name=f"n{k}", experiment=None), counts, run, 0.5)
        r = counts.per_trial / t_run_s  # the arithmetic of `spikes.rates` on this experiment's own table
        wanted.append((counts, r.mean(axis=0), r.std(axis=0, ddof=1) if n_run > 1 else np.full(r.shape[1], np.nan)))
    got, summary, readout = tables._tables(None)
    lo = 0
    for k, (counts, mean, std) in enumerate(wanted):
        rows = got.slice(lo, counts.neuron_index.size).to_pydict()
        lo += counts.neuron_index.size
        assert rows["neuron_index"] == counts.neuron_index.tolist()
        assert np.array(rows["rate_mean_hz"]).tobytes() == mean.tobytes()
        assert np.array(rows["rate_std_hz"]).tobytes() == std.tobytes()
        assert summary["spikes"][k] == counts.per_trial.sum()
        assert summary["active_neurons"][k] == np.count_nonzero(counts.per_trial.sum(axis=0))
        for col, row in enumerate((2, 5)):
            hit = counts.neuron_index == row
            assert readout[k, col] == (mean[hit][0] if hit.any() else 0.0)
    assert lo == got.num_rows and summary["rates_s"].tolist() == [0.5] * 12


@pytest.mark.parametrize("size", [0, 1, 7, 212, 5000])
def test_unique_inverse_is_numpys(size):
    from flyhpc.screens.results import _unique_inverse

    values = np.random.default_rng(size).integers(0, max(1, size // 3), size).astype(np.int32)
    rows, inverse = _unique_inverse(values)
    want_rows, want_inverse = np.unique(values, return_inverse=True)
    assert rows.dtype == want_rows.dtype and np.array_equal(rows, want_rows)
    assert np.array_equal(inverse, want_inverse) and np.array_equal(rows[inverse], values)
