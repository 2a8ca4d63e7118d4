"""The paper's own example outputs (Shiu et al. 2024, real FlyWire v630): what they are, fetching and checking them.

Owns the pinned list of the upstream repository's results/example files flyhpc uses as a reference
(`EXAMPLES`: name, git blob id, size, sha256 and what experiment each one ran) and their download:
HTTP Range onto `<name>.part`, size + sha256 + blob check, then one atomic rename. Never prints
(progress goes to a callback) and never parses the files (see flyhpc.report.paper).
Entry points: `EXAMPLES`, `default_dir`, `find`, `fetch`, `verify`.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Callable, Sequence

from flyhpc import __version__
from flyhpc.errors import DataError, IntegrityError

UPSTREAM_REPO = "philshiu/Drosophila_brain_model"
UPSTREAM_COMMIT = "91bdd1e7dcf193f3e7ca5a8933497fcef63b7960"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{UPSTREAM_REPO}/{UPSTREAM_COMMIT}"
FOLDER_NAME = "paper-examples"
CONNECTOME = "FlyWire v630"
T_RUN_S = 1.0  # every example: 30 trials of 1 s each (the paper's model.py defaults)
N_TRIALS = 30
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ExampleFile:
    """One of the paper's example outputs: where it lives upstream, how to check it, what it ran.

    `experiment` is the flyhpc experiment it corresponds to ("sugar": the 21 sugar GRNs at 200 Hz)
    or "" when flyhpc has no preset for it; `description` says what the paper ran.
    """

    name: str
    blob_sha1: str
    size_bytes: int
    sha256: str
    experiment: str
    description: str

    @property
    def remote(self) -> str:
        return f"results/example/{self.name}"

    def url(self, base_url: str = DEFAULT_BASE_URL) -> str:
        return f"{base_url.rstrip('/')}/{self.remote}"


# Blob ids and sizes from the upstream git tree at UPSTREAM_COMMIT; sha256 of copies whose blob id matches.
EXAMPLES: tuple[ExampleFile, ...] = (
    ExampleFile("sugarR.parquet", "1204cb3ed453ad03b0141028fa511d924f99d599", 948_526,
                "83921d50089d966785e402d6c0e3be5ab3eba5beb680410a09c557b0f22dcc28", "sugar",
                "the 21 sugar GRNs at 200 Hz"),
    ExampleFile("sugarR_100Hz.parquet", "bd76730d5e991d64b756f354a749f94ffb874c64", 557_849,
                "93722ec03c3faa5a85790d77ed16bdd7f1e38a7c847ed0bc3af3dc2e4d0c3d34", "",
                "the 21 sugar GRNs at 100 Hz"),
    ExampleFile("sugarR-720575940617937543.parquet", "1cdeee4a3d4aa5b16602ac0a1e76f1db14e19f9b", 537_629,
                "e0d39699bd979a5761138dbab964dbfe1c55feb945349cd24bc1c1f9a925753b", "",
                "sugar at 200 Hz, 720575940617937543 silenced (outgoing synapses)"),
    ExampleFile("sugarR-720575940621754367.parquet", "17942838fe14639269fdff3636ebadbc13645436", 553_968,
                "f7d7cd7386663cbce864d6ca132ce5992d0cdb65f281b30768c3afe0804514a6", "",
                "sugar at 200 Hz, 720575940621754367 silenced (outgoing synapses)"),
    ExampleFile("sugarR-720575940622695448.parquet", "b4524c7d29476f0816b5162b8ebb4839d4e040fc", 578_825,
                "c6b5e102249e23c30989ad66ad897d81a6453681ba3756dd30c83e956aee803e", "",
                "sugar at 200 Hz, 720575940622695448 silenced (outgoing synapses)"),
)


def default_dir() -> Path:
    """Where `flyhpc data fetch --examples` puts the files: $FLYHPC_DATA/paper-examples, else data/paper-examples."""
    return Path(os.environ.get("FLYHPC_DATA", "data")) / FOLDER_NAME


def find(folder: Path) -> list[tuple[ExampleFile, Path]]:
    """The pinned example files present in `folder` (by name), in the order of `EXAMPLES`."""
    return [(spec, Path(folder) / spec.name) for spec in EXAMPLES if (Path(folder) / spec.name).is_file()]


# ------------------------------------------------------------------------------------------ checking

def _mismatch(spec: ExampleFile, path: Path) -> str | None:
    """Why the file at `path` is not `spec` (size, sha256 or blob id), None if it is."""
    size = path.stat().st_size
    if size != spec.size_bytes:
        return f"size expected {spec.size_bytes:,} bytes, got {size:,}"
    h256, hblob = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * CHUNK_BYTES):
            h256.update(chunk)
            hblob.update(chunk)
    if h256.hexdigest() != spec.sha256:
        return f"sha256 expected {spec.sha256}, got {h256.hexdigest()}"
    if hblob.hexdigest() != spec.blob_sha1:
        return f"git blob id expected {spec.blob_sha1}, got {hblob.hexdigest()}"
    return None


@dataclass(frozen=True)
class ExampleCheck:
    """The state of one example file in a folder: status 'ok', 'missing' or 'bad' (with `detail`)."""

    file: ExampleFile
    path: Path
    status: str
    detail: str = ""


def verify(folder: Path, files: Sequence[ExampleFile] = EXAMPLES) -> list[ExampleCheck]:
    """Re-hash each pinned example file in `folder`; never raises for a bad or missing file."""
    checks = []
    for spec in files:
        path = Path(folder) / spec.name
        if not path.is_file():
            checks.append(ExampleCheck(spec, path, "missing", f"{path} not found"))
            continue
        why = _mismatch(spec, path)
        checks.append(ExampleCheck(spec, path, "bad" if why else "ok", why or ""))
    return checks


# ------------------------------------------------------------------------------------------ fetching

Progress = Callable[[ExampleFile, int, int], None]
"""Called with (file, bytes on disk so far, total bytes) while a file downloads."""


@dataclass(frozen=True)
class FetchResult:
    """What `fetch` did for one file: status 'present', 'downloaded' or 'resumed'."""

    file: ExampleFile
    path: Path
    status: str
    downloaded_bytes: int


def fetch(dest: Path, files: Sequence[ExampleFile] = EXAMPLES, base_url: str = DEFAULT_BASE_URL,
          progress: Progress | None = None, timeout_s: float = TIMEOUT_S) -> list[FetchResult]:
    """Download the pinned example files into `dest`, each verified before it is moved into place.

    A verified file already there is left alone; an interrupted download leaves `<name>.part`, which
    the next call resumes with an HTTP Range request (or restarts when the server ignores Range).

    Raises
    ------
    DataError
        A network error (names the URL) or a download that ended short (the `.part` is kept).
    IntegrityError
        Downloaded bytes of another size or hash than pinned (the `.part` is removed).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return [_fetch_one(spec, dest, base_url, progress, timeout_s) for spec in files]


def _fetch_one(spec: ExampleFile, dest: Path, base_url: str, progress: Progress | None,
               timeout_s: float) -> FetchResult:
    target, part = dest / spec.name, dest / f"{spec.name}.part"
    if target.is_file() and _mismatch(spec, target) is None:
        return FetchResult(spec, target, "present", 0)
    offset = part.stat().st_size if part.is_file() else 0
    if offset > spec.size_bytes:
        part.unlink()  # longer than the real file: no prefix of it
        offset = 0
    status, got = ("resumed" if offset else "downloaded"), 0
    if offset < spec.size_bytes:
        got, restarted = _download(spec, spec.url(base_url), part, offset, progress, timeout_s)
        status = "downloaded" if restarted else status
    why = _mismatch(spec, part)
    if why is not None:
        part.unlink(missing_ok=True)
        raise IntegrityError(f"{spec.name}: corrupted download from {spec.url(base_url)}: {why}; removed {part.name}")
    os.replace(part, target)
    return FetchResult(spec, target, status, got)


def _download(spec: ExampleFile, url: str, part: Path, offset: int, progress: Progress | None,
              timeout_s: float) -> tuple[int, bool]:
    """Append the rest of the file to `part`; return (bytes written, whether it restarted from 0)."""
    headers = {"User-Agent": f"flyhpc/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{spec.name}: download from {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, HTTPException, OSError) as exc:
        raise DataError(f"{spec.name}: cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    with response:
        restarted = False
        if offset and response.status == 206:
            match = re.match(r"\s*bytes\s+(\d+)-", response.headers.get("Content-Range") or "")
            if not match or int(match.group(1)) != offset:
                raise DataError(f"{spec.name}: {url} answered Range bytes={offset}- with "
                                f"Content-Range {response.headers.get('Content-Range')!r}")
        elif offset:
            restarted, offset = True, 0  # Range ignored (200): rewrite the .part from the start
        written = offset
        try:
            with open(part, "ab" if offset else "wb") as fh:
                while chunk := response.read(CHUNK_BYTES):
                    fh.write(chunk)
                    written += len(chunk)
                    if progress:
                        progress(spec, written, spec.size_bytes)
                fh.flush()
                os.fsync(fh.fileno())
        except (HTTPException, OSError) as exc:
            raise DataError(f"{spec.name}: download from {url} broke off after {written:,} bytes ({exc}); "
                            "run `flyhpc data fetch --examples` again to resume") from None
    if written < spec.size_bytes:
        raise DataError(f"{spec.name}: truncated download from {url}: expected {spec.size_bytes:,} bytes, "
                        f"got {written:,}; {part.name} kept, run `flyhpc data fetch --examples` again to resume")
    return written - offset, restarted
