"""Atomic file writing and hashing, shared by every module that writes results.

A file is written to a temporary name in its own folder and renamed into place, so a reader sees
either the old file or the complete new one, never a partial write. Also the label lock
(one flyhpc command at a time writes a label's bundle files) and the ownership check of files whose
contents flyhpc executes or follows. Entry points: `atomic_path`, `write_text_atomic`,
`write_json_atomic`, `sha256_file`, `label_lock`, `build_lock`, `check_private`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(target: Path, mode: int = 0o666, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` if the block succeeds.

    The file gets `mode` less the umask (0o666: results are shared files; 0o644 for files that
    others may read but must not change). `durable`: flushed to disk (fsync) before the rename, so a
    crash leaves the old file or the whole new one; False for hints rewritten every second (a progress
    file), where an fsync can stall a busy disk for hundreds of milliseconds and a lost update costs nothing.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode & ~_umask())  # mkstemp makes 0600
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(target: Path, text: str, mode: int = 0o666, durable: bool = True) -> None:
    """Write `text` to `target` atomically (`durable`: see `atomic_path`)."""
    with atomic_path(target, mode, durable) as tmp:
        tmp.write_text(text)


def write_json_atomic(target: Path, obj: object, mode: int = 0o666) -> None:
    """Write `obj` as strict JSON (no NaN tokens) to `target` atomically."""
    write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n", mode)


def sha256_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def label_lock(lock: Path, command: str) -> Iterator[None]:
    """Hold a label's lock file (fcntl.flock) while `command` writes its bundle; fail at once if held.

    Raises
    ------
    FlyhpcError
        Another flyhpc command (collect, submit, resubmit) holds the lock; nothing was written.
    """
    from flyhpc.errors import FlyhpcError

    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FlyhpcError(f"another flyhpc command (collect, submit or resubmit) holds {lock}; "
                              f"wait for it to finish and run `flyhpc {command}` again") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def build_lock(lock: Path) -> Iterator[None]:
    """Hold `lock` (an fcntl.flock, waiting for it) while one process generates or compiles into a build folder
    that other tasks share. The kernel drops it when its holder dies, so a left-over lock file blocks nobody and
    is kept (deleting lock files races with the next locker)."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_private(path: Path, why: str) -> None:
    """Refuse a file or folder that someone else could have written: owned by another user, or
    group/other-writable. `why` says what flyhpc would do with it (load pickles, follow setup lines).

    Raises
    ------
    ConfigError
        With the owner or mode found and the command that fixes it.
    """
    from flyhpc.errors import ConfigError

    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"refusing {path}: it is a symbolic link, and flyhpc would {why}")
    if st.st_uid != os.geteuid():
        raise ConfigError(f"refusing {path}: owned by uid {st.st_uid}, not by you (uid {os.geteuid()}), and "
                          f"flyhpc would {why}; only its owner may use it")
    if st.st_mode & 0o022:
        raise ConfigError(f"refusing {path}: it is group/other-writable (mode {stat.S_IMODE(st.st_mode):o}), so "
                          f"another user could change it, and flyhpc would {why}; fix with `chmod go-w {path}`")
