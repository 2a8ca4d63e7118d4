"""Disturbed timings in the report: a label whose records hold CPU times, one sim starved by a neighbour. The
report keeps it, counts it per grid point, rings it in the speed figures and lists why; --drop-disturbed leaves it
out of the speed figures and tables; records without CPU times say that nothing could be judged."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from flyhpc import collect
from flyhpc.bundle import BundlePaths
from flyhpc.results.records import read_record
from flyhpc.cli import cli
from flyhpc.errors import ConfigError
from flyhpc.files import write_json_atomic
from flyhpc.report.build import build_report

from .conftest import make_label

STARVED = ("pytorch", 0.1, 2, 1)  # (backend, t_run, n_run, round) of the disturbed task


def _with_cpu_times(root, label, share, min_sim_s=0.0):
    """Give every done record of a collected label CPU times at `share(task)` of its wall times, then collect."""
    paths = BundlePaths(root, label)
    for task in make_label(root, label, failures=False):
        rec = read_record(paths.record(task))
        rec["phases_s"]["sim"] = max(rec["phases_s"]["sim"], min_sim_s)
        rec.update(phases_cpu_s={k: v * share(task) for k, v in rec["phases_s"].items()}, sim_threads=1,
                   sim_device="cpu", cpus_usable=4, cpu_count=64, load_avg_start=[40.5, 30.0, 20.0],
                   load_avg_end=[41.0, 30.0, 20.0])
        write_json_atomic(paths.record(task), rec)
    collect.collect(root, label)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """`cpu`: every task with CPU times, all at nearly full share but STARVED's (a quarter); `old`: without them."""
    root = tmp_path_factory.mktemp("results")
    _with_cpu_times(root, "cpu", lambda t: 0.25 if (t.backend, t.t_run_s, t.n_run, t.round) == STARVED else 0.97)
    make_label(root, "old", failures=False)
    return root


def _speed(out, backend="pytorch", t="0.1", n="2"):
    (row,) = [r for r in csv.DictReader(open(out / "speed.csv"))
              if (r["source"], r["backend"], r["t_run_s"], r["n_run"]) == ("cpu", backend, t, n)]
    return row


def test_a_disturbed_timing_is_kept_counted_ringed_and_explained(root, tmp_path):
    result = build_report(root, "cpu", tmp_path / "keep")
    assert (result.disturbed, result.dropped) == (1, False)
    row = _speed(result.out_dir)
    assert (row["rounds"], row["disturbed_rounds"]) == ("2", "1")
    assert _speed(result.out_dir, "native")["disturbed_rounds"] == "0"
    (flag,) = csv.DictReader(open(result.out_dir / "disturbed.csv"))
    assert (flag["task"], flag["backend"], flag["round"]) == ("round_01/pytorch_t0.1s_n2", "pytorch", "1")
    assert flag["reason"] == "sim CPU share 0.25 < 0.8 of 1 thread; load 40.5 at start, 41.0 at end on 4 of 64 CPUs"
    svg = (result.out_dir / "speed.svg").read_text()
    assert svg.count('id="p0x1--disturbed--cpu--pytorch"') == 1 and "--disturbed--cpu--native" not in svg
    html = result.html.read_text()
    assert "1 timing(s) were disturbed" in html and "Disturbed timings (disturbed.csv)" in html
    assert "Red rings: a round there was disturbed." in html


def test_drop_disturbed_leaves_the_point_out_of_the_speed_figures(root, tmp_path):
    result = build_report(root, "cpu", tmp_path / "drop", drop_disturbed=True)
    assert (result.disturbed, result.dropped) == (1, True)
    row = _speed(result.out_dir)
    assert (row["rounds"], row["disturbed_rounds"]) == ("1", "0")  # only the undisturbed round 2 is left
    kept = [r for r in csv.DictReader(open(BundlePaths(root, "cpu").results_csv))
            if (r["backend_key"], r["t_run"], r["n_run"], r["round"]) == ("pytorch", "0.1", "2", "2")]
    assert float(row["sim_median_s"]) == pytest.approx(float(kept[0]["sim_time"]))
    assert "--disturbed--" not in (result.out_dir / "speed.svg").read_text()
    assert "They are left out of the figures and tables (--drop-disturbed)." in result.html.read_text()
    assert (result.out_dir / "disturbed.csv").is_file()  # what was left out, and why


def test_records_without_cpu_times_are_not_judged(root, tmp_path):
    result = build_report(root, "old", tmp_path / "old")
    assert result.disturbed == 0 and not (result.out_dir / "disturbed.csv").exists()
    assert _speed_rows_disturbed(result.out_dir) == {"0"}
    assert "These records hold no CPU time" in result.html.read_text()
    html = build_report(root, "cpu", tmp_path / "ok", references=["old"]).html.read_text()
    assert "1 timing(s) were disturbed" in html


def _speed_rows_disturbed(out):
    return {r["disturbed_rounds"] for r in csv.DictReader(open(out / "speed.csv"))}


def test_cli_drop_disturbed_and_what_it_says(root, tmp_path):
    res = CliRunner().invoke(cli, ["report", "cpu", "--results-root", str(root), "--out", str(tmp_path / "r"),
                                   "--drop-disturbed"])
    assert res.exit_code == 0, res.output
    assert "1 disturbed timing(s) left out (--drop-disturbed)" in res.output
    res = CliRunner().invoke(cli, ["report", "cpu", "--results-root", str(root), "--out", str(tmp_path / "k")])
    assert res.exit_code == 0 and "1 disturbed timing(s) kept and marked" in res.output


def test_drop_disturbed_with_nothing_left_is_a_clear_error(tmp_path):
    _with_cpu_times(tmp_path, "busy", lambda t: 0.1, min_sim_s=1.0)  # every sim long enough to be judged
    with pytest.raises(ConfigError, match="--drop-disturbed: every timing of busy was disturbed"):
        build_report(tmp_path, "busy", tmp_path / "none", drop_disturbed=True)
