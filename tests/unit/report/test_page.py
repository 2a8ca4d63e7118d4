"""The written report: valid self-contained HTML5 (html5lib strict parse, unique ids, no external resource), the
page's numbers equal to the CSVs, banners for a synthetic connectome and a partial bundle, failures first,
every figure as PNG + SVG and table as CSV, stale files removed (the `flyhpc report` command's messages and exit
codes: tests/unit/cli/test_report_cmd.py)."""

from __future__ import annotations

import csv
import re

import html5lib
import pytest

from flyhpc.bundle import BundlePaths
from flyhpc.report.build import build_report
from flyhpc.report.tables import fmt

from .conftest import LABEL

NS = {"h": "http://www.w3.org/1999/xhtml"}
FIGURES = ("speed", "batching", "phases", "parity", "activity")
TABLES = ("speed", "phases", "parity", "activity-top-neurons", "health", "references")


@pytest.fixture(scope="module")
def report(bundle):
    result = build_report(bundle, LABEL, references=["seed-rtx4070", "full"])
    return result, result.html.read_text()


def _tree(text: str):
    return html5lib.HTMLParser(strict=True).parse(text)  # raises ParseError on any HTML5 parse error


def _table(tree, caption_start: str) -> tuple[list[str], list[list[str]]]:
    for table in tree.iter(f"{{{NS['h']}}}table"):
        caption = table.find("h:caption", NS)
        if caption is not None and "".join(caption.itertext()).startswith(caption_start):
            heads = ["".join(th.itertext()) for th in table.findall("h:thead/h:tr/h:th", NS)]
            rows = [["".join(td.itertext()) for td in tr.findall("h:td", NS)]
                    for tr in table.findall("h:tbody/h:tr", NS)]
            return heads, rows
    raise AssertionError(f"no table captioned {caption_start!r}")


def test_page_is_valid_html5_with_unique_ids_and_no_external_resource(report):
    _, text = report
    tree = _tree(text)
    assert text.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    ids = [el.get("id") for el in tree.iter() if el.get("id") is not None]
    assert len(ids) == len(set(ids)) and len(ids) > 50  # every inline SVG's ids are prefixed per figure
    assert all(ids) and not [i for i in ids if re.search(r"\s", i)]  # HTML5: ids non-empty, no whitespace
    for el in tree.iter():
        for attr in ("src", "href", "{http://www.w3.org/1999/xlink}href", "xlink:href"):
            value = el.get(attr)
            assert value is None or value.startswith(("#", "data:")), (el.tag, attr, value)
    assert not re.search(r"<(script|link|iframe|object|embed)\b", text, re.I)
    assert not re.search(r"@import|url\((?!#)", text)
    outside_namespaces = re.sub(r'xmlns(:xlink)?="http://www\.w3\.org/[^"]+"', "", text)
    assert not re.search(r"https?://", outside_namespaces)
    assert tree.find(".//h:title", NS).text == f"flyhpc report: {LABEL}"
    assert len(tree.findall(".//h:h1", NS)) == 1 and len(tree.findall(".//{http://www.w3.org/2000/svg}svg")) == 5


def test_banners_say_synthetic_and_partial(report):
    _, text = report
    banners = [" ".join("".join(p.itertext()).split()) for p in _tree(text).iter(f"{{{NS['h']}}}p")
               if "banner" in (p.get("class") or "")]
    assert banners[0].startswith("SYNTHETIC connectome (synthetic:60n:900e:seed1)")
    assert banners[1].startswith("Partial bundle: 22 of 24 planned tasks done (1 failed, 1 missing).")


def test_page_numbers_equal_the_csvs(report, bundle):
    result, text = report
    tree = _tree(text)
    heads, rows = _table(tree, "Speed per grid point")
    col = {h: i for i, h in enumerate(heads)}
    csv_rows = list(csv.DictReader(open(BundlePaths(bundle, LABEL).results_csv)))
    single = [r for r in csv_rows if r["backend_key"] == "native" and r["t_run"] == "0.1" and r["n_run"] == "2"]
    assert len(single) == 1  # round 2 of it is missing: its median is its only value
    (row,) = [r for r in rows if r[col["source"]] == LABEL and r[col["backend"]] == "native"
              and r[col["t_run (s)"]] == "0.1" and r[col["n_run"]] == "2"]
    assert row[col["sim median (s)"]] == fmt(float(single[0]["sim_time"]))
    assert row[col["total median (s)"]] == fmt(float(single[0]["total_time"]))
    assert row[col["rounds"]] == "1"
    speed_csv = list(csv.DictReader(open(result.out_dir / "speed.csv")))
    assert len(rows) == len(speed_csv)
    for html_row, csv_row in zip(rows, speed_csv):
        assert html_row[col["sim median (s)"]] == fmt(float(csv_row["sim_median_s"]))
        assert html_row[col["sim s per simulated s"]] == fmt(float(csv_row["sim_s_per_sim_s"]))
    ref = [r for r in rows if r[col["source"]] == "seed RTX 4070" and r[col["backend"]] == "genn"
           and r[col["t_run (s)"]] == "100" and r[col["n_run"]] == "32"]
    assert ref and ref[0][col["sim median (s)"]] == "2309"
    heads, prows = _table(tree, "Parity per task")
    parity_csv = list(csv.DictReader(open(result.out_dir / "parity.csv")))
    assert [r[heads.index("backend spikes")] for r in prows] == [fmt(int(r["spikes_backend"])) for r in parity_csv]
    assert {r[heads.index("identical spikes")] for r in prows} == {"yes", "no"}


def test_health_lists_every_task_failures_first_and_the_provenance(report):
    _, text = report
    tree = _tree(text)
    heads, rows = _table(tree, "Every planned task")
    assert len(rows) == 24
    assert [(r[0], r[2], r[5]) for r in rows[:2]] == [
        ("round_02/native_t0.1s_n2", "missing", "no task record"),
        ("round_02/pytorch_t0.05s_n1", "failed", "error: RuntimeError: out of luck")]
    assert {r[2] for r in rows[2:]} == {"done"} and rows[2][3] == "node-a"
    _, prov = _table(tree, "Provenance")
    items = dict((r[0], r[1]) for r in prov)
    assert items["synthetic connectome"] == "yes" and items["flyhpc version"] == "0.1.0"
    assert items["connectome"].startswith("synthetic:60n:900e:seed1 (sha256 abababab")
    assert items["hosts"] == "node-a (cpu) × 15, node-b (cpu) × 8"  # every record, the failed task's too


def test_every_figure_and_table_is_a_file_and_nothing_else_is_left(report):
    result, _ = report
    names = {p.name for p in result.out_dir.iterdir()}
    assert {f"{f}.{ext}" for f in FIGURES for ext in ("png", "svg")} <= names
    assert {f"{t}.csv" for t in TABLES} <= names and "report.html" in names
    assert not [n for n in names if n.startswith(".")]  # no temporary file left behind
    assert set((result.out_dir / "files.txt").read_text().split()) == names - {"files.txt"}
    assert result.partial and (result.done, result.planned) == (22, 24)


def test_a_second_report_removes_what_it_no_longer_makes(bundle, tmp_path):
    out = tmp_path / "rep"
    build_report(bundle, "full", out, references=["seed-rtx4070"])
    (out / "mine.txt").write_text("not the report's")
    assert (out / "references.csv").is_file()
    second = build_report(bundle, "full", out)
    assert not (out / "references.csv").exists() and (out / "mine.txt").is_file()
    assert not second.partial and "Complete: all 24 planned tasks done." in second.html.read_text()


def test_the_paper_section_on_a_synthetic_label(bundle, tmp_path, examples_dir):
    result = build_report(bundle, "full", tmp_path / "rep", references=[str(examples_dir)])
    text = result.html.read_text()
    tree = _tree(text)
    section = tree.find(".//h:section[@id='paper']", NS)
    words = " ".join("".join(section.itertext()).split())
    assert "per-neuron parity with the paper is meaningless" in words
    heads, rows = _table(tree, "Rate distributions")
    assert [r[0] for r in rows][1:] == [f"paper: {n}" for n in (
        "sugarR.parquet", "sugarR_100Hz.parquet", "sugarR-720575940617937543.parquet",
        "sugarR-720575940621754367.parquet", "sugarR-720575940622695448.parquet")]
    assert rows[1][heads.index("spikes per trial-s")] == "1.705e+04" or rows[1][heads.index("spikes per trial-s")] == \
        fmt(17052.2)
    assert (result.out_dir / "paper.svg").is_file() and (result.out_dir / "paper-examples-comparison.json").is_file()
