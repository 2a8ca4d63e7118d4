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


def test_the_package_root_reexports_the_api_lazily():
    """`import flyhpc` loads no flyhpc module, no pandas and no simulator; `flyhpc.run` etc. load flyhpc.api on
    first use (PEP 562), which is why that edge is not an import the layer check sees."""
    code = ("import sys, flyhpc\n"
            "print(sorted(m for m in sys.modules if m.startswith(('flyhpc.', 'pandas', 'brian2', 'numba'))))\n"
            "import flyhpc.api\n"
            "assert flyhpc.run is flyhpc.api.run and flyhpc.open_bundle is flyhpc.api.open_bundle\n"
            "assert flyhpc.screen is flyhpc.api.screen and flyhpc.connectome is flyhpc.api.connectome\n"
            "assert flyhpc.MN9 == 720575940660219265 and 'water' in flyhpc.PRESETS\n"
            "assert set(flyhpc.__all__) <= set(dir(flyhpc)) and 'Examples' in flyhpc.run.__doc__\n"
            "try:\n    flyhpc.nope\nexcept AttributeError as exc:\n    print('refused', exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "[]"
    assert "refused module 'flyhpc' has no attribute 'nope'" in proc.stdout
