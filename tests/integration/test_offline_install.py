"""The offline kit's install step (`scripts/gpu-proof.sh --rehearsal --steps install`), run for real inside an empty
network namespace (`unshare -n`, as the rehearsal does): a venv over "the node's packages", the wheelhouse's
requirements with pip's index off, then flyhpc from a fresh clone of this repository.

The node's packages are this environment's (a folder of links to its site-packages put on the venv's path by
FLYHPC_PROOF_SITE), less flyhpc and less the Slurm client and its cloudpickle, which the wheelhouse brings: their
wheels are downloaded before going offline, like `flyhpc wheelhouse` does for a node. The venv must end up with flyhpc
installed from the clone and those two from the wheelhouse, having reached no network. Needs root's `unshare -n`; a
skip fails under FLYHPC_REQUIRE_NETNS=1 (.ci/run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BROUGHT = ("submitit", "cloudpickle")  # what the node lacks in this test: from the wheelhouse
# and, as in every wheelhouse, the build tools of flyhpc's own install (a venv's ensurepip may bring an old setuptools)
BUILD = ("setuptools>=68", "wheel")


def _netns_works() -> str | None:
    if not shutil.which("unshare"):
        return "no unshare (util-linux)"
    out = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    return None if out.returncode == 0 else f"unshare -n fails here: {out.stderr.strip()} (needs root)"


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    why = _netns_works()
    if why:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("kit")
    clone = tmp / "flyhpc"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    for path in ("flyhpc", "scripts", "setup.cfg", "pyproject.toml"):  # the working tree's state, not only HEAD's
        src, dst = REPO / path, clone / path
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    wheels = clone / "wheelhouse"
    wheels.mkdir()
    got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d",
                          str(wheels), *BROUGHT, *BUILD], capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    (wheels / "requirements-main.txt").write_text("\n".join(["submitit>=1.5", "cloudpickle", *BUILD]) + "\n")
    site = tmp / "node-site"  # the node's packages: this environment's, less flyhpc and what the wheelhouse brings
    site.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        if not name.startswith(("flyhpc", "__editable__", *BROUGHT, "setuptools", "wheel", "_distutils_hack")) \
                and entry.suffix != ".pth":
            (site / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYHPC_", "PIP_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(NODE_PYTHON=sys.executable, FLYHPC_PROOF_SITE=str(site), HOME=str(tmp))
    out = subprocess.run(["bash", str(clone / "scripts" / "gpu-proof.sh"), "--rehearsal", "--steps", "install",
                          str(tmp / "out")], capture_output=True, text=True, env=env, timeout=900)
    return {"clone": clone, "out": tmp / "out", "run": out, "venv": clone / ".gpu-proof" / "venv", "env": env}


def test_install_step_runs_offline_and_says_so(kit):
    run = kit["run"]
    assert run.returncode == 0, run.stdout + run.stderr
    assert "REHEARSAL" in run.stdout and "offline: lo )" in run.stdout  # only loopback in its namespace
    steps = [line.split("\t") for line in (kit["out"] / "proof-steps.tsv").read_text().splitlines()]
    assert [s[:2] for s in steps] == [["install", "ok"]] and int(steps[0][2]) >= 0
    assert (kit["clone"] / ".gpu-proof" / "done" / "install").exists()


def test_flyhpc_comes_from_the_clone_and_the_missing_packages_from_the_wheelhouse(kit):
    python = kit["venv"] / "bin" / "python"
    code = ("import json, flyhpc, submitit, cloudpickle, importlib.metadata as m; print(json.dumps({'flyhpc': "
            "flyhpc.__file__, 'submitit': submitit.__file__, 'cloudpickle': cloudpickle.__file__, "
            "'installer': m.distribution('submitit').read_text('INSTALLER')}))")
    env = {k: v for k, v in kit["env"].items() if k != "FLYHPC_PROOF_SITE"}  # no PYTHONPATH to this checkout
    found = json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True,
                                      cwd=kit["out"], env=env).stdout)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, env=env).stdout.strip()
    for name in ("flyhpc", "submitit"):  # installed into the venv, not linked (cloudpickle: the base Python may have it)
        assert found[name].startswith(site), (name, found[name])
    assert found["installer"].strip() == "pip"
    flyhpc = kit["venv"] / "bin" / "flyhpc"
    helped = subprocess.run([str(flyhpc), "wheelhouse", "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "Fill OUT_DIR so that an offline node" in " ".join(helped.stdout.split())


def test_a_rerun_skips_what_is_done(kit):
    env = {k: v for k, v in kit["env"].items() if k != "FLYHPC_PROOF_SITE"}
    again = subprocess.run(["bash", str(kit["clone"] / "scripts" / "gpu-proof.sh"), "--rehearsal", "--steps",
                            "install", str(kit["out"])], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "install       done in an earlier run" in again.stdout
