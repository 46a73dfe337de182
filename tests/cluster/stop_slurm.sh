#!/usr/bin/env bash
# Stops the daemons started by start_slurm.sh, by the PIDs it recorded.
set -uo pipefail
SLURM_CI_DIR="${SLURM_CI_DIR:-/tmp/shrink-slurm}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
for daemon in slurmd slurmctld munged; do
  pidfile="$SLURM_CI_DIR/$daemon.pid"
  [ -s "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  $SUDO kill "$pid" 2>/dev/null || continue
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && $SUDO kill -9 "$pid"
  rm -f "$pidfile"
done
echo "SLURM stopped"
