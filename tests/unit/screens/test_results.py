"""Per-neuron rates of one experiment: the counting and the sorting path give the same numbers as `spikes.rates`."""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc.screens.results import neuron_rates
from flyhpc.results.spikes import SpikeTable, rates


@pytest.mark.parametrize("n_run", [1, 3])
def test_both_counting_paths_equal_spikes_rates(n_run):
    rng = np.random.default_rng(5)
    n_neurons = 50
    table = SpikeTable.from_arrays(rng.integers(0, n_run, 400), rng.integers(0, 1000, 400),
                                   rng.integers(0, n_neurons, 400) // 2 * 2)  # only even neurons spike
    sparse = neuron_rates(table, n_run, 0.1)
    dense = neuron_rates(table, n_run, 0.1, n_neurons=n_neurons)  # 400 * 8 > 50: the counting path
    want = rates(table, np.arange(n_neurons, dtype=np.int64), 0.1, n_run).sort_values("neuron_index")
    for got in (sparse, dense):
        np.testing.assert_array_equal(got.neuron_index, want["neuron_index"].to_numpy())
        np.testing.assert_array_equal(got.spikes, want["spikes"].to_numpy())
        np.testing.assert_array_equal(got.rate_mean_hz, want["rate_mean_hz"].to_numpy())
        np.testing.assert_array_equal(got.rate_std_hz, want["rate_std_hz"].to_numpy())
    assert dense.neuron_index.dtype == np.int32 and (dense.neuron_index % 2 == 0).all()
