"""`flyhpc screen plan | submit | status | collect` (flyhpc/cli/screen_cmd.py): the plan header and table (which
write nothing), submit --dry-run, a real submit on the local executor followed with --watch, its status with the
experiments counter, collect's effects table, a second submit finding every chunk done, and the flag refusals.
A three-experiment screen of the native backend on a tiny connectome."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from click.testing import CliRunner

from flyhpc.cli import cli

SCREEN = """
[screen]
t_run_s = 0.2
n_run = 2
by = "index"
backend = "native"
[base]
rate_hz = 150
[axes]
activate_each = [3, 4, 5]
"""
HEADER = re.compile(r"^screen s \((?P<path>\S+)\): 3 experiment\(s\) x 2 trial\(s\) x 0\.2 s on native, silence_mode "
                    r"both, seed 0; connectome (?P<source>\S+); plan sha256 (?P<sha>[0-9a-f]{12})$")


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "400"})  # one line per message


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from tests.integration.test_quick_grid import write_tiny_connectome

    root = tmp_path_factory.mktemp("screen")
    (root / "s.toml").write_text(SCREEN)
    mp = pytest.MonkeyPatch()
    mp.setenv("FLYHPC_THREADS", "1")
    yield {"screen": root / "s.toml", "conn": write_tiny_connectome(root / "conn", n_neurons=300, n_edges=5000, seed=2),
           "results": root / "results"}
    mp.undo()


def _screen(env, command, *extra, label="sc"):
    return _invoke("screen", command, env["screen"], "--run-label", label, "--connectome", env["conn"],
                   "--results-root", env["results"], *extra)


def _tasks_in_title(output: str) -> tuple[int, int]:
    found = re.search(r"(\d+) task\(s\) in \d+ array\(s\) on local \(local\); (\d+) already done", output)
    assert found, output
    return int(found.group(1)), int(found.group(2))


def test_plan_shows_the_screen_and_its_chunks_and_writes_nothing(env):
    out = _screen(env, "plan")
    assert out.exit_code == 0, out.output
    header = HEADER.match(out.output.splitlines()[0])
    assert header and header.group("path") == str(env["screen"]), out.output
    assert _tasks_in_title(out.output) == (1, 0)
    assert _tasks_in_title(_screen(env, "plan", "--max-per-task", "1").output) == (3, 0)
    dry = _screen(env, "submit", "--dry-run", "--max-per-task", "1")
    assert dry.exit_code == 0 and dry.output == _screen(env, "plan", "--max-per-task", "1").output
    assert not env["results"].exists()


@pytest.mark.parametrize("extra, message", [
    (["--task-minutes", "0"], "Invalid value for --task-minutes: 0.0: must be > 0"),
    (["--max-per-task", "0"], "Invalid value for '--max-per-task'"),
    (["--parallel", "0"], "Invalid value for '--parallel'"),
    (["--profile", "nope"], "nope"),
])
def test_bad_flags_are_refused(env, extra, message):
    out = _screen(env, "plan", *extra)
    assert out.exit_code == 2 and message in out.output, out.output
    assert not env["results"].exists()


def test_an_unknown_screen_is_named(env):
    out = _invoke("screen", "plan", "no-such-screen", "--run-label", "x", "--connectome", env["conn"],
                  "--results-root", env["results"])
    assert out.exit_code == 2 and "no-such-screen" in out.output and out.output.startswith("Error: ")


@pytest.fixture(scope="module")
def submitted(env):
    out = _screen(env, "submit", "--max-per-task", "2", "--watch")
    assert out.exit_code == 0, out.output
    return out


def test_submit_queues_the_chunks_and_watch_follows_them_to_the_end(env, submitted):
    assert HEADER.match(submitted.output.splitlines()[0])
    assert _tasks_in_title(submitted.output) == (2, 0)
    said = re.search(r"submitted 2 chunk task\(s\): job\(s\) (\S+); follow with `flyhpc status sc`, then "
                     r"`flyhpc collect sc`", submitted.output)
    assert said, submitted.output
    assert re.search(r"experiments .* 3 / 3", submitted.output)  # --watch ran status to its end


def test_status_counts_chunks_and_experiments(env, submitted):
    out = _invoke("screen", "status", "sc", "--results-root", env["results"])
    assert out.exit_code == 0, out.output
    row = next(line for line in out.output.splitlines() if line.startswith("│ native"))
    assert [c.strip() for c in row.split("│")[1:-1]][3] == "2"  # the done column
    assert re.search(r"experiments .* 3 / 3", out.output)


def test_collect_merges_and_ranks_the_effects(env, submitted):
    out = _invoke("screen", "collect", "sc", "--results-root", env["results"])
    assert out.exit_code == 0, out.output
    assert "largest paired effects on " in out.output and "sc: 2 planned task(s): 2 done" in out.output
    label = env["results"] / "sc"
    for name in ("screen.parquet", "experiments.csv", "effects.csv"):
        assert f"wrote {label / name}" in out.output
    effects = pd.read_csv(label / "effects.csv", keep_default_na=False)
    ranked = [line.split("│")[2].strip() for line in out.output.splitlines() if re.match(r"^│\s+\d+ │", line)]
    assert ranked == list(effects["experiment_name"])
    refused = _invoke("collect", "sc", "--results-root", env["results"], "--global-csv", env["results"] / "g.csv")
    assert refused.exit_code == 2 and "a screen label has no benchmark rows to upsert" in refused.output


def test_a_second_submit_finds_every_chunk_done(env, submitted):
    out = _screen(env, "submit", "--max-per-task", "2")
    assert out.exit_code == 0, out.output
    assert _tasks_in_title(out.output) == (0, 2)
    assert out.output.rstrip().endswith("every chunk of sc is done; `flyhpc collect sc` merges them")
