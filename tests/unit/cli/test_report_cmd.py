"""`flyhpc report LABEL` and `flyhpc compare paper` (flyhpc/cli/report_cmd.py): what they print and write,
and their refusals (one line, exit 2; exit 3 without matplotlib). The labels are the report tests' generated
ones (tests/unit/report/conftest.py: real parquets, collected); the page itself is tested in
tests/unit/report/test_page.py."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from flyhpc.cli import cli

from tests.unit.report.conftest import LABEL, make_label


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """results root holding `lab` (partial: 22 of 24 done), collected."""
    root = tmp_path_factory.mktemp("results")
    make_label(root, LABEL)
    return root


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_writes_the_report_and_says_partial(bundle, tmp_path):
    res = _run("report", LABEL, "--results-root", bundle, "--out", tmp_path / "r", "--point", "0.05,1",
               "--activity", "round_01/native_t0.1s_n1")
    assert res.exit_code == 0, res.output
    assert "partial bundle: 22 of 24 planned tasks done" in res.output
    said = re.search(r"wrote (\S+) and (\d+) figure and table files in [\d.]+ s", " ".join(res.output.split()))
    assert said and said.group(1).endswith("report.html"), res.output
    written = [p for p in (tmp_path / "r").rglob("*") if p.suffix in (".png", ".svg", ".csv")]
    assert int(said.group(2)) == len(written) > 0
    text = (tmp_path / "r" / "report.html").read_text()
    assert "where the time goes: t_run = 0.05 s, n_run = 1" in text and "round_01/native_t0.1s_n1 (native (CPU)" in text


@pytest.mark.parametrize("args, message", [
    (["nope"], "unknown run label 'nope'"),
    ([LABEL, "--reference", "no-such-ref"], "--reference no-such-ref: no such label under"),
    ([LABEL, "--reference", LABEL], f"--reference {LABEL}: that is the label being reported"),
    ([LABEL, "--point", "7,7"], "--point 7,7: no done task of lab ran it"),
    ([LABEL, "--point", "x"], "--point 'x': expected T_RUN,N_RUN"),
    ([LABEL, "--activity", "round_01/zzz"], "--activity round_01/zzz: not a done task of lab"),
])
def test_cli_bad_input_is_one_line_and_exit_2(bundle, args, message):
    res = _run("report", "--results-root", bundle, *args)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]


def test_cli_rejects_a_wrong_schema_reference_csv(bundle, tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    res = _run("report", LABEL, "--results-root", bundle, "--reference", bad)
    assert res.exit_code == 2 and "column 1 is 'a', expected 'framework'" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_cli_without_matplotlib_says_how_to_install_it(bundle, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    # a stand-in for an environment without matplotlib: the only way to have one next to an installed copy
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    res = _run("report", LABEL, "--results-root", bundle)
    assert res.exit_code == 3 and "pip install 'flyhpc[report]'" in res.output


def test_cli_compare_paper_writes_its_comparison(examples_dir, tmp_path):
    make_label(tmp_path, "lab", failures=False)
    res = _run("compare", "paper", "--run-label", "lab", "--results-root", tmp_path, "--examples", examples_dir)
    assert res.exit_code == 0, res.output
    out = tmp_path / "lab" / "comparisons"
    assert (out / "paper-examples-comparison.json").is_file() and (out / "paper-examples-distributions.csv").is_file()
    assert "synthetic connectome" in res.output and "sugarR.parquet" in res.output
    res = _run("compare", "paper", "--run-label", "lab", "--results-root", tmp_path, "--examples", tmp_path)
    assert res.exit_code == 2 and "run `flyhpc data fetch --examples`" in res.output


def test_compare_paper_without_examples_names_the_fetch(bundle, tmp_path):
    res = _run("compare", "paper", "--run-label", LABEL, "--results-root", bundle, "--examples", tmp_path / "none")
    assert res.exit_code == 2
    assert res.output == (f"Error: no paper example files in {tmp_path / 'none'}; run `flyhpc data fetch --examples` "
                          "or pass --examples\n")
