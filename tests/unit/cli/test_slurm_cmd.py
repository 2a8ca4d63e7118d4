"""`flyhpc submit / status / resubmit / cancel` (flyhpc/cli/slurm_cmd.py): the plan table (--dry-run writes
nothing), a real submit on the local executor (`--profile local`), status's counts, its table of tasks to
resubmit and its exit codes (0 done, 4 failed or missing, 2 no submission), resubmit's selection and refusals,
and cancel. Hand-made bundles with real parquets, and native runs on a tiny connectome; Slurm itself is
tested in tests/integration (test_slurm_faults.py, test_screen_slurm.py)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from flyhpc.cli import cli

from tests.unit.bundles import fake_result, make_task, plan

WIDE = {"COLUMNS": "400"}  # one line per table row and message


def _invoke(*args, **kw):
    kw["env"] = {**WIDE, **kw.get("env", {})}
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def _rows(output: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines() if line.startswith("│")]


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    from tests.integration.test_quick_grid import write_tiny_connectome

    return write_tiny_connectome(tmp_path_factory.mktemp("slurm_cmd") / "conn")


def test_dry_run_renders_one_row_per_array_with_resources_and_totals(tmp_path, conn):
    args = ["submit", "--backend", "native", "--t-run", "0.02", "--n-run", "1", "--n-run", "2", "--profile",
            "example-site", "--run-label", "d", "--results-root", tmp_path, "--connectome", conn, "--dry-run"]
    refused = _invoke(*args)  # the profile runs in containers and has no image for native
    assert refused.exit_code == 2 and "backend 'native' has no image" in refused.output and "--no-container" in refused.output
    out = _invoke(*args, "--no-container")
    assert out.exit_code == 0, out.output
    assert re.search(r"d: 2 task\(s\) in 1 array\(s\) on example-site \(slurm\); 0 already done", out.output)
    rows = _rows(out.output)
    assert [r[0] for r in rows] == ["native", "total"]
    native, total = rows
    assert native[1] == total[1] == "2" and native[2] == "0" and native[7] == "-"  # tasks, gpus, image
    assert native[8:] == total[8:]  # the total of one array is that array's hours
    assert "submitted" not in out.output and list(tmp_path.iterdir()) == []


def test_a_gpu_backend_gets_its_gpu_and_image_from_the_profile(tmp_path, conn):
    out = _invoke("submit", "--backend", "genn", "--t-run", "100", "--n-run", "32", "--profile", "example-site",
                  "--run-label", "g", "--results-root", tmp_path, "--connectome", conn, "--dry-run")
    assert out.exit_code == 0, out.output
    genn = _rows(out.output)[0]
    assert genn[0] == "genn" and genn[2] == "1" and genn[7].endswith("/flyhpc-genn.sif")
    assert float(genn[8]) > 0 and genn[8:] == _rows(out.output)[-1][8:]  # GPU-hours (and core-hours) in the total


def test_submit_requires_a_run_label(tmp_path):
    out = _invoke("submit", "--dry-run", "--results-root", tmp_path)
    assert out.exit_code == 2 and "Missing option '--run-label'" in out.output


@pytest.fixture()
def half_done(tmp_path):
    done, failed, missing = make_task(tmp_path, t=0.1), make_task(tmp_path, t=0.2), make_task(tmp_path, t=0.3)
    plan(done, failed, missing)
    fake_result(done)
    fake_result(failed, status="error: RuntimeError: boom")
    return tmp_path, done, failed, missing


def test_status_counts_and_lists_the_tasks_to_resubmit(half_done):
    root, done, failed, missing = half_done
    out = _invoke("status", "lab", "--results-root", root)
    assert out.exit_code == 4, out.output
    assert "lab: 3 task(s)" in out.output
    rows = {r[0]: r for r in _rows(out.output)}
    counts = rows["brian2cpp"]
    assert (counts[3], counts[4], counts[8]) == ("1", "1", "1")  # done, failed, missing
    assert rows[failed.key][1:4] == ["failed", "", "error: RuntimeError: boom"]
    assert rows[missing.key][1] == "missing" and done.key not in rows


def test_status_of_a_label_all_done_is_0_and_without_submission_is_2(half_done):
    root, done, failed, missing = half_done
    fake_result(failed)
    fake_result(missing)
    out = _invoke("status", "lab", "--results-root", root)
    assert out.exit_code == 0 and "tasks to resubmit" not in out.output
    none = _invoke("status", "other", "--results-root", root)
    assert none.exit_code == 2 and "no submission for run label 'other'" in none.output


def test_resubmit_dry_run_selects_failed_missing_or_both(half_done):
    root, done, failed, missing = half_done
    for flags, keys in (((), [failed.key, missing.key]), (("--failed",), [failed.key]),
                        (("--missing",), [missing.key]), (("--failed", "--missing"), [failed.key, missing.key])):
        out = _invoke("resubmit", "lab", "--results-root", root, "--dry-run", *flags)
        assert out.exit_code == 0, out.output
        assert out.output == f"would resubmit {len(keys)} task(s): {', '.join(keys)}\n"


def test_resubmit_refuses_a_time_factor_below_1(half_done):
    root, *_ = half_done
    out = _invoke("resubmit", "lab", "--results-root", root, "--time-factor", "0.5")
    assert out.exit_code == 2 and "Invalid value for --time-factor: 0.5: must be >= 1" in out.output


def test_cancel_without_jobs_says_so(half_done):
    root, *_ = half_done
    out = _invoke("cancel", "lab", "--results-root", root)
    assert out.exit_code == 0 and out.output == "no job to cancel\n"


def test_resubmit_of_a_label_all_done_has_nothing_to_do(half_done):
    root, done, failed, missing = half_done
    fake_result(failed)
    fake_result(missing)
    out = _invoke("resubmit", "lab", "--results-root", root, "--profile", "local")  # planned by bench: no profile
    assert out.exit_code == 0 and out.output == "nothing to resubmit\n"


def test_submit_status_resubmit_cancel_on_the_local_executor(tmp_path, conn):
    """A submit whose tasks fail (a bad backend option in the environment the jobs inherit), status --watch exits
    4 naming them with their job, resubmit queues them again under a new job, cancel stops it."""
    args = ["--backend", "native", "--t-run", "0.02", "--n-run", "1", "--n-run", "2", "--profile", "local",
            "--run-label", "loc", "--results-root", tmp_path, "--connectome", conn]
    bad = {"FLYHPC_BACKEND_OPTIONS": '{"native": {"engines": "clock"}}', "FLYHPC_THREADS": "1"}
    out = _invoke("submit", *args, env=bad)
    assert out.exit_code == 0, out.output
    said = re.search(r"submitted 2 task\(s\): job\(s\) (\S+); follow with `flyhpc status loc`", out.output)
    assert said, out.output
    watched = _invoke("status", "loc", "--results-root", tmp_path, "--watch", "--interval", "0.3")
    assert watched.exit_code == 4, watched.output
    failed = [r for r in _rows(watched.output) if len(r) == 5 and r[1] == "failed"]
    assert len(failed) == 2 and all("no option 'engines'" in r[3] and r[2] == said.group(1) for r in failed)
    assert all(r[4].endswith(".log") for r in failed)
    again = _invoke("resubmit", "loc", "--results-root", tmp_path, "--failed", env={"FLYHPC_THREADS": "1"})
    assert again.exit_code == 0, again.output
    assert re.search(r"loc: 2 task\(s\) in 1 array\(s\) on local \(local\)", again.output)
    cancelled = _invoke("cancel", "loc", "--results-root", tmp_path)
    assert cancelled.exit_code == 0
    # the resubmitted job is among those signalled (the first one too while it is a child of this process)
    job = re.fullmatch(r"cancelled \d job\(s\): ([\d ]+)\n", cancelled.output)
    assert job and set(job.group(1).split()) - {said.group(1)}, cancelled.output


def test_resubmit_of_a_bench_label_without_a_profile_says_to_give_one(half_done):
    root, *_ = half_done  # planned by bench: submission.json holds no profile
    out = _invoke("resubmit", "lab", "--results-root", root)
    assert out.exit_code == 2 and "not submitted with a cluster profile" in out.output and "--profile local" in out.output
