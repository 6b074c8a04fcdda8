#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (Debian's slurm-wlm 22.05 + munge), for the Slurm tests.
#
# Idempotent: installs the packages if missing, writes /etc/slurm/slurm.conf for this host (only
# when it is not there or was written by this script), starts munged, slurmctld and slurmd if they
# do not answer, resumes the node if it is down, and waits until `sinfo` shows it idle.
# Needs root on a Debian-like system. Without systemd (containers, CI) the daemons are started
# directly. A real cluster needs none of this: its admins run Slurm.
set -euo pipefail

log() { echo "ensure-slurm: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root (it installs packages and starts daemons)"; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  log "installing Debian's slurmctld, slurmd, slurm-client and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi

NODE=$(hostname -s)
CPUS=$(nproc)
# Leave 1 GiB to the host; Slurm refuses a node that reports less memory than configured.
MEM_MB=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
CONF=/etc/slurm/slurm.conf
MARK="# written by multiverse scripts/ensure-slurm.sh"

if [ ! -f "$CONF" ] || grep -qF "$MARK" "$CONF"; then
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  cat >"$CONF.new" <<EOF
$MARK
ClusterName=multiverse
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# Processes of a job are found through /proc, which needs no cgroup or systemd set-up. The
# containers a job starts run under the engine, outside the job anyway (docs/CLUSTER.md).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# CPUs and memory are consumable: jobs beyond the node's cores or memory wait in the queue.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
# Ended jobs stay visible to squeue/scontrol for 10 minutes (no accounting database here).
MinJobAge=600
# Seconds between SIGTERM and SIGKILL when a job is cancelled or runs out of time.
KillWait=30
ReturnToService=2
SlurmdTimeout=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  if ! cmp -s "$CONF.new" "$CONF"; then
    mv "$CONF.new" "$CONF"
    log "wrote $CONF (node $NODE: $CPUS CPUs, $MEM_MB MB)"
    CHANGED=1
  else
    rm -f "$CONF.new"
  fi
else
  log "$CONF was not written by this script: using it as it is"
fi

# munge: the daemon Slurm authenticates through.
if ! munge -n </dev/null >/dev/null 2>&1; then
  [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- munged
  log "started munged"
fi

# A changed configuration needs the daemons restarted.
if [ "${CHANGED:-0}" = 1 ]; then
  for pidfile in /run/slurmctld.pid /run/slurmd.pid; do
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then kill "$(cat "$pidfile")"; sleep 1; fi
  done
fi

if ! scontrol ping 2>/dev/null | grep -q "is UP"; then
  rm -f /run/slurmctld.pid
  slurmctld
  log "started slurmctld"
fi
if ! { [ -s /run/slurmd.pid ] && kill -0 "$(cat /run/slurmd.pid)" 2>/dev/null; }; then
  rm -f /run/slurmd.pid
  slurmd
  log "started slurmd"
fi

for _ in $(seq 1 60); do
  state=$(sinfo -h -n "$NODE" -o "%T" 2>/dev/null || true)
  case "$state" in
    idle*|mixed*|allocated*) log "node $NODE is $state; partition: $(sinfo -h -o '%P' | head -1)"; exit 0 ;;
    down*|drain*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.5
done
log "Slurm did not come up; see /var/log/slurm/slurmctld.log and /var/log/slurm/slurmd.log"
sinfo >&2 || true
exit 1
