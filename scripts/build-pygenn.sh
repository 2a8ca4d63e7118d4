#!/usr/bin/env bash
# Build PyGeNN (GeNN 5.4.0; not on PyPI) from a source tree and install it into a Python environment, WITH its CUDA
# backend. Used by apptainer/flyhpc-genn.def and by a session that makes .venv-genn (docs/NOTES.md).
#
# GeNN's setup.py builds the CUDA backend only if $CUDA_PATH names an existing folder AT BUILD TIME (otherwise it
# quietly builds the single-threaded CPU backend alone, and GeNNModel(backend="cuda") fails later); the CUDA backend's
# Python extension links -lcuda, which a CUDA devel installation has only as the stub $CUDA_PATH/lib64/stubs/libcuda.so,
# so that folder goes on LIBRARY_PATH. setup.py also reads libffi through pkg-config (packages pkg-config, libffi-dev).
# After installing, this script fails unless the installed package holds the CUDA backend (libgenn_cuda_backend_dynamic.so
# and the cuda_backend extension, which must need libcuda.so.1: the driver's library on a GPU node).
#
# Usage: bash scripts/build-pygenn.sh GENN_SOURCE PYTHON            (CUDA_PATH set: CUDA backend required)
#        bash scripts/build-pygenn.sh GENN_SOURCE PYTHON --cpu-only (CUDA_PATH ignored: CPU backend only)
# PYTHON: the interpreter of the target environment (e.g. /opt/venv/bin/python). Build jobs: GeNN uses one per physical
# core; JOBS (unset: setuptools' default, one at a time) compiles the Python extensions in parallel. Run it under
# `nice` on a shared machine. Offline: PIP_NO_INDEX=1 PIP_FIND_LINKS=<wheelhouse> (the build needs setuptools,
# pybind11, psutil, pkgconfig: scripts/gpu-proof.sh).
set -euo pipefail
SRC=$(cd "${1:?usage: build-pygenn.sh GENN_SOURCE PYTHON [--cpu-only]}" && pwd)
PY=${2:?usage: build-pygenn.sh GENN_SOURCE PYTHON [--cpu-only]}
MODE=${3:-cuda}
[ -f "$SRC/pygenn/genn_model.py" ] && [ -f "$SRC/setup.py" ] || { echo "build-pygenn: $SRC is not a GeNN 5 source tree" >&2; exit 2; }
for tool in g++ make pkg-config; do command -v $tool >/dev/null || { echo "build-pygenn: $tool is not installed" >&2; exit 2; }; done
pkg-config --exists libffi || { echo "build-pygenn: pkg-config finds no libffi (install libffi-dev)" >&2; exit 2; }
if [ "$MODE" = --cpu-only ]; then
  unset CUDA_PATH
else
  [ -n "${CUDA_PATH:-}" ] && [ -f "$CUDA_PATH/include/cuda.h" ] ||
    { echo "build-pygenn: CUDA_PATH must name a CUDA toolkit (got '${CUDA_PATH:-}'); or pass --cpu-only" >&2; exit 2; }
  STUBS=$CUDA_PATH/lib64/stubs
  [ -f "$STUBS/libcuda.so" ] || { echo "build-pygenn: no $STUBS/libcuda.so (the driver stub the CUDA backend links)" >&2; exit 2; }
  export LIBRARY_PATH=$STUBS${LIBRARY_PATH:+:$LIBRARY_PATH}
  export PATH=$CUDA_PATH/bin:$PATH
fi
if [ -n "${JOBS:-}" ] && ! grep -qs '^\[build_ext\]' "$SRC/setup.cfg"; then
  # setuptools compiles PyGeNN's ~14 pybind11 extensions one by one unless build_ext's `parallel` is set; GeNN's
  # own make already uses one job per physical core. (Written into the source tree: GeNN 5.4.0 has no setup.cfg.)
  printf '[build_ext]\nparallel = %s\n' "$JOBS" >> "$SRC/setup.cfg"
fi
echo "build-pygenn: GeNN $(cat "$SRC/version.txt") from $SRC into $("$PY" -c 'import sys; print(sys.prefix)') (CUDA_PATH=${CUDA_PATH:-unset})"
start=$(date +%s)
"$PY" -m pip install --no-cache-dir "$SRC"
echo "build-pygenn: pip install took $(( $(date +%s) - start )) s"
"$PY" - "$MODE" <<'EOF'
import glob, os, subprocess, sys
import pygenn
from pygenn import genn_model
root = os.path.dirname(pygenn.__file__)
built = sorted(os.path.basename(p) for p in glob.glob(os.path.join(root, "*backend*")))
print("build-pygenn: PyGeNN", pygenn.__version__, "built:", " ".join(built))
print("build-pygenn: backends importable in this process:", ", ".join(genn_model.backend_modules) or "none")
if sys.argv[1] != "--cpu-only":
    ext = [p for p in glob.glob(os.path.join(root, "cuda_backend*.so"))]
    lib = os.path.join(root, "libgenn_cuda_backend_dynamic.so")
    if not ext or not os.path.isfile(lib):
        sys.exit("build-pygenn: the CUDA backend was NOT built (is CUDA_PATH visible to pip's build?)")
    needed = subprocess.run(["readelf", "-d", ext[0]], capture_output=True, text=True).stdout
    if "libcuda.so.1" not in needed:
        sys.exit(f"build-pygenn: {ext[0]} does not need libcuda.so.1")
    print("build-pygenn: CUDA backend built:", os.path.basename(ext[0]), "needs libcuda.so.1 (the driver's, at run time)")
EOF
