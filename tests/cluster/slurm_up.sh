#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine, for the tests of `bench run --executor slurm`:
# munged, slurmctld and slurmd (and with --accounting MariaDB and slurmdbd, so that sacct answers),
# all in a fresh folder, on free ports, with 2 CPUs and N fake GPUs (character devices that are
# /dev/null underneath: Slurm only hands them out, nothing computes on them).
#
#   tests/cluster/slurm_up.sh [--accounting] [--gpus N] [--python PYTHON] [--owner PID]
#
# The last line printed is the cluster's folder; FOLDER/env.sh exports SLURM_CONF for the Slurm
# commands (sbatch, squeue, sacct, ...), and tests/cluster/slurm_down.sh FOLDER stops exactly the
# daemons started here (their PIDs are in FOLDER/daemons.pids). With --owner, the cluster is also
# stopped once process PID has ended (a test run killed before it could stop it). Missing Debian
# packages are installed with apt-get (as root). Exit status 77: this machine cannot run a
# cluster, and the last line of stderr says why.
set -euo pipefail

ACCOUNTING=0
GPUS=2
PYTHON=python3
OWNER=
while [ $# -gt 0 ]; do
  case "$1" in
    --accounting) ACCOUNTING=1 ;;
    --gpus) GPUS="$2"; shift ;;
    --python) PYTHON="$2"; shift ;;
    --owner) OWNER="$2"; shift ;;
    *) echo "slurm_up.sh: unknown option $1 (use --accounting, --gpus N, --python PYTHON, --owner PID)" >&2; exit 2 ;;
  esac
  shift
done
HERE="$(cd "$(dirname "$0")" && pwd)"

cannot() { echo "cannot start a Slurm cluster here: $*" >&2; exit 77; }

# ---- the packages ---------------------------------------------------------------------------------
PACKAGES=(slurmctld slurmd slurm-client munge)
COMMANDS=(slurmctld slurmd sbatch munged)
if [ "$ACCOUNTING" = 1 ]; then
  PACKAGES+=(slurmdbd mariadb-server)
  COMMANDS+=(slurmdbd mariadbd mariadb-install-db)
fi
export PATH="$PATH:/usr/sbin:/sbin"  # the daemons live in sbin, which a user's PATH may lack
missing=0
for c in "${COMMANDS[@]}"; do
  command -v "$c" >/dev/null 2>&1 || missing=1
done
if [ "$missing" = 1 ]; then
  [ "$(id -u)" = 0 ] || cannot "Slurm is not installed and installing it needs root (apt-get install ${PACKAGES[*]})."
  command -v apt-get >/dev/null 2>&1 || cannot "Slurm is not installed and this system has no apt-get to install ${PACKAGES[*]}."
  # the packages' own services must not start: the cluster below is the only one wanted
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  status=0
  apt-get update -qq >/tmp/bench-slurm-apt.log 2>&1 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >>/tmp/bench-slurm-apt.log 2>&1 ||
    status=$?
  [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  if [ "$status" != 0 ]; then
    tail -n 5 /tmp/bench-slurm-apt.log >&2
    cannot "apt-get install ${PACKAGES[*]} failed (is a Debian mirror reachable? the log: /tmp/bench-slurm-apt.log)."
  fi
fi
[ "$(id -u)" = 0 ] || cannot "slurmd must run as root to start jobs as their user."

# ---- the folder ----------------------------------------------------------------------------------
# munged refuses a socket in a folder that anyone above it keeps closed: the cluster's folder is
# 0755 (mktemp makes 0700) under /tmp (a TMPDIR may be private), the key alone in a 0700 folder
DIR="$(mktemp -d /tmp/bench-slurm.XXXXXX)"
chmod 0755 "$DIR"
mkdir -p "$DIR"/{etc,log,state,spool,run,dev}
mkdir -m 0700 "$DIR/key"
: >"$DIR/daemons.pids"
# a start that fails stops what it started and leaves nothing behind
trap 'status=$?; [ "$status" = 0 ] || bash "$HERE/slurm_down.sh" "$DIR" --remove; exit "$status"' EXIT
ports=($("$PYTHON" - <<'EOF'
import socket
held = [socket.socket() for _ in range(4)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))
EOF
))
CTLD_PORT=${ports[0]} SLURMD_PORT=${ports[1]} DBD_PORT=${ports[2]} DB_PORT=${ports[3]}
NODE=bench-node
SOCKET="$DIR/run/munge.socket"
export SLURM_CONF="$DIR/etc/slurm.conf"
echo "export SLURM_CONF=$SLURM_CONF" >"$DIR/env.sh"

for ((i = 0; i < GPUS; i++)); do
  mknod "$DIR/dev/gpu$i" c 1 3 2>/dev/null || cannot "mknod cannot make the fake GPU devices (this container lacks CAP_MKNOD)."
done

# ---- starting daemons ----------------------------------------------------------------------------
# Each daemon runs in the foreground of a session of its own, started in the background, so its PID
# is known exactly; slurm_down.sh stops those PIDs and nothing else. A daemon keeps the file
# handles it inherits: closing those above 2 first keeps it from holding a caller's pipe open (a CI
# runner would wait on it forever).
started() {
  local name="$1"
  shift
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] && eval "exec $fd>&-"
    done
    exec setsid "$@"
  ) </dev/null >>"$DIR/log/$name.out" 2>&1 &
  echo "$name $!" >>"$DIR/daemons.pids"
}

wait_for() {
  local what="$1" seconds="$2"
  shift 2
  local end=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || { tail -n 20 "$DIR/log/"* >&2; cannot "$what within $seconds s (the logs are above)."; }
    sleep 0.2
  done
}

if command -v mungekey >/dev/null 2>&1; then
  mungekey --create --keyfile="$DIR/key/munge.key"
else
  dd if=/dev/urandom of="$DIR/key/munge.key" bs=1024 count=1 status=none
fi
chmod 0400 "$DIR/key/munge.key"
started munged munged --foreground --force --key-file="$DIR/key/munge.key" --socket="$SOCKET" \
  --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/state/munged.seed"
wait_for "munged did not answer" 10 munge --socket="$SOCKET" --no-input

# ---- accounting: MariaDB and slurmdbd --------------------------------------------------------------
if [ "$ACCOUNTING" = 1 ]; then
  mkdir -p "$DIR/db"
  mariadb-install-db --no-defaults --datadir="$DIR/db" --user=root --auth-root-authentication-method=normal \
    --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 || { tail -n 20 "$DIR/log/mariadb-install.log" >&2; cannot "mariadb-install-db failed."; }
  started mariadbd mariadbd --no-defaults --datadir="$DIR/db" --user=root --bind-address=127.0.0.1 --port="$DB_PORT" \
    --socket="$DIR/run/mariadb.sock" --pid-file="$DIR/run/mariadb.pid" --log-error="$DIR/log/mariadb.log" \
    --innodb-buffer-pool-size=32M --skip-log-bin
  wait_for "MariaDB did not answer" 30 mariadb --no-defaults --socket="$DIR/run/mariadb.sock" -u root -e "select 1"
  mariadb --no-defaults --socket="$DIR/run/mariadb.sock" -u root -e \
    "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$SOCKET
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 0600 "$DIR/etc/slurmdbd.conf"
  started slurmdbd slurmdbd -D  # reads the slurmdbd.conf beside $SLURM_CONF
  ACCOUNTING_CONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$SOCKET"
else
  ACCOUNTING_CONF="AccountingStorageType=accounting_storage/none"
fi

# ---- slurmctld and slurmd ------------------------------------------------------------------------
# no cgroups (linuxproc, task/none, no gathering), no wait before a batch job starts (a job starts
# in 1 s instead of 3), and the node's CPUs and GPUs as written whatever the hardware
cat >"$DIR/etc/slurm.conf" <<EOF
ClusterName=bench
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$ACCOUNTING_CONF
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
ReturnToService=2
GresTypes=gpu
NodeName=$NODE NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=2 Gres=gpu:$GPUS State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
if [ "$GPUS" -gt 0 ]; then
  echo "Name=gpu File=$DIR/dev/gpu[0-$((GPUS - 1))]" >"$DIR/etc/gres.conf"
else
  sed -i -e "s/ Gres=gpu:0//" "$DIR/etc/slurm.conf"
  : >"$DIR/etc/gres.conf"
fi

if [ "$ACCOUNTING" = 1 ]; then
  wait_for "slurmdbd did not answer" 30 sacctmgr -i list cluster
  sacctmgr -i add cluster bench >/dev/null
fi
started slurmctld slurmctld -D -i
started slurmd slurmd -D -N "$NODE"
wait_for "the node did not become idle" 30 bash -c "sinfo -h -n $NODE -o %T | grep -qx idle"

if [ -n "$OWNER" ]; then  # gone with its folder once slurm_down.sh --remove ran; else stops the cluster after PID
  started watchdog bash -c "while kill -0 $OWNER 2>/dev/null && [ -d '$DIR' ]; do sleep 1; done
    [ -d '$DIR' ] && exec bash '$HERE/slurm_down.sh' '$DIR'"
fi
echo "$DIR"
