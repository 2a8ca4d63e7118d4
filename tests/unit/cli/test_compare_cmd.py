"""`flyhpc compare ground-truth | pairs | backend | runs` (flyhpc/cli/compare_cmd.py): the seed's flags, the
table and the files each one names, the grid-point defaults, and bad input as one line with exit 2. The
bundle is the report tests' generated label (real parquets; native equals brian2cpp, pytorch loses spikes);
`compare runs` takes two real `flyhpc run` outputs of the native backend."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from flyhpc.cli import cli

from tests.unit.report.conftest import make_label


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    make_label(root, "lab")
    return root


def _rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def test_ground_truth_renders_the_json_it_writes(root, tmp_path):
    out = _invoke("compare", "ground-truth", "--run-label", "lab", "--results-root", root, "--t-run", "0.05",
                  "--n_run", "2", "-o", tmp_path / "gt.json")
    assert out.exit_code == 0, out.output
    assert out.output.rstrip().endswith(f"wrote {tmp_path / 'gt.json'}")
    result = json.loads((tmp_path / "gt.json").read_text())
    assert (result["t_run_sec"], result["n_run"], result["round"]) == (0.05, 2, 1)
    assert f"vs {result['ground_truth']}: {result['ground_truth_spikes']} spikes, " \
           f"{result['ground_truth_active_neurons']} active" in out.output
    rows = _rows(out.output)
    judged = {name: entry for name, entry in result["comparisons"].items() if "verdict" in entry}
    assert set(judged) == {"PyTorch (CPU)", "native (CPU)"} and set(judged) <= set(rows)
    for name, entry in judged.items():
        assert rows[name] == [str(entry["spike_count"]["ratio"]), str(entry["active_neurons"]["jaccard"]),
                              str(entry["firing_rate"]["pearson_correlation"]), entry["verdict"]]
    assert rows["native (CPU)"][0] == "1.0"  # identical spikes


def test_ground_truth_defaults_to_round_1_t_run_1_n_run_1(root):
    out = _invoke("compare", "ground-truth", "--run-label", "lab", "--results-root", root)
    assert out.exit_code == 2
    assert out.output == (f"Error: no ground truth for round 1, t_run 1.0 s, n_run 1: "
                          f"{root}/lab/round_01/brian2cpp_t1.0s_n1.parquet does not exist\n")


def test_pairs_counts_the_pairs_and_names_every_file(root):
    out = _invoke("compare", "pairs", "--run_label", "lab", "--results-root", root, "--t-run", "0.05", "--n-run", "1",
                  "--n-run", "2")
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    comparisons = root / "lab" / "comparisons"
    summary = json.loads((comparisons / "pairwise_summary.json").read_text())
    assert text.startswith(f"{len(summary)} pair comparison(s); wrote ")
    assert len(summary) == 3 * 2  # three backend pairs at two points
    for name in ("pairwise_summary.csv", "pairwise_summary.json"):
        assert str(comparisons / name) in text


def test_backend_vs_reference_writes_into_output_dir(root, tmp_path):
    out = _invoke("compare", "backend", "--run-label", "lab", "--results-root", root, "--backend", "pytorch",
                  "--rounds", "1", "--rounds", "2", "--t-run", "0.05", "--n-run", "1", "--include-timing",
                  "-o", tmp_path / "b")
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    written = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert written and all(str(tmp_path / "b" / name) in text for name in written)
    summary = pd.read_csv(tmp_path / "b" / "pytorch_vs_brian2_rate_summary.csv")
    assert text.startswith(f"{len(summary)} comparison(s); wrote ") and len(summary) == 1  # round 2 at n_run 1 failed


@pytest.mark.parametrize("args, message", [
    (["compare", "pairs", "--run-label", "nolabel"], "unknown run label 'nolabel'"),
    (["compare", "backend", "--run-label", "lab", "--backend", "nope"], "--backend 'nope': unknown backend; known: "),
    (["compare", "ground-truth", "--run-label", "lab", "--t-run", "7"], "no ground truth for round 1, t_run 7.0 s"),
])
def test_bad_input_is_one_line_and_exit_2(root, args, message):
    out = _invoke(*args, "--results-root", root)
    assert out.exit_code == 2 and out.output.startswith("Error: ") and message in out.output, out.output
    assert len(out.output.splitlines()) == 1


def test_run_label_is_required():
    out = _invoke("compare", "pairs")
    assert out.exit_code == 2 and "Missing option '--run-label'" in out.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three `flyhpc run` outputs of one design: A, A again, and B with neuron 23 silenced."""
    from tests.integration.test_quick_grid import write_tiny_connectome

    root = tmp_path_factory.mktemp("runs")
    conn = write_tiny_connectome(root / "conn")
    out = {}
    for name, extra in (("a", []), ("a2", []), ("b", ["--silence", "23"])):
        res = _invoke("run", "--backend", "native", "--connectome", conn, "--by", "index", "--activate", "0,1",
                      "--rate", "200", "--t-run", "0.2", "--n-run", "4", "--threads", "1", "--out", root / name, *extra)
        assert res.exit_code == 0, res.output
        out[name] = root / name / "native_t0.2s_n4.parquet"
    return out


def test_runs_of_the_same_design_are_identical(runs):
    out = _invoke("compare", "runs", runs["a"], runs["a2"])
    assert out.exit_code == 0, out.output
    n = len(pd.read_parquet(runs["a"]))
    assert out.output.splitlines()[0] == f"identical spikes: {n} in both runs"
    assert "sum |change| 0 ± 0 Hz; 0 significant" in out.output


def test_runs_that_differ_show_the_first_difference_and_write_the_changes(runs, tmp_path):
    out = _invoke("compare", "runs", runs["a"], runs["b"], "-o", tmp_path / "change.csv", "--top", "3")
    assert out.exit_code == 0, out.output
    n_a, n_b = len(pd.read_parquet(runs["a"])), len(pd.read_parquet(runs["b"]))
    assert out.output.startswith(f"not identical: {n_a} vs {n_b} spikes; first difference at spike ")
    assert "B's own driven/silenced neurons changed by" in out.output
    changes = pd.read_csv(tmp_path / "change.csv")
    assert out.output.rstrip().endswith(f"wrote {tmp_path / 'change.csv'}")
    top = changes.iloc[0]
    assert top["change_hz"] != 0 and f"{top['change_hz']:+.4g}" in out.output
    assert str(int(top["flywire_id"])) in out.output


def test_runs_needs_two_existing_files(runs, tmp_path):
    out = _invoke("compare", "runs", runs["a"], tmp_path / "none.parquet")
    assert out.exit_code == 2 and "does not exist" in out.output
