"""Lmod: `module load flyhpc` from modules/ puts `flyhpc` on PATH and sets the flyhpc folders.

Needs Debian's lmod (`apt-get install lmod`); skipped with the reason when it is absent
(a failure when FLYHPC_REQUIRE_LMOD=1, as in CI: tests/conftest.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flyhpc import __version__

REPO = Path(__file__).resolve().parents[2]
LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")


def _run(script: str, tmp_path: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FLYHPC_ROOT": str(Path(sys.executable).parent.parent),
           **(extra_env or {})}
    return subprocess.run(["bash", "-c", f"source {LMOD_INIT} && module use {REPO / 'modules'} && {script}"],
                          capture_output=True, text=True, env=env, timeout=120)


pytestmark = [pytest.mark.lmod,
              pytest.mark.skipif(not LMOD_INIT.is_file() or shutil.which("bash") is None,
                                 reason="Lmod is not installed (/usr/share/lmod missing; apt-get install lmod)")]


def test_module_load_puts_flyhpc_on_path(tmp_path):
    proc = _run("module load flyhpc && flyhpc --version && echo IMAGES=$FLYHPC_IMAGES", tmp_path,
                {"FLYHPC_SHARE": "/srv/fly"})
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout
    assert "IMAGES=/srv/fly/images" in proc.stdout


def test_module_loads_site_modules(tmp_path):
    site = tmp_path / "site"
    (site / "apptainer").mkdir(parents=True)
    (site / "apptainer" / "1.3.lua").write_text('setenv("SITE_APPTAINER_LOADED", "1.3")\n')
    proc = _run(f"module use {site} && module load flyhpc && echo LOADED=$SITE_APPTAINER_LOADED", tmp_path,
                {"FLYHPC_SITE_MODULES": "apptainer/1.3"})
    assert proc.returncode == 0, proc.stderr
    assert "LOADED=1.3" in proc.stdout


def test_missing_site_module_fails_loudly(tmp_path):
    proc = _run("module load flyhpc", tmp_path, {"FLYHPC_SITE_MODULES": "no-such-module/9"})
    assert proc.returncode != 0 or "no-such-module" in proc.stderr
