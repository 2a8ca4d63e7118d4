#!/usr/bin/env bash
# The GPU proof in one prepared command, offline (issue 20): on a bare GPU node, from this repository and a wheelhouse
# only, install flyhpc, build the GPU simulators and run `flyhpc check --quick --require-gpu` for each GPU backend,
# writing each backend's report into OUT_DIR as soon as it exists. Installs nothing from the network.
#
# The node it is planned for (checked first, by flyhpc/node_facts.py; a difference stops the kit with the list):
#   one NVIDIA H100 80 GB (sm_90), 16 cores, 128 GB RAM, Linux x86_64, no network; Python 3.12 with torch 2.11
#   (CUDA 13), numba, numba-cuda, cupy, numpy, pandas, pyarrow, click, rich, matplotlib, scipy, sympy, cython, jinja2,
#   pytest; nvcc 13.0, cmake, ninja (+ g++, make, pkg-config with libffi); no brian2, brian2cuda, brian2genn,
#   submitit, PyGeNN, NEST GPU, apptainer. One command may run 10 minutes; the window, start included, is 15.
# What travels with the repository (<= ~50 MiB): the wheelhouse made by `flyhpc wheelhouse DIR --for gpu-node`
#   (wheels of what the node lacks, per environment, with requirements-<env>.txt; GeNN 5.4.0 and NEST GPU d3be46f
#   source archives); default place ./wheelhouse (git-ignored).
#
# Steps, most valuable result first; each has its own time limit (`timeout`), so one hang cannot eat the window:
#   facts        (20 s)  python -m flyhpc.node_facts: the node above, the wheelhouse, the step limits of this command
#   install      (120 s) venv over the system packages (--system-site-packages), `pip install --no-index
#                        --find-links WHEELHOUSE -r requirements-main.txt`, then flyhpc from this repository
#   builds       (in the background, from here on, niced, each with its limit, JOBS=$(nproc) jobs):
#                  pygenn   (300 s) PyGeNN 5.4.0 with its CUDA backend (scripts/build-pygenn.sh; build_ext parallel)
#                  nestgpu  (300 s) NEST GPU d3be46f with our user_m1, single node, sm_$CUDA_ARCH (build-nestgpu.sh)
#                  b2cuda   (120 s) the Brian2CUDA venv: Brian2 2.8.0 + Brian2CUDA 1.0a7 + flyhpc (--no-deps)
#   data         (90 s)  the full-scale synthetic connectome (138,639 neurons, 15.1 M synapses) into WORK/data
#   pytorch      (210 s) flyhpc check --backend pytorch --quick --require-gpu, device "cuda"
#   genn-float64 (200 s) after the pygenn build; flyhpc check --backend genn --quick --require-gpu
#   genn-float32 (200 s) the same with --precision float32 (the code is generated and compiled again)
#   nestgpu      (150 s) after the nestgpu build
#   brian2cuda   (240 s) after the b2cuda venv; compute capability $CUDA_ARCH; nvcc compiles each network
# `--quick`: the 13 contract scenarios, the full-scale synthetic sugar 1 s with n_run 1 and 4 against native (strict
# parity), timing at t_run 1 and 10 s x n_run 1 and 8 (points not started within --budget-min are listed as skipped).
# Brian2GeNN is not in the kit: it needs Brian2 < 2.6 (no Python 3.12 wheel) and the NumPy 1 stack (~70 MB of
# wheels, over the budget); GeNN 4.9's CUDA backend itself builds with CUDA 13 only with scripts/build-genn4.sh's patch.
#
# One command has COMMAND_S (570 s) of its own: a step gets what is left of it when that is less than its limit but
# at least 60 % of it (a check cut short still leaves the parts it finished); otherwise it is not started and the
# kit exits 75 saying so; running the SAME command again continues (finished steps leave WORK/done/<step>, builds are
# incremental, genn/brian2cuda builds are cached in WORK/builds). Estimate for the node (docs/NOTES.md, from this
# project's 2-core build and check times): the first command runs facts .. genn-float32 in ~9-10 min (pytorch and
# GeNN in both precisions: the most valuable results), then exits 75; nestgpu and brian2cuda need ~8-9 min more, in
# a second window on a fresh node: `bash scripts/gpu-proof.sh --steps facts,install,data,nestgpu,brian2cuda OUT_DIR`.
# Output in OUT_DIR: node-facts.json, check-<backend>[-<precision>]-<host>.json/.md (written after every part, so a
# killed check leaves what it did), proof-steps.tsv (step, status, seconds, limit), logs/<step>.log. Exit: 0 every step
# passed, 2 bad input or the node differs (facts), 4 a step failed or timed out, 75 steps left for a second run.
#
# Rehearsal (no GPU; this project's machines): `--rehearsal` re-runs the script inside `unshare -n` (an empty
# network namespace: only lo), reports the facts that differ and goes on; GPU backends run in CPU mode where they have
# one (pytorch on the CPU, genn single_threaded_cpu) or build only (nestgpu, brian2cuda), and the reports say so; no
# --require-gpu. The PyGeNN and NEST GPU builds run only with REHEARSE_BUILDS=1 (10-15 min each on 2 cores).
#
# Usage: bash scripts/gpu-proof.sh [--rehearsal] [--steps a,b,...] OUT_DIR
# Environment: WHEELHOUSE (./wheelhouse), WORK (./.gpu-proof), NODE_PYTHON (python3.12), JOBS (nproc), CUDA_ARCH (90),
#   CUDA_PATH (the toolkit; an overlay with a driver stub and cuRAND is made in WORK/cuda when it lacks them),
#   COMMAND_S (570), FLYHPC_PROOF_SITE (tests only: a folder put on the venvs' path, standing for system packages).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
REHEARSAL=0 STEPS=all
while [ $# -gt 0 ]; do
  case $1 in
    --rehearsal) REHEARSAL=1; shift ;;
    --steps) STEPS=${2:?--steps needs a list}; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu-proof: unknown option $1 (--rehearsal, --steps LIST)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "usage: bash scripts/gpu-proof.sh [--rehearsal] [--steps a,b,...] OUT_DIR" >&2; exit 2; }
mkdir -p "$1" && OUT=$(cd "$1" && pwd)
if [ $REHEARSAL = 1 ] && [ -z "${FLYHPC_PROOF_NETNS:-}" ]; then
  unshare -n true 2>/dev/null || { echo "gpu-proof: --rehearsal needs 'unshare -n' (root, util-linux)" >&2; exit 2; }
  exec unshare -n env FLYHPC_PROOF_NETNS=1 bash "$0" --rehearsal --steps "$STEPS" "$OUT"
fi
WHEELHOUSE=$(cd "${WHEELHOUSE:-$REPO/wheelhouse}" 2>/dev/null && pwd) ||
  { echo "gpu-proof: no wheelhouse at ${WHEELHOUSE:-$REPO/wheelhouse} (flyhpc wheelhouse DIR --for gpu-node)" >&2; exit 2; }
WORK=${WORK:-$REPO/.gpu-proof}
mkdir -p "$WORK"/{done,bg,builds} "$OUT/logs" && WORK=$(cd "$WORK" && pwd)
NODE_PYTHON=${NODE_PYTHON:-python3.12}
JOBS=${JOBS:-$(nproc)} CUDA_ARCH=${CUDA_ARCH:-90} COMMAND_S=${COMMAND_S:-570}
VENV=$WORK/venv B2CUDA_VENV=$WORK/venv-brian2cuda
# Offline, and only from the wheelhouse: no index, no pip configuration (it may name local indexes), no cache.
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_FIND_LINKS=$WHEELHOUSE PIP_NO_CACHE_DIR=1 \
       PIP_DISABLE_PIP_VERSION_CHECK=1 FLYHPC_DATA=$WORK/data OMP_WAIT_POLICY=PASSIVE
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
T0=$(date +%s) LEFT=0 FAILED=0
declare -A LIMIT=([facts]=20 [install]=120 [pygenn]=300 [nestgpu-build]=300 [b2cuda]=120 [data]=90 [pytorch]=210
                  [genn-float64]=200 [genn-float32]=200 [nestgpu]=150 [brian2cuda]=240)
ORDER=(facts install data pytorch genn-float64 genn-float32 nestgpu brian2cuda)  # foreground steps, in order
wanted() { [ "$STEPS" = all ] || [[ ",$STEPS," == *",$1,"* ]]; }
NODE_LIMITS=""  # the facts step checks the node's plan, also when rehearsing
for s in "${ORDER[@]}"; do wanted "$s" && [ ! -e "$WORK/done/$s" ] && NODE_LIMITS="$NODE_LIMITS${NODE_LIMITS:+,}${LIMIT[$s]}"; done
NODE_COMMAND_S=$COMMAND_S
if [ $REHEARSAL = 1 ]; then  # 2 shared cores, no GPU: the node's limits x REHEARSAL_SLOWDOWN, in one command
  for s in "${!LIMIT[@]}"; do LIMIT[$s]=$(( LIMIT[$s] * ${REHEARSAL_SLOWDOWN:-4} )); done
  COMMAND_S=${REHEARSAL_COMMAND_S:-100000} BUDGET_MIN=${BUDGET_MIN:-2}
fi

elapsed() { echo $(( $(date +%s) - T0 )); }
# `timeout` puts each step in a process group of its own: if this script is stopped, stop them too.
stop_steps() { local f; for f in "$WORK"/bg/*.pid; do [ -e "$f" ] && kill -- -"$(cat "$f")" 2>/dev/null; rm -f "$f"; done; }
trap 'stop_steps' EXIT
trap 'echo "gpu-proof: stopped; the running steps are stopped too" >&2; exit 143' INT TERM
record() {  # STEP STATUS SECONDS
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${LIMIT[$1]}" >> "$OUT/proof-steps.tsv"
  printf 'gpu-proof: [%4ss] %-13s %-40s %5s s (limit %s s)\n' "$(elapsed)" "$1" "$2" "$3" "${LIMIT[$1]}"
}

# step NAME CMD...: run CMD (a command or a function of this script) under NAME's time limit, log into
# OUT/logs/NAME.log; skip it if an earlier run finished it or if its limit no longer fits into this command.
step() {
  local name=$1; shift
  wanted "$name" || return 0
  if [ -e "$WORK/done/$name" ]; then record "$name" "done in an earlier run" 0; return 0; fi
  local limit=${LIMIT[$name]} left=$(( COMMAND_S - $(elapsed) ))
  if [ $left -lt $limit ]; then  # limits are worst cases: start with what is left if that is >= 60 % of the limit
    if [ $(( left * 10 )) -lt $(( limit * 6 )) ]; then
      record "$name" "not started (run the same command again)" 0; LEFT=1; return 1
    fi
    limit=$left
  fi
  local start rc; start=$(date +%s)
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" > "$OUT/logs/$name.log" 2>&1 &
  echo $! > "$WORK/bg/step.pid"; wait $!; rc=$?; rm -f "$WORK/bg/step.pid"
  local took=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then touch "$WORK/done/$name"; record "$name" ok "$took"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then FAILED=1; record "$name" "TIMED OUT (after $limit s)" "$took"
    tail -5 "$OUT/logs/$name.log"
  else FAILED=1; record "$name" "FAILED (exit $rc)" "$took"; tail -15 "$OUT/logs/$name.log"; fi
  return $rc
}

# bg NAME CMD...: the same in the background, niced (builds, while the GPU checks run); `await NAME` waits for it.
bg() {
  local name=$1; shift
  [ -e "$WORK/done/$name" ] && return 0
  rm -f "$WORK/bg/$name".{rc,t}; date +%s > "$WORK/bg/$name.started"
  ( renice -n 5 -p $BASHPID > /dev/null; start=$(date +%s)
    timeout --kill-after=10 "${LIMIT[$name]}" bash -c '"$@"' "$name" "$@" > "$OUT/logs/$name.log" 2>&1 &
    echo $! > "$WORK/bg/$name.pid"; wait $!
    echo $? > "$WORK/bg/$name.rc.tmp"; rm -f "$WORK/bg/$name.pid"; echo $(( $(date +%s) - start )) > "$WORK/bg/$name.t"
    mv "$WORK/bg/$name.rc.tmp" "$WORK/bg/$name.rc" ) &
}
await() {
  local name=$1
  if [ -e "$WORK/done/$name" ]; then record "$name" "done in an earlier run" 0; return 0; fi
  [ -e "$WORK/bg/$name.started" ] || { record "$name" "not started" 0; return 1; }
  local until=$(( $(cat "$WORK/bg/$name.started") + ${LIMIT[$name]} + 20 ))
  while [ ! -e "$WORK/bg/$name.rc" ] && [ "$(date +%s)" -lt $until ]; do sleep 2; done
  [ -e "$WORK/bg/$name.rc" ] || { FAILED=1; record "$name" "LOST (no result within its limit)" 0; return 1; }
  local rc; rc=$(cat "$WORK/bg/$name.rc")
  if [ "$rc" = 0 ]; then touch "$WORK/done/$name"; record "$name" "ok (background)" "$(cat "$WORK/bg/$name.t")"
  else FAILED=1; record "$name" "FAILED (exit $rc, background)" "$(cat "$WORK/bg/$name.t")"
       tail -15 "$OUT/logs/$name.log"; return 1; fi
}

check() {  # BACKEND [flyhpc check options...]: the quick check into OUT; on a GPU node --require-gpu
  local backend=$1; shift
  local gpu=(--require-gpu); [ $REHEARSAL = 1 ] && gpu=()
  # a model's generated code may link -lcuda (GeNN): the toolkit's stub, where it has one (the driver's at run time)
  [ -d "$CUDA_PATH/lib64/stubs" ] && export LIBRARY_PATH=$CUDA_PATH/lib64/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}
  "$1" -m flyhpc check --backend "$backend" --quick "${gpu[@]}" --out "$OUT" --build-dir "$WORK/builds" \
    --budget-min "${BUDGET_MIN:-2}" "${@:2}"
}

install_env() {  # NAME VENV: venv over the node's packages, the wheelhouse's requirements, flyhpc from here
  local name=$1 venv=$2 nodeps=()
  [ "$name" = brian2cuda ] && nodeps=(--no-deps)  # flyhpc asks for Brian2 >= 2.10 on 3.12; Brian2CUDA needs 2.8.0
  [ -x "$venv/bin/python" ] || "$NODE_PYTHON" -m venv --system-site-packages "$venv" || return 1
  if [ -n "${FLYHPC_PROOF_SITE:-}" ]; then
    "$venv/bin/python" -c 'import sysconfig, sys; open(sysconfig.get_paths()["purelib"] + "/flyhpc-proof-site.pth",
      "w").write(sys.argv[1] + "\n")' "$FLYHPC_PROOF_SITE"
  fi
  "$venv/bin/python" -m pip install -q -r "$WHEELHOUSE/requirements-$name.txt" &&
  "$venv/bin/python" -m pip install -q --no-build-isolation "${nodeps[@]}" "$REPO" &&
  "$venv/bin/python" -c 'import flyhpc, sys; print("flyhpc", flyhpc.__version__, "in", sys.prefix)'
}

source_tree() {  # KEY: extract the wheelhouse's <KEY>-*.tar.gz into WORK/src once; print the tree
  local tgz; tgz=$(ls "$WHEELHOUSE/$1"-*.tar.gz 2>/dev/null | head -1)
  [ -n "$tgz" ] || { echo "gpu-proof: no $1 source in $WHEELHOUSE" >&2; return 1; }
  local dir=$WORK/src/$(basename "$tgz" .tar.gz)
  [ -d "$dir" ] || { mkdir -p "$WORK/src" && tar -xzf "$tgz" -C "$WORK/src"; } || return 1
  echo "$dir"
}

cuda_toolkit() {  # the toolkit to build against: CUDA_PATH if it has the driver stub and cuRAND, else an overlay
  if [ -f "$CUDA_PATH/lib64/stubs/libcuda.so" ] && [ -f "$CUDA_PATH/include/curand.h" ]; then echo "$CUDA_PATH"
  else CUDA_TOOLKIT=$CUDA_PATH PYTHON=$VENV/bin/python bash "$REPO/scripts/cuda-overlay.sh" "$WORK/cuda" >&2 &&
       echo "$WORK/cuda"; fi
}

build_pygenn() {
  local src; src=$(source_tree genn) || return 1
  if [ $REHEARSAL = 1 ]; then JOBS=$JOBS bash "$REPO/scripts/build-pygenn.sh" "$src" "$VENV/bin/python" --cpu-only
  else CUDA_PATH=$(cuda_toolkit) JOBS=$JOBS bash "$REPO/scripts/build-pygenn.sh" "$src" "$VENV/bin/python"; fi
}

build_nestgpu() {
  local src; src=$(source_tree nest-gpu) || return 1
  CUDA_PATH=$(cuda_toolkit) CUDA_ARCH=$CUDA_ARCH JOBS=$JOBS \
    bash "$REPO/scripts/build-nestgpu.sh" "$src" "$WORK/nestgpu" "$VENV/bin/python"
}

check_nestgpu() {
  # shellcheck disable=SC1091
  . "$WORK/nestgpu/nestgpu.env" && check nestgpu "$VENV/bin/python"
}

check_pytorch() {  # on the node: device "cuda", so that the report counts as a GPU run (not "auto")
  if [ $REHEARSAL = 1 ]; then check pytorch "$VENV/bin/python"
  else FLYHPC_BACKEND_OPTIONS='{"pytorch": {"device": "cuda"}}' check pytorch "$VENV/bin/python"; fi
}

check_brian2cuda() {
  FLYHPC_BACKEND_OPTIONS="{\"brian2cuda\": {\"compute_capability\": ${CUDA_ARCH:0:1}.${CUDA_ARCH:1}}}" \
    check brian2cuda "$B2CUDA_VENV/bin/python"
}

load_data() {  # what every check's parity and timing load: the full-scale synthetic connectome and its network
  "$VENV/bin/python" -c 'import os; from pathlib import Path; from flyhpc.model import preset
from flyhpc.pipeline import load_inputs
_c, spec, _d = load_inputs("synthetic", Path(os.environ["FLYHPC_DATA"]), preset("sugar"), 1, 1)
print(spec.connectome_source, spec.n_neurons, "neurons", spec.n_edges, "synapses")'
}
export -f check install_env source_tree cuda_toolkit build_pygenn build_nestgpu check_nestgpu check_pytorch \
  check_brian2cuda load_data
export REPO WHEELHOUSE WORK NODE_PYTHON JOBS CUDA_ARCH REHEARSAL OUT VENV B2CUDA_VENV BUDGET_MIN

echo "gpu-proof: $( [ $REHEARSAL = 1 ] && echo "REHEARSAL (no GPU expected; offline: $(ip -o link 2>/dev/null | awk -F': ' '{print $2}' | tr '\n' ' ')) " )repo $REPO, wheelhouse $WHEELHOUSE, work $WORK, out $OUT, $JOBS jobs, sm_$CUDA_ARCH"
: > "$OUT/proof-steps.tsv.new" && mv "$OUT/proof-steps.tsv.new" "$OUT/proof-steps.tsv"
rehearse=(); [ $REHEARSAL = 1 ] && rehearse=(--rehearsal)
if ! step facts env PYTHONPATH="$REPO" "$NODE_PYTHON" -m flyhpc.node_facts --work "$WORK" --wheelhouse "$WHEELHOUSE" \
     --limits "$NODE_LIMITS" --command-s "$NODE_COMMAND_S" --json "$OUT/node-facts.json" "${rehearse[@]}"; then
  [ -e "$OUT/logs/facts.log" ] && cat "$OUT/logs/facts.log"
  echo "gpu-proof: the node differs from the one the kit is planned for (above); nothing else was run" >&2; exit 2
fi
[ -e "$OUT/logs/facts.log" ] && wanted facts && grep -v '^ok ' "$OUT/logs/facts.log"
if ! step install install_env main "$VENV"; then
  [ $LEFT = 1 ] && { echo "gpu-proof: no time left for the install: run the same command again" >&2; exit 75; }
  echo "gpu-proof: install failed; nothing else can run" >&2; exit 4
fi
BUILDS=1; [ $REHEARSAL = 1 ] && [ "${REHEARSE_BUILDS:-0}" != 1 ] && BUILDS=0
if [ $BUILDS = 1 ]; then
  { wanted genn-float64 || wanted genn-float32; } && bg pygenn build_pygenn
  wanted nestgpu && bg nestgpu-build build_nestgpu
fi
wanted brian2cuda && bg b2cuda install_env brian2cuda "$B2CUDA_VENV"
step data load_data
step pytorch check_pytorch
if wanted genn-float64 || wanted genn-float32; then
  if [ $BUILDS = 1 ] || "$VENV/bin/python" -c 'import pygenn' 2>/dev/null; then
    { [ $BUILDS = 0 ] || await pygenn; } &&
      { step genn-float64 check genn "$VENV/bin/python"; step genn-float32 check genn "$VENV/bin/python" --precision float32; }
  else record genn-float64 "skipped: no PyGeNN (REHEARSE_BUILDS=1 builds it)" 0; fi
fi
if wanted nestgpu; then
  if [ $BUILDS = 1 ] || [ -e "$WORK/nestgpu/nestgpu.env" ]; then
    { [ $BUILDS = 0 ] || await nestgpu-build; } && step nestgpu check_nestgpu
  else record nestgpu "skipped: no NEST GPU (REHEARSE_BUILDS=1 builds it)" 0; fi
fi
if wanted brian2cuda; then await b2cuda && step brian2cuda check_brian2cuda; fi
wait
echo "gpu-proof: $(elapsed) s in all; steps in $OUT/proof-steps.tsv, reports in $OUT"
column -t -s $'\t' "$OUT/proof-steps.tsv" 2>/dev/null || cat "$OUT/proof-steps.tsv"
[ $FAILED = 1 ] && exit 4
[ $LEFT = 1 ] && { echo "gpu-proof: steps left: run the same command again to continue" >&2; exit 75; }
exit 0
