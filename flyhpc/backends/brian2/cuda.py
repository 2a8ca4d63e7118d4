"""Brian2CUDA backend (`brian2cuda`): the brian2cpp backend on Brian2CUDA's `cuda_standalone` device.

Shares the network construction (`brian2_network`) and the build-once / run-per-trial lifecycle of
`Brian2CppBackend`; owns only the CUDA device preferences (compute capability, GPU id, nvcc flags
without fast math, GPU detection off where there is no GPU). Code generation and nvcc compilation are
verified here; simulation needs a GPU and is not run here. make, nvcc and the binary are started by
Brian2's own `compile_source` / `run`, which Brian2CUDA inherits, so they run with SIGUSR2 ignored as
in brian2cpp (see `child_signals`). Entry points: `Brian2CudaBackend`, `Brian2CudaOptions`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from flyhpc.backends.base import RUN_ONLY, Capabilities, Probe, import_probe
from flyhpc.backends.brian2.cpp import Brian2CppBackend
from flyhpc.errors import BackendUnavailable, ConfigError


def toolkit_include_dirs() -> list[Path]:
    """Include folders of the CUDA toolkit that nvcc on PATH belongs to (CUDA_PATH first)."""
    roots = [os.environ.get("CUDA_PATH", ""), os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        roots.append(str(Path(nvcc).resolve().parent.parent))
    return [Path(r) / "include" for r in roots if r] + [Path("/usr/include")]


def pip_curand() -> tuple[Path, Path] | None:
    """(include, lib) folders of pip's NVIDIA cuRAND wheel (nvidia-curand), if it is installed."""
    spec = importlib.util.find_spec("nvidia")
    for base in (spec.submodule_search_locations or []) if spec else []:
        for header in sorted(Path(base).glob("*/include/curand.h")):
            lib = header.parent.parent / "lib"
            if any(lib.glob("libcurand.so*")):
                return header.parent, lib
    return None


def curand_build_dirs(shim_root: Path) -> tuple[list[str], list[str]]:
    """Extra (include, library) folders that let nvcc find cuRAND, empty where the toolkit has it.

    Brian2CUDA includes <curand.h> and links -lcurand. Minimal CUDA installations lack both; then
    pip's nvidia-curand wheel supplies them, with a `libcurand.so` link (the wheel ships only the
    versioned library) made in `shim_root`.

    Raises
    ------
    BackendUnavailable
        If neither the toolkit nor pip's wheel has cuRAND.
    """
    if any((d / "curand.h").is_file() for d in toolkit_include_dirs()):
        return [], []
    found = pip_curand()
    if found is None:
        raise BackendUnavailable("brian2cuda: curand.h is not in the CUDA toolkit next to nvcc and the "
                                 "nvidia-curand wheel is not installed (pip install nvidia-curand)")
    include, lib = found
    versioned = sorted(lib.glob("libcurand.so*"))[-1]
    shim_root.mkdir(parents=True, exist_ok=True)
    link = shim_root / "libcurand.so"
    if not link.exists() or link.resolve() != versioned.resolve():
        tmp = shim_root / f".libcurand.so.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(versioned)
        tmp.replace(link)
    return [str(include)], [str(shim_root), str(lib)]


@dataclass(frozen=True)
class Brian2CudaOptions:
    """Settings of the brian2cuda backend.

    compute_capability: target GPU architecture for nvcc (e.g. 8.0 for A100, 9.0 for H100);
    gpu_id: CUDA device to run on (None: Brian2CUDA's choice); detect_gpus: query nvidia-smi
    ("auto": only when nvidia-smi is on PATH).
    """

    compute_capability: float = 8.0
    gpu_id: int | None = field(default=None, metadata=RUN_ONLY)
    detect_gpus: str = field(default="auto", metadata=RUN_ONLY)

    def __post_init__(self) -> None:
        cc = self.compute_capability
        if isinstance(cc, bool) or not isinstance(cc, (int, float)) or not 3.0 <= float(cc) < 20.0:
            raise ConfigError(f"brian2cuda: compute_capability must be a number like 8.0, got {cc!r}")
        if self.gpu_id is not None and (isinstance(self.gpu_id, bool) or not isinstance(self.gpu_id, int)
                                        or self.gpu_id < 0):
            raise ConfigError(f"brian2cuda: gpu_id must be None or an integer >= 0, got {self.gpu_id!r}")
        if self.detect_gpus not in ("auto", "yes", "no"):
            raise ConfigError(f"brian2cuda: detect_gpus must be 'auto', 'yes' or 'no', got {self.detect_gpus!r}")


class Brian2CudaBackend(Brian2CppBackend):
    """Brian2CUDA 1.0a7 (Brian2 2.8.0): one CUDA binary per (network, duration), one run per trial."""

    name: ClassVar[str] = "brian2cuda"
    device_name: ClassVar[str] = "cuda_standalone"
    default_clock: ClassVar[bool] = True  # Brian2CUDA's synapses.cu reads defaultclock.timestep
    caps: ClassVar[Capabilities] = Capabilities(
        device="gpu", batching="sequential", drive="events", precisions=("float64",), compiles=True,
        deterministic=True, image="flyhpc-brian2cuda", verified_here="code generation only",
        display_name="Brian2CUDA (GPU)", needs=frozenset({"gpu"}))
    Options: ClassVar[type] = Brian2CudaOptions

    @classmethod
    def probe(cls) -> Probe:
        """Brian2 and Brian2CUDA versions and whether nvcc is on PATH; never raises."""
        return import_probe("brian2", "brian2cuda", tools=(
            ("nvcc", lambda: shutil.which("nvcc"), "nvcc is not on PATH (Brian2CUDA compiles with nvcc)"),
            ("", lambda: shutil.which("make"), "'make' is not on PATH")))

    def _openmp_threads(self) -> int:
        return 0  # the CUDA device has no OpenMP threads; keeps the build key independent of CPUs

    def _activate_device(self, threads: int) -> None:
        import brian2 as b2
        import brian2cuda  # noqa: F401  (registers the cuda_standalone device and its preferences)

        super()._activate_device(threads)
        cuda = b2.prefs.devices.cuda_standalone.cuda_backend
        opts = self.options
        detect = opts.detect_gpus == "yes" or (opts.detect_gpus == "auto" and shutil.which("nvidia-smi") is not None)
        cuda.detect_gpus = detect
        cuda.compute_capability = float(opts.compute_capability)
        # Without detection Brian2CUDA needs an explicit GPU id (CUDA_VISIBLE_DEVICES still applies).
        cuda.gpu_id = opts.gpu_id if (opts.gpu_id is not None or detect) else 0
        # No -use_fast_math (the contract needs exact exp in float64); C++17 because CUDA 13's
        # Thrust/CUB refuse the template's -std=c++11 (nvcc keeps the last -std it is given).
        cuda.extra_compile_args_nvcc = ["-w", "-std=c++17"]
        gcc_args = list(b2.prefs.codegen.cpp.extra_compile_args_gcc)
        self._saved_gcc_args = gcc_args
        no_std = [a for a in gcc_args if not a.startswith("-std=")]
        b2.prefs.codegen.cpp.extra_compile_args_gcc = no_std + ["-std=c++17"]
        includes, libs = curand_build_dirs(self.work_root / self.name / "curand")
        cpp = b2.prefs.codegen.cpp
        self._saved_dirs = (list(cpp.include_dirs), list(cpp.library_dirs), list(cpp.runtime_library_dirs))
        cpp.include_dirs = list(cpp.include_dirs) + includes
        cpp.library_dirs = list(cpp.library_dirs) + libs
        cpp.runtime_library_dirs = list(cpp.runtime_library_dirs) + libs
        self._saved_dt = b2.defaultclock.dt  # build_brian_network sets it (default_clock)

    def _close(self) -> None:
        """As brian2cpp's, and restore the compiler preferences and defaultclock.dt changed here."""
        saved = getattr(self, "_saved_gcc_args", None)
        if saved is not None:
            import brian2 as b2

            cpp = b2.prefs.codegen.cpp
            cpp.extra_compile_args_gcc = saved
            cpp.include_dirs, cpp.library_dirs, cpp.runtime_library_dirs = self._saved_dirs
            b2.defaultclock.dt = self._saved_dt
            self._saved_gcc_args = None
        super()._close()
