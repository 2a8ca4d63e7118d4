"""A built wheel, installed in a fresh venv away from the checkout, finds its grids, profiles, image
definitions and FlyWire ids, and plans the demo grid from an empty folder.

The wheel is built (`pip wheel`, build isolation as any user gets) from a copy of the working tree. The
fresh venv (no --system-site-packages) installs it with `pip install --no-index`: pip must find every
dependency the wheel declares already installed, which it does through a folder of links to this test
environment's packages, flyhpc left out (so nothing can come from the checkout). No network for the
dependencies, no skip: it runs wherever the suite runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
_IGNORE_ANYWHERE = shutil.ignore_patterns(".git", ".venv", ".venv-*", "build", "dist", "*.egg-info", "__pycache__",
                                         ".pytest_cache", ".flyhpc-cache")
_IGNORE_AT_TOP = {"results", "data", "images"}  # the checkout's outputs; flyhpc/data/ is the package's code


def IGNORE(folder: str, names: list[str]) -> set[str]:
    """What the copy of the working tree leaves out (build outputs, caches, the checkout's own data)."""
    skip = set(_IGNORE_ANYWHERE(folder, names))
    return skip | (_IGNORE_AT_TOP & set(names) if Path(folder) == REPO else set())


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _shipped() -> set[str]:
    """The package-data files the wheel must hold, as paths inside it."""
    files = {"flyhpc/resources/flywire_783_root_ids.gz"}
    files |= {f"flyhpc/resources/jobs/{p.parent.name}/{p.name}" for p in (REPO / "jobs").glob("*/*")
              if p.suffix in (".toml", ".csv", ".json")}
    files |= {f"flyhpc/resources/apptainer/{p.name}" for p in (REPO / "apptainer").glob("*")
              if p.suffix in (".def", ".sh")}
    return files


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=IGNORE)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(src)], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("flyhpc-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    deps = tmp / "deps"  # this environment's packages, without flyhpc (its editable finder points at the checkout)
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(("flyhpc", "__editable__")) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip())
    (site / "flyhpc-test-deps.pth").write_text(f"{deps}\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "-q", str(wheel)], cwd=tmp)
    empty = tmp / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYHPC_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(tmp), COLUMNS="200")
    return {"tmp": tmp, "wheel": wheel, "venv": venv, "site": site, "empty": empty, "env": env}


def test_wheel_holds_ids_grids_profiles_and_definitions(installed):
    with zipfile.ZipFile(installed["wheel"]) as whl:
        names = set(whl.namelist())
    assert _shipped() <= names, sorted(_shipped() - names)
    resources = installed["site"] / "flyhpc" / "resources"
    installed_files = {str(p.relative_to(installed["site"])) for p in resources.rglob("*") if p.is_file()}
    assert _shipped() <= installed_files


def test_installed_package_looks_up_its_own_files(installed):
    code = ("import json, flyhpc, flyhpc.cluster.profiles as p, flyhpc.tasks as t, flyhpc.images as i, flyhpc.data.synthetic as s;"
            "print(json.dumps({'pkg': flyhpc.__file__, 'grids': t.known_grids(), 'grid': t.load_grid('demo').name,"
            "'profile': p.load_profile('example-site').source, 'defs': [str(b.def_file) for b in i.image_plan()],"
            "'ids': int(s.packaged_ids().size)}))")
    found = json.loads(_run([str(installed["venv"] / "bin" / "python"), "-c", code], cwd=installed["empty"],
                            env=installed["env"]))
    pkg = str(installed["site"] / "flyhpc")
    assert found["pkg"].startswith(pkg)
    assert {"demo", "quick", "paper"} <= set(found["grids"]) and found["grid"] == "demo"
    assert found["profile"] == f"{pkg}/resources/jobs/clusters/example-site.toml"
    assert found["defs"] and all(d.startswith(f"{pkg}/resources/apptainer/") for d in found["defs"])
    assert found["ids"] == 138_639


def test_submit_demo_dry_run_from_an_empty_folder(installed):
    """The README's job, planned by the installed `flyhpc` in an empty folder; the grid and the profile come
    from the package. The connectome is a small synthetic one on the packaged ids (every real id, few edges),
    made by the installed `flyhpc data synth`, so that planning does not generate the full-scale one."""
    flyhpc = str(installed["venv"] / "bin" / "flyhpc")
    conn = installed["tmp"] / "conn"
    _run([flyhpc, "data", "synth", "--edges", "200000", "--out", str(conn)], cwd=installed["empty"],
         env=installed["env"])
    assert json.loads((conn / "synthetic.json").read_text())["ids"] == "real ids from Completeness_783.csv"
    out = _run([flyhpc, "submit", "--grid", "demo", "--profile", "local", "--run-label", "wheeltest", "--dry-run",
                "--connectome", str(conn)], cwd=installed["empty"], env=installed["env"])
    assert "wheeltest: 12 task(s) in 3 array(s) on local" in out
    for backend in ("native", "pytorch", "brian2cpp"):  # the demo grid's backends
        assert backend in out
    assert not any(installed["empty"].iterdir())  # a dry run writes nothing where it runs
