"""The options `bench` and `submit` share (flyhpc/cli/options.py), seen through `submit --dry-run` and
`bench`: which grid (--paper, --grid, the quick default), the flags that replace its values, the input
checks before anything is queued, and the --results-root default."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from flyhpc.cli import cli

EXP = "index:0,1,2@200"


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    from tests.integration.test_quick_grid import write_tiny_connectome

    return write_tiny_connectome(tmp_path_factory.mktemp("options") / "conn")


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _planned(tmp_path, conn, *args) -> int:
    """The number of tasks `submit --dry-run` plans for these grid flags (its title line)."""
    out = _invoke("submit", "--dry-run", "--backend", "native", "--run-label", "opt", "--results-root", tmp_path,
                  "--connectome", conn, *args)
    assert out.exit_code == 0, out.output
    found = re.search(r"opt: (\d+) task\(s\) in (\d+) array\(s\)", out.output)
    assert found, out.output
    assert not (tmp_path / "opt").exists()  # a dry run writes no label
    return int(found.group(1))


def test_the_default_grid_is_quick_and_flags_replace_its_values(tmp_path, conn):
    assert _planned(tmp_path, conn) == 4  # quick: t_run 0.02 0.05 x n_run 1 2 x 1 round
    assert _planned(tmp_path, conn, "--grid", "quick") == 4
    assert _planned(tmp_path, conn, "--t-run", "0.02") == 2
    assert _planned(tmp_path, conn, "--t-run", "0.02", "--t-run", "0.03", "--t-run", "0.04", "--n-run", "3") == 3
    assert _planned(tmp_path, conn, "--rounds", "3") == 12
    assert _planned(tmp_path, conn, "--rounds", "3", "--round-start", "2") == 8
    assert _planned(tmp_path, conn, "--experiment", "index:5@100", "--seed", "7") == 4


def test_paper_is_the_paper_grid(tmp_path, conn):
    assert _planned(tmp_path, conn, "--paper", "--experiment", EXP) == 4 * 5 * 5  # t_run x n_run x rounds
    assert _planned(tmp_path, conn, "--paper", "--experiment", EXP, "--rounds", "1") == 20


def test_a_grid_file_path_is_read(tmp_path, conn):
    grid = tmp_path / "mine.toml"
    grid.write_text(f'[grid]\nbackends = ["native"]\nt_run_s = [0.01]\nn_run = [1, 2, 3]\nexperiment = "{EXP}"\n')
    assert _planned(tmp_path, conn, "--grid", grid) == 3


@pytest.mark.parametrize("args, message", [
    (["--paper", "--grid", "quick"], "give --paper or --grid, not both"),
    (["--grid", "nope"], "unknown grid 'nope'"),
    (["--run-label", "../up"], "run label"),
    (["--t-run", "-1"], "t_run"),
    (["--rounds", "1", "--round-start", "2"], "past the last round"),
    (["--experiment", "walking"], "unknown experiment"),
    (["--experiment", "index:0,4000@200"], "4000"),
    (["--backend", "brian9"], "unknown backend 'brian9'"),
])
@pytest.mark.parametrize("command", ["submit", "bench"])
def test_bad_grid_input_is_refused_before_anything_is_written(tmp_path, conn, command, args, message):
    base = ["--results-root", tmp_path / "res", "--connectome", conn, "--run-label", "bad"]
    if command == "bench":
        base += ["--executor", "inline"]
    else:
        base += ["--dry-run"]
    out = _invoke(command, "--backend", "native", *base, *args)
    assert out.exit_code == 2 and message in out.output, out.output
    assert out.output.startswith(("Error: ", "Usage: ")) and not (tmp_path / "res").exists()


def test_a_missing_connectome_folder_is_named(tmp_path):
    out = _invoke("submit", "--dry-run", "--backend", "native", "--run-label", "x", "--results-root", tmp_path,
                  "--connectome", tmp_path / "nowhere")
    assert out.exit_code == 2 and "nowhere" in out.output


def test_results_root_defaults_to_results_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in (["collect", "nolabel"], ["verify", "nolabel"], ["status", "nolabel"]):
        out = _invoke(*command)
        assert out.exit_code == 2 and "run label 'nolabel': results/nolabel" in out.output, out.output
    assert "[default: results]" in _invoke("collect", "--help").output
