"""The offline kit's planning side: what `flyhpc wheelhouse` puts in for the GPU node (flyhpc's requirements the node
lacks, from setup.cfg; the Brian2CUDA environment; wheels for node packages whose version the brought wheels bound),
source archives by `git archive` from a real repository with their commit, the manifest and its verification, and
the node's facts (GPU, plan of step limits, the rehearsal's exit code). No network: downloads are not run here
(tests/integration/test_offline_install.py installs from a real wheelhouse, offline).
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import zipfile

import pytest
from click.testing import CliRunner

from flyhpc import node_facts, wheelhouse
from flyhpc.cli import cli
from flyhpc.errors import ConfigError


def test_the_gpu_node_gets_what_it_lacks_and_nothing_it_has():
    plan = wheelhouse.plan("gpu-node", "3.12")
    main = {r.split("<")[0].split(">")[0].split("=")[0].lower(): r for r in plan.envs["main"]}
    assert main["brian2"] == "brian2<2.12,>=2.10"  # setup.cfg's Brian2 for Python 3.12, not 3.11's
    assert {"brian2", "submitit", "filelock", "setuptools", "pybind11", "psutil", "pkgconfig"} <= set(main)
    assert not set(main) & {n.lower() for n in node_facts.NODE_PACKAGES}  # numpy, pandas, torch ... are there
    b2cuda = plan.envs["brian2cuda"]
    assert {"brian2==2.8.0", "brian2cuda==1.0a7", "numpy<2.4"} <= set(b2cuda) and "brian2<2.12,>=2.10" not in b2cuda
    assert [s.name for s in plan.sources] == ["genn-5.4.0", "nest-gpu-d3be46f"]
    with pytest.raises(ConfigError, match="unknown target 'laptop'; known: gpu-node"):
        wheelhouse.plan("laptop")
    with pytest.raises(ConfigError, match="planned for Python 3.12.*--python 3.11"):
        wheelhouse.plan("gpu-node", "3.11")


def _wheel(path, requires):
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("x-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: x\nVersion: 1.0\n"
                     + "".join(f"Requires-Dist: {r}\n" for r in requires))
    return path


def test_node_packages_that_a_brought_wheel_bounds_are_brought_too(tmp_path):
    one = _wheel(tmp_path / "x-1.0-py3-none-any.whl", ["cython<3.1.4,>=0.29.21", "numpy>=1.23.5", "foo<2",
                                                       "sympy==1.2; python_version < '3.10'", "Jinja2~=3.1"])
    two = _wheel(tmp_path / "y-1.0-py3-none-any.whl", ["pytest; extra == 'test'"])
    assert wheelhouse.bounded_node_deps([one, two, tmp_path / "src.tar.gz"], "3.12") == [
        "cython<3.1.4,>=0.29.21", "jinja2~=3.1"]


@pytest.fixture(scope="module")
def genn_repo(tmp_path_factory):
    """A real git repository with the tag the plan asks for."""
    repo = tmp_path_factory.mktemp("genn")
    (repo / "version.txt").write_text("5.4.0\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "genn"], ["tag", "5.4.0"]):
        subprocess.run(git + cmd, check=True, capture_output=True)
    return repo, subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def test_sources_are_archived_with_their_commit_and_the_folder_verifies(tmp_path, genn_repo):
    repo, commit = genn_repo
    plan = wheelhouse.Plan("gpu-node", "3.12", {}, (wheelhouse.Source("genn", "https://example.invalid/genn", "5.4.0"),))
    manifest = wheelhouse.build(tmp_path / "wh", plan, {"genn": repo}, log=lambda _m: None)
    assert manifest["sources"]["genn"] == {"url": "https://example.invalid/genn", "ref": "5.4.0", "commit": commit,
                                           "file": "genn-5.4.0.tar.gz"}
    with tarfile.open(tmp_path / "wh" / "genn-5.4.0.tar.gz") as tar:
        assert tar.extractfile("genn-5.4.0/version.txt").read() == b"5.4.0\n"
    saved = json.loads((tmp_path / "wh" / "wheelhouse.json").read_text())
    assert saved["files"]["genn-5.4.0.tar.gz"]["bytes"] == manifest["total_bytes"] > 0
    assert wheelhouse.verify(tmp_path / "wh") == []
    (tmp_path / "wh" / "genn-5.4.0.tar.gz").write_bytes(b"changed")
    assert wheelhouse.verify(tmp_path / "wh") == ["genn-5.4.0.tar.gz: differs from wheelhouse.json (sha256)"]
    result = CliRunner().invoke(cli, ["wheelhouse", str(tmp_path / "wh"), "--verify"])
    assert result.exit_code == 5 and "differs" in result.output
    with pytest.raises(ConfigError, match="--source names nest; sources: genn"):
        wheelhouse.build(tmp_path / "wh2", plan, {"nest": repo})
    missing = wheelhouse.Plan("gpu-node", "3.12", {}, (wheelhouse.Source("genn", "x", "no-such-tag"),))
    with pytest.raises(wheelhouse.FetchFailed, match="no-such-tag") as failed:
        wheelhouse.build(tmp_path / "wh4", missing, {"genn": repo})
    assert failed.value.exit_code == 4
    bad = CliRunner().invoke(cli, ["wheelhouse", str(tmp_path / "wh3"), "--source", "genn"])
    assert bad.exit_code == 2 and "NAME=GIT_DIR" in bad.output


@pytest.mark.parametrize("smi, ok, found", [
    ("NVIDIA H100 80GB HBM3, 81559, 9.0\n", True, "NVIDIA H100 80GB HBM3 81559 MiB sm_90"),
    ("NVIDIA A100-SXM4-80GB, 81920, 8.0\n", False, "NVIDIA A100-SXM4-80GB 81920 MiB sm_80"),
    ("NVIDIA H100 80GB HBM3, 81559, 9.0\nNVIDIA H100 80GB HBM3, 81559, 9.0\n", False, None),
    ("NVIDIA H100 PCIe, 40960, 9.0\n", False, None),
    ("", False, "none visible (no nvidia-smi, no driver or no device)")])
def test_the_gpu_fact(smi, ok, found):
    (fact,) = node_facts.gpu_facts(lambda: smi)
    assert fact.ok is ok and fact.stops
    assert found is None or fact.found == found


def test_the_plan_fact_counts_commands_and_refuses_a_step_longer_than_one():
    fact = node_facts.plan_fact([20, 120, 90, 210, 200, 150], 570)
    assert fact.ok and fact.found.endswith("at most 2 command(s)")
    assert not node_facts.plan_fact([20, 700], 800).ok  # a budget over the node's 600 s
    assert not node_facts.plan_fact([20, 500], 400).ok  # a step that no command can hold


def test_facts_stop_the_kit_unless_rehearsing(tmp_path, capsys):
    args = ["--work", str(tmp_path / "w"), "--wheelhouse", str(tmp_path / "none"), "--json", str(tmp_path / "f.json")]
    assert node_facts.main(args) == 2  # this machine: no H100, no wheelhouse there
    err = capsys.readouterr().err
    assert "differ from the node the kit is planned for" in err and "GPU" in err and "wheelhouse" in err
    assert node_facts.main([*args, "--rehearsal"]) == 0
    out = capsys.readouterr().out
    assert "DIFFERS (rehearsal: going on) GPU" in out and "DIFFERS: stop" not in out
    saved = json.loads((tmp_path / "f.json").read_text())
    assert saved["rehearsal"] and {f["name"] for f in saved["facts"]} >= {"GPU", "CPU cores", "nvcc", "wheelhouse"}
