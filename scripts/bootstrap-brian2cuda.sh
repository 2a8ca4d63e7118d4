#!/usr/bin/env bash
# Create .venv-brian2cuda: flyhpc with Brian2 2.8.0 + Brian2CUDA 1.0a7 (its own environment, because
# Brian2CUDA 1.0a7 needs Brian2 == 2.8.0 and the main .venv has 2.9), plus pip's cuRAND headers and
# library for CUDA installations that lack them. Idempotent. Used by .ci/run for the nvcc compile test
# (tests/contract/test_brian2cuda_compile.py); simulating needs a GPU.
# Usage: bash scripts/bootstrap-brian2cuda.sh    (FLYHPC_PYTHON=/path/to/python3.11 to choose)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${FLYHPC_PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=.venv-brian2cuda
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e . 'brian2==2.8.0' 'brian2cuda==1.0a7' 'numpy<2.4' pytest 'nvidia-curand'
"$VENV/bin/python" -c 'import brian2, brian2cuda; print("brian2", brian2.__version__, "brian2cuda", brian2cuda.__version__)'
