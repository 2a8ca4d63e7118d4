"""The upstream FlyWire files: where they come from, what they must hash to, fetching and checking them.

Owns the file table (`FILES`, one frozen `UpstreamFile` per file) and the download protocol: HTTP
Range onto `<name>.part`, size + hash check, then one atomic rename. `fetch` and `verify_dir` take any
`UpstreamFile`s (flyhpc.paper_examples pins its own). Never parses the files (that is `connectome.py`)
and never prints: progress goes to a callback. Entry points: `files_for`, `fetch`, `verify_dir`,
`raise_for_bad`.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from http.client import HTTPException
from pathlib import Path
from typing import Callable, Iterable, Sequence

from flyhpc import __version__
from flyhpc.errors import ConfigError, DataError, IntegrityError

UPSTREAM_REPO = "philshiu/Drosophila_brain_model"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{UPSTREAM_REPO}/main"
VERSIONS = ("783", "630")
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class UpstreamFile:
    """One upstream file and everything known to check it.

    `name` is the local file name (what `datasets.real_sources` looks for), `remote` the path in the
    upstream repository, `url` where it is downloaded from. `blob_sha1` is the git blob id (sha1 over
    b"blob <size>\\0" + content), always known; `size_bytes` and `sha256` are None where unknown.
    """

    version: str
    name: str
    remote: str
    url: str
    blob_sha1: str
    size_bytes: int | None = None
    sha256: str | None = None

    @property
    def expected(self) -> str:
        """The hash a download is checked against, as 'sha256:<hex>' or 'git-blob:<hex>'."""
        return f"sha256:{self.sha256}" if self.sha256 else f"git-blob:{self.blob_sha1}"

    def rebased(self, base_url: str) -> "UpstreamFile":
        """The same file served from `base_url` (a folder URL holding the upstream names)."""
        return replace(self, url=f"{base_url.rstrip('/')}/{self.remote}")


def _upstream(version: str, name: str, remote: str, blob_sha1: str, size_bytes: int | None = None,
              sha256: str | None = None) -> UpstreamFile:
    return UpstreamFile(version=version, name=name, remote=remote, url=f"{DEFAULT_BASE_URL}/{remote}",
                        blob_sha1=blob_sha1, size_bytes=size_bytes, sha256=sha256)


# Blob ids and sizes from the upstream git tree (commit 91bdd1e); the sha256 of the two CSVs were taken
# from copies whose blob id matches. The parquet files are only known by blob id (+ size for v783).
FILES: tuple[UpstreamFile, ...] = (
    _upstream("783", "Completeness_783.csv", "Completeness_783.csv",
              blob_sha1="b5a26b82b69a3c2e7fd99cd6810c36fc8f0e492b", size_bytes=3_327_347,
              sha256="bbb847a4cc2caaa7a16349722d220c087317b946d148d4d592d94d250617a311"),
    _upstream("783", "Connectivity_783.parquet", "Connectivity_783.parquet",
              blob_sha1="d386555d1a5f40ebfa1380bcb05b1fab044855fd", size_bytes=100_804_642),
    _upstream("630", "Completeness_630.csv", "2023_03_23_completeness_630_final.csv",
              blob_sha1="be745f0ce054308df21accc5c4b3883aa38498f9", size_bytes=3_057_611,
              sha256="e6b71e17671a9bdb05f55e4bc6774640a1418cb7a05125e0fc994ad40f9bfdfb"),
    _upstream("630", "Connectivity_630.parquet", "2023_03_23_connectivity_630_final.parquet",
              blob_sha1="8b4d9531bc0acbda7c2074ae577e6ac9e2fca166"),
)


def files_for(version: str = "783", base_url: str | None = None) -> list[UpstreamFile]:
    """The upstream files of one FlyWire version, optionally served from another base URL.

    Raises
    ------
    ConfigError
        If `version` is not one of `VERSIONS`.
    """
    version = str(version)
    if version not in VERSIONS:
        raise ConfigError(f"unknown FlyWire version {version!r}; known: {', '.join(VERSIONS)}")
    chosen = [f for f in FILES if f.version == version]
    return [f.rebased(base_url) for f in chosen] if base_url else chosen


# ----------------------------------------------------------------------------------------- hashing

@dataclass(frozen=True)
class Digest:
    """Size and both hashes of a file on disk."""

    size_bytes: int
    sha256: str
    blob_sha1: str


def digest_file(path: Path) -> Digest:
    """Size, sha256 and git blob id of `path` in one read."""
    path = Path(path)
    size = path.stat().st_size
    h256 = hashlib.sha256()
    hblob = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * CHUNK_BYTES):
            h256.update(chunk)
            hblob.update(chunk)
    return Digest(size_bytes=size, sha256=h256.hexdigest(), blob_sha1=hblob.hexdigest())


def mismatch(spec: UpstreamFile, got: Digest) -> str | None:
    """Why `got` is not `spec` ('size expected X, got Y' / 'sha256 expected ..., got ...'), None if it is."""
    if spec.size_bytes is not None and got.size_bytes != spec.size_bytes:
        return f"size expected {spec.size_bytes:,} bytes, got {got.size_bytes:,}"
    if spec.sha256 and got.sha256 != spec.sha256:
        return f"sha256 expected {spec.sha256}, got {got.sha256}"
    if got.blob_sha1 != spec.blob_sha1:
        return f"git blob id expected {spec.blob_sha1}, got {got.blob_sha1}"
    return None


# ---------------------------------------------------------------------------------------- fetching

Progress = Callable[[UpstreamFile, int, "int | None"], None]
"""Called with (file, bytes on disk so far, total bytes or None) while a file downloads."""


@dataclass(frozen=True)
class FetchResult:
    """What `fetch` did for one file: status is 'present', 'downloaded' or 'resumed'."""

    file: UpstreamFile
    path: Path
    status: str
    downloaded_bytes: int


def fetch(files: Sequence[UpstreamFile], dest: Path, progress: Progress | None = None,
          timeout_s: float = TIMEOUT_S, rerun: str = "fetch") -> list[FetchResult]:
    """Download every file of `files` into `dest`, verified before it is moved into place.

    A file already in `dest` that verifies is left alone; one that does not is downloaded again.
    An interrupted download leaves `<name>.part`, which the next call resumes with an HTTP Range
    request (or restarts, if the server ignores Range); its error says "run <rerun> again to resume".

    Returns
    -------
    list of FetchResult, in the order of `files`.

    Raises
    ------
    DataError
        On a network error (names the URL) or a download that ended short of its size (the
        `.part` file is kept for resuming, nothing is moved into place).
    IntegrityError
        If the downloaded bytes do not match the size or hash on record (the `.part` is removed).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return [_fetch_one(spec, dest, progress, timeout_s, rerun) for spec in files]


def _fetch_one(spec: UpstreamFile, dest: Path, progress: Progress | None, timeout_s: float,
               rerun: str) -> FetchResult:
    target = dest / spec.name
    if target.is_file() and mismatch(spec, digest_file(target)) is None:
        return FetchResult(spec, target, "present", 0)
    part = dest / f"{spec.name}.part"
    offset = part.stat().st_size if part.is_file() else 0
    if spec.size_bytes is not None and offset > spec.size_bytes:
        part.unlink()  # longer than the real file: cannot be a prefix of it
        offset = 0
    status, got = ("resumed" if offset else "downloaded"), 0
    if spec.size_bytes is None or offset < spec.size_bytes:
        try:
            got, restarted = _download(spec, part, offset, progress, timeout_s, rerun)
        except _RangeRejected:
            # The server says the .part already covers the whole file (or is no prefix of it).
            if mismatch(spec, digest_file(part)) is None:
                got, restarted = 0, False
            else:
                part.unlink()
                got, restarted = _download(spec, part, 0, progress, timeout_s, rerun)
                restarted = True
        if restarted:
            status = "downloaded"
    _check_and_place(spec, part, target)
    return FetchResult(spec, target, status, got)


class _RangeRejected(Exception):
    """HTTP 416 to a resume request."""


def _download(spec: UpstreamFile, part: Path, offset: int, progress: Progress | None,
              timeout_s: float, rerun: str) -> tuple[int, bool]:
    """Append the rest of `spec` to `part`; return (bytes written, whether it restarted from 0)."""
    headers = {"User-Agent": f"flyhpc/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(spec.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            raise _RangeRejected() from None
        raise DataError(f"{spec.name}: download from {spec.url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"{spec.name}: cannot reach {spec.url}: {reason}") from None
    with response:
        restarted = False
        if offset and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                raise DataError(f"{spec.name}: {spec.url} answered Range bytes={offset}- with "
                                f"Content-Range {response.headers.get('Content-Range')!r}")
        elif offset:
            restarted, offset = True, 0  # Range ignored (200): rewrite the .part from the start
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else spec.size_bytes
        written = offset
        try:
            with open(part, "ab" if offset else "wb") as fh:
                while chunk := response.read(CHUNK_BYTES):
                    fh.write(chunk)
                    written += len(chunk)
                    if progress:
                        progress(spec, written, total)
                fh.flush()
                os.fsync(fh.fileno())
        except (HTTPException, OSError) as exc:
            raise DataError(f"{spec.name}: download from {spec.url} broke off after {written:,} bytes "
                            f"({exc}); run {rerun} again to resume") from None
    expected = spec.size_bytes if spec.size_bytes is not None else total
    if expected is not None and written < expected:
        raise DataError(f"{spec.name}: truncated download from {spec.url}: expected {expected:,} bytes, "
                        f"got {written:,}; {part.name} kept, run {rerun} again to resume")
    return written - offset, restarted


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    return int(match.group(1)) if match else None


def _check_and_place(spec: UpstreamFile, part: Path, target: Path) -> None:
    why = mismatch(spec, digest_file(part))
    if why is not None:
        part.unlink(missing_ok=True)
        raise IntegrityError(f"{spec.name}: corrupted download from {spec.url}: {why}; removed {part.name}")
    os.replace(part, target)


# --------------------------------------------------------------------------------------- verifying

@dataclass(frozen=True)
class FileCheck:
    """The state of one expected file: status is 'ok', 'missing' or 'bad' (with `detail`)."""

    file: UpstreamFile
    path: Path
    size_bytes: int | None
    status: str
    detail: str = ""


def verify_dir(files: Iterable[UpstreamFile], folder: Path) -> list[FileCheck]:
    """Re-hash every file of `files` found in `folder` against its record; never raises for bad files."""
    checks = []
    for spec in files:
        path = Path(folder) / spec.name
        if not path.is_file():
            checks.append(FileCheck(spec, path, None, "missing", f"{path} not found"))
            continue
        got = digest_file(path)
        why = mismatch(spec, got)
        checks.append(FileCheck(spec, path, got.size_bytes, "bad" if why else "ok", why or ""))
    return checks


def raise_for_bad(checks: Sequence[FileCheck]) -> None:
    """Raise if any check is not ok: IntegrityError when a file is bad, else DataError for missing ones.

    Raises
    ------
    IntegrityError
        Naming every file whose size or hash differs from its record.
    DataError
        Naming every missing file (when none is bad).
    """
    bad = [c for c in checks if c.status == "bad"]
    missing = [c for c in checks if c.status == "missing"]
    if bad:
        raise IntegrityError("; ".join(f"{c.path}: {c.detail}" for c in bad + missing))
    if missing:
        names = ", ".join(str(c.path) for c in missing)
        raise DataError(f"missing: {names} (run `flyhpc data fetch`)")
