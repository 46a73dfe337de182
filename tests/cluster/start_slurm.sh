#!/usr/bin/env bash
# A one-node SLURM cluster on localhost for the cluster tests (Debian 12, Slurm 22.05, no systemd).
# Installs munge + slurm, writes slurm.conf, starts munged, slurmctld and slurmd in the background,
# and waits until the node is idle. PIDs go to $SLURM_CI_DIR for stop_slurm.sh.
#   bash tests/cluster/start_slurm.sh && ... && bash tests/cluster/stop_slurm.sh
set -euo pipefail
SLURM_CI_DIR="${SLURM_CI_DIR:-/tmp/shrink-slurm}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    munge slurmctld slurmd slurm-client >/dev/null
fi

node="$(hostname -s)"
cpus="$(nproc)"
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))  # leave 1 GB to the system
$SUDO mkdir -p "$SLURM_CI_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /etc/slurm
$SUDO chmod 777 "$SLURM_CI_DIR"
# Job records for the tests: jobcomp/filetxt appends one line per finished job (no database needed).
$SUDO tee /etc/slurm/slurm.conf >/dev/null <<CONF
ClusterName=shrinkci
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${SLURM_CI_DIR}/slurmctld.pid
SlurmdPidFile=${SLURM_CI_DIR}/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc=${SLURM_CI_DIR}/jobcomp.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# munge: a key, then the daemon as the munge user.
if [ ! -s /etc/munge/munge.key ]; then
  $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
$SUDO chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
$SUDO chmod 400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
  $SUDO runuser -u munge -- /usr/sbin/munged
fi
pgrep -x munged > "$SLURM_CI_DIR/munged.pid"

pgrep -x slurmctld >/dev/null || $SUDO /usr/sbin/slurmctld
for _ in $(seq 60); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.5; done
scontrol ping | grep -q UP || { echo "slurmctld did not come up:"; $SUDO tail -20 /var/log/slurm/slurmctld.log; exit 1; }
pgrep -x slurmd >/dev/null || $SUDO /usr/sbin/slurmd
for _ in $(seq 60); do sinfo -h -o %t 2>/dev/null | grep -qx idle && break; sleep 0.5; done
if ! sinfo -h -o %t | grep -qx idle; then
  echo "node ${node} is not idle: $(sinfo -h -o '%t %E')"; $SUDO tail -20 /var/log/slurm/slurmd.log; exit 1
fi
echo "SLURM up: node ${node}, ${cpus} CPUs, ${mem_mb} MB; records in ${SLURM_CI_DIR}"
