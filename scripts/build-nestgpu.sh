#!/usr/bin/env bash
# Build NEST GPU (nest/nest-gpu, not on PyPI) with flyhpc's contract neuron in its user-model slot `user_m1`
# (flyhpc/backends/nestgpu/user_m1.{h,cu} + flyhpc_lif.cuh copied over src/), single node (no MPI), install it under
# PREFIX and make it importable from PYTHON. Used by apptainer/flyhpc-nestgpu.def and by a session (docs/NOTES.md).
#
# Facts this script answers (read in NEST GPU's source at d3be46f):
# - cmake/CheckIncludesSymbols.cmake does `link_libraries( cuda )`: every target links -lcuda, which a CUDA devel
#   installation has only as the stub $CUDA_PATH/lib64/stubs/libcuda.so ("cannot find -lcuda" without it). That folder
#   goes on LIBRARY_PATH. (NEST GPU calls no driver function itself: the CUDA runtime loads the driver at run time.)
# - pythonlib/nestgpu.py reads os.environ["NESTGPU_LIB"] at import: the path of lib/nestgpu/libnestgpukernel.so.
#   Written to PREFIX/nestgpu.env here (the image sets it in %environment).
# - nestgpu.py goes to PREFIX/lib/python<X.Y>/site-packages for the Python cmake finds: -DPython_EXECUTABLE pins it,
#   and a nestgpu.pth in PYTHON's site-packages points there.
# - `import nestgpu` creates the NEST GPU instance, which initialises CUDA and cuRAND: it needs a GPU. Without one this
#   script checks the library's links and symbols, never the import.
#
# Usage: bash scripts/build-nestgpu.sh NESTGPU_SOURCE PREFIX PYTHON
# Environment: CUDA_PATH (default /usr/local/cuda), CUDA_ARCH (default 80), JOBS (default 2).
set -euo pipefail
SRC=$(cd "${1:?usage: build-nestgpu.sh NESTGPU_SOURCE PREFIX PYTHON}" && pwd)
PREFIX=${2:?usage: build-nestgpu.sh NESTGPU_SOURCE PREFIX PYTHON}
PY=${3:?usage: build-nestgpu.sh NESTGPU_SOURCE PREFIX PYTHON}
case "$PY" in */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; *) PY=$(command -v "$PY") ;; esac
HERE=$(cd "$(dirname "$0")/.." && pwd)
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
ARCH=${CUDA_ARCH:-80}
STUBS=$CUDA_PATH/lib64/stubs
[ -f "$SRC/src/user_m1.cu" ] && [ -f "$SRC/pythonlib/nestgpu.py" ] || { echo "build-nestgpu: $SRC is not a NEST GPU tree" >&2; exit 2; }
[ -f "$STUBS/libcuda.so" ] || { echo "build-nestgpu: no $STUBS/libcuda.so (NEST GPU links -lcuda)" >&2; exit 2; }
export LIBRARY_PATH=$STUBS${LIBRARY_PATH:+:$LIBRARY_PATH}
export PATH=$CUDA_PATH/bin:$PATH
cp "$HERE"/flyhpc/backends/nestgpu/{user_m1.h,user_m1.cu,flyhpc_lif.cuh} "$SRC/src/"
mkdir -p "$SRC/build"
start=$(date +%s)
(cd "$SRC/build" && cmake -DCMAKE_INSTALL_PREFIX="$PREFIX" -Dwith-mpi=OFF -Dwith-gpu-arch="$ARCH" \
   -DPython_EXECUTABLE="$PY" -DCMAKE_CUDA_COMPILER="$CUDA_PATH/bin/nvcc" -DCUDAToolkit_ROOT="$CUDA_PATH" ..)
make -C "$SRC/build" -j"${JOBS:-2}"
make -C "$SRC/build" install
echo "build-nestgpu: configure + build + install took $(( $(date +%s) - start )) s"
LIB=$(find "$PREFIX" -name libnestgpukernel.so | head -1)
MOD=$(find "$PREFIX" -name nestgpu.py | head -1)
[ -n "$LIB" ] && [ -n "$MOD" ] || { echo "build-nestgpu: libnestgpukernel.so or nestgpu.py not installed under $PREFIX" >&2; exit 1; }
NEEDED=$(readelf -d "$LIB") SYMBOLS=$(nm -DC "$LIB")  # (not `| grep -q`: with pipefail, an early grep exit fails it)
grep -q 'libcudart.so' <<< "$NEEDED" || { echo "build-nestgpu: $LIB does not need the CUDA runtime" >&2; exit 1; }
grep -q 'user_m1::Init(int, int, int, int, unsigned long long\*)' <<< "$SYMBOLS" ||
  { echo "build-nestgpu: $LIB has no user_m1::Init: our user model was not built in" >&2; exit 1; }
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
dirname "$MOD" > "$SITE/nestgpu.pth"
echo "export NESTGPU_LIB=$LIB" > "$PREFIX/nestgpu.env"
echo "build-nestgpu: $LIB (-lcuda resolved by $STUBS, needs the CUDA runtime, exports user_m1::Init); $MOD on" \
     "$PY's path via $SITE/nestgpu.pth;" \
     "NESTGPU_LIB in $PREFIX/nestgpu.env"
