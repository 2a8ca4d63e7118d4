#!/usr/bin/env bash
# Create .venv-<NAME>, the environment of a simulator whose pins cannot share the main .venv (idempotent):
#   brian2cuda  Brian2 2.8.0 + Brian2CUDA 1.0a7 (which needs exactly that Brian2) and pip's cuRAND, for
#               CUDA installations without it. Used by .ci/run for tests/contract/test_brian2cuda_compile.py.
#   brian2genn  Brian2 2.5.4 + Brian2GeNN 1.7.0 (which needs Brian2 < 2.6) with the NumPy 1 stack. GeNN 4.9
#               itself is not on PyPI: point GENN_PATH at a 4.9.0 release (tests/contract/test_isolated_simulators.py).
# flyhpc is installed into both; for brian2genn without its dependencies, since flyhpc asks for Brian2 >= 2.8.
# Usage: bash scripts/bootstrap-sim-env.sh brian2cuda|brian2genn   (FLYHPC_SIM_PYTHON=/path/to/python3.11)
# Python 3.11 only, whatever the main .venv uses (scripts/bootstrap.sh takes 3.11-3.13): on 3.12+ setup.cfg asks
# for Brian2 >= 2.10 (brian2cuda needs 2.8.0), and Brian2 2.5.4 and NumPy 1 have no 3.13 wheels. Hence its own
# variable: a FLYHPC_PYTHON exported for the main .venv is not used here. Default python3.11, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:?usage: bash scripts/bootstrap-sim-env.sh brian2cuda|brian2genn}
PY=${FLYHPC_SIM_PYTHON:-python3.11}
[ -n "${FLYHPC_SIM_PYTHON:-}" ] || "$PY" -c 'import sys' 2>/dev/null || PY=python3
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || {
  echo "bootstrap-sim-env: $NAME needs Python 3.11 (Brian2 $([ "$NAME" = brian2genn ] && echo 2.5.4 || echo 2.8.0));" \
       "'$PY' is not (or does not run): set FLYHPC_SIM_PYTHON=/path/to/python3.11" >&2; exit 1; }
VENV=.venv-$NAME
case "$NAME" in
  brian2cuda) PIN=(-e . 'brian2==2.8.0' 'brian2cuda==1.0a7' 'numpy<2.4' pytest nvidia-curand); SIM=brian2cuda ;;
  brian2genn) PIN=('brian2genn==1.7.0' 'brian2==2.5.4' 'numpy<2' 'pyarrow<19' pandas click rich submitit
                   'numba<0.69' 'filelock>=4.3' pytest); SIM=brian2genn ;;
  *) echo "unknown environment '$NAME' (brian2cuda or brian2genn)" >&2; exit 2 ;;
esac
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${PIN[@]}"
[ "$NAME" = brian2genn ] && "$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -c "import brian2, $SIM; print('brian2', brian2.__version__, '$SIM', $SIM.__version__)"
