"""The build scripts the GPU images run (scripts/build-pygenn.sh, build-nestgpu.sh, build-genn4.sh), executed with
stand-in tools: fake `python`/`cmake`/`make` on PATH record the environment the real builds would get, so these
tests need no CUDA, no GeNN and no NEST GPU source. What they pin: PyGeNN is built with CUDA_PATH set and the driver
stub on the link path (else GeNN's setup.py silently skips its CUDA backend); NEST GPU links -lcuda against the stub
and leaves NESTGPU_LIB and a .pth behind; GeNN 4.9's libraries are built into its tree. The real builds ran on a
session machine (docs/NOTES.md, "Measured (2026-12-01): building the GPU simulators").
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"


def tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def fake_cuda(tmp_path: Path) -> Path:
    cuda = tmp_path / "cuda"
    (cuda / "include").mkdir(parents=True, exist_ok=True)
    (cuda / "include" / "cuda.h").write_text("")
    (cuda / "lib64" / "stubs").mkdir(parents=True, exist_ok=True)
    (cuda / "lib64" / "stubs" / "libcuda.so").write_text("")
    (cuda / "bin").mkdir(exist_ok=True)
    return cuda


def run(script: str, args: list[str], env: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPTS / script), *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)


@pytest.fixture
def bin_dir(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("g++", "readelf", "nm"):
        tool(d, name, "exit 0\n")
    tool(d, "pkg-config", "exit 0\n")
    return d


def base_env(bin_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_PATH", "LIBRARY_PATH")}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env


def genn_tree(tmp_path: Path) -> Path:
    src = tmp_path / "genn"
    (src / "pygenn").mkdir(parents=True, exist_ok=True)
    (src / "pygenn" / "genn_model.py").write_text("")
    (src / "setup.py").write_text("")
    (src / "version.txt").write_text("5.4.0\n")
    return src


def fake_python(bin_dir: Path, log: Path) -> Path:
    """A `python` whose `-m pip install` records CUDA_PATH and LIBRARY_PATH (what GeNN's setup.py would see)."""
    tool(bin_dir, "fakepython", f"""
if [ "$1" = -m ]; then echo "pip CUDA_PATH=${{CUDA_PATH:-unset}} LIBRARY_PATH=${{LIBRARY_PATH:-unset}}" >> {log}; exit 0; fi
if [ "$1" = -c ]; then echo {log.parent}/site; exit 0; fi
cat > /dev/null; exit 0
""")
    return bin_dir / "fakepython"


def test_build_pygenn_builds_with_cuda_path_and_the_driver_stub_on_the_link_path(tmp_path, bin_dir):
    cuda, log = fake_cuda(tmp_path), tmp_path / "pip.log"
    py = fake_python(bin_dir, log)
    env = dict(base_env(bin_dir), CUDA_PATH=str(cuda))
    proc = run("build-pygenn.sh", [str(genn_tree(tmp_path)), str(py)], env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert log.read_text().strip() == f"pip CUDA_PATH={cuda} LIBRARY_PATH={cuda}/lib64/stubs"


def test_build_pygenn_refuses_without_cuda_path_unless_cpu_only(tmp_path, bin_dir):
    log = tmp_path / "pip.log"
    py = fake_python(bin_dir, log)
    proc = run("build-pygenn.sh", [str(genn_tree(tmp_path)), str(py)], base_env(bin_dir), tmp_path)
    assert proc.returncode == 2 and "CUDA_PATH must name a CUDA toolkit" in proc.stderr and not log.exists()
    proc = run("build-pygenn.sh", [str(genn_tree(tmp_path)), str(py), "--cpu-only"],
               dict(base_env(bin_dir), CUDA_PATH=str(fake_cuda(tmp_path))), tmp_path)
    assert proc.returncode == 0 and log.read_text().strip() == "pip CUDA_PATH=unset LIBRARY_PATH=unset"


def test_build_pygenn_needs_libffi_through_pkg_config(tmp_path, bin_dir):
    tool(bin_dir, "pkg-config", "exit 1\n")
    proc = run("build-pygenn.sh", [str(genn_tree(tmp_path)), "python3"],
               dict(base_env(bin_dir), CUDA_PATH=str(fake_cuda(tmp_path))), tmp_path)
    assert proc.returncode == 2 and "libffi-dev" in proc.stderr


def fake_nestgpu_source(tmp_path, user_m1: str):
    """A NEST GPU checkout as far as the build script looks: src/user_m1.cu and pythonlib/nestgpu.py."""
    src = tmp_path / "nest-gpu"
    (src / "src").mkdir(parents=True)
    (src / "src" / "user_m1.cu").write_text(user_m1)
    (src / "pythonlib").mkdir()
    (src / "pythonlib" / "nestgpu.py").write_text("")
    return src


def test_build_nestgpu_links_against_the_stub_and_leaves_nestgpu_lib_and_a_pth(tmp_path, bin_dir):
    cuda, log = fake_cuda(tmp_path), tmp_path / "make.log"
    src = fake_nestgpu_source(tmp_path, "// NEST GPU's placeholder\n")
    prefix = tmp_path / "prefix"
    tool(bin_dir, "cmake", f'echo "cmake $*" >> {log}\n')
    tool(bin_dir, "make", f"""echo "make $* LIBRARY_PATH=$LIBRARY_PATH" >> {log}
if [ "${{@: -1}}" = install ]; then mkdir -p {prefix}/lib/nestgpu {prefix}/lib/python3.11/site-packages
  touch {prefix}/lib/nestgpu/libnestgpukernel.so {prefix}/lib/python3.11/site-packages/nestgpu.py; fi
""")
    tool(bin_dir, "readelf", "echo ' 0x0000000000000001 (NEEDED)             Shared library: [libcudart.so.12]'\n")
    tool(bin_dir, "nm", "echo '0000000000123456 T user_m1::Init(int, int, int, int, unsigned long long*)'\n")
    site = tmp_path / "site"
    site.mkdir()
    tool(bin_dir, "fakepython", f"echo {site}\n")
    env = dict(base_env(bin_dir), CUDA_PATH=str(cuda), CUDA_ARCH="90")
    proc = run("build-nestgpu.sh", [str(src), str(prefix), "fakepython"], env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = log.read_text().splitlines()
    assert "-Dwith-mpi=OFF" in lines[0] and "-Dwith-gpu-arch=90" in lines[0] and "-DPython_EXECUTABLE=" in lines[0]
    assert all(line.endswith(f"LIBRARY_PATH={cuda}/lib64/stubs") for line in lines[1:])  # -lcuda finds the stub
    assert (src / "src" / "user_m1.cu").read_text() == (REPO / "flyhpc/backends/nestgpu/user_m1.cu").read_text()
    assert (prefix / "nestgpu.env").read_text().strip() == f"export NESTGPU_LIB={prefix}/lib/nestgpu/libnestgpukernel.so"
    assert (site / "nestgpu.pth").read_text().strip() == f"{prefix}/lib/python3.11/site-packages"


def test_build_nestgpu_refuses_a_library_without_our_user_model(tmp_path, bin_dir):
    cuda = fake_cuda(tmp_path)
    src = fake_nestgpu_source(tmp_path, "")
    prefix = tmp_path / "prefix"
    tool(bin_dir, "cmake", "exit 0\n")
    tool(bin_dir, "make", f"mkdir -p {prefix}/lib/nestgpu; touch {prefix}/lib/nestgpu/libnestgpukernel.so {prefix}/nestgpu.py\n")
    tool(bin_dir, "readelf", "echo '[libcudart.so.12]'\n")
    tool(bin_dir, "nm", "echo 'T iaf_psc_exp::Init()'\n")
    proc = run("build-nestgpu.sh", [str(src), str(prefix), "python3"], dict(base_env(bin_dir), CUDA_PATH=str(cuda)),
               tmp_path)
    assert proc.returncode == 1 and "no user_m1::Init" in proc.stderr


def test_build_genn4_builds_the_libraries_into_the_tree(tmp_path, bin_dir):
    src = tmp_path / "genn-4.9"
    src.mkdir()
    (src / "version.txt").write_text("4.9.0\n")
    log = tmp_path / "make.log"
    tool(bin_dir, "make", f"""echo "make $* CUDA_PATH=${{CUDA_PATH:-unset}}" >> {log}
case " $* " in *" -n "*) exit 0 ;; esac
mkdir -p {src}/lib; touch {src}/lib/libgenn.a {src}/lib/libgenn_single_threaded_cpu_backend.a
[ -n "$CUDA_PATH" ] && touch {src}/lib/libgenn_cuda_backend.a; exit 0
""")
    cuda = fake_cuda(tmp_path)
    proc = run("build-genn4.sh", [str(src)], dict(base_env(bin_dir), CUDA_PATH=str(cuda)), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert log.read_text().splitlines()[0] == f"make -C {src} -j2 CUDA_PATH={cuda}"
    assert "libgenn_cuda_backend.a" in proc.stdout
    (src / "lib" / "libgenn_cuda_backend.a").unlink()
    tool(bin_dir, "make", f"mkdir -p {src}/lib; touch {src}/lib/libgenn.a {src}/lib/libgenn_single_threaded_cpu_backend.a\n")
    proc = run("build-genn4.sh", [str(src)], dict(base_env(bin_dir), CUDA_PATH=str(cuda)), tmp_path)
    assert proc.returncode == 1 and "libgenn_cuda_backend.a was not built" in proc.stderr


def test_build_genn4_patches_cu_ctx_create_for_cuda_13_once(tmp_path, bin_dir):
    """GeNN 4.9's optimiser.cc calls cuCtxCreate with CUDA 12's 3 arguments; CUDA 13 maps it to the 4-argument
    cuCtxCreate_v4. The script puts in GeNN 5.4's own #if (the patched backend compiled here with nvcc 13's
    headers: docs/NOTES.md), once, and leaves a CPU-only build alone."""
    src = tmp_path / "genn-4.9"
    opt = src / "src" / "genn" / "backends" / "cuda" / "optimiser.cc"
    opt.parent.mkdir(parents=True)
    (src / "version.txt").write_text("4.9.0\n")
    original = "    CHECK_CU_ERRORS(cuDeviceGet(&cuDevice, deviceID));\n    CHECK_CU_ERRORS(cuCtxCreate(&cuContext, 0, cuDevice));\n"
    opt.write_text(original)
    tool(bin_dir, "make", f"mkdir -p {src}/lib; touch {src}/lib/libgenn.a {src}/lib/libgenn_single_threaded_cpu_backend.a"
                          f" {src}/lib/libgenn_cuda_backend.a\n")
    proc = run("build-genn4.sh", [str(src), "--cpu-only"], base_env(bin_dir), tmp_path)
    assert proc.returncode == 0 and opt.read_text() == original, proc.stderr
    env = dict(base_env(bin_dir), CUDA_PATH=str(fake_cuda(tmp_path)))
    for _ in range(2):
        proc = run("build-genn4.sh", [str(src)], env, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert opt.read_text() == ("    CHECK_CU_ERRORS(cuDeviceGet(&cuDevice, deviceID));\n#if CUDA_VERSION < 13000\n"
                               "    CHECK_CU_ERRORS(cuCtxCreate(&cuContext, 0, cuDevice));\n#else\n"
                               "    CHECK_CU_ERRORS(cuCtxCreate(&cuContext, NULL, 0, cuDevice));\n#endif\n")


def test_build_pygenn_compiles_the_extensions_in_parallel_when_jobs_is_set(tmp_path, bin_dir):
    src = genn_tree(tmp_path)
    python = fake_python(bin_dir, tmp_path / "pip.log")
    env = dict(base_env(bin_dir), JOBS="16")
    for _ in range(2):
        run("build-pygenn.sh", [str(src), str(python), "--cpu-only"], env, tmp_path)
    assert (src / "setup.cfg").read_text() == "[build_ext]\nparallel = 16\n"
