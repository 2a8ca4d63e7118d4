"""Comparison metrics against values computed by hand on two tiny spike files, and the three modes' outputs.

File A (reference, brian2cpp) and B (pytorch), t_run 0.1 s, 2 trials, neuron ids 100..103:
  A trial 0: 100 @ 1.0 5.0 9.0 ms, 101 @ 2.0      trial 1: 100 @ 3.0, 102 @ 4.0          (6 spikes)
  B trial 0: 100 @ 1.5 5.0 12.0, 101 @ 2.9, 103 @ 7.0   trial 1: 100 @ 3.0, 102 @ 6.0, 101 @ 8.0  (8 spikes)
Greedy matching (tol 1 ms): 100/t0: (1.0,1.5) (5.0,5.0); 101/t0: (2.0,2.9); 100/t1: (3.0,3.0) -> 4 matches,
|dt| = 0.5 0 0.9 0 -> mean 0.35, median 0.25; F1 = 8/14; precision 4/8; recall 4/6.
Rates (count / 0.2 s): A 100:20 101:5 102:5; B 100:20 101:10 102:5 103:5. Shared 3, union 4.
Pearson over shared: 125 / sqrt(150 * 116.666...) ; RMSE sqrt(25/3); MAE 5/3; ratio 8/6.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flyhpc import compare
from flyhpc.bundle import BundlePaths
from flyhpc.compare_io import iter_trials, neuron_counts, open_spike_file
from flyhpc.errors import ConfigError, DataError
from flyhpc.spikes import SpikeTable, write_spikes

IDS = np.array([100, 101, 102, 103], dtype=np.int64)
A = [(0, 10, 0), (0, 50, 0), (0, 90, 0), (0, 20, 1), (1, 30, 0), (1, 40, 2)]  # (trial, step, neuron index)
B = [(0, 15, 0), (0, 50, 0), (0, 120, 0), (0, 29, 1), (0, 70, 3), (1, 30, 0), (1, 60, 2), (1, 80, 1)]
PEARSON = 125 / math.sqrt(150 * 350 / 3)


def _write(path, events, stem):
    trial, step, neuron = zip(*events)
    write_spikes(path, SpikeTable.from_arrays(trial, step, neuron), IDS, 0.1, stem)


@pytest.fixture
def bundle(tmp_path):
    paths = BundlePaths(tmp_path, "lab")
    _write(paths.spike_file(1, "brian2cpp", 0.1, 2), A, "brian2cpp_t0.1s_n2")
    _write(paths.spike_file(1, "pytorch", 0.1, 2), B, "pytorch_t0.1s_n2")
    return paths


def test_count_and_rate_metrics_by_hand(bundle):
    fa = open_spike_file(bundle.spike_file(1, "brian2cpp", 0.1, 2), 0.1)
    fb = open_spike_file(bundle.spike_file(1, "pytorch", 0.1, 2), 0.1)
    cm = compare.compare_counts(neuron_counts(fa), neuron_counts(fb), 0.1, 2)
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
    tm, ca, cb = compare.match_times(fa, fb, 1.0)
    assert tm.matches == 4
    assert tm.f1 == pytest.approx(8 / 14) and tm.precision == 0.5 and tm.recall == pytest.approx(4 / 6)
    assert tm.mean_abs_dt_ms == pytest.approx(0.35) and tm.median_abs_dt_ms == pytest.approx(0.25)
    assert ca[1].sum() == 6 and cb[1].sum() == 8
    tight, _, _ = compare.match_times(fa, fb, 0.0)
    assert tight.matches == 2  # only the identical times (5.0 and 3.0)


def test_greedy_drops_the_earlier_spike():
    dts = compare.greedy_match(np.array([7, 7, 7]), np.array([0.0, 2.0, 4.0]), np.array([7, 7]),
                               np.array([2.6, 3.2]), 1.0)
    # 0.0 vs 2.6: drop 0.0; 2.0 vs 2.6 match; 4.0 vs 3.2 match
    assert dts.tolist() == pytest.approx([0.6, 0.8])


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
        tm, _, _ = compare.match_times(sf, open_spike_file(bundle.spike_file(1, "pytorch", 0.1, 2), 0.1), 1.0)
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


def test_ground_truth_json(bundle):
    result, path = compare.ground_truth(bundle.results_root, "lab", 1, 0.1, 2)
    assert path == bundle.comparisons / "ground-truth-comparison.json"
    entry = result["comparisons"]["PyTorch (CPU)"]
    assert entry["spike_count"] == {"ground_truth": 6, "backend": 8, "ratio": 1.3333}
    assert entry["active_neurons"] == {"ground_truth": 3, "backend": 4, "shared": 3, "gt_only": 0, "backend_only": 1,
                                       "jaccard": 0.75, "precision": 0.75, "recall": 1.0}
    assert entry["firing_rate"] == {"pearson_correlation": round(PEARSON, 6), "median_pct_diff": 0.0,
                                    "mean_pct_diff": 33.33}
    top = entry["top_deviations"][0]
    assert top == {"flywire_id": 101, "gt_rate_hz": 5.0, "other_rate_hz": 10.0, "pct_diff": 100.0}
    assert entry["verdict"] == "DEVIATED"  # r = 0.945 < 0.95
    assert result["comparisons"]["NEST GPU"] == {"status": "no data", "backend_key": "nestgpu"}
    assert json.loads(path.read_text()) == result


def test_pairwise_outputs(bundle):
    rows, files = compare.pairwise(bundle.results_root, "lab", 1, [0.1], [2], 1.0)
    assert [f.name for f in files] == ["pairwise_summary.csv", "pairwise_summary.json", "parity_rates.csv",
                                       "missing_inputs.json"]
    (row,) = rows
    assert list(row) == list(compare.PAIR_COLUMNS)
    assert row["timing_matches"] == 4 and row["timing_f1"] == round(8 / 14, 8)
    assert row["rate_pearson_shared"] == round(PEARSON, 8) and row["active_jaccard"] == 0.75
    header = (bundle.comparisons / "pairwise_summary.csv").read_text().splitlines()[0]
    assert header == ",".join(compare.PAIR_COLUMNS)
    rates = list(csv.DictReader(open(bundle.comparisons / "parity_rates.csv")))
    assert [(r["flywire_id"], r["rate_a_hz"], r["rate_b_hz"]) for r in rates][-1] == ("103", "0.0", "5.0")
    missing = json.loads((bundle.comparisons / "missing_inputs.json").read_text())
    assert {m["backend"] for m in missing} == set(compare.comparable_backends()) - {"brian2cpp", "pytorch"}
    assert {"brian2cuda", "nestgpu", "genn", "brian2genn"} <= {m["backend"] for m in missing}
    assert all(not m["path"].startswith("/") for m in missing)


def test_backend_vs_reference_rate_only_and_no_nan_tokens(bundle, tmp_path):
    one = BundlePaths(tmp_path / "r2", "lab")  # one shared neuron: correlation undefined
    _write(one.spike_file(1, "brian2cpp", 0.1, 2), [(0, 10, 0)], "a")
    _write(one.spike_file(1, "pytorch", 0.1, 2), [(0, 11, 0), (1, 12, 0)], "b")
    rows, files = compare.backend_vs_reference(one.results_root, "lab", "pytorch", [1, 2], [0.1], [2])
    (row,) = rows
    assert list(row) == list(compare.VS_COLUMNS)
    assert row["rate_pearson_shared"] is None and row["timing_matches"] is None
    assert row["spike_count_ratio_comparison_over_reference"] == 2.0
    text = (one.comparisons / "pytorch_vs_brian2_rate_summary.json").read_text()
    assert "NaN" not in text and json.loads(text)[0]["rate_pearson_shared"] is None
    missing = json.loads((one.comparisons / "pytorch_vs_brian2_missing_inputs.json").read_text())
    assert {(m["backend"], m["round"]) for m in missing} == {("brian2cpp", 2), ("pytorch", 2)}
    rows, _ = compare.backend_vs_reference(bundle.results_root, "lab", "pytorch", [1], [0.1], [2], include_timing=True)
    assert rows[0]["timing_matches"] == 4 and rows[0]["timing_precision_comparison_over_reference"] == 0.5


def test_bad_input(bundle):
    with pytest.raises(ConfigError, match="reference"):
        compare.backend_vs_reference(bundle.results_root, "lab", "brian2cpp")
    with pytest.raises(ConfigError, match="unknown backend"):
        compare.backend_vs_reference(bundle.results_root, "lab", "brian3")
    with pytest.raises(ConfigError, match="unknown run label"):
        compare.pairwise(bundle.results_root, "nolabel")
    with pytest.raises(ConfigError, match="no ground truth"):
        compare.ground_truth(bundle.results_root, "lab", 1, 1.0, 2)
