"""The seed's three comparisons over a bundle: ground-truth JSON, pairwise CSVs, backend vs reference
(rates only, no NaN tokens), bad input.
"""

from __future__ import annotations

import csv
import json

import pytest

from flyhpc.compare import reports
from flyhpc.bundle import BundlePaths
from flyhpc.errors import ConfigError

from tests.unit.compare.conftest import PEARSON, _write


def test_ground_truth_json(bundle):
    result, path = reports.ground_truth(bundle.results_root, "lab", 1, 0.1, 2)
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
    rows, files = reports.pairwise(bundle.results_root, "lab", 1, [0.1], [2], 1.0)
    assert [f.name for f in files] == ["pairwise_summary.csv", "pairwise_summary.json", "parity_rates.csv",
                                       "missing_inputs.json"]
    (row,) = rows
    assert list(row) == list(reports.PAIR_COLUMNS)
    assert row["timing_matches"] == 4 and row["timing_f1"] == round(8 / 14, 8)
    assert row["rate_pearson_shared"] == round(PEARSON, 8) and row["active_jaccard"] == 0.75
    header = (bundle.comparisons / "pairwise_summary.csv").read_text().splitlines()[0]
    assert header == ",".join(reports.PAIR_COLUMNS)
    rates = list(csv.DictReader(open(bundle.comparisons / "parity_rates.csv")))
    assert [(r["flywire_id"], r["rate_a_hz"], r["rate_b_hz"]) for r in rates][-1] == ("103", "0.0", "5.0")
    missing = json.loads((bundle.comparisons / "missing_inputs.json").read_text())
    assert {m["backend"] for m in missing} == set(reports.comparable_backends()) - {"brian2cpp", "pytorch"}
    assert {"brian2cuda", "nestgpu", "genn", "brian2genn"} <= {m["backend"] for m in missing}
    assert all(not m["path"].startswith("/") for m in missing)


def test_backend_vs_reference_rate_only_and_no_nan_tokens(bundle, tmp_path):
    one = BundlePaths(tmp_path / "r2", "lab")  # one shared neuron: correlation undefined
    _write(one.spike_file(1, "brian2cpp", 0.1, 2), [(0, 10, 0)], "a")
    _write(one.spike_file(1, "pytorch", 0.1, 2), [(0, 11, 0), (1, 12, 0)], "b")
    rows, files = reports.backend_vs_reference(one.results_root, "lab", "pytorch", [1, 2], [0.1], [2])
    (row,) = rows
    assert list(row) == list(reports.VS_COLUMNS)
    assert row["rate_pearson_shared"] is None and row["timing_matches"] is None
    assert row["spike_count_ratio_comparison_over_reference"] == 2.0
    text = (one.comparisons / "pytorch_vs_brian2_rate_summary.json").read_text()
    assert "NaN" not in text and json.loads(text)[0]["rate_pearson_shared"] is None
    missing = json.loads((one.comparisons / "pytorch_vs_brian2_missing_inputs.json").read_text())
    assert {(m["backend"], m["round"]) for m in missing} == {("brian2cpp", 2), ("pytorch", 2)}
    rows, _ = reports.backend_vs_reference(bundle.results_root, "lab", "pytorch", [1], [0.1], [2], include_timing=True)
    assert rows[0]["timing_matches"] == 4 and rows[0]["timing_precision_comparison_over_reference"] == 0.5


def test_bad_input(bundle):
    with pytest.raises(ConfigError, match="reference"):
        reports.backend_vs_reference(bundle.results_root, "lab", "brian2cpp")
    with pytest.raises(ConfigError, match="unknown backend"):
        reports.backend_vs_reference(bundle.results_root, "lab", "brian3")
    with pytest.raises(ConfigError, match="unknown run label"):
        reports.pairwise(bundle.results_root, "nolabel")
    with pytest.raises(ConfigError, match="no ground truth"):
        reports.ground_truth(bundle.results_root, "lab", 1, 1.0, 2)
