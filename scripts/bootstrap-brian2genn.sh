#!/usr/bin/env bash
# Create .venv-brian2genn: flyhpc with Brian2GeNN 1.7.0 and Brian2 2.5.4 (Brian2GeNN needs Brian2 < 2.6,
# so it cannot share the main .venv) and the NumPy 1.x stack that Brian2 2.5 needs. Idempotent.
# Brian2GeNN also needs GeNN 4.9 (not on PyPI): point GENN_PATH at a GeNN 4.9.0 release or checkout;
# GeNN 4 builds its own code when used. Then tests/contract/test_isolated_simulators.py runs the contract
# suite in GeNN's CPU mode. Usage: bash scripts/bootstrap-brian2genn.sh  (FLYHPC_PYTHON to choose Python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${FLYHPC_PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=.venv-brian2genn
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# flyhpc itself asks for Brian2 >= 2.8 (the main environment): install it without dependencies here.
"$VENV/bin/python" -m pip install -q 'brian2genn==1.7.0' 'brian2==2.5.4' 'numpy<2' 'pyarrow<19' pandas click rich \
    submitit 'numba<0.69' pytest
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -c 'import brian2, brian2genn; print("brian2", brian2.__version__, "brian2genn", brian2genn.__version__)'
