"""A screen label whose plan file is damaged or lost: status (cheap and deep), collect and verify say so, and
`resubmit` rewrites the plan from the screen file when that gives the planned sha256 (else names what to run).
The label is submitted for real with the debug executor (every chunk runs at submit, in-process)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flyhpc import collect
from flyhpc.bundle import BundlePaths
from flyhpc.cli import cli
from flyhpc.cluster.profiles import load_profile
from flyhpc.cluster.status import EXIT_DONE, EXIT_UNFINISHED, status
from flyhpc.errors import DataError
from flyhpc.cluster.submission import load_submission
from flyhpc.screens.replan import repair_plan
from flyhpc.screen_submission import plan_screen, submit_screen

from tests.unit.screens.test_spec import GOOD


@pytest.fixture()
def label(tmp_path, conn_dir, write_screen, monkeypatch):
    monkeypatch.chdir(tmp_path)
    screen = write_screen(GOOD)
    (tmp_path / "debug.toml").write_text('[cluster]\nexecutor = "debug"\n')
    profile = load_profile(str(tmp_path / "debug.toml"))
    sub = plan_screen(screen.name, "lab", "results", profile, connectome=str(conn_dir), max_per_task=2)
    submit_screen(sub)
    assert status("results", "lab").exit_code == EXIT_DONE
    return screen, BundlePaths("results", "lab")


def _cli(*args):
    return CliRunner().invoke(cli, [*args, "--results-root", "results"])


def test_a_damaged_plan_is_seen_by_status_collect_verify_and_resubmit_repairs_it(label):
    screen, paths = label
    good = paths.screen_plan.read_bytes()
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0x01
    paths.screen_plan.write_bytes(bytes(damaged))
    for args in (["status", "lab"], ["status", "lab", "--deep"]):
        out = _cli(*args)
        assert out.exit_code == EXIT_UNFINISHED and "damaged screen-plan.parquet: sha256" in out.output, out.output
    report = collect.collect("results", "lab")
    assert report.exit_code == EXIT_UNFINISHED and not paths.screen_rates.exists()
    assert "screen-plan.parquet" not in paths.checksums.read_text()
    assert collect.verify("results", "lab").exit_code == 5
    out = _cli("resubmit", "lab")
    assert out.exit_code == 0 and "rewrote" in out.output and "nothing to resubmit" in out.output, out.output
    assert paths.screen_plan.read_bytes() == good
    assert collect.collect("results", "lab").exit_code == EXIT_DONE and collect.verify("results", "lab").exit_code == 0


def test_a_lost_plan_whose_screen_changed_is_not_guessed(label):
    screen, paths = label
    paths.screen_plan.unlink()
    assert status("results", "lab").damaged[0][1].startswith("missing")
    screen.write_text(screen.read_text().replace("rate_hz = 150.0", "rate_hz = 151.0"))
    with pytest.raises(DataError, match="planning .* again gives sha256 .* not the planned .*flyhpc screen submit"):
        repair_plan("results", "lab", load_submission("results", "lab"))
    out = _cli("resubmit", "lab")
    assert out.exit_code == 2 and not paths.screen_plan.exists(), out.output
