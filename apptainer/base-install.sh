#!/bin/sh
# Shared %post of every flyhpc image: CUDA 12 devel (from the Bootstrap image) + Python 3.11 venv + flyhpc.
# pkg-config and libffi-dev: GeNN 5's setup.py reads libffi through pkgconfig (flyhpc-genn); binutils (readelf, nm):
# the build scripts check what the simulators' libraries link (scripts/build-*.sh).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update && apt-get install -y --no-install-recommends software-properties-common git make g++ cmake swig \
    pkg-config libffi-dev binutils
add-apt-repository -y ppa:deadsnakes/ppa && apt-get update
apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev
python3.11 -m venv /opt/venv
/opt/venv/bin/pip install --no-cache-dir "numpy>=1.26,<2.4" "pandas>=2.1" "pyarrow>=14" "click>=8.1" "rich>=13" "submitit>=1.5" "numba>=0.60,<0.69" "filelock>=4.3" "scipy>=1.11"
/opt/venv/bin/pip install --no-cache-dir --no-deps /opt/flyhpc/src
