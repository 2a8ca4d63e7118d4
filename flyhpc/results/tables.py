"""A label's tables: CSV text, files rewritten only when their bytes change, CSVs concatenated, and the
global results CSV that several labels share.

Every table a collect writes goes through here, so a second collect of an unchanged label leaves every file (and
its mtime) alone; `read_rows`, `read_effects`, `read_manifest_frame` and `read_results_frame` read them back.
Entry points: `csv_text`, `frame_csv`, `write_if_changed`, `write_bytes_if_changed`, `concat_csv`, `upsert_rows`,
`read_rows`, `read_effects`, `read_manifest_frame`, `read_results_frame`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from flyhpc.files import atomic_path, rewrite_lock


def csv_text(columns, rows) -> str:
    """CSV text of dict rows under `columns` (header first, `\\n` line ends, extra keys ignored)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV file's columns and rows (every value a string): manifest.csv, benchmark-results.csv, ..."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def read_effects(path: Path, nrows: int | None = None, empty_as_nan: bool = True):
    """A screen label's effects.csv as a pandas DataFrame in its ranked order (the first `nrows` rows); keys and
    neuron ids stay strings, an empty cell is NaN (or "" without `empty_as_nan`, for text output)."""
    import pandas as pd

    return pd.read_csv(path, dtype={"experiment_key": str, "top_neuron": str}, nrows=nrows, keep_default_na=False,
                       na_values=[""] if empty_as_nan else None)


def read_manifest_frame(path: Path):
    """A label's manifest.csv as a pandas DataFrame, every value a string (an empty cell stays "")."""
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False)


def read_results_frame(path: Path):
    """benchmark-results.csv as a pandas DataFrame; `versions` (JSON) and `trials` (numbers) stay text."""
    import pandas as pd

    return pd.read_csv(path, dtype={"versions": str, "trials": str})


def write_if_changed(path: Path, text: str) -> None:
    """Write `text` atomically unless the file already holds exactly it."""
    if path.is_file() and path.read_text() == text:
        return  # identical content: leave the file (and its mtime) alone
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes_if_changed(path: Path, content: bytes) -> None:
    """Write `content` atomically unless the file already holds exactly it."""
    if path.is_file() and path.read_bytes() == content:
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)


def concat_csv(parts: list[Path]) -> str:
    """The CSV files `parts` (one header) as one CSV text: the first header, then every file's rows in order."""
    texts = [p.read_text() for p in parts]
    header = texts[0].split("\n", 1)[0]
    return header + "\n" + "".join(t.split("\n", 1)[1] for t in texts)


def upsert_rows(path: Path, rows: list[dict[str, str]], columns: Sequence[str], key: Sequence[str]) -> None:
    """Upsert rows into a CSV shared by several labels (`flyhpc collect --global-csv`).

    Rows are keyed by the columns `key`, compared as strings; rows with
    a new key are appended, the file is rewritten atomically with `columns` first. Collects of
    several labels share the file: each holds its lock (`files.rewrite_lock`, waiting for the others) from
    reading to writing, so none overwrites another's rows.
    """
    with rewrite_lock(path):
        columns = list(columns)
        found, existing = read_rows(path) if path.is_file() else ([], [])
        columns += [c for c in found if c not in columns]
        new = {tuple(r.get(k, "") for k in key): r for r in rows}
        merged = []
        for row in existing:
            found = tuple(row.get(k, "") for k in key)
            merged.append(new.pop(found) if found in new else row)
        merged.extend(new.values())
        write_if_changed(path, csv_text(columns, merged))


_SPECIAL = ',"\r\n'  # what makes the csv module quote a cell (QUOTE_MINIMAL, delimiter ",")


def _quoted(value: str) -> str:
    """One CSV cell as the csv module writes it (QUOTE_MINIMAL, doubled quotes)."""
    if not any(c in value for c in _SPECIAL):
        return value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([value])
    return out.getvalue()[:-1]


def frame_csv(frame, columns: Sequence[str], float_format: str | None = None) -> str:
    """`frame.to_csv(index=False, columns=columns, float_format=float_format, lineterminator="\\n")`, the very text,
    made column by column (pandas formats and writes cell by cell: ~1 s for the atlas's 138,639 effects, this
    ~0.2 s). Floats without a format are numpy's `astype(str)`, as pandas writes them; numbers need no quotes;
    text cells are quoted as the csv module pandas writes with quotes them. A missing value is an empty cell, as
    pandas writes it."""
    import numpy as np

    cells = []
    for name in columns:
        column = frame[name]
        if column.dtype.kind == "f":
            floats = column.to_numpy(dtype=np.float64, na_value=np.nan)
            values = (floats.astype(str).tolist() if float_format is None
                      else [float_format % v for v in floats.tolist()])
        elif column.dtype.kind in "iub":
            values = list(map(str, column.tolist()))
        else:
            values = list(map(str, column.tolist()))
            if any(c in "".join(values) for c in _SPECIAL):  # one look at the whole column, then cell by cell
                values = list(map(_quoted, values))
        missing = column.isna().to_numpy()
        if missing.any():
            values = ["" if m else v for v, m in zip(values, missing.tolist())]
        cells.append(values)
    header = ",".join(_quoted(str(c)) for c in columns)
    return "\n".join([header, *map(",".join, zip(*cells))]) + "\n"
