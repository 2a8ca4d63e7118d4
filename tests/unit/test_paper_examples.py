"""flyhpc.paper_examples against a local HTTP server serving the copies in ../shared/data/paper-examples (test
fixtures passed by path; nothing touches the network): the pinned table matches the copies, downloads are
verified, resumed with Range, and rejected when damaged. (`flyhpc data fetch --examples` and `flyhpc compare
paper`: tests/unit/cli/test_data_cmd.py and test_report_cmd.py.)"""

from __future__ import annotations

import hashlib

import pytest

from flyhpc import paper_examples
from flyhpc.errors import DataError, IntegrityError
from tests.unit.data.test_fetch import serving


@pytest.fixture
def server(examples_dir):
    with serving({spec.remote: (examples_dir / spec.name).read_bytes() for spec in paper_examples.EXAMPLES}) as srv:
        yield srv


def test_the_pinned_table_matches_the_copies(examples_dir):
    assert {e.name for e in paper_examples.EXAMPLES} == {p.name for p in examples_dir.glob("*.parquet")}
    for spec in paper_examples.EXAMPLES:
        body = (examples_dir / spec.name).read_bytes()
        assert len(body) == spec.size_bytes and hashlib.sha256(body).hexdigest() == spec.sha256
        assert hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest() == spec.blob_sha1
        assert spec.url == (f"https://raw.githubusercontent.com/philshiu/Drosophila_brain_model/"
                            f"{paper_examples.UPSTREAM_COMMIT}/results/example/{spec.name}")
    assert [c.status for c in paper_examples.verify(examples_dir)] == ["ok"] * 5
    assert [e.experiment for e in paper_examples.EXAMPLES].count("sugar") == 1


def test_fetch_downloads_verifies_and_then_leaves_files_alone(server, examples_dir, tmp_path):
    seen = []
    results = paper_examples.fetch(tmp_path, base_url=server.base_url,
                                   progress=lambda f, d, t: seen.append((f.name, d, t)))
    assert [r.status for r in results] == ["downloaded"] * 5
    assert [(r.file.experiment, r.file.url) for r in results] == [
        (e.experiment, f"{server.base_url}/{e.remote}") for e in paper_examples.EXAMPLES]
    for r in results:
        assert r.path.read_bytes() == (examples_dir / r.file.name).read_bytes()
    assert seen[-1] == (results[-1].file.name, results[-1].file.size_bytes, results[-1].file.size_bytes)
    n = len(server.requests)
    assert [r.status for r in paper_examples.fetch(tmp_path, base_url=server.base_url)] == ["present"] * 5
    assert len(server.requests) == n and not list(tmp_path.glob("*.part"))


def test_a_truncated_download_resumes_and_a_corrupt_one_is_refused(server, tmp_path):
    spec = paper_examples.EXAMPLES[0]
    server.mode = "truncate"
    with pytest.raises(DataError, match=rf"{spec.name}: truncated download .* `flyhpc data fetch --examples` again"):
        paper_examples.fetch(tmp_path, [spec], base_url=server.base_url)
    part = tmp_path / f"{spec.name}.part"
    assert part.stat().st_size == spec.size_bytes // 2 and not (tmp_path / spec.name).exists()
    server.mode, server.requests[:] = "ok", []
    (res,) = paper_examples.fetch(tmp_path, [spec], base_url=server.base_url)
    assert res.status == "resumed" and server.requests == [(spec.remote, f"bytes={spec.size_bytes // 2}-")]
    assert [c.status for c in paper_examples.verify(tmp_path, [spec])] == ["ok"]
    (tmp_path / spec.name).unlink()
    server.mode = "corrupt"
    with pytest.raises(IntegrityError, match=rf"{spec.name}: corrupted download .*sha256 expected {spec.sha256}"):
        paper_examples.fetch(tmp_path, [spec], base_url=server.base_url)
    assert not part.exists() and not (tmp_path / spec.name).exists()
