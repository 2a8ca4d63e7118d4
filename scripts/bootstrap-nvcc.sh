#!/usr/bin/env bash
# A CUDA compiler from PyPI, for machines without one (idempotent): NVIDIA's wheels of nvcc (with cudafe++,
# fatbinary, nvlink, ptxas), NVVM (cicc, libdevice), the CUDA runtime and crt headers, CCCL (Thrust, CUB) and the
# profiler API header (Brian2CUDA's main.cu includes it) go into .venv-nvcc, laid out as a toolkit
# (nvidia/cu13/{bin,nvvm,include,lib}, where nvcc.profile looks).
# Prints the folder holding that nvcc. No GPU and no driver needed: it compiles, it runs nothing on a device.
# Used by .ci/run where nvcc is not on PATH, for the tests marked `nvcc` (flyhpc_lif.cuh compiled for the host)
# and Brian2CUDA's compile test: bin=$(bash scripts/bootstrap-nvcc.sh); export PATH="$bin:$PATH"
# LD_LIBRARY_PATH="$bin/../lib" (libcudart.so.13, which the programs it links need, as a toolkit's lib64).
# FLYHPC_NVCC_PYTHON names the Python that makes the environment (default python3; any 3.x: the wheels are
# py3-none).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-nvcc
CUDA=13.5.37   # nvcc, NVVM, runtime and crt share the CUDA version; the others have their own
PINS=("nvidia-cuda-nvcc==$CUDA" "nvidia-nvvm==$CUDA" "nvidia-cuda-runtime==$CUDA" "nvidia-cuda-crt==$CUDA"
      'nvidia-cuda-cccl==13.3.5.0.6' 'nvidia-cuda-profiler-api==13.4.92')
[ -x "$VENV/bin/python" ] || "${FLYHPC_NVCC_PYTHON:-python3}" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install -q "${PINS[@]}" >&2
BIN=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13/bin
"$BIN/nvcc" --version | tail -1 >&2
echo "$BIN"
