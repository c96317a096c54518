#!/usr/bin/env bash
# A throwaway one-node Slurm cluster for the fleet tests: munged, slurmctld and slurmd as root,
# with their key, config, ports, state, spool, logs and pid files under DIR. Nothing outside DIR
# is written; the daemons are stopped by pid.
#
#   eval "$(bash scripts/slurm.sh start DIR)"   # exports SLURM_CONF; the node is idle when it returns
#   bash scripts/slurm.sh stop DIR
#
# Debian's slurm-wlm 22.05 and munge (scripts/install-test-deps.sh installs them). The cluster
# listens on 127.0.0.1 ports chosen free at start; its node is this machine with all its CPUs.
set -euo pipefail

cmd="${1:?usage: slurm.sh start|stop DIR}"
dir="${2:?usage: slurm.sh start|stop DIR}"

stop() {
  for d in slurmd slurmctld munged; do
    local f="$dir/$d.pid"
    if [ -s "$f" ]; then
      local pid
      pid=$(cat "$f")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$f"
    fi
  done
}

case "$cmd" in
stop)
  stop
  exit 0
  ;;
start) ;;
*)
  echo "usage: slurm.sh start|stop DIR" >&2
  exit 2
  ;;
esac

for t in munged slurmctld slurmd sbatch sinfo; do
  command -v "$t" >/dev/null || { echo "slurm.sh: $t missing (bash scripts/install-test-deps.sh)" >&2; exit 1; }
done
# leftovers of a crashed run in the same DIR
stop
mkdir -p "$dir"/{state,spool,munge}
chmod 700 "$dir/munge"
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ctl_port=$(free_port)
d_port=$(free_port)
while [ "$d_port" = "$ctl_port" ]; do d_port=$(free_port); done
node=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2/1024) - 512}' /proc/meminfo)

# munge: its own key and socket
head -c 1024 /dev/urandom > "$dir/munge/munge.key"
chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munge.seed"
for _ in $(seq 1 50); do [ -S "$dir/munge/munge.sock" ] && break; sleep 0.1; done

cat > "$dir/slurm.conf" <<EOF
ClusterName=portolan-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
ok=""
for _ in $(seq 1 100); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
  case "$state" in idle | mixed | allocated) ok=1; break ;; esac
  sleep 0.2
done
if [ -z "$ok" ]; then
  echo "slurm.sh: the node did not come up (state: ${state:-none}); logs in $dir" >&2
  tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  stop
  exit 1
fi
echo "export SLURM_CONF=$SLURM_CONF"
