"""Brian2 C++ standalone backend (`brian2cpp`): the reference simulator of the model contract.

Builds the network once per (network, duration) into a content-addressed directory
work_root/brian2cpp/<key> that later processes reuse (make finds nothing to recompile), then runs the
compiled binary once per trial with that trial's drive events passed as run arguments. Owns Brian2's
global device state while open and restores it in `close`. No Slurm, no result files of ours, no
joblib/runtime path.

Signals: make, the compiler and the binary run with SIGUSR2 (Slurm's pre-timeout warning) ignored
(`child_signals.brian2_children_ignore_usr2`); SIGTERM still ends them.

Litter of killed runs: each run writes into its own `results_<host>_<pid>_<tag>` folder in the build
directory (the host name because build directories may sit on a file system shared by several nodes),
removed in a `finally`. Brian2 also writes each run-argument array to `static_arrays/init_*_<md5>.dat`
under a `.lock` file, and the run removes both afterwards. A process killed by a signal gets no
`finally`, so every build and run first calls `reclaim_litter`. It removes this host's results folders
whose process is gone, run-argument arrays that a killed writer left half-written (their md5 differs
from their name; a later run with the same drive would otherwise take them as complete), and
run-argument `.lock` files without their array. Complete arrays stay (content-addressed, so still
valid; a running binary on another node may be reading one), as do legacy `results_<pid>_<tag>`
folders, which do not name their host. The build lock `<key>.build-lock` is a lock file that holds across
nodes (`files.build_lock`); one whose holder died is taken over. Brian2's own run-argument `.lock` files are
flocks (Brian2's FileLock), so the reclaim takes them with flock too, and passes over them where flock fails.
Entry points: `Brian2CppBackend`, `build_key`, `reclaim_litter`.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import ClassVar

import numpy as np

from flyhpc.backends.base import Backend, BuildReport, Capabilities, Probe, RunReport, import_probe
from flyhpc.backends.brian2.child_signals import brian2_children_ignore_usr2
from flyhpc.drive import Drive
from flyhpc.errors import FlyhpcError
from flyhpc.files import build_lock, write_json_atomic
from flyhpc.network import NetworkSpec
from flyhpc.results.spikes import SpikeTable

# Bump when the generated project changes shape for the same inputs (equations, names, layout).
BUILD_FORMAT = 1
DONE_MARKER = "flyhpc_build.json"
RESULTS_RE = re.compile(r"^results_(?P<host>[A-Za-z0-9.-]+)_(?P<pid>[0-9]+)_[0-9a-f]{8}$")
RUN_ARG_RE = re.compile(r"^init_.+_(?P<md5>[0-9a-f]{32})\.dat$")  # Brian2's name for a run-argument array


def build_key(spec_digest: str, n_steps: int, brian2_version: str, n_threads: int, device: str,
              record: bool = True) -> str:
    """sha256 naming the build directory of one (network, duration, Brian2, threads, device)."""
    body = {"spec": spec_digest, "n_steps": int(n_steps), "brian2": brian2_version,
            "openmp_threads": int(n_threads), "device": device, "record": bool(record),
            "format": BUILD_FORMAT}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def host_name() -> str:
    """This machine's name as it appears in results folder names (letters, digits, '.', '-')."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"


def results_dir_name(pid: int | None = None) -> str:
    """A fresh results folder name, `results_<host>_<pid>_<8 hex>`, for one run of process `pid`."""
    return f"results_{host_name()}_{os.getpid() if pid is None else int(pid)}_{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (a zombie counts; pids below 1 count as alive)."""
    if pid < 1:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def _try_flock(path: Path):
    """Yield True while holding an exclusive flock on `path` (created if missing), False if it is busy."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reclaim_litter(work_dir: Path) -> list[Path]:
    """Remove what killed runs left in the build directory `work_dir`; return the paths removed.

    Removes: `results_<host>_<pid>_*` folders of this host whose process is gone (never this
    process's own); run-argument arrays `static_arrays/init_*_<md5>.dat` whose content does not
    match their md5 (a writer died mid-write), taken under their Brian2 `.lock` so that a live writer
    is never disturbed; and such `.lock` files whose array is gone. Never raises for files that
    vanish meanwhile (another process reclaiming the same directory).
    """
    removed: list[Path] = []
    work_dir = Path(work_dir)
    try:
        entries = list(os.scandir(work_dir))
    except FileNotFoundError:
        return removed
    me, here = os.getpid(), host_name()
    for entry in entries:
        m = RESULTS_RE.match(entry.name)
        if not m or m["host"] != here or not entry.is_dir(follow_symlinks=False):
            continue
        pid = int(m["pid"])
        if pid != me and not pid_alive(pid):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    static = work_dir / "static_arrays"
    try:
        names = set(os.listdir(static))
    except FileNotFoundError:
        return removed
    for name in sorted(names):
        m = RUN_ARG_RE.match(name)
        if not m:
            continue
        path = static / name
        with _try_flock(static / (name + ".lock")) as held:
            if not held:
                continue  # a live process is writing it right now
            with contextlib.suppress(FileNotFoundError):
                if _md5_of(path) != m["md5"]:
                    path.unlink()
                    removed.append(path)
    with contextlib.suppress(FileNotFoundError):
        names = set(os.listdir(static))  # again: the arrays removed above leave their locks behind
    for name in sorted(names):
        if not name.endswith(".lock") or not RUN_ARG_RE.match(name[:-len(".lock")]):
            continue
        lock, array = static / name, static / name[:-len(".lock")]
        with _try_flock(lock) as held:
            if held and not array.exists():
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                    removed.append(lock)
    return removed


class Brian2CppBackend(Backend):
    """Brian2 2.9 `cpp_standalone`: one compiled binary per (network, duration), one run per trial."""

    name: ClassVar[str] = "brian2cpp"
    device_name: ClassVar[str] = "cpp_standalone"
    default_clock: ClassVar[bool] = False  # see build_brian_network
    caps: ClassVar[Capabilities] = Capabilities(
        device="cpu", batching="sequential", drive="events", precisions=("float64",), compiles=True,
        deterministic=True, image="flyhpc-brian2cpp", verified_here="yes", display_name="Brian2 (CPU)")

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        self._net = None
        self._work_dir: Path | None = None
        self._table: SpikeTable | None = None
        self._saved_threads = None
        self._active = False

    @classmethod
    def probe(cls) -> Probe:
        """Brian2's version and whether a C++ compiler is on PATH; imports brian2, allocates nothing."""
        def compiler() -> str | None:
            cxx = os.environ.get("CXX") or next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
            return cxx if cxx and shutil.which(cxx.split()[0]) else None

        return import_probe("brian2", tools=(
            ("cxx", compiler, "no C++ compiler on PATH (g++, c++ or clang++; or set CXX)"),
            ("", lambda: shutil.which("make"), "'make' is not on PATH (Brian2 standalone builds with make)")))

    # -- build ---------------------------------------------------------------------------------
    def _build(self, spec: NetworkSpec, n_steps: int, probe: Probe) -> BuildReport:
        """Construct the network, generate the C++ project and compile it (or reuse a cached build).

        Raises
        ------
        FlyhpcError
            If code generation or compilation fails (the message names the build directory).
        """
        import brian2 as b2

        from flyhpc.backends.brian2.network import build_brian_network

        threads = self._openmp_threads()
        key = build_key(spec.digest(), n_steps, b2.__version__, threads, self.device_name)
        work_dir = self.work_root / self.name / key
        self._activate_device(threads)
        with build_lock(work_dir):
            reclaim_litter(work_dir)
            binary = work_dir / "main"
            before = binary.stat().st_mtime_ns if (work_dir / DONE_MARKER).is_file() and binary.is_file() else None
            net = build_brian_network(spec, n_steps, default_clock=self.default_clock)
            net.network.run(n_steps * spec.params.dt_ms * b2.ms)
            try:
                with brian2_children_ignore_usr2():
                    b2.device.build(directory=str(work_dir), compile=True, run=False, with_output=False)
            except Exception as exc:
                raise FlyhpcError(f"backend {self.name!r}: Brian2 build in {work_dir} failed: {exc}") from exc
            # A cache hit is a build where make found nothing to recompile (the binary is unchanged).
            cached = before is not None and binary.stat().st_mtime_ns == before
            if not cached:
                write_json_atomic(work_dir / DONE_MARKER, {
                    "key": key, "spec_digest": spec.digest(), "n_steps": n_steps,
                    "brian2": b2.__version__, "openmp_threads": threads, "device": self.device_name})
        self._net, self._work_dir = net, work_dir
        return BuildReport(cached=cached, work_dir=str(work_dir),
                           versions={**probe.versions, "openmp_threads": str(threads)})

    def _openmp_threads(self) -> int:
        # One thread runs without OpenMP at all (Brian2's openmp_threads = 0).
        return self.n_threads if self.n_threads > 1 else 0

    def _activate_device(self, threads: int) -> None:
        import brian2 as b2

        b2.set_device(self.device_name, build_on_run=False)
        b2.device.reinit()
        b2.device.activate(build_on_run=False)
        self._saved_threads = b2.prefs.devices.cpp_standalone.openmp_threads
        b2.prefs.devices.cpp_standalone.openmp_threads = threads
        self._active = True

    # -- run -----------------------------------------------------------------------------------
    def _run(self, drive: Drive) -> RunReport:
        """Run the compiled binary once per trial of `drive` (events passed as run arguments)."""
        import brian2 as b2

        from flyhpc.backends.brian2.network import drive_run_args, spike_steps

        reclaim_litter(self._work_dir)
        results = results_dir_name()
        tables, inner_s, binary_s = [], 0.0, 0.0
        # OpenMP threads that spin while waiting starve everything else on a shared node (measured here:
        # 2 spinning threads ran 4-8x slower than 1 thread under load); let a site override it.
        # Brian2's device.run also leaves its run_environment_variables (LD_BIND_NOW=1) in os.environ,
        # which breaks later programs of this process (sbatch's lazily bound plugins): restore it after.
        # A finally (not a signal handler) removes this run's files: it runs for exceptions, and for
        # SIGTERM when the task process turns it into SystemExit / KeyboardInterrupt; a process killed
        # outright leaves them to the next run's reclaim_litter.
        saved_env = dict(os.environ)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            for trial in drive.trials:
                run_args = drive_run_args(self._net, trial)
                with brian2_children_ignore_usr2():
                    b2.device.run(directory=str(self._work_dir), results_directory=results, with_output=False,
                                  run_args=run_args)
                binary_s += float(b2.device.timers.get("run_binary") or 0.0)
                inner_s += float(getattr(b2.device, "_last_run_time", 0.0) or 0.0)
                steps, neurons = spike_steps(self._net)
                tables.append(SpikeTable.from_arrays(np.full(steps.shape, trial.trial, np.int32), steps, neurons))
                self._forget_run_arg_files()
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            self._forget_run_arg_files()
            shutil.rmtree(self._work_dir / results, ignore_errors=True)
        self._table = SpikeTable.concat(tables)
        return RunReport(inner_s=inner_s, notes={"binary_s": f"{binary_s:.6f}", "work_dir": str(self._work_dir)})

    def _forget_run_arg_files(self) -> None:
        import brian2 as b2

        for name in list(b2.device.run_args_arrays):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._work_dir / "static_arrays" / name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._work_dir / "static_arrays" / (name + ".lock"))
        b2.device.run_args_arrays.clear()

    def _collect(self) -> SpikeTable:
        """The spikes `_run` read back after each trial's binary run."""
        return self._table

    def _close(self) -> None:
        """Drop the Brian2 objects, reinitialise the standalone device and go back to runtime mode."""
        self._net = None
        self._table = None
        if self._active:
            import brian2 as b2

            b2.device.reinit()
            if self._saved_threads is not None:
                b2.prefs.devices.cpp_standalone.openmp_threads = self._saved_threads
            from brian2.devices.device import reset_device

            reset_device()  # back to the device active before build() (runtime by default)
            self._active = False
        gc.collect()
