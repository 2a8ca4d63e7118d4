"""The plan file: what a chunk reads back is exactly what was planned, the bytes are stable, a changed file is refused."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from flyhpc.errors import DataError
from flyhpc.screens import load_screen, plan_experiments
from flyhpc.results.parquet import parquet_bytes
from flyhpc.screens.plan_file import _IDS, PLAN_SCHEMA, _screen_json, plan_bytes, read_plan, write_plan

SCREEN = """
[screen]
t_run_s = 0.1
n_run = 2
seed = 4
by = "index"
silence_mode = "outgoing"
readout = [5, 6]
[base]
activate = [0, 1]
rate_hz = 120.0
activate2 = [7]
rate2_hz = 30.0
[axes]
silence_each = [10, 11, 12]
rate_hz = [100.0, 200.0]
"""


def test_a_plan_reads_back_as_planned_in_slices(tmp_path, conn, write_screen):
    screen = load_screen(str(write_screen(SCREEN)))
    exps = plan_experiments(screen, conn)
    content = plan_bytes(screen, exps)
    assert plan_bytes(screen, exps) == content  # deterministic
    sha = write_plan(tmp_path / "plan.parquet", content)
    assert sha == hashlib.sha256(content).hexdigest()
    whole = read_plan(tmp_path / "plan.parquet", sha)
    assert whole.screen == screen and whole.n_total == len(exps) == 7 and whole.base_key == exps[0].key
    assert whole.experiments == tuple(exps)  # keys, names and experiments (sets, rates, mode) equal
    part = read_plan(tmp_path / "plan.parquet", sha, 2, 5)
    assert part.experiments == tuple(exps[2:5]) and part.first == 2
    assert [e.experiment.digest()[:16] for e in part.experiments] == [e.key for e in part.experiments]


def test_plan_bytes_are_those_of_one_list_per_row(conn, write_screen):
    """The plan's list columns are built from flat values and offsets: the very bytes of the row-by-row arrays they
    replaced (plans written before keep their sha256, so their labels' identities hold)."""
    screen = load_screen(str(write_screen(SCREEN)))
    exps = plan_experiments(screen, conn)
    x = [e.experiment for e in exps]
    table = pa.Table.from_arrays([
        pa.array([e.key for e in exps], pa.string()), pa.array([e.name for e in exps], pa.string()),
        pa.array([list(e.activate) for e in x], _IDS), pa.array([e.rate_hz for e in x], pa.float64()),
        pa.array([list(e.activate2) for e in x], _IDS), pa.array([e.rate2_hz for e in x], pa.float64()),
        pa.array([list(e.silence) for e in x], _IDS)], schema=PLAN_SCHEMA)
    assert any(len(e.activate) > 1 for e in x) and any(e.silence for e in x) and all(e.activate2 for e in x)
    assert exps[0].name.endswith(": base")
    assert plan_bytes(screen, exps) == parquet_bytes(table, {"flyhpc.screen": _screen_json(screen, exps[0].key)})


def test_a_changed_or_short_plan_is_refused(tmp_path, conn, write_screen):
    screen = load_screen(str(write_screen(SCREEN)))
    content = plan_bytes(screen, plan_experiments(screen, conn))
    sha = write_plan(tmp_path / "plan.parquet", content)
    with pytest.raises(DataError, match="experiments 5..9 asked, the plan has 7"):
        read_plan(tmp_path / "plan.parquet", sha, 5, 9)
    (tmp_path / "plan.parquet").write_bytes(content[:-1] + b"x")
    with pytest.raises(DataError, match="is not the planned"):
        read_plan(tmp_path / "plan.parquet", sha)
    with pytest.raises(DataError, match="cannot read it"):
        read_plan(tmp_path / "nope.parquet", sha)


def test_of_is_kept_where_set_and_absent_elsewhere(write_screen):
    """A most_active axis ranked by a preset keeps `of` in the plan; a screen without it writes no `of` key, so
    every plan written before `of` existed keeps its bytes (and its label's identity)."""
    import json

    from flyhpc.screens.plan_file import _screen_from, _screen_json

    plain = load_screen(str(write_screen(SCREEN)))
    assert '"of"' not in _screen_json(plain, "")
    ranked = load_screen(str(write_screen("[screen]\nt_run_s = 0.2\n[axes]\n"
                                          "activate_each = {most_active = 4, of = \"sugar\"}\nrate_hz = [50.0]\n",
                                          "ranked")))
    text = _screen_json(ranked, "")
    assert _screen_from(json.loads(text)["screen"]) == ranked and ranked.activate_each.of == "sugar"
