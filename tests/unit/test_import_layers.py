"""The package's import layers (scripts/import_layers.py): no cycle and no upward import, function-level
imports included, and docs/DESIGN.md §4 shows the layers as the code has them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _layers():
    spec = importlib.util.spec_from_file_location("import_layers", REPO / "scripts" / "import_layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_cycle_and_no_upward_import():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "import_layers.py")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no cycle, no upward import" in proc.stdout


def test_the_check_sees_function_level_imports_and_cycles():
    layers = _layers()
    edges = {"flyhpc.bundle": {"flyhpc.tasks"}, "flyhpc.tasks": {"flyhpc.bundle"}}
    found = layers.problems(edges)
    assert any("an upward import" in p and p.startswith("flyhpc.bundle") for p in found)
    assert any(p.startswith("import cycle: flyhpc.bundle -> flyhpc.tasks") for p in found)
    source = REPO / "flyhpc" / "bundle.py"
    assert "flyhpc.errors" in layers.imports(source, "flyhpc.bundle", set(layers.modules()))


def test_design_doc_shows_the_generated_layers():
    layers = _layers()
    block = layers.markdown(layers.graph())
    design = (REPO / "docs" / "DESIGN.md").read_text()
    assert block in design, ("docs/DESIGN.md §4 differs from the code's layers; regenerate the block with "
                             "`python scripts/import_layers.py --markdown`")


def test_only_the_cluster_package_names_submitit():
    outside = [str(p.relative_to(REPO)) for p in (REPO / "flyhpc").rglob("*.py")
               if "cluster" not in p.relative_to(REPO / "flyhpc").parts and "submitit" in p.read_text()]
    assert outside == [], f"submitit outside flyhpc/cluster/: {outside}"
