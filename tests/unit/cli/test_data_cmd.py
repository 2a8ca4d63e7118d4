"""`flyhpc data fetch | verify | synth` (flyhpc/cli/data_cmd.py): what each prints, writes and exits with.

fetch and verify run against a local HTTP server (tests/unit/data/test_fetch.py's) serving two generated files,
with the file table replaced by their records: a stand-in for the upstream host, so nothing here touches
the network; `fetch --examples` gets the paper's example outputs from one serving the copies in
../shared/data/paper-examples. verify of an empty folder and synth use the real tables and generator.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from click.testing import CliRunner

from flyhpc import paper_examples
from flyhpc.cli import cli
from flyhpc.data import fetch as data
from flyhpc.errors import DataError, IntegrityError

from tests.unit.data.test_fetch import serving


def _invoke(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


@pytest.fixture
def server():
    with serving() as srv:
        yield srv


def _record(srv, name: str, body: bytes, with_sha256: bool = True) -> data.UpstreamFile:
    srv.files[name] = body
    return data.UpstreamFile(version="783", name=name, remote=name, url=f"{srv.base_url}/{name}",
                             blob_sha1=hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest(),
                             size_bytes=len(body), sha256=hashlib.sha256(body).hexdigest() if with_sha256 else None)


@pytest.fixture
def cli_table(server, monkeypatch):
    """Replace the real file table by two generated files served from `server` under upstream names."""
    comp = _record(server, "Completeness_783.csv", b",Completed\n1,True\n2,True\n")
    conn = _record(server, "Connectivity_783.parquet", np.random.default_rng(12).bytes(70_000), with_sha256=False)
    monkeypatch.setattr(data, "FILES", (comp, conn))
    return comp, conn


def test_cli_fetch_then_verify(server, cli_table, tmp_path):
    dest = tmp_path / "d"
    result = _invoke("data", "fetch", "--dest", dest, "--base-url", server.base_url)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in dest.iterdir()) == ["Completeness_783.csv", "Connectivity_783.parquet"]
    assert result.output.count("downloaded") == 2
    for spec in cli_table:
        assert f"{dest / spec.name}  ({(dest / spec.name).stat().st_size:,} bytes, {spec.expected[:18]}… ok)" in result.output
    again = _invoke("data", "fetch", "--dest", dest, "--base-url", server.base_url)
    assert again.exit_code == 0 and again.output.count("present") == 2 and "downloaded" not in again.output
    result = _invoke("data", "verify", "--dir", dest)
    assert result.exit_code == 0, result.output
    assert result.output.count("ok") >= 2
    (dest / "Connectivity_783.parquet").write_bytes(b"broken")
    os.remove(dest / "Completeness_783.csv")
    result = _invoke("data", "verify", "--dir", dest)
    assert result.exit_code == IntegrityError.exit_code
    assert "Connectivity_783.parquet" in result.output and "Completeness_783.csv" in result.output


def test_cli_fetch_corrupted_exits_with_integrity_code(server, cli_table, tmp_path):
    server.mode = "corrupt"
    result = _invoke("data", "fetch", "--dest", tmp_path, "--base-url", server.base_url)
    assert result.exit_code == IntegrityError.exit_code
    assert "Completeness_783.csv: corrupted download" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("version", data.VERSIONS)
def test_verify_of_an_empty_folder_lists_every_file_missing_and_exits_2(tmp_path, version):
    result = _invoke("data", "verify", "--version", version, "--dir", tmp_path, env={"COLUMNS": "300"})
    assert result.exit_code == DataError.exit_code == 2
    assert f"FlyWire v{version} files in {tmp_path}" in result.output
    for spec in data.files_for(version):
        row = next(line for line in result.output.splitlines() if f" {spec.name} " in line)
        assert "missing" in row and spec.expected in row
    assert result.output.rstrip().splitlines()[-1].startswith("Error: ")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_version_is_refused():
    result = _invoke("data", "verify", "--version", "999")
    assert result.exit_code == 2 and "Invalid value for '--version'" in result.output and "783" in result.output


def test_cli_synth_writes_a_loadable_connectome(tmp_path):
    from flyhpc.data import synthetic
    from flyhpc.data.connectome import load_connectome

    out = tmp_path / "syn"
    result = _invoke("data", "synth", "--neurons", "60", "--edges", "400", "--seed", "3", "--out", out)
    assert result.exit_code == 0, result.output
    sources = synthetic.sources_in(out)
    assert sources is not None
    conn = load_connectome(sources, cache_dir=tmp_path / "cache")
    assert conn.n_neurons == 60 and conn.n_edges == 400 and conn.is_synthetic
    assert result.output.splitlines()[0] == f"{sources.source}:"
    assert f"sha256 {data.digest_file(sources.connectivity).sha256}" in result.output


def test_synth_writes_under_the_data_dir_by_default_and_checks_its_counts(tmp_path):
    result = _invoke("data", "synth", "--neurons", "30", "--edges", "100", "--seed", "2",
                     env={"FLYHPC_DATA": str(tmp_path)})
    assert result.exit_code == 0, result.output
    folder = tmp_path / "synthetic" / "seed2-n30-e100"
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) and str(folder) in result.output
    for bad in (["--neurons", "1"], ["--edges", "0"]):
        refused = _invoke("data", "synth", *bad, "--out", tmp_path / "bad")
        assert refused.exit_code == 2 and "Invalid value" in refused.output and not (tmp_path / "bad").exists()


def test_fetch_examples_into_the_data_folder(examples_dir, tmp_path):
    files = {spec.remote: (examples_dir / spec.name).read_bytes() for spec in paper_examples.EXAMPLES}
    with serving(files) as srv:
        res = _invoke("data", "fetch", "--examples", "--dest", tmp_path, "--base-url", srv.base_url)
    assert res.exit_code == 0, res.output
    got = sorted(p.name for p in (tmp_path / "paper-examples").iterdir())
    assert got == sorted(e.name for e in paper_examples.EXAMPLES)
    assert "--reference paper" in res.output
