#!/usr/bin/env bash
# scripts/local-slurm/stop.sh — stop the test cluster that start.sh started, and nothing else.
#
# Order: cancel the queue and wait for job steps to end; then SIGTERM each daemon by the PID in
# its PID file, only if that PID still runs the program we started (a reused PID is never hit),
# SIGKILL after 20 s; then remove the /etc/slurm links start.sh made. Logs stay in
# $FLYHPC_SLURM_DIR/logs unless FLYHPC_SLURM_PURGE=1.
set -uo pipefail
DIR=${FLYHPC_SLURM_DIR:-/tmp/flyhpc-slurm}
export SLURM_CONF=$DIR/etc/slurm.conf
say() { echo "[flyhpc-slurm stop] $*"; }

[ -f "$DIR/.flyhpc-slurm" ] || { say "no cluster in $DIR"; exit 0; }

is_ours() {  # is_ours <pid file> <program name>
  [ -s "$1" ] || return 1
  local pid; pid=$(cat "$1")
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}
ended() {  # ended <pid>: gone or a zombie
  kill -0 "$1" 2>/dev/null || return 0
  grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

if is_ours "$DIR/pids/slurmctld.pid" slurmctld; then
  queued=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${queued// /}" ]; then
    say "cancelling $queued"
    # shellcheck disable=SC2086
    scancel $queued 2>/dev/null
    for _ in $(seq 120); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.25; done
  fi
fi
# Every live job step has a slurmstepd socket in the spool folder; let them finish first.
for _ in $(seq 120); do
  [ -z "$(find "$DIR/spool" -maxdepth 1 -type s 2>/dev/null)" ] && break; sleep 0.25
done

halt() {  # halt <program> <pid file>
  if ! is_ours "$2" "$1"; then say "$1 not running"; return; fi
  local pid; pid=$(cat "$2")
  kill -TERM "$pid"
  for _ in $(seq 80); do ended "$pid" && { say "$1 ($pid) stopped"; return; }; sleep 0.25; done
  say "$1 ($pid) still alive after 20 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null
}
halt slurmd "$DIR/pids/slurmd.pid"
halt slurmctld "$DIR/pids/slurmctld.pid"
halt slurmdbd "$DIR/pids/slurmdbd.pid"
halt mariadbd "$DIR/pids/mariadbd.pid"
halt munged "$DIR/munge/munged.pid"

if [ -f "$DIR/links" ]; then
  while read -r link; do
    if [ -L "$link" ] && [[ "$(readlink "$link")" == "$DIR/"* ]]; then rm -f "$link"; say "removed $link"; fi
  done <"$DIR/links"
  rm -f "$DIR/links"
fi
if [ "${FLYHPC_SLURM_PURGE:-0}" = 1 ]; then rm -rf "$DIR"; say "removed $DIR"; fi
say "done"
