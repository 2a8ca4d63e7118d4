"""README's capability table and DESIGN §4's import layers are drawn from the code by one command
(scripts/generate_docs.py), and the committed docs are current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_docs_are_what_the_code_generates():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "generate_docs.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_names_a_stale_block(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_docs", REPO / "scripts" / "generate_docs.py")
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    design = (REPO / "docs" / "DESIGN.md").read_text()
    stale = docs.with_layers_block(design, "```\nflyhpc/ import layers, old\n```\n")
    assert "old" in stale and stale != design
    assert docs.with_layers_block(stale, docs._import_layers().markdown(docs._import_layers().graph())) == design
