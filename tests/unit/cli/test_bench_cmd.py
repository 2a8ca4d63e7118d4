"""`flyhpc bench / collect / verify` (flyhpc/cli/bench_cmd.py): the task table bench renders, its skip marks,
--force, --no-collect, the default label, a failed task as exit 4; collect's counts, files and exit codes
(--global-csv too); verify's problem lines and exit codes 0, 4 and 5. Real runs of the native backend on a
tiny connectome (one process, --executor inline) and hand-made bundles with real parquets."""

from __future__ import annotations

import csv
import json
import re

import pytest
from click.testing import CliRunner

from flyhpc.bundle import BundlePaths
from flyhpc.cli import cli

from tests.unit.bundles import fake_result, make_task, plan

LABEL = "b"


def _invoke(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from tests.integration.test_quick_grid import write_tiny_connectome

    root = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    mp.setenv("FLYHPC_THREADS", "1")
    yield {"root": root, "conn": write_tiny_connectome(root / "conn"), "results": root / "results"}
    mp.undo()


def _bench(where, *extra, label=LABEL, **kw):
    label_args = ["--run-label", label] if label else []
    return _invoke("bench", "--backend", "native", "--t-run", "0.02", "--n-run", "1", "--n-run", "2", *label_args,
                   "--results-root", where["results"], "--connectome", where["conn"], "--executor", "inline", *extra,
                   **kw)


@pytest.fixture(scope="module")
def ran(env):
    out = _bench(env)
    assert out.exit_code == 0, out.output
    return out


def _rows(output: str) -> dict[str, list[str]]:
    """The bench table's rows by task: [state, spikes, active, build_s, sim_s, total_s, x_rt]."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0].startswith("round_"):
            rows[cells[0]] = cells[1:]
    return rows


def test_bench_renders_one_row_per_task_and_collects(env, ran):
    rows = _rows(ran.output)
    assert set(rows) == {"round_01/native_t0.02s_n1", "round_01/native_t0.02s_n2"}
    paths = BundlePaths(env["results"], LABEL)
    for task, (state, spikes, *_rest) in rows.items():
        record = json.loads((paths.label_dir / f"{task}.json").read_text())
        assert state == "done" and spikes == str(record["spikes"])
    assert f"{LABEL}: 2 task(s)" in ran.output and "done before" not in ran.output
    assert f"collected 2 row(s) into {paths.label_dir}" in ran.output
    with open(paths.results_csv) as fh:
        assert len(list(csv.DictReader(fh))) == 2


def test_a_second_bench_marks_kept_tasks_and_force_reruns_them(env, ran):
    again = _bench(env)
    assert again.exit_code == 0, again.output
    assert {row[0] for row in _rows(again.output).values()} == {"done*"}
    assert "* done before: kept, not run again (use --force to rerun)" in again.output
    forced = _bench(env, "--force")
    assert forced.exit_code == 0 and {row[0] for row in _rows(forced.output).values()} == {"done"}
    assert "done before" not in forced.output


def test_no_collect_writes_no_bundle_files_and_the_label_defaults_to_the_date(env, tmp_path):
    local = dict(env, results=tmp_path)
    out = _bench(local, "--no-collect", label=None)
    assert out.exit_code == 0, out.output
    (label_dir,) = tmp_path.iterdir()
    assert re.fullmatch(r"bench_\d{8}_\d{6}", label_dir.name)
    assert "collected" not in out.output and not (label_dir / "benchmark-results.csv").exists()
    assert len(list((label_dir / "round_01").glob("*.parquet"))) == 2


def test_a_failed_task_is_red_in_the_table_and_exits_4(env):
    out = _bench(env, label="fails", env={"FLYHPC_BACKEND_OPTIONS": '{"native": {"engines": "clock"}}'})
    assert out.exit_code == 4, out.output
    assert {row[0] for row in _rows(out.output).values()} == {"error"}
    assert "backend 'native' has no option 'engines'" in out.output
    assert out.output.rstrip().splitlines()[-1] == (
        f"Error: 2 of 2 task(s) did not finish; see their logs in {env['results']}/fails/round_XX/<task>.log")
    assert (env["results"] / "fails" / "benchmark-results.csv").is_file()  # collected all the same


@pytest.fixture()
def half_done(tmp_path):
    done, failed = make_task(tmp_path, t=0.1), make_task(tmp_path, t=0.2)
    plan(done, failed)
    fake_result(done)
    fake_result(failed, status="error: RuntimeError: boom")
    return tmp_path, done, failed


def test_collect_counts_names_what_is_not_done_and_exits_4(half_done, tmp_path):
    root, done, failed = half_done
    out = _invoke("collect", "lab", "--results-root", root, "--global-csv", tmp_path / "all.csv")
    assert out.exit_code == 4, out.output
    lines = out.output.splitlines()
    assert lines[0] == "lab: 2 planned task(s): 1 done, 1 failed"
    assert f"  failed {failed.key}: error: RuntimeError: boom" in lines
    paths = BundlePaths(root, "lab")
    for path in (paths.results_csv, paths.manifest, paths.checksums):
        assert f"  wrote {path}" in lines and path.is_file()
    assert lines[-1] == "lab: bundle incomplete (exit 4); see `flyhpc status lab` and `flyhpc resubmit lab`"
    with open(tmp_path / "all.csv") as fh:
        assert sorted(r["status"] for r in csv.DictReader(fh)) == ["error: RuntimeError: boom", "success"]


def test_collect_of_a_complete_label_exits_0(half_done):
    root, done, failed = half_done
    fake_result(failed)
    out = _invoke("collect", "lab", "--results-root", root)
    assert out.exit_code == 0 and out.output.splitlines()[0] == "lab: 2 planned task(s): 2 done"
    assert "incomplete" not in out.output


def test_verify_ok_incomplete_and_damaged(half_done):
    root, done, failed = half_done
    assert _invoke("collect", "lab", "--results-root", root).exit_code == 4
    out = _invoke("verify", "lab", "--results-root", root)
    assert out.exit_code == 4 and f"incomplete: {failed.key}: failed (error: RuntimeError: boom)" in out.output
    fake_result(failed)
    assert _invoke("collect", "lab", "--results-root", root).exit_code == 0
    ok = _invoke("verify", "lab", "--results-root", root)
    assert ok.exit_code == 0
    assert re.fullmatch(r"lab: \d+ file\(s\) verified, every planned task done, all good\n", ok.output), ok.output
    parquet = BundlePaths(root, "lab").parquet(done)
    parquet.write_bytes(parquet.read_bytes()[:100])
    bad = _invoke("verify", "lab", "--results-root", root)
    assert bad.exit_code == 5
    assert f"corrupt: round_01/{parquet.name}: sha256 differs from checksums.sha256" in bad.output
    assert bad.output.splitlines()[-1].startswith("lab: 2 problem(s) in ")


def test_unknown_labels_are_named(tmp_path):
    for command in ("collect", "verify"):
        out = _invoke(command, "nolabel", "--results-root", tmp_path)
        assert out.exit_code == 2 and out.output.startswith("Error: unknown run label 'nolabel'")
