"""frame_csv: the very text of pandas' to_csv (float format, quoting, missing cells), made column by column."""

import numpy as np
import pandas as pd
import pytest

from flyhpc.results.tables import frame_csv


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "x": [0.0, -0.0, np.nan, 1e-300, 1e300, np.inf, -np.inf, 123456789.0, 0.1 + 0.2],
        "n": np.arange(9, dtype=np.int64) - 4,
        "flag": [True, False] * 4 + [True],
        "name": pd.array(["a, b", 'say "hi"', "", "line\nbreak", None, "cr\r", "plain", "é", "z"], dtype="string"),
        "obj": ["k", None, 3, 2.5, "q,", np.nan, "x", "y", "w"],
        "maybe": pd.array([1, None, 3, 4, 5, 6, 7, 8, 9], dtype="Int64"),
        "fl": pd.array([0.5, None, 1.25, 2, 3, 4, 5, 6, 7], dtype="Float64"),
        "a,b": np.linspace(0, 1, 9),
    })


@pytest.mark.parametrize("fmt", ["%.6g", "%.3f", None])
def test_frame_csv_is_the_text_of_to_csv(fmt):
    frame = _frame()
    columns = ["a,b", "name", "x", "n", "flag", "obj", "maybe", "fl"]
    want = frame.to_csv(index=False, columns=columns, float_format=fmt, lineterminator="\n")
    assert frame_csv(frame, columns, fmt) == want
    assert '"a, b"' in want and '"say ""hi"""' in want and ",inf," in want  # the cases above are exercised
    if fmt is None:
        assert frame_csv(frame, columns) == want and "1e-300" in want and "0.30000000000000004" in want


def test_frame_csv_of_no_rows():
    frame = _frame().iloc[:0]
    assert frame_csv(frame, ["x", "name"], "%.6g") == frame.to_csv(index=False, columns=["x", "name"],
                                                                    float_format="%.6g", lineterminator="\n")
