"""Brian2 C++ standalone backend (`brian2cpp`): the reference simulator of the model contract.

Builds the network once per (network, duration) into a content-addressed directory
work_root/brian2cpp/<key> that later processes reuse (make finds nothing to recompile), then runs the
compiled binary once per trial with that trial's drive events passed as run arguments. Owns Brian2's
global device state while open and restores it in `close`. No Slurm, no result files of ours, no
joblib/runtime path. Entry points: `Brian2CppBackend`, `build_key`.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import ClassVar

import numpy as np

from flyhpc.backends.base import Backend, BuildReport, Capabilities, Probe, RunReport
from flyhpc.drive import Drive
from flyhpc.errors import ConfigError, FlyhpcError
from flyhpc.files import write_json_atomic
from flyhpc.network import NetworkSpec
from flyhpc.spikes import SpikeTable

# Bump when the generated project changes shape for the same inputs (equations, names, layout).
BUILD_FORMAT = 1
DONE_MARKER = "flyhpc_build.json"


def build_key(spec_digest: str, n_steps: int, brian2_version: str, n_threads: int, device: str,
              record: bool = True) -> str:
    """sha256 naming the build directory of one (network, duration, Brian2, threads, device)."""
    body = {"spec": spec_digest, "n_steps": int(n_steps), "brian2": brian2_version,
            "openmp_threads": int(n_threads), "device": device, "record": bool(record),
            "format": BUILD_FORMAT}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _dir_lock(path: Path):
    """Exclusive lock on `path` (a lock file), so concurrent tasks never build one directory twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Brian2CppBackend(Backend):
    """Brian2 2.9 `cpp_standalone`: one compiled binary per (network, duration), one run per trial."""

    name: ClassVar[str] = "brian2cpp"
    device_name: ClassVar[str] = "cpp_standalone"
    default_clock: ClassVar[bool] = False  # see build_brian_network
    caps: ClassVar[Capabilities] = Capabilities(
        device="cpu", batching="sequential", drive="events", precisions=("float64",), compiles=True,
        deterministic=True, image="flyhpc-brian2cpp", verified_here="yes")

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        self._net = None
        self._work_dir: Path | None = None
        self._n_steps = 0
        self._spikes: SpikeTable | None = None
        self._saved_threads = None
        self._active = False

    @classmethod
    def probe(cls) -> Probe:
        """Brian2's version and whether a C++ compiler is on PATH; imports brian2, allocates nothing."""
        try:
            import brian2
        except Exception as exc:  # ImportError, or numpy incompatibility at import
            return Probe(False, f"brian2 cannot be imported: {exc}")
        versions = {"brian2": brian2.__version__}
        compiler = os.environ.get("CXX") or next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
        if not compiler or not shutil.which(compiler.split()[0]):
            return Probe(False, "no C++ compiler on PATH (g++, c++ or clang++; or set CXX)", versions)
        versions["cxx"] = compiler
        if not shutil.which("make"):
            return Probe(False, "'make' is not on PATH (Brian2 standalone builds with make)", versions)
        return Probe(True, "", versions)

    # -- build ---------------------------------------------------------------------------------
    def build(self, spec: NetworkSpec, n_steps: int) -> BuildReport:
        """Construct the network, generate the C++ project and compile it (or reuse a cached build).

        Raises
        ------
        BackendUnavailable
            If Brian2 or a compiler is missing.
        FlyhpcError
            If code generation or compilation fails (the message names the build directory).
        """
        probe = self._probe_for_build(n_steps)
        import brian2 as b2

        from flyhpc.backends.brian2_network import build_brian_network

        self.close()
        threads = self._openmp_threads()
        key = build_key(spec.digest(), n_steps, b2.__version__, threads, self.device_name)
        work_dir = self.work_root / self.name / key
        self._activate_device(threads)
        with _dir_lock(work_dir.with_name(key + ".lock")):
            binary = work_dir / "main"
            before = binary.stat().st_mtime_ns if (work_dir / DONE_MARKER).is_file() and binary.is_file() else None
            net = build_brian_network(spec, n_steps, default_clock=self.default_clock)
            net.network.run(n_steps * spec.params.dt_ms * b2.ms)
            try:
                b2.device.build(directory=str(work_dir), compile=True, run=False, with_output=False)
            except Exception as exc:
                raise FlyhpcError(f"backend {self.name!r}: Brian2 build in {work_dir} failed: {exc}") from exc
            # A cache hit is a build where make found nothing to recompile (the binary is unchanged).
            cached = before is not None and binary.stat().st_mtime_ns == before
            if not cached:
                write_json_atomic(work_dir / DONE_MARKER, {
                    "key": key, "spec_digest": spec.digest(), "n_steps": int(n_steps),
                    "brian2": b2.__version__, "openmp_threads": threads, "device": self.device_name})
        self._net, self._work_dir, self._n_steps = net, work_dir, int(n_steps)
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
    def run(self, drive: Drive) -> RunReport:
        """Run the compiled binary once per trial of `drive` (events passed as run arguments).

        Raises
        ------
        ConfigError
            If `build` was not called or the drive's n_steps differs from the build's.
        """
        if self._net is None or self._work_dir is None:
            raise ConfigError(f"backend {self.name!r}: run() called before build()")
        if drive.n_steps != self._n_steps:
            raise ConfigError(f"backend {self.name!r}: drive has {drive.n_steps} steps but the build "
                              f"was made for {self._n_steps}")
        import brian2 as b2

        from flyhpc.backends.brian2_network import drive_run_args, spike_steps

        results = f"results_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        tables, inner_s, binary_s = [], 0.0, 0.0
        # OpenMP threads that spin while waiting starve everything else on a shared node (measured here:
        # 2 spinning threads ran 4-8x slower than 1 thread under load); let a site override it.
        # Brian2's device.run also leaves its run_environment_variables (LD_BIND_NOW=1) in os.environ,
        # which breaks later programs of this process (sbatch's lazily bound plugins): restore it after.
        saved_env = dict(os.environ)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            for trial in drive.trials:
                run_args = drive_run_args(self._net, trial)
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
            shutil.rmtree(self._work_dir / results, ignore_errors=True)
        self._spikes = SpikeTable.concat(tables)
        return RunReport(inner_s=inner_s, notes={"binary_s": f"{binary_s:.6f}", "work_dir": str(self._work_dir)})

    def _forget_run_arg_files(self) -> None:
        import brian2 as b2

        for name in list(b2.device.run_args_arrays):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._work_dir / "static_arrays" / name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._work_dir / "static_arrays" / (name + ".lock"))
        b2.device.run_args_arrays.clear()

    def spikes(self) -> SpikeTable:
        """Spikes of the last run (trial numbers from the drive), sorted by (trial, step, neuron)."""
        if self._spikes is None:
            raise ConfigError(f"backend {self.name!r}: spikes() called before run()")
        return self._spikes

    def close(self) -> None:
        """Drop the Brian2 objects, reinitialise the standalone device and go back to runtime mode."""
        self._net = None
        if self._active:
            import brian2 as b2

            b2.device.reinit()
            if self._saved_threads is not None:
                b2.prefs.devices.cpp_standalone.openmp_threads = self._saved_threads
            from brian2.devices.device import reset_device

            reset_device()  # back to the device active before build() (runtime by default)
            self._active = False
        gc.collect()
