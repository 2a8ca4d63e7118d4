#!/usr/bin/env bash
# Build GeNN 4.9's libraries (libgenn and its single-threaded CPU and CUDA backends) inside a GeNN 4.9 source tree,
# for Brian2GeNN. GeNN 4.9 builds them lazily, at a model's first genn-buildmodel.sh, and ONLY when $GENN_PATH/lib is
# writable (src/genn/generator/MakefileCommon: `if [ -w $(LIBRARY_DIRECTORY) ]; then $(MAKE) ...`): in a read-only
# image nothing builds them and the generator's link fails. So apptainer/flyhpc-brian2genn.def runs this at build time.
# The per-model generator still links -lcuda at run time (GPU mode): LIBRARY_PATH must hold $CUDA_PATH/lib64/stubs there.
# CUDA 13: the CUDA backend compiles only with the cuCtxCreate patch below (GeNN 5.4's own fix, applied idempotently).
#
# Usage: bash scripts/build-genn4.sh GENN4_SOURCE            (CUDA_PATH set: the CUDA backend too)
#        bash scripts/build-genn4.sh GENN4_SOURCE --cpu-only (the CPU backend only)
# JOBS (default 2) make jobs. Afterwards checks that lib/ holds every library and that make has nothing left to do.
set -euo pipefail
SRC=$(cd "${1:?usage: build-genn4.sh GENN4_SOURCE [--cpu-only]}" && pwd)
MODE=${2:-cuda}
[ "$(cat "$SRC/version.txt" 2>/dev/null)" = 4.9.0 ] || { echo "build-genn4: $SRC is not a GeNN 4.9.0 tree" >&2; exit 2; }
LIBS=(libgenn.a libgenn_single_threaded_cpu_backend.a)
if [ "$MODE" = --cpu-only ]; then
  unset CUDA_PATH
else
  [ -n "${CUDA_PATH:-}" ] && [ -f "$CUDA_PATH/include/cuda.h" ] ||
    { echo "build-genn4: CUDA_PATH must name a CUDA toolkit (got '${CUDA_PATH:-}'); or pass --cpu-only" >&2; exit 2; }
  LIBS+=(libgenn_cuda_backend.a)
fi
OPT=$SRC/src/genn/backends/cuda/optimiser.cc
if [ "$MODE" != --cpu-only ] && [ -f "$OPT" ] && ! grep -q 'cuCtxCreate(&cuContext, NULL, 0, cuDevice)' "$OPT"; then
  # CUDA 13's cuda.h maps cuCtxCreate to cuCtxCreate_v4(CUcontext*, CUctxCreateParams*, unsigned, CUdevice): GeNN
  # 4.9's 3-argument call does not compile. GeNN 5.4's optimiser.cc has the fix; the same lines are put in here.
  sed -i 's|^    CHECK_CU_ERRORS(cuCtxCreate(&cuContext, 0, cuDevice));|#if CUDA_VERSION < 13000\n&\n#else\n    CHECK_CU_ERRORS(cuCtxCreate(\&cuContext, NULL, 0, cuDevice));\n#endif|' "$OPT"
  echo "build-genn4: patched $OPT for CUDA 13's cuCtxCreate (as GeNN 5.4)"
fi
start=$(date +%s)
make -C "$SRC" -j"${JOBS:-2}"
echo "build-genn4: make took $(( $(date +%s) - start )) s"
for lib in "${LIBS[@]}"; do
  [ -f "$SRC/lib/$lib" ] || { echo "build-genn4: $SRC/lib/$lib was not built" >&2; exit 1; }
done
AGAIN=$(make -C "$SRC" -n 2>/dev/null)  # (not `| grep -q`: with pipefail an early grep exit fails the pipe)
if grep -qE ' -(c|o) ' <<< "$AGAIN"; then
  echo "build-genn4: a second make would still compile something" >&2; exit 1
fi
echo "build-genn4: GeNN 4.9.0 libraries in $SRC/lib: $(cd "$SRC/lib" && ls lib*.a | tr '\n' ' ')"
