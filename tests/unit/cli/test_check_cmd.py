"""`flyhpc check`, `check collect`, `check submit` (flyhpc/cli/check_cmd.py): the flags reach the check, the
reports land in --out, and the exit codes: 0 passed, 4 a failed report, 2 bad input, 3 no sbatch. The
contract part runs for real on the native backend; `check submit` goes through submitit and stops at sbatch
(--dry-run, no sbatch on PATH, or a stand-in sbatch script: Slurm is not part of the unit tests;
tests/integration/test_schedulers.py submits to the real one).
The checks' own verdicts are tested in tests/unit/test_check.py."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from flyhpc.check import SUBMITTED
from flyhpc.cli import cli


def _invoke(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def test_check_runs_the_parts_asked_for_and_writes_both_reports(tmp_path):
    out = _invoke("check", "--backend", "native", "--part", "contract", "--out", tmp_path / "out",
                  "--build-dir", tmp_path / "builds")
    assert out.exit_code == 0, out.output
    (report,) = (tmp_path / "out").glob("check-native-*.json")
    saved = json.loads(report.read_text())
    assert saved["status"] == "passed" and set(saved["parts"]) == {"contract"}
    assert report.with_suffix(".md").is_file() and "native" in out.output


def test_an_unknown_part_is_a_usage_error(tmp_path):
    out = _invoke("check", "--part", "speed", "--out", tmp_path)
    assert out.exit_code == 2 and "Invalid value for '--part'" in out.output and "contract" in out.output
    assert list(tmp_path.iterdir()) == []


def _report(folder, backend: str, status: str) -> None:
    report = {"backend": backend, "host": "node7", "gpus": ["NVIDIA H100"], "mode": "gpu", "status": status,
              "gpu_verified": status == "passed",
              "parts": {"contract": {"status": status, "scenarios": [{}], "passed": 13, "n_scenarios": 13},
                        "parity": {"status": "passed", "runs": [{"n_run": 1, "verdict": "identical", "jaccard": 1.0,
                                                                 "pearson": 1.0}]},
                        "timing": {"status": "passed", "grid": [{"t_run_s": 1.0, "n_run": 1, "sim": 0.5}]}}}
    (folder / f"check-{backend}-node7.json").write_text(json.dumps(report))


def test_collect_makes_one_table_and_fails_on_a_failed_report(tmp_path):
    for backend, status in (("genn", "passed"), ("nestgpu", "failed")):
        _report(tmp_path, backend, status)
    result = _invoke("check", "collect", tmp_path)
    assert result.exit_code == 4
    assert "| genn | node7 | NVIDIA H100 | gpu | yes | passed | 13/13 | 1: identical, 1, 1 | 0.5 |" in result.output
    assert "| nestgpu | node7 | NVIDIA H100 | gpu | no | failed |" in result.output
    summary = (tmp_path / "check-summary.md").read_text()
    assert summary.count("node7") == 2 and summary == f"# flyhpc check: {tmp_path}\n\n" + result.output


def test_collect_of_passed_reports_exits_0(tmp_path):
    _report(tmp_path, "genn", "passed")
    result = _invoke("check", "collect", tmp_path)
    assert result.exit_code == 0 and "| genn | node7 |" in result.output
    missing = _invoke("check", "collect", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_collect_fails_on_a_submitted_backend_without_a_report(tmp_path):
    _report(tmp_path, "genn", "passed")
    (tmp_path / SUBMITTED).write_text(json.dumps({"backends": ["genn", "nestgpu"]}))
    result = _invoke("check", "collect", tmp_path)
    assert result.exit_code == 4 and "| genn | node7 |" in result.output
    assert "| nestgpu | ? | none | - | no | missing: submitted, but no check-nestgpu-*.json" in result.output


def test_submit_dry_run_prints_the_arrays_and_submits_nothing(tmp_path):
    result = _invoke("check", "submit", "--profile", "example-site", "--out", tmp_path, "--backend", "genn",
                     "--backend", "nestgpu", "--part", "contract", "--time-min", "30", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("check on profile example-site (slurm): 2 task(s) in 2 array(s)")
    assert "'job_name': 'flyhpc.check.genn'" in result.output and "'time': 30" in result.output
    assert "--bind /project/flybrain,/scratch," in result.output and "flyhpc-genn.sif python" in result.output
    assert f"task 0: python -m flyhpc check --backend nestgpu --out {tmp_path} --part contract --require-gpu" \
        in result.output
    assert "brian2cuda" not in result.output and list(tmp_path.iterdir()) == []
    default = _invoke("check", "submit", "--profile", "example-site", "--out", tmp_path, "--dry-run")
    assert "4 task(s) in 4 array(s)" in default.output  # every GPU backend, each in its image


def test_submit_needs_a_profile_and_an_out_folder(tmp_path):
    assert "Missing option '--profile'" in _invoke("check", "submit", "--out", tmp_path).output
    out = _invoke("check", "submit", "--profile", "nope", "--out", tmp_path, "--dry-run")
    assert out.exit_code == 2 and "nope" in out.output and out.output.startswith("Error: ")


def test_submit_without_sbatch_is_exit_3_and_writes_nothing(tmp_path):
    out_dir = tmp_path / "out"
    out = _invoke("check", "submit", "--profile", "example-site", "--out", out_dir,
                  env={"PATH": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert out.exit_code == 3 and out.output.startswith(
        "Error: sbatch not found on PATH: profile 'example-site' (") and "submits to Slurm" in out.output
    assert list(tmp_path.iterdir()) == []


def _stand_in_sbatch(folder, script: str):
    """A stand-in sbatch (Slurm is not part of the unit tests): a shell script answering as sbatch does."""
    folder.mkdir()
    path = folder / "sbatch"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}", "XDG_CACHE_HOME": str(folder.parent / "cache")}


@pytest.mark.parametrize("accepted", [True, False])
def test_submit_goes_out_through_submitit_and_reports_what_sbatch_says(tmp_path, accepted):
    out_dir = tmp_path / "out"
    answer = ('echo "Submitted batch job 4242"\n' if accepted else
              'echo "sbatch: error: invalid partition specified: gpu" >&2\nexit 1\n')
    result = _invoke("check", "submit", "--profile", "example-site", "--out", out_dir, "--backend", "genn",
                     env=_stand_in_sbatch(tmp_path / "bin", answer))
    (folder,) = (tmp_path / "cache" / "flyhpc" / "submitit").iterdir()  # submitit's files: private, not in --out
    if accepted:
        assert result.exit_code == 0, result.output
        assert result.output == (f"submitted 1 task(s) (genn): job(s) 4242; then: flyhpc check collect {out_dir}; "
                                 f"job scripts and logs in {folder}\n")
        script = next(folder.glob("*.sh")).read_text()  # the sbatch script submitit wrote for the job
        assert "#SBATCH --job-name=flyhpc.check.genn" in script and "#SBATCH --gres=gpu:1" in script
        assert "flyhpc-genn.sif python -u -m flyhpc.cluster.job_folder" in script
        assert (folder / "4242_submitted.pkl").is_file() and list(out_dir.iterdir()) == [out_dir / SUBMITTED]
        assert json.loads((out_dir / SUBMITTED).read_text()) == {"backends": ["genn"]}  # collect wants its report
    else:
        assert result.exit_code == 2
        error = result.output.split("Error: ")[1]  # sbatch's own stderr (passed through by submitit) comes first
        assert error.startswith("sbatch refused check array 1 of 1 (genn) (profile 'example-site', ")
        assert error.endswith("): sbatch: error: invalid partition specified: gpu\n")
        assert list(folder.iterdir()) == []  # the job files of an array that did not go out are removed
