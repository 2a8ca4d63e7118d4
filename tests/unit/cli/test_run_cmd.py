"""`flyhpc run` (flyhpc/cli/run_cmd.py): how the experiment flags are parsed (preset or --activate, id lists,
--option KEY=VALUE), what the summary renders (phases table, top-N neurons, the files, the SYNTHETIC banner)
and the one-line refusals. Real runs of the native backend on tiny connectomes; the outputs themselves are
tested in tests/integration/test_run_cli.py."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from flyhpc.cli import cli

STEM = "native_t0.2s_n2"


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    from tests.integration.test_quick_grid import write_tiny_connectome

    return write_tiny_connectome(tmp_path_factory.mktemp("run") / "conn")


def _run(*args):
    return CliRunner().invoke(cli, ["run", *(str(a) for a in args)])


def _native(conn, out, *args):
    return _run("--backend", "native", "--connectome", conn, "--t-run", "0.2", "--n-run", "2", "--threads", "1",
                "--out", out, *args)


def _table_rows(output: str, title: str) -> list[list[str]]:
    """The body rows of the rich table whose title line contains `title`."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append([c.strip() for c in line.split("│")[1:-1]])
    return rows


def test_the_summary_renders_the_record_the_top_neurons_and_the_files(conn, tmp_path):
    out = tmp_path / "out"
    res = _native(conn, out, "--by", "index", "--activate", "0 1,2", "--rate", "200", "--top", "3")
    assert res.exit_code == 0, res.output
    record = json.loads((out / f"{STEM}.json").read_text())
    assert record["driven_neurons"] == [0, 1, 2]  # commas and spaces both separate ids
    (phases,) = _table_rows(res.output, "native · custom · 0.2 s × 2")
    assert phases[:2] == [str(record["spikes"]), str(record["active_neurons"])]
    rates = pd.read_csv(out / f"{STEM}_rates.csv")
    top = _table_rows(res.output, "top 3 neurons by rate")
    assert len(top) == 3
    assert [row[:3] for row in top] == [[str(r.neuron_index), str(r.flywire_id), f"{r.rate_mean_hz:.1f}"]
                                        for r in rates.head(3).itertuples()]
    assert res.output.rstrip().splitlines()[-3:] == [f"spikes: {out / STEM}.parquet", f"rates:  {out / STEM}_rates.csv",
                                                     f"record: {out / STEM}.json"]
    assert "SYNTHETIC" not in res.output


def test_a_synthetic_connectome_gets_the_banner(tmp_path):
    made = CliRunner().invoke(cli, ["data", "synth", "--neurons", "60", "--edges", "400", "--seed", "3",
                                    "--out", str(tmp_path / "syn")])
    assert made.exit_code == 0, made.output
    res = _native(tmp_path / "syn", tmp_path / "out", "--by", "index", "--activate", "0,1", "--rate", "200")
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "out" / f"{STEM}.json").read_text())
    assert record["synthetic_connectome"] is True
    assert " ".join(res.output.split()).startswith(f"SYNTHETIC connectome ({record['connectome_source']}): not the "
                                                   "real FlyWire data; run `flyhpc data fetch` for the real files.")


def test_options_are_read_as_json_else_as_text(conn, tmp_path):
    res = _native(conn, tmp_path / "o", "--by", "index", "--activate", "0", "--rate", "100",
                  "--option", "engine=clock", "--option", "clock_on=0.25")
    assert res.exit_code == 0, res.output
    options = json.loads((tmp_path / "o" / f"{STEM}.json").read_text())["backend_options"]
    assert options["engine"] == "clock" and options["clock_on"] == 0.25


def test_silence_and_its_mode_reach_the_record(conn, tmp_path):
    res = _native(conn, tmp_path / "s", "--by", "index", "--activate", "0", "--rate", "100", "--silence", "5,6",
                  "--silence-mode", "outgoing")
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "s" / f"{STEM}.json").read_text())
    assert record["silenced_neurons"] == [5, 6] and record["silence_mode"] == "outgoing"


@pytest.mark.parametrize("args, message", [
    (["--experiment", "sugar", "--activate", "1", "--rate", "5"],
     "give either an experiment preset (--experiment, experiment=) or neurons to activate (--activate, activate=)"),
    (["--activate", "1"], "neurons to activate need a rate in Hz (--rate HZ, rate_hz=)"),
    (["--activate", "1,x", "--rate", "5"], "'1,x': expected integers separated by commas or spaces"),
    (["--by", "index", "--activate", "1", "--rate", "5", "--option", "engine"], "expected KEY=VALUE, got 'engine'"),
    (["--by", "index", "--activate", "1", "--rate", "5", "--option", "=1"], "expected KEY=VALUE, got '=1'"),
    (["--experiment", "walking"], "unknown experiment"),
    (["--activate", "123456789", "--rate", "5"], "FlyWire id 123456789 not in the connectome"),
    ([], "not in the connectome"),  # the default experiment is sugar, whose ids a tiny connectome lacks
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(conn, tmp_path, args, message):
    res = _native(conn, tmp_path / "bad", *args)
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "bad").exists()


def test_only_registered_backends_are_offered(conn, tmp_path):
    res = _run("--backend", "brian9", "--connectome", conn, "--out", tmp_path / "x")
    assert res.exit_code == 2 and "Invalid value for '--backend'" in res.output and "native" in res.output
