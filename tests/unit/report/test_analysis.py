"""The report's numbers: streaming scans (batch-size independent, equal to a full read, digests that see one
moved spike), speed and phase tables equal to benchmark-results.csv, parity, activity and the comparison with
the paper's own outputs (on a synthetic connectome: distributions only; on v630: parity)."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flyhpc.bundle import BundlePaths
from flyhpc.files import sha256_file, write_json_atomic
from flyhpc.report import activity, paper, scan, speed
from flyhpc.report.label import load_label
from flyhpc.report.parity import parity
from flyhpc.report.scan import StatsCache, scan_spikes
from flyhpc.results.spikes import SpikeTable, write_spikes
from tests.unit.bundles import make_task, plan

from .conftest import IDS, LABEL, spikes_for



def _write(path, table, exp="x"):
    write_spikes(path, table, IDS, 0.1, exp)
    return path


def test_scan_equals_a_full_read_whatever_the_batch_size(tmp_path, monkeypatch):
    path = _write(tmp_path / "a.parquet", spikes_for(0.1, 3, 1))
    full = pd.read_parquet(path)
    whole = scan_spikes(path, 0.1, 3)
    monkeypatch.setattr(scan, "BATCH_ROWS", 7)  # many batches, trials split across them
    small = scan_spikes(path, 0.1, 3)
    counts = full.groupby("flywire_id").size()
    for st in (whole, small):
        assert st.spikes == len(full)
        assert st.ids.tolist() == counts.index.tolist() and st.counts.tolist() == counts.tolist()
        assert st.active_per_trial.tolist() == full.groupby("trial")["flywire_id"].nunique().tolist()
        np.testing.assert_allclose(st.rates_hz, counts.to_numpy() / 0.3)
        first = full[(full.trial == 0) & (full.time_ms < 100.0)]
        assert sorted(zip(st.raster_ids.tolist(), st.raster_times_ms.tolist())) == sorted(
            zip(first.flywire_id.tolist(), first.time_ms.tolist()))
    assert whole.digest == small.digest and whole.per_trial.tolist() == small.per_trial.tolist()


def test_digest_is_the_spikes_not_the_file(tmp_path):
    table = spikes_for(0.1, 2, 1)
    a = scan_spikes(_write(tmp_path / "a.parquet", table, "brian2cpp_t0.1s_n2"), 0.1, 2)
    b = scan_spikes(_write(tmp_path / "b.parquet", table, "native_t0.1s_n2"), 0.1, 2)
    assert sha256_file(tmp_path / "a.parquet") != sha256_file(tmp_path / "b.parquet")  # exp_name differs
    assert a.digest == b.digest
    step = table.step.copy()
    step[5] += 1  # one spike one step later
    c = scan_spikes(_write(tmp_path / "c.parquet", SpikeTable(table.trial, step, table.neuron)), 0.1, 2)
    assert c.digest != a.digest and c.counts.tolist() == a.counts.tolist()


def test_the_paper_example_scan_matches_its_published_numbers(examples_dir):
    st = scan_spikes(examples_dir / "sugarR.parquet", 1.0, 30)  # no neuron_index: the two-pass path
    assert st.digest is None  # seconds in `t`, no time_ms: no spike digest
    assert round(st.spikes_per_trial_s) == 17052 and st.ids.size == 448  # ../shared/data/paper-examples/README.md
    assert round(float(np.median(st.rates_hz))) == 23 and int((st.rates_hz > 10).sum()) == 296
    assert int((st.rates_hz > 50).sum()) == 114


def _csv_rows(root, label):
    return list(csv.DictReader(open(BundlePaths(root, label).results_csv)))


def test_speed_table_is_the_csv_median_min_max(bundle):
    rows = _csv_rows(bundle, LABEL)
    table = speed.speed_table(speed.timings(rows, LABEL))
    frame = pd.DataFrame(rows).assign(t=lambda d: d.t_run.astype(float), n=lambda d: d.n_run.astype(int))
    for (backend, t, n), grp in frame.query("status == 'success'").groupby(["backend_key", "t", "n"]):
        sims = grp.sim_time.astype(float).tolist()
        got = table[(table.backend == backend) & (table.t_run_s == t) & (table.n_run == n)].iloc[0]
        assert got.rounds == len(sims)
        assert got.sim_median_s == pytest.approx(statistics.median(sims))
        assert (got.sim_min_s, got.sim_max_s) == (min(sims), max(sims))
        assert got.sim_s_per_sim_s == pytest.approx(statistics.median(sims) / (t * n))
    b2 = table[(table.backend == "brian2cpp") & (table.t_run_s == 0.1) & (table.n_run == 2)].iloc[0]
    nat = table[(table.backend == "native") & (table.t_run_s == 0.1) & (table.n_run == 2)].iloc[0]
    assert nat.rounds == 1  # round 2 of this point is missing
    assert nat.speedup_sim_vs_brian2cpp == pytest.approx(b2.sim_median_s / nat.sim_median_s)
    assert speed.choose_point(speed.timings(rows, LABEL), LABEL) == (0.1, 2)


def test_phase_table_is_the_median_of_each_phase(bundle):
    frame = speed.timings(_csv_rows(bundle, LABEL), LABEL)
    phases = speed.phase_table(frame, LABEL, 0.05, 2).set_index("backend")
    rows = [r for r in _csv_rows(bundle, LABEL) if r["backend_key"] == "pytorch" and r["t_run"] == "0.05"
            and r["n_run"] == "2"]
    for phase in ("load", "build", "setup", "sim", "collect", "write"):
        assert phases.loc["pytorch", f"{phase}_s"] == pytest.approx(
            statistics.median(float(r[f"{phase}_time"]) for r in rows))


def test_parity_finds_identical_and_different_backends(bundle):
    data = load_label(bundle, LABEL)
    result = parity(data, StatsCache())
    by = {(r.backend, r.round, r.t_run_s, r.n_run): r for r in result.rows}
    same = by[("native", 1, 0.1, 2)]
    assert same.identical is True and same.ratio == 1.0 and same.jaccard == 1.0 and same.pearson == pytest.approx(1.0)
    other = by[("pytorch", 1, 0.1, 2)]
    assert other.identical is False and other.ratio < 1.0 and other.spikes_backend == other.spikes_reference - 5
    assert all(r.source == "computed" for r in result.rows)
    assert len(result.rows) == 14 and result.unpaired == []  # 16 pairs less the failed and the missing task
    assert {s.backend for s in result.scatters} == {"native", "pytorch"}
    assert {(s.t_run_s, s.n_run) for s in result.scatters} == {(0.1, 2)}


def test_parity_reads_current_compare_outputs_and_ignores_stale_ones(bundle, tmp_path):
    from flyhpc.compare import reports as compare
    import shutil

    shutil.copytree(bundle / LABEL, tmp_path / LABEL)
    compare.backend_vs_reference(tmp_path, LABEL, "pytorch", (1, 2), (0.05, 0.1), (1, 2), include_timing=True)
    data = load_label(tmp_path, LABEL)
    rows = {(r.backend, r.round, r.t_run_s, r.n_run): r for r in parity(data, StatsCache()).rows}
    row = rows[("pytorch", 1, 0.1, 2)]
    assert row.source == "flyhpc compare" and row.identical is False and row.spikes_backend == row.spikes_reference - 5
    assert rows[("native", 1, 0.1, 2)].source == "computed"
    parquet = tmp_path / LABEL / "round_01" / "pytorch_t0.1s_n2.parquet"
    summary = tmp_path / LABEL / "comparisons" / "pytorch_vs_brian2_rate_summary.csv"
    later = summary.stat().st_mtime + 10
    import os

    os.utime(parquet, (later, later))  # the parquet changed after compare ran
    rows = {(r.backend, r.round, r.t_run_s, r.n_run): r for r in parity(load_label(tmp_path, LABEL), StatsCache()).rows}
    assert rows[("pytorch", 1, 0.1, 2)].source == "computed"


def test_activity_defaults_to_the_first_done_brian2cpp_task(bundle):
    data = load_label(bundle, LABEL)
    act = activity.activity(data, StatsCache())
    assert act.task.name == "round_01/brian2cpp_t0.05s_n1"
    full = pd.read_parquet(act.task.parquet).groupby("flywire_id").size().sort_values(ascending=False, kind="stable")
    assert act.top_spikes.tolist() == full.head(act.top_ids.size).tolist()
    assert set(act.top_ids.tolist()) <= set(IDS.tolist())
    named = activity.activity(data, StatsCache(), "round_02/pytorch_t0.1s_n2")
    assert named.task.backend == "pytorch" and named.stats.n_trials == 2
    with pytest.raises(Exception, match=r"--activity round_09/x: not a done task of lab; done: round_01/"):
        activity.choose_task(data, "round_09/x")


def test_against_the_paper_on_a_synthetic_connectome_shows_distributions_only(bundle, examples_dir):
    from flyhpc import paper_examples

    comp = paper.compare_with_paper(load_label(bundle, LABEL), paper_examples.find(examples_dir), StatsCache())
    assert comp.synthetic and comp.parity is None and "per-neuron parity with the paper is meaningless" in comp.verdict
    assert comp.task.name == "round_01/brian2cpp_t0.1s_n2"  # closest to 1 s, most trials, ground truth
    assert [r["source"] for r in comp.distributions][:2] == ["this label: round_01/brian2cpp_t0.1s_n2",
                                                              "paper: sugarR.parquet"]
    assert round(comp.distributions[1]["spikes_per_trial_s"]) == 17052


def _real_label_from_example(root: Path, examples_dir: Path) -> None:
    """A label on 'flywire-630' whose brian2cpp spikes are the paper's sugarR trials 0-3 (flyhpc schema)."""
    ex = pd.read_parquet(examples_dir / "sugarR.parquet")
    ex = ex[ex.trial < 4]
    ids = np.unique(ex.flywire_id.to_numpy())
    table = SpikeTable.from_arrays(ex.trial.to_numpy(), np.round(ex.t.to_numpy() * 1e4).astype(np.int64),
                                   np.searchsorted(ids, ex.flywire_id.to_numpy()))
    task = make_task(root, "brian2cpp", 1.0, 4, 1, "real")
    plan(task)
    paths = BundlePaths(root, "real")
    write_spikes(paths.parquet(task), table, ids, 0.1, task.stem)
    write_json_atomic(paths.record(task), {
        "record_format": 1, "key": task.key, "run_label": "real", "round": 1, "backend": "brian2cpp",
        "experiment_key": "sugar", "t_run_s": 1.0, "n_run": 4, "status": "success", "spikes": len(table),
        "phases_s": {"sim": 1.0, "total": 2.0}, "connectome_source": "flywire-630", "synthetic_connectome": False,
        "parquet_sha256": sha256_file(paths.parquet(task)), "parquet_bytes": paths.parquet(task).stat().st_size})
    from flyhpc import collect

    collect.collect(root, "real")


def test_against_the_paper_on_v630_shows_parity(tmp_path, examples_dir):
    from flyhpc import paper_examples

    _real_label_from_example(tmp_path, examples_dir)
    comp = paper.compare_with_paper(load_label(tmp_path, "real"), paper_examples.find(examples_dir), StatsCache())
    assert not comp.synthetic and comp.parity is not None and comp.parity.example == "sugarR.parquet"
    p = comp.parity
    assert 0.9 < p.spikes_per_trial_s_ratio < 1.1 and 0.8 < p.jaccard <= 1.0 and p.pearson > 0.95
    top = comp.top_rows()
    assert len(top) == 20 and top[0]["paper_rate_hz"] >= top[-1]["paper_rate_hz"] > 0
    files = paper.write_outputs(comp, tmp_path / "out")
    summary = json.loads(files[0].read_text())
    assert summary["parity"]["active_jaccard"] == p.jaccard and summary["connectome"] == "flywire-630"
