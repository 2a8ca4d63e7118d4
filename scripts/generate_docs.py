"""Regenerate the two blocks of the docs that are drawn from the code, or check that they are current.

- README.md: the capability table between the backends-table markers (`flyhpc backends --markdown`: one row per
  registered backend, from its `caps`);
- docs/DESIGN.md §4: the import-layers block (`scripts/import_layers.py --markdown`: every module of the package).

Adding, removing or renaming a backend (or any module) changes them: run `python scripts/generate_docs.py` and
commit the result. `--check` writes nothing and exits 1 naming each stale block (tests/unit/test_generated_docs.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README, DESIGN = REPO / "README.md", REPO / "docs" / "DESIGN.md"
LAYERS_START = "```\nflyhpc/ import layers"


def _import_layers():
    spec = importlib.util.spec_from_file_location("import_layers", REPO / "scripts" / "import_layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_layers_block(design: str, block: str) -> str:
    """`design` with its §4 import-layers block (the fenced block that starts with LAYERS_START) replaced."""
    start = design.index(LAYERS_START)
    end = design.index("```\n", start + len(LAYERS_START)) + 4
    return design[:start] + block + design[end:]


def generated() -> dict[Path, str]:
    """Each file's text with its generated block as the code has it now."""
    sys.path.insert(0, str(REPO))
    from flyhpc.cli.backends_cmd import render_markdown, with_readme_table

    layers = _import_layers()
    return {README: with_readme_table(README.read_text(), render_markdown()),
            DESIGN: with_layers_block(DESIGN.read_text(), layers.markdown(layers.graph()))}


def main(argv: list[str]) -> int:
    stale = [path for path, text in generated().items() if path.read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(REPO)}: its generated block differs from the code; "
                  "run `python scripts/generate_docs.py`")
        return 1 if stale else 0
    for path, text in generated().items():
        if path in stale:
            path.write_text(text)
            print(f"{path.relative_to(REPO)}: regenerated")
    if not stale:
        print("README.md and docs/DESIGN.md are current")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
