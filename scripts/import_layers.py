"""The import layers of the flyhpc package: computed from the code, checked, and drawn for docs/DESIGN.md §4.

Every `import` and `from ... import` of a flyhpc module, at module level or inside a function, is an
edge. The check fails on an import cycle (even through function-level imports) and on an import of a
higher layer than the importer's. Layers, lowest first, are declared in `LAYERS` (module-name
prefixes); a module that matches none is an error too, so a new module has to be placed.

Usage: python scripts/import_layers.py            check; exit 1 and name each violation
       python scripts/import_layers.py --markdown print the §4 block (layers and their modules)
       python scripts/import_layers.py --counts   the same with each module's line count
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "flyhpc"
ROOT_NAMES = {"__version__"}  # what `from flyhpc import ...` may take that is not a module

# (layer name, module prefixes). A module belongs to the first layer with a prefix matching it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("flyhpc", "flyhpc.errors", "flyhpc.files", "flyhpc.config_paths", "flyhpc.timing")),  # "flyhpc": __init__ only
    ("result files", ("flyhpc.results",)),
    ("model and data", ("flyhpc.model", "flyhpc.presets", "flyhpc.data", "flyhpc.drive", "flyhpc.drive_kernel",
                        "flyhpc.network", "flyhpc.contract")),
    ("backends", ("flyhpc.backends",)),
    ("one run", ("flyhpc.pipeline", "flyhpc.bundle")),
    ("tasks", ("flyhpc.kinds", "flyhpc.tasks", "flyhpc.worker", "flyhpc.screens")),
    ("cluster", ("flyhpc.cluster",)),
    ("bundles and tools", ("flyhpc.collect", "flyhpc.compare", "flyhpc.bench", "flyhpc.images",
                           "flyhpc.report", "flyhpc.paper_examples", "flyhpc.check", "flyhpc.check_submit",
                           "flyhpc.check_verdicts",
                           "flyhpc.screen_submission", "flyhpc.node_facts", "flyhpc.wheelhouse")),
    ("python api", ("flyhpc.api",)),
    ("command line", ("flyhpc.cli", "flyhpc.__main__")),
]
# The package root (layer 0) re-exports flyhpc.api's names without importing it: its PEP 562 __getattr__ loads
# them with importlib on first use (flyhpc/__init__.py `_LAZY`), so `import flyhpc` loads no higher layer
# (tests/unit/test_import_layers.py checks that) and that edge is not an import this check sees.


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """flyhpc modules `path` imports anywhere in its code (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            wanted = target
            while target and target not in known:  # `from flyhpc.x import name`: the module is flyhpc.x
                target = target.rpartition(".")[0]
            if target == "flyhpc" and wanted.startswith("flyhpc.") and isinstance(node, ast.Import):
                found.add(f"{wanted} (no such module)")
            elif target == "flyhpc" and isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flyhpc."):
                found.add(f"{node.module} (no such module)")
            elif (target == "flyhpc" and isinstance(node, ast.ImportFrom) and node.module == "flyhpc"
                  and wanted != "flyhpc" and wanted.rpartition(".")[2] not in ROOT_NAMES):
                found.add(f"{wanted} (no such module)")
            elif target and target != name and target.startswith("flyhpc"):
                found.add(target)
    return found - {"flyhpc"} if name != "flyhpc" else found


def layer_of(name: str) -> int:
    best = -1, -1  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = name == prefix or (prefix != "flyhpc" and name.startswith(prefix + "."))
            if inside and len(prefix) > best[0]:
                best = len(prefix), index
    return best[1]


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) for name, path in mods.items()}


def problems(edges: dict[str, set[str]]) -> list[str]:
    out = [f"{m}: in no layer of scripts/import_layers.py LAYERS" for m in edges if layer_of(m) < 0]
    out += [f"{m} imports {t}" for m, targets in sorted(edges.items()) for t in sorted(targets) if "no such module" in t]
    edges = {m: {t for t in targets if "no such module" not in t} for m, targets in edges.items()}
    for mod, targets in sorted(edges.items()):
        for target in sorted(targets):
            if layer_of(target) > layer_of(mod) >= 0:
                out.append(f"{mod} ({LAYERS[layer_of(mod)][0]}) imports {target} ({LAYERS[layer_of(target)][0]}): "
                           "an upward import")
    out += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp) + [sorted(comp)[0]])

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _label(members: list[str], counts: bool) -> list[str]:
    """Modules as `pkg/ (a, b)` groups: packages by folder, modules by file name (+ line counts)."""
    mods = modules()
    groups: dict[str, list[str]] = {}
    for m in members:
        name = m.removeprefix("flyhpc").lstrip(".") or "__init__"
        folder, _, leaf = name.rpartition(".")
        if mods[m].name == "__init__.py":
            folder, leaf = name if name != "__init__" else "", "__init__"
        shown = leaf + (f" {len(mods[m].read_text().splitlines())}" if counts else "")
        groups.setdefault(folder.replace(".", "/"), []).append(shown)
    cells = []
    for folder, leaves in groups.items():
        cells.append(f"{folder}/ ({', '.join(leaves)})" if folder else ", ".join(leaves))
    return cells


def markdown(edges: dict[str, set[str]], counts: bool = False) -> str:
    """The §4 block: each layer, lowest first, with its modules grouped by folder (line counts with `counts`)."""
    import textwrap

    lines = ["```", "flyhpc/ import layers, lowest first (a module imports only its own layer or lower ones)"]
    for index, (title, _) in enumerate(LAYERS):
        members = sorted(m for m in edges if layer_of(m) == index)
        text = " · ".join(_label(members, counts))
        wrapped = textwrap.wrap(text, 96) or [""]
        lines.append(f"{index} {title:<18} " + wrapped[0])
        lines += [" " * 21 + w for w in wrapped[1:]]
    lines.append("```")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    edges = graph()
    if "--markdown" in argv or "--counts" in argv:
        sys.stdout.write(markdown(edges, counts="--counts" in argv))
        return 0
    bad = problems(edges)
    for line in bad:
        print(line)
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports: "
          + ("no cycle, no upward import" if not bad else f"{len(bad)} problem(s)"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
