#!/usr/bin/env bash
# Stop a cluster started by tests/cluster/slurm_up.sh: cancel its jobs, then stop the daemons it
# started, by the PIDs it recorded (never by name: other Slurm or munge daemons are left alone).
#
#   tests/cluster/slurm_down.sh FOLDER [--remove]
#
# --remove deletes the folder afterwards.
set -uo pipefail

DIR="${1:?usage: slurm_down.sh FOLDER [--remove]}"
PIDS="$DIR/daemons.pids"
[ -f "$PIDS" ] || { echo "slurm_down.sh: $PIDS does not exist; is $DIR a folder made by slurm_up.sh?" >&2; exit 2; }
export PATH="$PATH:/usr/sbin:/sbin"
export SLURM_CONF="$DIR/etc/slurm.conf"

# a daemon is still running when its PID is alive and still names it (a PID reused by another
# program is left alone); a stopped one whose parent has gone stays a zombie until init reaps it
running() {
  local pid="$1" name="$2"
  [ -r "/proc/$pid/stat" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${name:0:15}" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

# the jobs first: their processes belong to slurmstepd, which outlives slurmd
if running "$(awk '$1 == "slurmctld" {print $2}' "$PIDS")" slurmctld; then
  scancel --quiet --full --user="$(id -un)" 2>/dev/null
  for _ in $(seq 50); do
    [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
    sleep 0.2
  done
fi

# then the daemons, the last started first
tac "$PIDS" | while read -r name pid; do
  running "$pid" "$name" || continue
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 50); do
    running "$pid" "$name" || break
    sleep 0.2
  done
  if running "$pid" "$name"; then
    echo "slurm_down.sh: $name (PID $pid) did not stop within 10 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
done

if [ "${2:-}" = "--remove" ]; then
  rm -rf "$DIR"
fi
