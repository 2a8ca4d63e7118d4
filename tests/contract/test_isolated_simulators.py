"""The backend contract suite on simulators that live in environments of their own, in CPU mode.

Brian2GeNN 1.7 needs Brian2 < 2.6 and GeNN 4.9; PyGeNN 5.4 is built from source. Neither fits the main
.venv, and GeNN is not on PyPI, so CI machines do not have them. Where a session has provided them, these
tests run test_backend_contract.py in that environment with the backend switched to GeNN's CPU code
(through $FLYHPC_BACKEND_OPTIONS, as a site would) and require all its scenarios to pass:

- brian2genn: interpreter .venv-brian2genn/bin/python (or $FLYHPC_BRIAN2GENN_PYTHON), GeNN 4.9 at $GENN_PATH
  (or $BRIAN2GENN_GENN_PATH); options {"use_gpu": false}.
- genn: interpreter .venv-genn/bin/python (or $FLYHPC_GENN_PYTHON) with pygenn 5.4 importable;
  options {"genn_backend": "single_threaded_cpu"}.

Otherwise they skip and say what is missing. The GPU code paths of both are not run here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from flyhpc.backends.brian2genn_backend import genn_path

REPO = Path(__file__).resolve().parents[2]
N_SCENARIOS = 13
K_EXPR = {"brian2genn": "brian2genn", "genn": "genn and not brian2genn"}


def interpreter(env_var: str, venv: str) -> Path | None:
    path = Path(os.environ.get(env_var) or REPO / venv / "bin" / "python")
    return path if path.is_file() else None


def run_contract(python: Path, backend: str, options: dict, tmp_path: Path) -> str:
    env = dict(os.environ, FLYHPC_BACKEND_OPTIONS=json.dumps({backend: options}), FLYHPC_BUILD_DIR=str(tmp_path))
    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
                           str(REPO / "tests" / "contract" / "test_backend_contract.py"), "-k", K_EXPR[backend],
                           f"--basetemp={tmp_path / 'pytest'}"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=3000)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    return out


def assert_all_scenarios_passed(out: str) -> None:
    match = re.search(r"(\d+) passed", out)
    assert match and int(match.group(1)) == N_SCENARIOS, out[-3000:]
    assert "skipped" not in out and "failed" not in out, out[-3000:]


@pytest.mark.slow
def test_brian2genn_cpu_mode_meets_the_contract(tmp_path):
    python = interpreter("FLYHPC_BRIAN2GENN_PYTHON", ".venv-brian2genn")
    path = genn_path()
    if python is None or not path or not Path(path, "bin", "genn-buildmodel.sh").is_file():
        pytest.skip("needs .venv-brian2genn (scripts/bootstrap-sim-env.sh brian2genn) and GeNN 4.9 at $GENN_PATH")
    assert_all_scenarios_passed(run_contract(python, "brian2genn", {"use_gpu": False}, tmp_path))


@pytest.mark.slow
def test_genn_cpu_backend_meets_the_contract(tmp_path):
    python = interpreter("FLYHPC_GENN_PYTHON", ".venv-genn")
    if python is None or subprocess.run([str(python), "-c", "import pygenn"], capture_output=True).returncode:
        pytest.skip("needs .venv-genn with PyGeNN 5.4 built from source (see docs/NOTES.md)")
    assert_all_scenarios_passed(run_contract(python, "genn", {"genn_backend": "single_threaded_cpu"}, tmp_path))
