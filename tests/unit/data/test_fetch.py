"""flyhpc.data against a local HTTP server serving generated files (`flyhpc data fetch/verify` themselves:
tests/unit/cli/test_data_cmd.py).

The server (http.server in a thread on 127.0.0.1) honours Range by default; its `mode` switches to
variants that cut the body short, flip a byte, or ignore Range. The file table is replaced by records
of the generated files, so nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import numpy as np
import pytest

from flyhpc.data import fetch as data
from flyhpc.errors import ConfigError, DataError, IntegrityError


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        name = self.path.lstrip("/")
        srv.requests.append((name, self.headers.get("Range")))
        body = srv.files.get(name)
        if body is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and srv.mode != "ignore_range":
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if srv.mode == "truncate":
            payload = payload[: len(payload) // 2]  # announce everything, then hang up halfway
        elif srv.mode == "corrupt":
            payload = payload[:10] + bytes([payload[10] ^ 0xFF]) + payload[11:]
        self.wfile.write(payload)
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.mode = "ok"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serving(files: dict[str, bytes] | None = None) -> Iterator[_Server]:
    """A running `_Server` holding `files` (path without the leading '/' -> body); also used by
    tests/unit/test_paper_examples.py."""
    srv = _Server()
    srv.files.update(files or {})
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server():
    with serving() as srv:
        yield srv


def _blob_sha1(body: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()


def _record(srv: _Server, name: str, body: bytes, *, with_sha256: bool = True, with_size: bool = True,
            remote: str | None = None) -> data.UpstreamFile:
    remote = remote or f"up_{name}"
    srv.files[remote] = body
    return data.UpstreamFile(
        version="783", name=name, remote=remote, url=f"{srv.base_url}/{remote}", blob_sha1=_blob_sha1(body),
        size_bytes=len(body) if with_size else None,
        sha256=hashlib.sha256(body).hexdigest() if with_sha256 else None)


def _body(n_bytes: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).bytes(n_bytes)


# ------------------------------------------------------------------------------------- file table

def test_blob_id_matches_git_for_a_known_file(tmp_path):
    # `git hash-object` of "hello\n" is ce013625030ba8dba906f756967f9e9ca394464a
    path = tmp_path / "h.txt"
    path.write_bytes(b"hello\n")
    assert data.digest_file(path).blob_sha1 == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_file_table_is_complete_and_rebases():
    for version in data.VERSIONS:
        files = data.files_for(version)
        assert {f.name for f in files} == {f"Completeness_{version}.csv", f"Connectivity_{version}.parquet"}
        for f in files:
            assert re.fullmatch(r"[0-9a-f]{40}", f.blob_sha1)
            assert f.url == f"{data.DEFAULT_BASE_URL}/{f.remote}"
    conn = next(f for f in data.files_for("783") if f.name.endswith(".parquet"))
    assert conn.size_bytes == 100_804_642 and conn.blob_sha1 == "d386555d1a5f40ebfa1380bcb05b1fab044855fd"
    rebased = data.files_for("630", base_url="http://mirror.example/x/")
    assert {f.url for f in rebased} == {"http://mirror.example/x/2023_03_23_completeness_630_final.csv",
                                        "http://mirror.example/x/2023_03_23_connectivity_630_final.parquet"}
    with pytest.raises(ConfigError, match="'999'"):
        data.files_for("999")


@pytest.mark.parametrize("version", data.VERSIONS)
def test_shared_completeness_copy_matches_the_record(version, shared_dir):
    path = shared_dir / "data" / f"Completeness_{version}.csv"
    spec = next(f for f in data.files_for(version) if f.name == path.name)
    got = data.digest_file(path)
    assert data.mismatch(spec, got) is None
    assert got.blob_sha1 == spec.blob_sha1 and got.sha256 == spec.sha256


# ------------------------------------------------------------------------------------------ fetch

def test_fetch_downloads_verifies_and_skips_present_files(server, tmp_path):
    a = _record(server, "a.csv", _body(5000, 1))
    b = _record(server, "b.parquet", _body(300_000, 2), with_sha256=False)  # checked by blob id only
    seen: list[tuple[str, int, int | None]] = []
    results = data.fetch([a, b], tmp_path, progress=lambda f, done, total: seen.append((f.name, done, total)))
    assert [r.status for r in results] == ["downloaded", "downloaded"]
    assert (tmp_path / "a.csv").read_bytes() == server.files["up_a.csv"]
    assert (tmp_path / "b.parquet").read_bytes() == server.files["up_b.parquet"]
    assert not list(tmp_path.glob("*.part"))
    assert seen[-1] == ("b.parquet", 300_000, 300_000)
    n_requests = len(server.requests)
    again = data.fetch([a, b], tmp_path)
    assert [r.status for r in again] == ["present", "present"]
    assert len(server.requests) == n_requests  # nothing downloaded again


def test_fetch_replaces_a_present_but_damaged_file(server, tmp_path):
    a = _record(server, "a.csv", _body(4000))
    (tmp_path / "a.csv").write_bytes(b"x" * 4000)
    assert data.fetch([a], tmp_path)[0].status == "downloaded"
    assert (tmp_path / "a.csv").read_bytes() == server.files["up_a.csv"]


def test_truncated_download_keeps_part_then_resumes_with_range(server, tmp_path):
    body = _body(200_000, 3)
    a = _record(server, "a.parquet", body)
    server.mode = "truncate"
    with pytest.raises(DataError) as err:
        data.fetch([a], tmp_path)
    msg = str(err.value)
    assert "a.parquet" in msg and "truncated" in msg and "expected 200,000 bytes, got 100,000" in msg
    assert msg.endswith("run fetch again to resume")
    assert not (tmp_path / "a.parquet").exists()
    part = tmp_path / "a.parquet.part"
    assert part.read_bytes() == body[:100_000]
    server.mode = "ok"
    server.requests.clear()
    res = data.fetch([a], tmp_path)[0]
    assert res.status == "resumed" and res.downloaded_bytes == 100_000
    assert server.requests == [("up_a.parquet", "bytes=100000-")]
    assert (tmp_path / "a.parquet").read_bytes() == body and not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    body = _body(50_000, 4)
    a = _record(server, "a.csv", body)
    (tmp_path / "a.csv.part").write_bytes(body[:20_000])
    server.mode = "ignore_range"
    res = data.fetch([a], tmp_path)[0]
    assert server.requests == [("up_a.csv", "bytes=20000-")]
    assert res.status == "downloaded" and res.downloaded_bytes == 50_000
    assert (tmp_path / "a.csv").read_bytes() == body  # not 20,000 bytes + the whole file appended


def test_complete_part_is_placed_without_downloading(server, tmp_path):
    body = _body(10_000, 5)
    a = _record(server, "a.csv", body)
    (tmp_path / "a.csv.part").write_bytes(body)
    assert data.fetch([a], tmp_path)[0].status == "resumed"
    assert server.requests == [] and (tmp_path / "a.csv").read_bytes() == body


def test_part_that_is_no_prefix_of_an_unknown_size_file_is_restarted(server, tmp_path):
    body = _body(8_000, 6)
    a = _record(server, "a.parquet", body, with_sha256=False, with_size=False)
    (tmp_path / "a.parquet.part").write_bytes(b"z" * 9_000)  # server answers 416 to bytes=9000-
    res = data.fetch([a], tmp_path)[0]
    assert res.status == "downloaded"
    assert server.requests == [("up_a.parquet", "bytes=9000-"), ("up_a.parquet", None)]
    assert (tmp_path / "a.parquet").read_bytes() == body


@pytest.mark.parametrize("with_sha256", [True, False], ids=["sha256", "git-blob"])
def test_corrupted_download_is_removed_and_named(server, tmp_path, with_sha256):
    body = _body(30_000, 7)
    a = _record(server, "a.parquet", body, with_sha256=with_sha256)
    server.mode = "corrupt"
    with pytest.raises(IntegrityError) as err:
        data.fetch([a], tmp_path)
    msg = str(err.value)
    assert "a.parquet" in msg and "corrupted" in msg
    expected = a.sha256 if with_sha256 else a.blob_sha1
    assert f"expected {expected}, got " in msg
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .part


def test_longer_than_recorded_download_is_rejected(server, tmp_path):
    body = _body(6_000, 8)
    a = _record(server, "a.csv", body)
    server.files["up_a.csv"] = body + b"extra"
    with pytest.raises(IntegrityError, match="size expected 6,000 bytes, got 6,005"):
        data.fetch([a], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_network_errors_name_the_url(server, tmp_path):
    missing = data.UpstreamFile("783", "gone.csv", "gone.csv", f"{server.base_url}/gone.csv", "0" * 40, 10)
    with pytest.raises(DataError, match=re.escape(f"{server.base_url}/gone.csv") + ".*HTTP 404"):
        data.fetch([missing], tmp_path)
    # a port nobody listens on
    closed = _Server()
    port = closed.server_address[1]
    closed.server_close()
    dead = data.UpstreamFile("783", "x.csv", "x.csv", f"http://127.0.0.1:{port}/x.csv", "0" * 40, 10)
    with pytest.raises(DataError, match=f"cannot reach http://127.0.0.1:{port}/x.csv"):
        data.fetch([dead], tmp_path, timeout_s=5)
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "gone.csv").exists()


# ----------------------------------------------------------------------------------------- verify

def test_verify_dir_reports_ok_bad_and_missing(server, tmp_path):
    a = _record(server, "a.csv", _body(1000, 9))
    b = _record(server, "b.parquet", _body(2000, 10), with_sha256=False)
    c = _record(server, "c.csv", _body(100, 11))
    data.fetch([a, b], tmp_path)
    assert [c.status for c in data.verify_dir([a, b], tmp_path)] == ["ok", "ok"]
    data.raise_for_bad(data.verify_dir([a, b], tmp_path))
    raw = bytearray((tmp_path / "b.parquet").read_bytes())
    raw[5] ^= 1
    (tmp_path / "b.parquet").write_bytes(bytes(raw))
    checks = data.verify_dir([a, b, c], tmp_path)
    assert [ch.status for ch in checks] == ["ok", "bad", "missing"]
    assert "git blob id expected" in checks[1].detail
    with pytest.raises(IntegrityError, match="b.parquet.*c.csv"):
        data.raise_for_bad(checks)
    with pytest.raises(DataError, match="missing: .*c.csv"):
        data.raise_for_bad([checks[0], checks[2]])
