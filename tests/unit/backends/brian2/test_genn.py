"""Brian2GeNN backend: where it finds GeNN (GENN_PATH and the brian2genn preference).
"""

from __future__ import annotations



from flyhpc.backends.brian2.genn import genn_path


def test_genn_path_prefers_brian2genn_variable():
    assert genn_path({"GENN_PATH": "/a", "BRIAN2GENN_GENN_PATH": "/b"}) == "/b"
    assert genn_path({}) is None
