"""The report's tables as text: CSV for the files beside the page, and the one number format of the page.

CSV cells keep full precision (`repr` of floats; empty for None/NaN); `fmt` is how the page shows a
number (4 significant digits, thousands separators for integers), so a test can check the page's
numbers against the CSV's. Entry points: `csv_text`, `fmt`, `frame_rows`.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, Iterable, Sequence

import numpy as np


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """CSV with a header, `\\n` line ends, every cell via `_cell`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def frame_rows(frame) -> list[dict[str, Any]]:
    """A pandas frame as a list of plain dicts (NaN kept as float NaN)."""
    return frame.to_dict(orient="records")


def fmt(value: Any) -> str:
    """A number as the page shows it: '' for None/NaN, ints with separators, floats to 4 significant digits."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if math.isinf(value):
            return "inf"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)
