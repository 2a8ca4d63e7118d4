#!/usr/bin/env bash
# Create .venv and install flyhpc with its test extras (idempotent). Python 3.11, 3.12 or 3.13.
# Usage: bash scripts/bootstrap.sh        (FLYHPC_PYTHON=/path/to/python to choose the interpreter)
#
# The interpreter: FLYHPC_PYTHON if set (refused unless it runs and is 3.11-3.13); otherwise the first of
# python3.13, python3.12, python3.11, python3 on PATH that runs and is 3.11-3.13. A pyenv shim for a version
# pyenv has not selected fails to run and is passed over (PYENV_VERSION=3.13.0 or `pyenv global 3.13.0 ...`
# makes it count). Each Python gets its own Brian2 through setup.cfg's markers: 3.11 -> 2.9, 3.12 -> 2.10,
# 3.13 -> 2.11. On Python 3.11 pip takes torch 2.13.0 (the test extra) as a CPU wheel when one lies in pip's
# find-links; on 3.12/3.13 it is PyPI's CUDA build, several GB with its nvidia-* wheels.
#
# An existing .venv is reused only when its Python has the chosen one's X.Y. Otherwise the script says so and
# stops without touching it (no silent mixing, no deleting): remove .venv to rebuild it with the chosen
# Python, or rerun with FLYHPC_PYTHON=.venv/bin/python to keep the one it has.
set -euo pipefail
cd "$(dirname "$0")/.."

pyver() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
supported() { case "$1" in 3.11|3.12|3.13) return 0 ;; *) return 1 ;; esac; }

if [ -n "${FLYHPC_PYTHON:-}" ]; then
  PY=$FLYHPC_PYTHON
  VER=$(pyver "$PY") || { echo "bootstrap: FLYHPC_PYTHON=$PY does not run as a Python interpreter" \
                         "(a pyenv shim runs only for a version pyenv has selected, e.g. by PYENV_VERSION)" >&2; exit 1; }
  supported "$VER" || { echo "bootstrap: FLYHPC_PYTHON=$PY is Python $VER; flyhpc supports Python 3.11, 3.12 and 3.13" >&2; exit 1; }
else
  PY=
  for cand in python3.13 python3.12 python3.11 python3; do
    command -v "$cand" >/dev/null || continue
    VER=$(pyver "$cand") || continue
    if supported "$VER"; then PY=$cand; break; fi
  done
  [ -n "$PY" ] || { echo "bootstrap: no Python 3.11, 3.12 or 3.13 runs on PATH (tried python3.13, python3.12," \
                         "python3.11, python3); install one or set FLYHPC_PYTHON=/path/to/python" >&2; exit 1; }
fi
echo "bootstrap: Python $VER ($(command -v "$PY" || echo "$PY"))"

if [ -e .venv ]; then
  HAVE=$(pyver .venv/bin/python) || { echo "bootstrap: .venv exists but .venv/bin/python does not run;" \
                                           "remove .venv and rerun" >&2; exit 1; }
  if [ "$HAVE" != "$VER" ]; then
    echo "bootstrap: .venv has Python $HAVE but the chosen interpreter $PY is Python $VER; not mixing them." \
         "Remove .venv to rebuild it with $VER, or rerun with FLYHPC_PYTHON=.venv/bin/python to keep $HAVE." >&2
    exit 1
  fi
else
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# setup.cfg holds the per-Python pins (Brian2, and NumPy < 2.4 beside Brian2 2.9 on 3.11).
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/flyhpc --version
