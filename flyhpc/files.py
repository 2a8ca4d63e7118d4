"""Atomic file writing and hashing, shared by every module that writes results.

A file is written to a temporary name in its own folder and renamed into place, so a reader sees
either the old file or the complete new one, never a partial write. Also the label lock
(one flyhpc command at a time writes a label's bundle files), the build lock (one process at a time generates
into a shared build folder), the rewrite lock (one process at a time rewrites a shared file), the ownership
checks of files and folders whose contents flyhpc executes or follows, and holding signals while a file that
must exist is written. The locks are lock files that hold across nodes (filelock's SoftFileLease), not flock.
Entry points: `atomic_path`, `write_text_atomic`, `write_json_atomic`, `sha256_file`, `label_lock`,
`build_lock`, `build_lock_path`, `rewrite_lock`, `check_private`, `check_private_tree`, `signals_held`,
`is_output_error`, `output_error`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import signal
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(target: Path, mode: int = 0o666, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` if the block succeeds.

    The file gets `mode` less the umask (0o666: results are shared files; 0o644 for files that
    others may read but must not change). `durable`: flushed to disk (fsync) before the rename, so a
    crash leaves the old file or the whole new one; False for hints rewritten every second (a progress
    file), where an fsync can stall a busy disk for hundreds of milliseconds and a lost update costs nothing.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise output_error(exc, target) if is_output_error(exc) else exc
    os.close(fd)
    try:
        yield Path(tmp)
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode & ~_umask())  # mkstemp makes 0600
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and is_output_error(exc):
            raise output_error(exc, target) from None
        raise


# errno values that mean "this output cannot be written here" (not a bug, not bad input)
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})


def is_output_error(exc: BaseException) -> bool:
    """The OSError says the disk or quota is full, the file system read-only or permission denied."""
    return isinstance(exc, OSError) and exc.errno in _OUTPUT_ERRNOS


def output_error(exc: OSError, target: str | Path | None = None):
    """An `errors.OutputError` naming the file that could not be written and why (exit 74)."""
    from flyhpc.errors import OutputError

    where = target if target is not None else exc.filename
    fix = {errno.ENOSPC: "free space", errno.EDQUOT: "free space within your quota", errno.EFBIG: "free space",
           errno.EROFS: "use a writable --results-root"}.get(exc.errno, "fix the permissions")
    return OutputError(f"cannot write {where}: {exc.strerror or exc} ({errno.errorcode.get(exc.errno, exc.errno)}); "
                       f"{fix} and run the command again; nothing half-written was kept")


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


# Both locks are lock FILES, not flock: Lustre mounted without flock raises ENOSYS on flock, with localflock it locks
# one node only, and NFS may not pass it on, while array tasks on many nodes share a build root and commands on
# several login nodes share a results root. filelock's SoftFileLease creates the file with O_EXCL and writes its owner
# (pid, host, process start) into it; a thread of the holder touches it every LOCK_LEASE_S / 3 s. A contender takes
# over a lock whose owner is gone: at once where the owner ran on this host and its pid is dead, and after watching
# it go unrefreshed for LOCK_LEASE_S where it ran on another node (a pid there cannot be probed). 300 s: well above
# NFS's attribute cache (acregmax, 60 s by default) plus the refresh interval. The files' names are new (an older
# flyhpc left empty flock files behind, which filelock would take for a holder that never finishes).
LOCK_LEASE_S = 300.0


def _lease(lock: Path, timeout: float):
    from filelock import SoftFileLease

    lock.parent.mkdir(parents=True, exist_ok=True)
    return SoftFileLease(str(lock), lease_duration=LOCK_LEASE_S, timeout=timeout, poll_interval=0.5)


@contextlib.contextmanager
def label_lock(lock: Path, command: str) -> Iterator[None]:
    """Hold a label's lock file while `command` writes its bundle; fail at once if another command holds it.

    A lock whose holder died on this host is taken over at once. One last refreshed more than LOCK_LEASE_S ago
    (its holder died on another node) is waited for until filelock has seen it unrefreshed for LOCK_LEASE_S itself.

    Raises
    ------
    Busy
        Another flyhpc command holds the lock; nothing was written (exit 75).
    OutputError
        The lock file cannot be created (read-only or full file system; exit 74).
    """
    from filelock import Timeout

    from flyhpc.errors import Busy

    try:
        lease = _lease(Path(lock), timeout=0)
    except OSError as exc:
        raise output_error(exc, lock) if is_output_error(exc) else exc
    try:
        lease.acquire()
    except Timeout:  # (a TimeoutError, so an OSError: caught first)
        holder, idle_s = _holder(Path(lock))
        if idle_s > LOCK_LEASE_S:
            log.warning("%s (%s) was last refreshed %.0f s ago, so its holder looks gone; waiting up to %.0f s to take "
                        "it over", lock, holder, idle_s, LOCK_LEASE_S + 60)
            with contextlib.suppress(Timeout):
                lease.acquire(timeout=LOCK_LEASE_S + 60)
        if not lease.is_locked:
            raise Busy(f"another flyhpc command (collect, submit or resubmit) holds {lock} ({holder}); "
                       f"wait for it to finish and run `flyhpc {command}` again") from None
    except OSError as exc:
        raise output_error(exc, lock) if is_output_error(exc) else exc
    try:
        yield
    finally:
        lease.release()


def _holder(lock: Path) -> tuple[str, float]:
    """Who holds `lock` as its file says ("pid N on HOST", from filelock's key=value lines) and the seconds since it
    was last refreshed (0 where the file is gone)."""
    try:
        fields = dict(line.split("=", 1) for line in lock.read_text().splitlines() if "=" in line)
        idle_s = time.time() - lock.stat().st_mtime
    except (OSError, UnicodeDecodeError):
        return "holder unknown", 0.0
    return f"pid {fields.get('pid', '?')} on {fields.get('host', '?')}", idle_s


def build_lock_path(folder: Path) -> Path:
    """The lock file of a build folder: `<folder>.build-lock`, beside it."""
    folder = Path(folder)
    return folder.with_name(folder.name + ".build-lock")


@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of build folder `folder` (waiting for it) while one process generates or compiles into it and
    other tasks, on this node or others, share it. The lock file is removed on release."""
    lease = _lease(build_lock_path(folder), timeout=-1)
    lease.acquire()
    try:
        yield
    finally:
        lease.release()


@contextlib.contextmanager
def rewrite_lock(path: Path) -> Iterator[None]:
    """Hold `<path>.lock` (waiting for it) while one process reads, changes and rewrites `path`, a file other
    processes rewrite too (a global results CSV that collects of several labels share). The lock file is
    removed on release."""
    path = Path(path)
    lease = _lease(path.with_name(path.name + ".lock"), timeout=-1)
    lease.acquire()
    try:
        yield
    finally:
        lease.release()


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


def check_private_tree(folder: Path, why: str) -> None:
    """Refuse `folder` unless nobody but you (or root) could change what is in it: it and every folder above it
    are owned by you or root and writable by nobody else (a root-owned sticky folder such as /tmp is fine: others
    cannot rename what you made in it). A symbolic link on the way is followed and its target checked too.

    Raises
    ------
    ConfigError
        Naming the first folder that fails, its owner or mode, and the fix.
    """
    from flyhpc.errors import ConfigError

    folder = Path(os.path.abspath(folder))
    me = os.geteuid()
    for path in (folder, *folder.parents):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            check_private_tree(path.resolve(), why)  # the link's own folder is checked as the next parent
            continue
        if st.st_uid not in (me, 0):
            raise ConfigError(f"refusing {folder}: {path} is owned by uid {st.st_uid}, not by you (uid {me}) or "
                              f"root, so its owner could change what flyhpc finds there, and flyhpc would {why}")
        shared = st.st_mode & 0o022 and not (st.st_uid == 0 and st.st_mode & stat.S_ISVTX)
        if shared:
            raise ConfigError(f"refusing {folder}: {path} is group/other-writable (mode {stat.S_IMODE(st.st_mode):o}),"
                              f" so another user could swap what is in it, and flyhpc would {why}; fix with "
                              f"`chmod go-w {path}`, or choose another folder")


# Signals that end a task or a command; held while a file that must exist afterwards is written.
_HELD = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2}


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM, SIGINT, SIGHUP and SIGUSR2 (in the main thread; a no-op elsewhere) while the block runs:
    a handler that raises cannot abort it halfway (Slurm sends SIGTERM twice at a time limit). Signals that
    came meanwhile are delivered when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
