"""`flyhpc run` end to end on a tiny FlyWire-format connectome: outputs, record, summary, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from flyhpc.cli import cli
from flyhpc.files import sha256_file
from tests.integration.test_quick_grid import write_tiny_connectome

STEM = "native_t0.2s_n2"


@pytest.fixture()
def conn(tmp_path):
    return write_tiny_connectome(tmp_path / "conn")


def _run(args):
    return CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)


def test_run_writes_spikes_rates_and_record(tmp_path, conn):
    out = tmp_path / "out"
    res = _run(["--backend", "native", "--connectome", str(conn), "--by", "index", "--activate", "0,1,2",
                "--rate", "200", "--activate2", "5", "--rate2", "50", "--silence", "7",
                "--t-run", "0.2", "--n-run", "2", "--out", str(out), "--threads", "1"])
    assert res.exit_code == 0, res.output
    record = json.loads((out / f"{STEM}.json").read_text())
    spikes = pd.read_parquet(out / f"{STEM}.parquet")
    assert record["spikes"] == len(spikes) > 0
    assert record["parquet_sha256"] == sha256_file(out / f"{STEM}.parquet")
    assert set(record["phases_s"]) == {"load", "build", "setup", "sim", "collect", "write", "total"}
    assert record["dtype"] == "float64" and record["drive"] == "events" and record["trials"] == [0, 1]
    assert 7 not in set(spikes["neuron_index"])  # silenced: no input, no drive
    assert {0, 1, 2, 5} <= set(spikes["neuron_index"])
    rates = pd.read_csv(out / f"{STEM}_rates.csv")
    assert rates["spikes"].sum() == len(spikes)
    top = rates.iloc[0]
    assert top["rate_mean_hz"] == pytest.approx(top["spikes"] / (0.2 * 2))
    assert "top 10 neurons by rate" in res.output and str(int(top["flywire_id"])) in res.output


def test_existing_results_are_kept_and_bad_input_is_named(tmp_path, conn):
    out = tmp_path / "out"
    args = ["--backend", "native", "--connectome", str(conn), "--by", "index", "--activate", "0",
            "--rate", "100", "--t-run", "0.2", "--n-run", "2", "--out", str(out), "--threads", "1"]
    assert _run(args).exit_code == 0
    before = sha256_file(out / f"{STEM}.parquet")
    again = _run(args)
    assert again.exit_code == 2 and "results exist already" in again.output
    assert sha256_file(out / f"{STEM}.parquet") == before
    unknown = _run(["--backend", "native", "--connectome", str(conn), "--activate", "123456789", "--rate", "5",
                    "--out", str(tmp_path / "o2")])
    assert unknown.exit_code == 2 and "FlyWire id 123456789 not in the connectome" in unknown.output
    clash = _run(["--connectome", str(conn), "--by", "index", "--activate", "3", "--rate", "5", "--silence", "3",
                  "--out", str(tmp_path / "o3")])
    assert clash.exit_code == 2 and "3 both driven and silenced" in clash.output
    negative = _run(["--connectome", str(conn), "--by", "index", "--activate", "3", "--rate", "-5"])
    assert negative.exit_code == 2 and "got -5" in negative.output
    zero = _run(["--connectome", str(conn), "--experiment", "sugar", "--t-run", "0"])
    assert zero.exit_code == 2 and "t_run must be > 0" in zero.output
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_backend_options_reach_the_backend_and_the_record(tmp_path, conn, monkeypatch):
    base = ["--backend", "native", "--connectome", str(conn), "--by", "index", "--activate", "0,1,2", "--rate", "200",
            "--t-run", "0.2", "--n-run", "2", "--threads", "1"]
    monkeypatch.setenv("FLYHPC_BACKEND_OPTIONS", '{"native": {"engine": "clock", "clock_on": 0}}')
    res = _run([*base, "--out", str(tmp_path / "clock"), "--option", "clock_on=0.4"])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "clock" / f"{STEM}.json").read_text())
    assert record["backend_options"] == {"engine": "clock", "clock_on": 0.4, "clock_off": 0.1}
    lazy = _run([*base, "--out", str(tmp_path / "lazy"), "--option", "engine=lazy"])
    assert lazy.exit_code == 0, lazy.output
    # Both engines are exact: the same drive gives the same parquet.
    assert sha256_file(tmp_path / "clock" / f"{STEM}.parquet") == sha256_file(tmp_path / "lazy" / f"{STEM}.parquet")
    bad = _run([*base, "--out", str(tmp_path / "bad"), "--option", "engine"])
    assert bad.exit_code == 2 and "expected KEY=VALUE" in bad.output
    unknown = _run([*base, "--out", str(tmp_path / "bad"), "--option", "engines=clock"])
    assert unknown.exit_code == 2 and "no option 'engines'; its options: clock_off, clock_on, engine" in unknown.output
    assert not (tmp_path / "bad").exists()
