"""numba's on-disk cache of a kernel that compiles in another file's njit function: an edit there reaches the
kernel (numba alone keeps serving the old machine code), and the lazy engine's kernel is tracked."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from flyhpc.backends.native import kernel_cache, lazy

ROOT = Path(__file__).resolve().parents[4]

KERNEL = """
from numba import njit

from flyhpc.backends.native import kernel_cache
from helper import bump


@njit(cache=True)
def kernel(x):
    return bump(x) * 10


kernel_cache.track_sources(kernel, "helper")
"""

HELPER = """
from numba import njit


@njit(cache=True, inline="{inline}")
def bump(x):
    return x + {step}
"""


def _kernel_of(folder: Path) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", "import kernel; print(kernel.kernel(1))"], cwd=folder, env=env,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_an_edit_of_a_compiled_in_module_reaches_the_cached_kernel(tmp_path):
    (tmp_path / "kernel.py").write_text(textwrap.dedent(KERNEL))
    helper = tmp_path / "helper.py"
    for inline, step, expected in (("never", 1, 20), ("never", 2, 30), ("always", 3, 40), ("always", 3, 40)):
        helper.write_text(HELPER.format(inline=inline, step=step))
        assert _kernel_of(tmp_path) == expected
    stamp = tmp_path / "__pycache__" / "kernel.kernel.sources"
    assert stamp.read_text() == hashlib.sha256(helper.read_bytes()).hexdigest()


def test_the_lazy_kernel_tracks_the_prediction_module():
    for kernel in (lazy.lazy_trial, lazy._run_steps):  # the wrapper links the step loop's machine code in
        stamp = Path(kernel._cache.cache_path) / f"lazy.{kernel.py_func.__qualname__}.sources"
        assert stamp.read_text() == kernel_cache.sources_digest("flyhpc.backends.native.predict")
