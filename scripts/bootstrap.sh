#!/usr/bin/env bash
# Create .venv and install flyhpc with its test extras (idempotent). Python 3.11 required.
# Usage: bash scripts/bootstrap.sh        (FLYHPC_PYTHON=/path/to/python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${FLYHPC_PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"flyhpc needs Python 3.11, found {sys.version.split()[0]}"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# numpy 2.4 removed ndarray.ptp, which brian2 2.9 still uses: keep numpy below it.
.venv/bin/python -m pip install -q -e '.[test]' 'numpy<2.4'
.venv/bin/flyhpc --version
