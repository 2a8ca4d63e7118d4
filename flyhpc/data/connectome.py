"""The connectome as CSR by presynaptic neuron, loaded from FlyWire files and cached as .npz.

Owns the neuron order (row order of the Completeness CSV = neuron index), the merge of repeated
(pre, post) rows (their signed counts add up), and the cache keyed by the sources' sha256 — never a
pickle. Knows nothing about simulators or drive. Entry points: `Connectome`, `load_connectome`,
`read_completeness`, `connectome_from_edges`, `locate_sources`, `CsrSizes`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from flyhpc.errors import DataError
from flyhpc.files import atomic_path, sha256_file

EDGE_COLUMNS = ("Presynaptic_Index", "Postsynaptic_Index", "Excitatory x Connectivity")
CACHE_FORMAT = 1


class CsrSizes:
    """`n_neurons` and `n_edges` of a CSR graph held as `flywire_ids` (one per row) and `indices` (one per edge)."""

    @property
    def n_neurons(self) -> int:
        return int(self.flywire_ids.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.indices.shape[0])


@dataclass(frozen=True)
class Connectome(CsrSizes):
    """Neuron ids and signed synapse counts as CSR by presynaptic neuron.

    `indptr` (int64, n+1), `indices` (int32 postsynaptic rows, ascending within a row) and
    `counts` (int32 signed synapse counts, never 0) describe every (pre, post) pair once.
    `source` says where it came from ("flywire-783", "synthetic:..."), `digest` is the sha256
    over its sources, which keys caches and benchmark records.
    """

    flywire_ids: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    counts: np.ndarray
    source: str
    digest: str

    @property
    def is_synthetic(self) -> bool:
        return self.source.startswith("synthetic")


COMPLETENESS_HEADER = ",Completed"


def _check_completeness_header(path: Path) -> None:
    """Refuse a Completeness CSV whose first line is not FlyWire's header (an unnamed root-id column first)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file; expected the FlyWire Completeness CSV") from None
    head = (next(csv.reader([first]), None) or [""])[0].strip()
    shown = first.rstrip("\r\n")
    if head.lstrip("+-").isdigit():
        raise DataError(f"{path}: first line {shown!r} is a root id, not a header row; expected the header "
                        f"{COMPLETENESS_HEADER!r} of the FlyWire Completeness CSV (unnamed root-id column first)")
    if head:
        raise DataError(f"{path}: no root-id column: the first column must be FlyWire's unnamed root-id column "
                        f"(header {COMPLETENESS_HEADER!r}), found header {shown!r}")


def read_completeness(path: Path) -> np.ndarray:
    """FlyWire root ids from a Completeness CSV (first column), in file order.

    The file is laid out as FlyWire ships it: a header row whose first field is empty (the root-id
    column, ",Completed"), then one neuron per line.

    Raises
    ------
    DataError
        If the file is missing, lacks the header row or the root-id column, holds non-integer ids or
        repeats an id.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"neuron list {path} not found (run `flyhpc data fetch` or `flyhpc data synth`)")
    _check_completeness_header(path)
    try:
        frame = pd.read_csv(path, usecols=[0], dtype={0: "int64"}, engine="c")
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: first column must hold integer FlyWire root ids ({exc})") from None
    ids = frame.iloc[:, 0].to_numpy(dtype=np.int64)
    if ids.size == 0:
        raise DataError(f"{path}: no neurons listed")
    if np.any(ids[1:] <= ids[:-1]):
        order_ok = np.all(np.diff(np.sort(ids)) > 0)
        what = "is not sorted ascending" if order_ok else "repeats a root id"
        raise DataError(f"{path}: neuron list {what}; expected the FlyWire Completeness CSV")
    return ids


def connectome_from_edges(flywire_ids: np.ndarray, pre: np.ndarray, post: np.ndarray,
                          signed_counts: np.ndarray, source: str, digest: str) -> Connectome:
    """Build the CSR, adding up repeated (pre, post) rows and dropping pairs that sum to 0."""
    n = len(flywire_ids)
    pre = np.asarray(pre, dtype=np.int64)
    post = np.asarray(post, dtype=np.int64)
    w = np.asarray(signed_counts, dtype=np.int64)
    for label, arr in (("Presynaptic_Index", pre), ("Postsynaptic_Index", post)):
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            bad = arr[(arr < 0) | (arr >= n)][:5].tolist()
            raise DataError(f"{source}: {label} {bad} out of range for {n} neurons")
    key = pre * n + post
    order = np.argsort(key, kind="stable")
    key = key[order]
    w = w[order]
    if key.size:
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        summed = np.add.reduceat(w, starts)
        key = key[starts]
        keep = summed != 0
        key, summed = key[keep], summed[keep]
    else:
        summed = w
    pre_u = key // n
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre_u, minlength=n), out=indptr[1:])
    return Connectome(
        flywire_ids=np.ascontiguousarray(flywire_ids, dtype=np.int64),
        indptr=indptr,
        indices=(key % n).astype(np.int32),
        counts=summed.astype(np.int32),
        source=source,
        digest=digest,
    )


@dataclass(frozen=True)
class Sources:
    """The two files a connectome is read from."""

    completeness: Path
    connectivity: Path
    source: str


def sources_digest(sources: Sources) -> str:
    """sha256 over the two files' sha256 (and the cache format), the connectome's identity."""
    h = hashlib.sha256()
    h.update(f"flyhpc-connectome-v{CACHE_FORMAT}\n".encode())
    for path in (sources.completeness, sources.connectivity):
        h.update(sha256_file(path).encode())
    return h.hexdigest()


def load_connectome(sources: Sources, cache_dir: Path | None = None) -> Connectome:
    """Load a connectome from its FlyWire files, through the .npz cache when it is there.

    The cache file name holds the sources' digest, so a changed file never reads a stale cache.

    Raises
    ------
    DataError
        If a file is missing, lacks the needed columns, or indexes a neuron out of range.
    """
    for path in (sources.completeness, sources.connectivity):
        if not Path(path).is_file():
            raise DataError(f"connectome file {path} not found")
    digest = sources_digest(sources)
    cache_dir = Path(cache_dir) if cache_dir else Path(sources.connectivity).parent / "cache"
    cache = cache_dir / f"connectome-{digest[:20]}.npz"
    if cache.is_file():
        try:
            return _read_cache(cache, digest)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            cache.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    ids = read_completeness(sources.completeness)
    pre, post, signed = _read_edges(sources.connectivity)
    try:
        conn = connectome_from_edges(ids, pre, post, signed, sources.source, digest)
    except DataError as exc:
        raise DataError(f"{sources.connectivity}: {exc}") from None
    _write_cache(conn, cache)
    return conn


def _read_edges(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        table = pq.read_table(path, columns=list(EDGE_COLUMNS))
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DataError(f"{path}: not a readable connectivity parquet with columns {list(EDGE_COLUMNS)} ({exc})") from None
    return tuple(table.column(c).to_numpy() for c in EDGE_COLUMNS)  # type: ignore[return-value]


def _write_cache(conn: Connectome, cache: Path) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"format": CACHE_FORMAT, "source": conn.source, "digest": conn.digest})
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, flywire_ids=conn.flywire_ids, indptr=conn.indptr, indices=conn.indices,
                     counts=conn.counts, meta=np.frombuffer(meta.encode(), dtype=np.uint8))


def _read_cache(cache: Path, digest: str) -> Connectome:
    with np.load(cache, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        if meta.get("digest") != digest or meta.get("format") != CACHE_FORMAT:
            raise ValueError("cache does not belong to these sources")
        return Connectome(flywire_ids=z["flywire_ids"], indptr=z["indptr"], indices=z["indices"],
                          counts=z["counts"], source=meta["source"], digest=digest)


def default_data_dir() -> Path:
    """Where data lives: $FLYHPC_DATA, else ./data."""
    return Path(os.environ.get("FLYHPC_DATA", "data"))
