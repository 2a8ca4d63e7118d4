"""The capability table: one row per registered backend from its caps; Markdown and CLI agree."""

from __future__ import annotations

from click.testing import CliRunner

from flyhpc import backends
from flyhpc.cli import cli
from flyhpc.cli.backends_cmd import COLUMNS, capability_rows, render_markdown


def test_rows_follow_registry_and_caps():
    rows = capability_rows()
    assert [r["backend"] for r in rows] == backends.names()
    for row in rows:
        caps = backends.get(row["backend"]).caps
        assert row["image"].startswith("flyhpc-") and row["device"] == caps.device and row["verified here"] == caps.verified_here
        assert row["verified here"] in ("yes", "CPU mode only", "code generation only", "not run here")


def test_gpu_backends_are_honestly_labelled():
    rows = {r["backend"]: r for r in capability_rows()}
    for key in ("genn", "nestgpu", "brian2genn", "brian2cuda"):
        assert rows[key]["device"] == "gpu" and rows[key]["verified here"] != "yes"


def test_markdown_has_header_and_one_line_per_backend():
    md = render_markdown().splitlines()
    assert md[0] == "| " + " | ".join(COLUMNS) + " |"
    assert len(md) == 2 + len(backends.names())


def test_cli_markdown_equals_render_and_table_probes():
    runner = CliRunner()
    out = runner.invoke(cli, ["backends", "--markdown"])
    assert out.exit_code == 0 and out.output == render_markdown()
    table = runner.invoke(cli, ["backends"], env={"COLUMNS": "300"})
    assert table.exit_code == 0 and "genn" in table.output and "available" in table.output


def test_readme_table_matches_code():
    from pathlib import Path

    readme = Path(__file__).resolve().parents[3] / "README.md"
    assert render_markdown() in readme.read_text()
