"""docs/tutorial.ipynb: committed without outputs, and executed top to bottom (nbclient, a real IPython kernel) on a
small generated connectome (FLYHPC_TUTORIAL_CONNECTOME); any error in any cell fails the test."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.unit.api.conftest import write_small_connectome

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "tutorial.ipynb"
CELL_TIMEOUT_S = 600


def test_committed_notebook_has_no_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), \
        "strip the outputs of docs/tutorial.ipynb before committing"


def test_tutorial_runs_without_error(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    connectome = write_small_connectome(tmp_path / "data")
    monkeypatch.setenv("FLYHPC_TUTORIAL_CONNECTOME", str(connectome))
    monkeypatch.setenv("FLYHPC_TUTORIAL_RESULTS", str(tmp_path / "results"))
    repo = str(NOTEBOOK.parents[1])  # the kernel and its subprocesses import this checkout's flyhpc
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    started = time.perf_counter()
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # CellExecutionError on any error
    wall_s = time.perf_counter() - started
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "\n".join(o.get("text", "") or str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "SYNTHETIC" in text and "verify: True" in text and "20 experiments" in text
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images == 4, f"{images} figures"
    print(f"tutorial notebook executed in {wall_s:.1f} s")
    if wall_s > CELL_TIMEOUT_S:
        pytest.fail(f"the tutorial took {wall_s:.0f} s")
