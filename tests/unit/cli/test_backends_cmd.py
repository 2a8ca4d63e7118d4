"""The capability table: one row per registered backend from its caps; Markdown, CLI and the README's
generated block agree (regenerate the README's with `flyhpc backends --readme README.md`)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flyhpc import backends
from flyhpc.cli import cli
from flyhpc.cli.backends_cmd import (COLUMNS, README_BEGIN, README_END, capability_rows, readme_table,
                                     render_markdown, with_readme_table)
from flyhpc.errors import ConfigError


def test_rows_follow_registry_and_caps():
    rows = capability_rows()
    assert [r["backend"] for r in rows] == backends.names()
    for row in rows:
        caps = backends.get(row["backend"]).caps
        assert row["image"].startswith("flyhpc-") and row["device"] == caps.device and row["verified here"] == caps.verified_here
        assert row["verified here"] in ("yes", "CPU mode only", "code generation only", "build only", "not run here")


def test_gpu_backends_are_honestly_labelled():
    rows = {r["backend"]: r for r in capability_rows()}
    for key in ("genn", "nestgpu", "brian2genn", "brian2cuda"):
        assert rows[key]["device"] == "gpu" and rows[key]["verified here"] != "yes"
    assert rows["nestgpu"]["verified here"] == "build only"  # built and linked with user_m1; never simulated


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
    assert "`flyhpc check` verifies the backends available where you run it" in " ".join(table.output.split())


def test_readme_table_matches_code():
    from pathlib import Path

    readme = Path(__file__).resolve().parents[3] / "README.md"
    block = readme_table(readme.read_text())
    assert block is not None, f"README.md lost its generated table ({README_BEGIN} ... {README_END})"
    assert block == render_markdown(), (
        "README.md's backends table differs from the backends' caps; regenerate it with "
        "`.venv/bin/python -m flyhpc backends --readme README.md`")


def test_readme_block_is_rewritten_in_place(tmp_path):
    text = f"intro\n\n{README_BEGIN}\n| stale |\n{README_END}\n\nafter\n"
    fresh = with_readme_table(text, render_markdown())
    assert fresh == f"intro\n\n{README_BEGIN}\n{render_markdown()}{README_END}\n\nafter\n"
    assert readme_table(fresh) == render_markdown() and with_readme_table(fresh, render_markdown()) == fresh
    readme = tmp_path / "README.md"
    readme.write_text(text)
    out = CliRunner().invoke(cli, ["backends", "--readme", str(readme)])
    assert out.exit_code == 0, out.output
    assert readme.read_text() == fresh
    with pytest.raises(ConfigError, match="backends-table:begin"):
        with_readme_table("no markers here\n", render_markdown())
