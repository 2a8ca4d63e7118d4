"""flyhpc.data.connectome on small generated FlyWire-schema files, and on the real Completeness CSV.

Covers the CSR against a dense reference, the merge of repeated (pre, post) rows, the sha256-keyed
.npz cache (reuse, invalidation, repair) and the DataErrors for malformed inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flyhpc.data import connectome as cm
from flyhpc.errors import DataError
from flyhpc.model import SUGAR_IDS

BASE_ID = 720575940600000000


def _write_sources(folder: Path, n_neurons: int, pre, post, signed, ids=None) -> cm.Sources:
    """Completeness CSV + connectivity parquet in the real schema (all seven columns)."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.asarray(BASE_ID + 17 * np.arange(n_neurons) if ids is None else ids, dtype=np.int64)
    comp = folder / "Completeness_783.csv"
    pd.DataFrame({"Completed": True}, index=pd.Index(ids)).to_csv(comp)
    pre, post, signed = (np.asarray(a, dtype=np.int64) for a in (pre, post, signed))
    sign = np.where(signed < 0, -1, 1)
    in_range = lambda a: np.clip(a, 0, len(ids) - 1)  # ids columns stay valid even for bad indices
    frame = pd.DataFrame({
        "Presynaptic_ID": ids[in_range(pre)], "Postsynaptic_ID": ids[in_range(post)],
        "Presynaptic_Index": pre, "Postsynaptic_Index": post,
        "Connectivity": np.abs(signed), "Excitatory": sign, "Excitatory x Connectivity": signed,
    })
    conn = folder / "Connectivity_783.parquet"
    frame.to_parquet(conn, index=False)
    return cm.Sources(completeness=comp, connectivity=conn, source="flywire-783")


def _random_edges(rng: np.random.Generator, n_neurons: int, n_rows: int):
    pre = rng.integers(0, n_neurons, n_rows)
    post = rng.integers(0, n_neurons, n_rows)
    signed = rng.integers(1, 9, n_rows) * rng.choice([-1, 1], n_rows)
    # force repeats: copy some rows verbatim, and cancel one pair exactly
    pre = np.r_[pre, pre[:20], pre[0]]
    post = np.r_[post, post[:20], post[0]]
    signed = np.r_[signed, signed[:20], -2 * signed[0]]
    return pre, post, signed


def _dense(conn: cm.Connectome) -> np.ndarray:
    n = conn.n_neurons
    dense = np.zeros((n, n), dtype=np.int64)
    rows = np.repeat(np.arange(n), np.diff(conn.indptr))
    dense[rows, conn.indices] = conn.counts
    return dense


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(7)
    pre, post, signed = _random_edges(rng, 40, 400)
    return _write_sources(tmp_path / "src", 40, pre, post, signed), (pre, post, signed)


def test_csr_matches_dense_reference(small, tmp_path):
    sources, (pre, post, signed) = small
    conn = cm.load_connectome(sources, cache_dir=tmp_path / "cache")
    ref = np.zeros((40, 40), dtype=np.int64)
    np.add.at(ref, (pre, post), signed)
    assert np.array_equal(_dense(conn), ref)
    assert conn.n_neurons == 40 and conn.n_edges == np.count_nonzero(ref)
    assert conn.indptr.dtype == np.int64 and conn.indices.dtype == np.int32 and conn.counts.dtype == np.int32
    assert conn.indptr[0] == 0 and conn.indptr[-1] == conn.n_edges
    for i in range(40):
        row = conn.indices[conn.indptr[i]:conn.indptr[i + 1]]
        assert np.all(np.diff(row) > 0)  # ascending, each (pre, post) once
    assert np.all(conn.counts != 0)
    assert np.array_equal(conn.flywire_ids, BASE_ID + 17 * np.arange(40))
    assert conn.source == "flywire-783" and conn.digest == cm.sources_digest(sources)


def test_repeated_pre_post_rows_add_up(tmp_path):
    pre = [0, 0, 2, 2, 1, 1, 3]
    post = [1, 1, 0, 0, 2, 2, 3]
    signed = [3, 2, 4, -4, -1, -2, 6]
    conn = cm.load_connectome(_write_sources(tmp_path, 4, pre, post, signed), cache_dir=tmp_path / "c")
    dense = _dense(conn)
    assert dense[0, 1] == 5 and dense[1, 2] == -3 and dense[3, 3] == 6
    assert dense[2, 0] == 0 and conn.n_edges == 3  # the pair summing to 0 is dropped


def test_cache_hit_does_not_read_the_sources(small, tmp_path, monkeypatch):
    sources, _ = small
    cache_dir = tmp_path / "cache"
    first = cm.load_connectome(sources, cache_dir=cache_dir)
    cached = list(cache_dir.glob("connectome-*.npz"))
    assert [p.name for p in cached] == [f"connectome-{first.digest[:20]}.npz"]

    def refuse(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(cm.pq, "read_table", refuse)
    monkeypatch.setattr(cm, "read_completeness", refuse)
    second = cm.load_connectome(sources, cache_dir=cache_dir)
    for field in ("flywire_ids", "indptr", "indices", "counts"):
        a, b = getattr(first, field), getattr(second, field)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert (second.source, second.digest) == (first.source, first.digest)


def test_changed_source_gives_a_new_cache_key(small, tmp_path):
    sources, (pre, post, signed) = small
    cache_dir = tmp_path / "cache"
    first = cm.load_connectome(sources, cache_dir=cache_dir)
    signed = signed.copy()
    signed[5] += 100
    _write_sources(sources.connectivity.parent, 40, pre, post, signed)
    second = cm.load_connectome(sources, cache_dir=cache_dir)
    assert second.digest != first.digest
    assert len(list(cache_dir.glob("connectome-*.npz"))) == 2
    assert _dense(second)[pre[5], post[5]] == _dense(first)[pre[5], post[5]] + 100


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_damaged_cache_is_rebuilt(small, tmp_path, monkeypatch, damage):
    sources, _ = small
    cache_dir = tmp_path / "cache"
    first = cm.load_connectome(sources, cache_dir=cache_dir)
    cache = next(cache_dir.glob("connectome-*.npz"))
    good = cache.read_bytes()
    if damage == "garbage":
        cache.write_bytes(b"not an npz at all")
    elif damage == "truncated":
        cache.write_bytes(good[: len(good) // 2])
    else:  # a valid npz written for other sources
        np.savez(cache, flywire_ids=first.flywire_ids, indptr=first.indptr, indices=first.indices,
                 counts=first.counts, meta=np.frombuffer(b'{"format": 1, "source": "x", "digest": "0"}',
                                                         dtype=np.uint8))
    rebuilt = cm.load_connectome(sources, cache_dir=cache_dir)
    assert np.array_equal(_dense(rebuilt), _dense(first))
    # the repaired cache is used again without reading the sources
    monkeypatch.setattr(cm.pq, "read_table", lambda *a, **k: (_ for _ in ()).throw(AssertionError("read")))
    again = cm.load_connectome(sources, cache_dir=cache_dir)
    assert np.array_equal(again.counts, first.counts)


@pytest.mark.parametrize("column,bad", [("Postsynaptic_Index", 5), ("Presynaptic_Index", -1)])
def test_out_of_range_index_names_the_file(tmp_path, column, bad):
    pre, post = [0, 1, 2], [1, 2, 3]
    (post if column == "Postsynaptic_Index" else pre)[1] = bad
    sources = _write_sources(tmp_path, 5 if bad < 0 else 4, pre, post, [1, 2, 3])
    with pytest.raises(DataError) as err:
        cm.load_connectome(sources, cache_dir=tmp_path / "c")
    msg = str(err.value)
    assert str(sources.connectivity) in msg and column in msg and f"[{bad}]" in msg and "out of range" in msg
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())


@pytest.mark.parametrize("ids,what", [([BASE_ID + 5, BASE_ID + 2, BASE_ID + 9], "not sorted"),
                                      ([BASE_ID + 2, BASE_ID + 2, BASE_ID + 9], "repeats")])
def test_unsorted_or_duplicate_ids_name_the_file(tmp_path, ids, what):
    sources = _write_sources(tmp_path, 3, [0], [1], [1], ids=ids)
    with pytest.raises(DataError, match=what) as err:
        cm.load_connectome(sources, cache_dir=tmp_path / "c")
    assert str(sources.completeness) in str(err.value)


def test_missing_column_and_non_integer_ids_name_the_file(tmp_path):
    sources = _write_sources(tmp_path, 3, [0], [1], [1])
    pd.read_parquet(sources.connectivity).drop(columns=["Excitatory x Connectivity"]).to_parquet(sources.connectivity)
    with pytest.raises(DataError, match="Excitatory x Connectivity") as err:
        cm.load_connectome(sources, cache_dir=tmp_path / "c")
    assert str(sources.connectivity) in str(err.value)
    sources.completeness.write_text(",Completed\nabc,True\n")
    with pytest.raises(DataError, match="integer") as err:
        cm.read_completeness(sources.completeness)
    assert str(sources.completeness) in str(err.value)
    with pytest.raises(DataError, match="not found"):
        cm.load_connectome(cm.Sources(tmp_path / "nope.csv", sources.connectivity, "x"))


@pytest.mark.parametrize("text, message", [
    ("foo,bar\n720575940600000000,True\n720575940600000017,True\n",
     "no root-id column: the first column must be FlyWire's unnamed root-id column (header ',Completed'), "
     "found header 'foo,bar'"),
    ("root_id,Completed\n720575940600000000,True\n",
     "no root-id column: the first column must be FlyWire's unnamed root-id column (header ',Completed'), "
     "found header 'root_id,Completed'"),
    ("720575940600000000,True\n720575940600000017,True\n",
     "first line '720575940600000000,True' is a root id, not a header row; expected the header ',Completed' "
     "of the FlyWire Completeness CSV"),
    ("720575940600000000\n720575940600000017\n", "first line '720575940600000000' is a root id, not a header row"),
])
def test_completeness_without_its_header_or_id_column_says_what_is_expected(tmp_path, text, message):
    path = tmp_path / "Completeness_783.csv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        cm.read_completeness(path)
    assert str(err.value).startswith(f"{path}: {message}")


def test_completeness_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "Completeness_783.csv"
    path.write_bytes(b"\xff\xfe,Completed\n1,True\n")
    with pytest.raises(DataError, match="not a UTF-8 text file") as err:
        cm.read_completeness(path)
    assert str(path) in str(err.value)


def test_completeness_keeps_its_first_neuron(tmp_path):
    path = tmp_path / "Completeness_783.csv"
    path.write_text(",Completed\n11,True\n12,False\n")
    assert cm.read_completeness(path).tolist() == [11, 12]


# Sugar GRN row indices in the v783 Completeness CSV, seed-spec §1.6 (in SUGAR_IDS order).
SUGAR_INDICES_783 = (69093, 97602, 122795, 124291, 29281, 100605, 110469, 51107, 49584, 129730, 126873,
                     28825, 126600, 126752, 32863, 108426, 111357, 14842, 90589, 92298, 12494)


def test_real_completeness_783(shared_dir):
    ids = cm.read_completeness(shared_dir / "data" / "Completeness_783.csv")
    assert ids.shape == (138_639,) and ids.dtype == np.int64
    index = {int(fid): i for i, fid in enumerate(ids)}
    assert tuple(index[fid] for fid in SUGAR_IDS) == SUGAR_INDICES_783
