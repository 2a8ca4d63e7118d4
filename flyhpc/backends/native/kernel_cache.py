"""numba's on-disk cache of a kernel, told of the other files the kernel compiles in.

numba keys a `cache=True` kernel on its own source file (mtime and size) only, and documents it: njit
functions it calls from another module are compiled into its machine code, so after an edit there the
cached kernel would go on running the old code (checked with numba 0.68). `track_sources` keeps a sha256 of
those modules' files beside the kernel's cache and drops the cached machine code when it changes, before the
kernel is first loaded or compiled. Called at the bottom of the kernel's module.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

from flyhpc.errors import OutputError
from flyhpc.files import write_text_atomic


def sources_digest(*modules: str) -> str:
    """sha256 over the source files of `modules` (dotted names), in the order given."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    return digest.hexdigest()


def track_sources(kernel, *modules: str) -> None:
    """Drop `kernel`'s cached machine code when the files of `modules` changed since it was cached."""
    cache = getattr(kernel, "_cache", None)  # numba's cache object of a dispatcher (NullCache: no cache)
    folder = cache.cache_path if cache is not None else None
    if not folder:
        return  # nothing cached on disk, nothing can be stale
    func = kernel.py_func
    stamp = Path(folder) / f"{Path(func.__code__.co_filename).stem}.{func.__qualname__}.sources"
    digest = sources_digest(*modules)
    try:
        if stamp.read_text() == digest:
            return
    except OSError:
        pass  # first use, or unreadable: treat as changed
    cache.flush()  # an empty index: the next call compiles and caches afresh
    try:
        write_text_atomic(stamp, digest, durable=False)
    except (OSError, OutputError):
        pass  # a read-only cache folder: flushed again next import (a recompile, never stale code)
