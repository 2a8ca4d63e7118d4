#!/usr/bin/env bash
# scripts/local-slurm/start.sh — a real one-node Slurm on 127.0.0.1 for flyhpc's integration tests.
#
# What it does (root, Debian 12 / Slurm 22.05): installs the missing Debian packages, writes a
# private config under $FLYHPC_SLURM_DIR, starts munged, MariaDB, slurmdbd, slurmctld and slurmd
# in that order (each with a PID file there), and returns once the node is idle and `sacct`
# answers. Accounting is on because submitit and `flyhpc status` read job states from sacct.
# It never touches a daemon it did not start; scripts/local-slurm/stop.sh undoes everything.
#
# Clients find the cluster through /etc/slurm/slurm.conf (a symlink made here, removed by stop)
# or through `source $FLYHPC_SLURM_DIR/env.sh` (exports SLURM_CONF).
#
# Settings (environment):
#   FLYHPC_SLURM_DIR=/tmp/flyhpc-slurm   config, state, logs, PID files (recreated on each start)
#   FLYHPC_SLURM_CPUS=max(nproc,8)       CPUs advertised; more than nproc oversubscribes
#   FLYHPC_SLURM_GPUS=2                  fake GPUs (gres gpu:fake:N on dummy char devices)
#   FLYHPC_SLURM_DEFMEM_MB=400           DefMemPerCPU; without it each job takes the whole node
#   FLYHPC_SLURM_PORT=6817               slurmctld port; slurmd +1, slurmdbd +2
#   FLYHPC_SLURM_DB_PORT=3307            MariaDB port (loopback)
#   FLYHPC_SLURM_NO_INSTALL=1            fail instead of running apt-get
#   FLYHPC_SLURM_WAIT_S=60               how long to wait for each daemon
set -euo pipefail

DIR=${FLYHPC_SLURM_DIR:-/tmp/flyhpc-slurm}
NCPU_HOST=$(nproc)
# At least 8 (oversubscribed) CPUs, so the fault tests can run their tasks side by side.
NCPU=${FLYHPC_SLURM_CPUS:-$(( NCPU_HOST > 8 ? NCPU_HOST : 8 ))}
NGPU=${FLYHPC_SLURM_GPUS:-2}
DEFMEM=${FLYHPC_SLURM_DEFMEM_MB:-400}
PORT=${FLYHPC_SLURM_PORT:-6817}
DB_PORT=${FLYHPC_SLURM_DB_PORT:-3307}
WAIT_S=${FLYHPC_SLURM_WAIT_S:-60}
HOST=$(hostname -s)
# sacctmgr in 22.05 ignores a custom munge socket, so munged must listen on the standard one.
MUNGE_SOCKET=/run/munge/munge.socket.2
T0=$(date +%s.%N)

say() { printf '[flyhpc-slurm %5.1fs] %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*"; }
fail() { echo "[flyhpc-slurm] error: $*" >&2; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

[ "$(id -u)" -eq 0 ] || fail "run as root (the daemons and apt-get need it)"

# ------------------------------------------------------------------ already up?
if alive "$DIR/pids/slurmctld.pid" && alive "$DIR/pids/slurmd.pid"; then
  if SLURM_CONF=$DIR/etc/slurm.conf sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    say "already running (SLURM_CONF=$DIR/etc/slurm.conf)"; exit 0
  fi
fi
for name in munged mariadbd slurmdbd slurmctld slurmd; do
  alive "$DIR/pids/$name.pid" && fail "$name (pid $(cat "$DIR/pids/$name.pid")) from an earlier start is alive; run stop.sh"
done

# ------------------------------------------------------------------ packages
need=""
for pkg in slurmctld slurmd slurm-client slurmdbd munge mariadb-server; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need="$need $pkg"
done
if [ -n "$need" ]; then
  [ "${FLYHPC_SLURM_NO_INSTALL:-0}" = 1 ] && fail "missing packages:$need"
  say "apt-get install$need"
  # There is no init system: keep the packages' maintainer scripts from starting services.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
  [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# ------------------------------------------------------------------ fresh folder
case "$DIR" in /|/tmp|/tmp/|/root|/home|/etc*|/usr*|"") fail "FLYHPC_SLURM_DIR=$DIR is not a private folder";; esac
if [ -e "$DIR" ] && [ ! -f "$DIR/.flyhpc-slurm" ]; then
  fail "$DIR exists and was not made by this script; choose another FLYHPC_SLURM_DIR"
fi
rm -rf "$DIR"
mkdir -p "$DIR"/{etc,pids,logs,state,spool,munge,db,gpus}
touch "$DIR/.flyhpc-slurm"
chmod 755 "$DIR"

mem_free_mb=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
MEM_MB=$((mem_free_mb * 3 / 4)); [ "$MEM_MB" -gt 16000 ] && MEM_MB=16000

if [ "$NCPU" -gt "$NCPU_HOST" ]; then
  NODE_CPUS="CPUs=$NCPU"; OVERRIDE="SlurmdParameters=config_overrides"
elif [ "$NCPU" -lt "$NCPU_HOST" ]; then
  NODE_CPUS="CPUs=$NCPU"; OVERRIDE=""
else
  # the layout slurmd detects, so it does not complain about socket/core boundaries
  NODE_CPUS=$(slurmd -C | head -n1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
  OVERRIDE=""
fi

GRES_TYPES=""; NODE_GRES=""; TRES=""
if [ "$NGPU" -gt 0 ]; then
  # Slurm accepts GPU "files" only if they are character devices; these have /dev/null's numbers.
  for i in $(seq 0 $((NGPU - 1))); do mknod "$DIR/gpus/nvidia$i" c 1 3; done
  printf 'AutoDetect=off\nNodeName=%s Name=gpu Type=fake File=%s/gpus/nvidia[0-%d]\n' \
    "$HOST" "$DIR" $((NGPU - 1)) >"$DIR/etc/gres.conf"
  GRES_TYPES="GresTypes=gpu"; NODE_GRES="Gres=gpu:fake:$NGPU"; TRES="AccountingStorageTRES=gres/gpu"
fi

cat >"$DIR/etc/slurm.conf" <<EOF
# flyhpc test cluster: one node, loopback only. Written by scripts/local-slurm/start.sh.
ClusterName=flyhpc
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job is held cred_expire+1 s before it may start again (default 120 s).
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/pids/slurmctld.pid
SlurmdPidFile=$DIR/pids/slurmd.pid
SlurmctldLogFile=$DIR/logs/slurmctld.log
SlurmdLogFile=$DIR/logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT + 2))
$TRES
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEFMEM
SchedulerType=sched/backfill
# Schedule every 2 s instead of every minute: requeued and freed jobs start quickly.
SchedulerParameters=sched_interval=2,bf_interval=5
MaxArraySize=1001
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=300
# Seconds between SIGTERM and SIGKILL when a job is cancelled or times out.
KillWait=2
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=30
$GRES_TYPES
$OVERRIDE
NodeName=$HOST NodeAddr=127.0.0.1 $NODE_CPUS RealMemory=$MEM_MB $NODE_GRES State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

DB_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
cat >"$DIR/etc/slurmdbd.conf" <<EOF
# Written by scripts/local-slurm/start.sh
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=$((PORT + 2))
SlurmUser=root
PidFile=$DIR/pids/slurmdbd.pid
LogFile=$DIR/logs/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=flyhpc_acct
EOF
chmod 600 "$DIR/etc/slurmdbd.conf"   # slurmdbd refuses a config others can read

echo "export SLURM_CONF=$DIR/etc/slurm.conf" >"$DIR/env.sh"
export SLURM_CONF=$DIR/etc/slurm.conf

# Clients started without SLURM_CONF (submitit's subprocesses, `scontrol` inside jobs) look in /etc/slurm.
mkdir -p /etc/slurm
for f in slurm.conf slurmdbd.conf gres.conf; do
  [ -e "$DIR/etc/$f" ] || continue
  if [ -e "/etc/slurm/$f" ] && [ ! -L "/etc/slurm/$f" ]; then
    say "note: /etc/slurm/$f is a real file, left alone; clients need SLURM_CONF"
  else
    ln -sfn "$DIR/etc/$f" "/etc/slurm/$f"; echo "/etc/slurm/$f" >>"$DIR/links"
  fi
done

until_ok() {  # until_ok <label> <command...>: retry every 0.25 s for WAIT_S seconds
  local label=$1; shift
  local deadline=$(( $(date +%s) + WAIT_S ))
  until timeout 10 "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$label did not come up in ${WAIT_S}s; logs in $DIR/logs"
    sleep 0.25
  done
  say "$label up"
}

# ------------------------------------------------------------------ munged
if timeout 5 sh -c "munge -n -S $MUNGE_SOCKET | unmunge -S $MUNGE_SOCKET" >/dev/null 2>&1; then
  say "munged already answers on $MUNGE_SOCKET; using it (stop.sh leaves it alone)"
else
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chown -R munge:munge "$DIR/munge"; chmod 700 "$DIR/munge"; chmod 400 "$DIR/munge/munge.key"
  install -d -o munge -g munge -m 755 /run/munge   # munged wants its socket folder world-executable
  runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/seed"
  ln -sf "$DIR/munge/munged.pid" "$DIR/pids/munged.pid"
  until_ok munged sh -c "munge -n -S $MUNGE_SOCKET | unmunge -S $MUNGE_SOCKET"
fi

# ------------------------------------------------------------------ MariaDB + slurmdbd
DB_SOCKET=$DIR/db.sock
mariadb-install-db --no-defaults --user=root --datadir="$DIR/db" --skip-test-db \
  --auth-root-authentication-method=socket >"$DIR/logs/mariadb-install.log" 2>&1 \
  || fail "mariadb-install-db failed; see $DIR/logs/mariadb-install.log"
setsid /usr/sbin/mariadbd --no-defaults --user=root --datadir="$DIR/db" --socket="$DB_SOCKET" \
  --bind-address=127.0.0.1 --port="$DB_PORT" --pid-file="$DIR/pids/mariadbd.pid" \
  --log-error="$DIR/logs/mariadb.log" --skip-name-resolve --innodb-buffer-pool-size=64M \
  --innodb-flush-log-at-trx-commit=0 --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
until_ok mariadbd mariadb-admin --no-defaults --socket="$DB_SOCKET" -uroot ping
mariadb --no-defaults --socket="$DB_SOCKET" -uroot \
  -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD'; GRANT ALL ON flyhpc_acct.* TO 'slurm'@'127.0.0.1';"
/usr/sbin/slurmdbd
until_ok slurmdbd sacctmgr -n list cluster

# ------------------------------------------------------------------ slurmctld + slurmd
/usr/sbin/slurmctld
until_ok slurmctld sh -c "scontrol ping | grep -q UP"
/usr/sbin/slurmd -N "$HOST"
until_ok "node $HOST idle" sh -c "sinfo -h -n $HOST -o %T | grep -qx idle"
until_ok sacct sacct -n -X

say "cluster up; SLURM_CONF=$SLURM_CONF; stop with $(dirname "$0")/stop.sh"
sinfo -o '%P %D %T %c %m %G'
