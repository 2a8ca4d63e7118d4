"""Parity metrics by hand: counts, rates, active sets, spike-time matching (greedy, earlier spike dropped).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from flyhpc.compare import metrics
from flyhpc.results.spike_files import neuron_counts, open_spike_file

from tests.unit.compare.conftest import PEARSON


def test_count_and_rate_metrics_by_hand(bundle):
    fa = open_spike_file(bundle.spike_file(1, "brian2cpp", 0.1, 2), 0.1)
    fb = open_spike_file(bundle.spike_file(1, "pytorch", 0.1, 2), 0.1)
    cm = metrics.compare_counts(neuron_counts(fa), neuron_counts(fb), 0.1, 2)
    assert (cm.spikes_a, cm.spikes_b, cm.active_a, cm.active_b, cm.shared, cm.union) == (6, 8, 3, 4, 3, 4)
    assert cm.ratio == pytest.approx(8 / 6) and cm.jaccard == 0.75
    assert cm.precision == 0.75 and cm.recall == 1.0
    assert cm.pearson == pytest.approx(PEARSON, abs=1e-12)
    assert cm.rmse_hz == pytest.approx(math.sqrt(25 / 3)) and cm.mae_hz == pytest.approx(5 / 3)
    assert cm.union_ids.tolist() == [100, 101, 102, 103]
    assert cm.rate_a_hz.tolist() == pytest.approx([20, 5, 5, 0])
    assert cm.rate_b_hz.tolist() == pytest.approx([20, 10, 5, 5])


def test_spike_time_matching_by_hand(bundle):
    fa = open_spike_file(bundle.spike_file(1, "brian2cpp", 0.1, 2), 0.1)
    fb = open_spike_file(bundle.spike_file(1, "pytorch", 0.1, 2), 0.1)
    tm, ca, cb = metrics.match_times(fa, fb, 1.0)
    assert tm.matches == 4
    assert tm.f1 == pytest.approx(8 / 14) and tm.precision == 0.5 and tm.recall == pytest.approx(4 / 6)
    assert tm.mean_abs_dt_ms == pytest.approx(0.35) and tm.median_abs_dt_ms == pytest.approx(0.25)
    assert ca[1].sum() == 6 and cb[1].sum() == 8
    tight, _, _ = metrics.match_times(fa, fb, 0.0)
    assert tight.matches == 2  # only the identical times (5.0 and 3.0)


def test_greedy_drops_the_earlier_spike():
    dts = metrics.greedy_match(np.array([7, 7, 7]), np.array([0.0, 2.0, 4.0]), np.array([7, 7]),
                               np.array([2.6, 3.2]), 1.0)
    # 0.0 vs 2.6: drop 0.0; 2.0 vs 2.6 match; 4.0 vs 3.2 match
    assert dts.tolist() == pytest.approx([0.6, 0.8])
