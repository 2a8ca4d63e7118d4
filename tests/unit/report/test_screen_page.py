"""`flyhpc report` of a screen label: a valid self-contained page of its paired effects, numbers from effects.csv,
significant heat-map cells marked, health and provenance; refused (exit 2) before the label is collected."""

from __future__ import annotations

import re

import html5lib
import pandas as pd
import pytest
from click.testing import CliRunner

from flyhpc import worker
from flyhpc.bundle import BundlePaths
from flyhpc.cli import cli
from flyhpc.collect import collect as collect_label
from tests.unit.screens.conftest import conn, conn_dir, write_screen  # noqa: F401 - fixtures
from flyhpc.cluster.profiles import load_profile
from flyhpc.cluster.submission import record_plan
from flyhpc.screens.plan_file import write_plan
from flyhpc.screen_submission import plan_screen

pytest.importorskip("matplotlib", reason="the report needs matplotlib (the report extra)")
NS = {"h": "http://www.w3.org/1999/xhtml"}


SCREEN = """
[screen]
t_run_s = 0.5
n_run = 8
by = "index"
silence_mode = "outgoing"
[base]
activate = [0, 1]
rate_hz = 150.0
[axes]
silence_each = { most_active = 3 }
"""


@pytest.fixture()
def screen_label(tmp_path, conn_dir, write_screen):  # noqa: F811 - fixtures
    sub = plan_screen(str(write_screen(SCREEN)), "lab", tmp_path / "results", load_profile("local"),
                      connectome=str(conn_dir), max_per_task=2)
    tasks = [t for a in sub.submit_plan.arrays for t in a.tasks]
    write_plan(BundlePaths(tmp_path / "results", "lab").screen_plan, sub.plan)
    record_plan(tasks)
    return tmp_path / "results", tasks


def _report(root):
    return CliRunner().invoke(cli, ["report", "lab", "--results-root", str(root)], catch_exceptions=False)


def test_an_uncollected_screen_is_refused_naming_collect(screen_label):
    root, tasks = screen_label
    worker.run(tasks[0])
    res = _report(root)
    assert res.exit_code == 2 and "flyhpc collect lab" in res.output


def test_the_screen_page(screen_label):
    root, tasks = screen_label
    for task in tasks:
        worker.run(task)
    assert collect_label(root, "lab").exit_code == 0
    res = _report(root)
    assert res.exit_code == 0, res.output
    out = BundlePaths(root, "lab").label_dir / "report"
    text = (out / "report.html").read_text()
    tree = html5lib.HTMLParser(strict=True).parse(text)
    ids = [el.get("id") for el in tree.iter() if el.get("id") is not None]
    assert len(ids) == len(set(ids))
    assert not re.search(r"<(script|link|iframe|object|embed)\b", text, re.I)
    assert tree.find(".//h:title", NS).text == "flyhpc screen report: lab"
    assert len(tree.findall(".//{http://www.w3.org/2000/svg}svg")) == 3  # effects, heat map, base
    for name in ("effects", "heatmap", "base"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.svg").is_file()
    effects = pd.read_csv(BundlePaths(root, "lab").screen_effects, keep_default_na=False)
    assert (out / "effects.csv").read_text() == BundlePaths(root, "lab").screen_effects.read_text()
    top = effects.iloc[0]
    assert top["experiment_name"] in text and f"{top['effect_hz']:.4g}" in text
    heat = pd.read_csv(out / "heatmap.csv")
    neurons = pd.read_parquet(BundlePaths(root, "lab").screen_neuron_effects)
    assert len(heat) == len(effects) - 1  # every experiment but the base
    marks = [g for g in tree.iter("{http://www.w3.org/2000/svg}g") if "heatmap--significant" in (g.get("id") or "")]
    n_marked = len(list(marks[0].iter("{http://www.w3.org/2000/svg}use")))
    shown = neurons[neurons["experiment_key"].isin(heat["experiment_key"]) & neurons["label"].isin(heat.columns)]
    assert n_marked == int(shown["significant"].sum()) > 0  # one dot per significant cell shown
    assert "Health and provenance" in text and "drive version" in text and "plan sha256" in text
