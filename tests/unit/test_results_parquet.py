"""The one parquet writer (flyhpc.results.parquet): sorted metadata whatever the caller's order, the same bytes to a
file and to a buffer, nothing left behind by a failed write, row groups of the size asked; a missing or damaged
file read through it is a DataError naming the file."""

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


def test_a_missing_or_damaged_file_is_a_data_error_naming_it(tmp_path):
    from flyhpc.errors import DataError
    from flyhpc.results.parquet import open_parquet, read_metadata, read_table
    from flyhpc.results.screen_tables import read_screen_table

    with pytest.raises(DataError, match=r"none\.parquet: screen table not found"):
        read_screen_table(tmp_path / "none.parquet")
    write_parquet(tmp_path / "x.parquet", TABLE, {"k": "v"})
    assert read_metadata(tmp_path / "x.parquet") == {"k": "v"}
    assert read_table(tmp_path / "x.parquet", ["b"]).column_names == ["b"]
    with pytest.raises(DataError, match=r"x\.parquet: unreadable parquet .*nope"):
        read_table(tmp_path / "x.parquet", ["nope"])
    (tmp_path / "x.parquet").write_bytes((tmp_path / "x.parquet").read_bytes()[:-30])
    with pytest.raises(DataError, match=r"x\.parquet: unreadable spike parquet, truncated or corrupt"):
        open_parquet(tmp_path / "x.parquet", "spike parquet")


def test_a_buffer_is_named_by_its_file(tmp_path):
    import io

    from flyhpc.errors import DataError
    from flyhpc.results.parquet import read_table

    assert read_table(io.BytesIO(parquet_bytes(TABLE))).equals(TABLE)
    with pytest.raises(DataError, match=r"^plan\.parquet: unreadable screen plan"):
        read_table(io.BytesIO(b"not a parquet"), what="screen plan", name="plan.parquet")
