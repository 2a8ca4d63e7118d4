"""The one parquet writer (flyhpc.results.parquet): sorted metadata whatever the caller's order, the same bytes to a
file and to a buffer, nothing left behind by a failed write, row groups of the size asked."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flyhpc.results.parquet import parquet_bytes, parquet_writer, write_parquet

TABLE = pa.table({"a": pa.array(range(10), pa.int32()), "b": pa.array([float(x) for x in range(10)])})


def test_metadata_is_sorted_and_the_bytes_do_not_depend_on_its_order(tmp_path):
    write_parquet(tmp_path / "x.parquet", TABLE, {"z": 1, "a": "two"})
    write_parquet(tmp_path / "y.parquet", TABLE.replace_schema_metadata({"a": "two", "z": "1"}))
    assert (tmp_path / "x.parquet").read_bytes() == (tmp_path / "y.parquet").read_bytes()
    assert (tmp_path / "x.parquet").read_bytes() == parquet_bytes(TABLE, {"a": "two", "z": "1"})
    meta = pq.read_schema(tmp_path / "x.parquet").metadata
    assert [k for k in meta if not k.startswith(b"ARROW")] == [b"a", b"z"] and meta[b"z"] == b"1"
    column = pq.ParquetFile(tmp_path / "x.parquet").metadata.row_group(0).column(0)
    assert column.compression == "ZSTD" and column.statistics.max == 9


def test_row_groups_of_the_size_asked(tmp_path):
    write_parquet(tmp_path / "x.parquet", TABLE, row_group_rows=4)
    assert pq.ParquetFile(tmp_path / "x.parquet").metadata.num_row_groups == 3
    assert pq.read_table(tmp_path / "x.parquet").equals(TABLE)


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="disk full"):
        with parquet_writer(tmp_path / "x.parquet", TABLE.schema, {"k": "v"}) as writer:
            writer.write_table(TABLE)
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(pa.ArrowException, match="no-such-codec"):
        write_parquet(tmp_path / "y.parquet", TABLE, compression="no-such-codec")
    assert list(tmp_path.iterdir()) == []


def test_the_streaming_writer_keeps_its_metadata_and_groups(tmp_path):
    with parquet_writer(tmp_path / "x.parquet", TABLE.schema, {"z": 1, "a": 2}, store_schema=False) as writer:
        for lo in (0, 5):
            writer.write_table(TABLE.slice(lo, 5), row_group_size=5)
    pf = pq.ParquetFile(tmp_path / "x.parquet")
    assert pf.metadata.num_row_groups == 2 and pf.read().equals(TABLE)
    assert list(pf.schema_arrow.metadata) == [b"a", b"z"]
