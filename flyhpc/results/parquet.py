"""Parquet files, written and opened one way. Every parquet flyhpc writes goes through here: atomically (a
temporary file renamed onto its name, `flyhpc.files.atomic_path`), zstd, column statistics, key/value metadata
sorted (equal content gives equal bytes), row groups of a given size; and every result parquet is opened here,
a missing or damaged file a `DataError` that names it.

Writers: the spike files (`flyhpc.results.spikes`, row group by row group through `parquet_writer`), a screen's
tables (`flyhpc.screens.results`, `flyhpc.screens.merge`), the screen plan (`flyhpc.screens.plan_file`) and the
synthetic connectome (`flyhpc.data.synthetic`, one layer up: this module imports nothing of flyhpc but `files` and
`errors`). What a file holds is its format module's business (`spikes`, `spike_files`, `screen_tables`); this one
knows no schema. Entry points: `parquet_writer`, `write_parquet`, `parquet_bytes`, `open_parquet`, `read_table`,
`read_metadata`.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from flyhpc.errors import DataError
from flyhpc.files import atomic_path

ROW_GROUP_ROWS = 1 << 20  # pyarrow's default today, named so a file's layout never follows a pyarrow upgrade
_DEFAULTS: dict[str, Any] = {"compression": "zstd", "write_statistics": True}


def _sorted(metadata: Mapping) -> dict[str, str]:
    return {str(k): str(v) for k, v in sorted(metadata.items())}


@contextlib.contextmanager
def parquet_writer(path, schema: pa.Schema, metadata: Mapping[str, Any] | None = None,
                   **options: Any) -> Iterator[pq.ParquetWriter]:
    """A `pyarrow.parquet.ParquetWriter` on a temporary file beside `path`, renamed onto `path` when the block
    ends without an exception (and removed when it raises: nothing is left at `path`).

    `metadata`: the file's key/value metadata (sorted, values as strings); `options`: ParquetWriter's keyword
    arguments, over zstd and statistics. The caller writes its row groups itself
    (`writer.write_table(table, row_group_size=...)`), so a file can be written while later rows are still made.
    """
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema, **{**_DEFAULTS, **options}) as writer:
        if metadata:
            writer.add_key_value_metadata(_sorted(metadata))
        yield writer


def write_parquet(target: os.PathLike | str | BinaryIO, table: pa.Table, metadata: Mapping[str, Any] | None = None,
                  row_group_rows: int = ROW_GROUP_ROWS, **options: Any) -> None:
    """Write `table` as one parquet: to a path atomically, or to a binary buffer as is.

    `metadata` replaces the table's schema metadata (None keeps it); either way it is stored sorted, inside the
    Arrow schema pyarrow keeps in the file. `options`: `pyarrow.parquet.write_table`'s, over zstd and statistics.
    """
    if metadata is None:
        metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    table = table.replace_schema_metadata(_sorted(metadata) or None)
    kwargs = {**_DEFAULTS, "row_group_size": row_group_rows, **options}
    if isinstance(target, (str, os.PathLike)):
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp, **kwargs)
    else:
        pq.write_table(table, target, **kwargs)


def parquet_bytes(table: pa.Table, metadata: Mapping[str, Any] | None = None, row_group_rows: int = ROW_GROUP_ROWS,
                  **options: Any) -> bytes:
    """The bytes `write_parquet` would write: for a file that is hashed first or rewritten only when its bytes
    change (the screen plan, whose sha256 every task carries; a label's merged tables, which a second collect
    leaves alone, mtime included)."""
    buf = io.BytesIO()
    write_parquet(buf, table, metadata, row_group_rows, **options)
    return buf.getvalue()


def open_parquet(path, what: str = "parquet", **options: Any) -> pq.ParquetFile:
    """A parquet's footer opened (`pyarrow.parquet.ParquetFile`, `options` its keyword arguments); `what` names
    the kind of file in the error.

    Raises
    ------
    DataError
        The file is missing, truncated or not a parquet (naming it).
    """
    try:
        return pq.ParquetFile(path, **options)
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: unreadable {what}, truncated or corrupt ({exc})") from None


def read_table(path, columns: list[str] | None = None, what: str = "parquet", name=None, **options: Any) -> pa.Table:
    """A whole parquet (or its `columns`) as an Arrow table; `path` may be a buffer, then `name` names the file in
    errors; `options`: `pyarrow.parquet.read_table`'s (filters).

    Raises
    ------
    DataError
        The file is missing, truncated, not a parquet or lacks a column asked for (naming it).
    """
    try:
        return pq.read_table(path, columns=columns, **options)
    except FileNotFoundError:
        raise DataError(f"{name or path}: {what} not found") from None
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{name or path}: unreadable {what} ({exc})") from None


def read_metadata(path, what: str = "parquet") -> dict[str, str]:
    """A parquet's key/value metadata as text (what its writer stored, `flyhpc.*` keys and all)."""
    return {k.decode(): v.decode() for k, v in (open_parquet(path, what).schema_arrow.metadata or {}).items()}
