"""Input that used to be accepted and must not be, and refusals that must be the only output: each is one line
with its documented exit code (README "Exit codes")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from flyhpc.cli import cli
from flyhpc.errors import ConfigError
from flyhpc.model import Experiment

from tests.unit.bundles import fake_result, make_task, plan

README = Path(__file__).resolve().parents[3] / "README.md"
SCREEN = """
[screen]
t_run_s = 0.2
by = "index"
[base]
rate_hz = {rate}
[axes]
activate_each = [3, 4]
"""


@pytest.fixture(scope="module")
def conn_dir(tmp_path_factory):
    from tests.integration.test_quick_grid import write_tiny_connectome

    return write_tiny_connectome(tmp_path_factory.mktemp("conn") / "conn", n_neurons=300, n_edges=5000, seed=2)


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_an_empty_connectome_flag_is_not_auto(tmp_path):
    for args in (["run", "--connectome", "", "--out", tmp_path / "runs"], ["screen", "plan", "atlas", "--run-label", "x", "--connectome", " "],
                 ["submit", "--run-label", "x", "--connectome", "", "--dry-run", "--results-root", tmp_path]):
        out = _run(*args)
        assert out.exit_code == 2 and "--connectome" in out.output and "empty" in out.output, (args, out.output)


def test_an_empty_or_cut_profile_file_is_refused_not_local(tmp_path):
    empty, cut = tmp_path / "empty.toml", tmp_path / "cut.toml"
    empty.write_text("")
    cut.write_text("[cluster]\npartition = 'gpu'\n")
    for path, extra in ((empty, "(the file is empty)"), (cut, "")):
        out = _run("submit", "--profile", path, "--run-label", "x", "--dry-run", "--results-root", tmp_path)
        assert out.exit_code == 2 and "[cluster].executor is not set" in out.output and extra in out.output


@pytest.mark.parametrize("rate", ["0", "0.0"])
def test_activation_at_0_hz_is_refused(tmp_path, conn_dir, rate):
    path = tmp_path / "zero.toml"
    path.write_text(SCREEN.format(rate=rate))
    out = _run("screen", "plan", path, "--run-label", "z", "--connectome", conn_dir, "--results-root", tmp_path)
    assert out.exit_code == 2 and "[base].rate_hz: 0 Hz activates nothing" in out.output, out.output
    path.write_text(SCREEN.format(rate=100).replace("[axes]", "[axes]\nrate_hz = [50.0, 0.0]"))
    out = _run("screen", "plan", path, "--run-label", "z", "--connectome", conn_dir, "--results-root", tmp_path)
    assert out.exit_code == 2 and "[axes].rate_hz: 0 Hz activates nothing" in out.output, out.output
    with pytest.raises(ConfigError, match="rate is 0 Hz but 2 neuron"):
        Experiment(name="x", activate=(1, 2), rate_hz=0)
    out = _run("submit", "--experiment", "index:0,1@0", "--run-label", "z", "--dry-run", "--connectome", conn_dir,
               "--results-root", tmp_path)
    assert out.exit_code == 2 and "0 Hz" in out.output, out.output


def test_check_collect_of_an_empty_folder_is_bad_input_and_writes_nothing(tmp_path):
    out = _run("check", "collect", tmp_path)
    assert out.exit_code == 2 and "no check-*.json" in out.output
    assert list(tmp_path.iterdir()) == []


def test_a_refused_submit_prints_only_the_refusal(tmp_path, conn_dir):
    args = ["submit", "--grid", "quick", "--backend", "native", "--experiment", "index:0,1@200", "--t-run", "0.05",
            "--n-run", "1", "--rounds", "1", "--connectome", conn_dir, "--results-root", tmp_path, "--run-label", "r"]
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "submission.json").write_text("[]")
    out = _run(*args)
    assert out.exit_code == 2 and out.output.startswith("Error: ") and "┃" not in out.output, out.output


def test_status_names_no_log_for_a_task_that_never_started(tmp_path):
    started, never = make_task(tmp_path, t=0.1), make_task(tmp_path, t=0.2)
    plan(started, never)
    paths = fake_result(started, status="error: RuntimeError: boom")
    paths.log(started).write_text("started\n")
    from flyhpc.cluster.status import status

    rows = {r.key: r for r in status(tmp_path, "lab").rows}
    assert rows[started.key].log == str(paths.log(started)) and rows[never.key].log == ""
    assert not paths.log(never).exists()


def test_every_exit_code_flyhpc_raises_is_in_the_readme_table():
    from flyhpc import errors

    table = README.read_text().split("**Exit codes a script can trust**")[1].split("\n\n")[1]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}
    raised = {cls.exit_code for cls in vars(errors).values() if isinstance(cls, type) and
              issubclass(cls, errors.FlyhpcError)}
    from flyhpc.cluster.job_signals import TaskInterrupted

    raised.discard(TaskInterrupted.exit_code)  # a job's own exit under SIGTERM, never a command's
    assert raised | {0, 2} <= documented, sorted(raised - documented)
    assert json.dumps(sorted(documented)) == json.dumps([0, 1, 2, 3, 4, 5, 74, 75])
