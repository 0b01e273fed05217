#!/usr/bin/env bash
# A one-node SLURM cluster on localhost for the test suite (slurm-wlm 22.05,
# root): slurmctld and slurmd with every file in DIR, auth/none so no munge
# daemon or key is needed. Clients find it through SLURM_CONF=DIR/slurm.conf.
#   cluster.sh start DIR   write DIR/slurm.conf, start both daemons, wait for idle
#   cluster.sh stop DIR    stop the daemons named by DIR's pid files
# The node offers 4 CPUs and 2 fake GPUs (gres.conf only needs character
# devices: /dev/null and /dev/zero) whatever the machine has (config_overrides),
# so the test's jobs fit anywhere.
# Ports 16817/16818, not the default ones, keep clear of a system SLURM.
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop DIR} dir=${2:?usage: cluster.sh start|stop DIR}

stop() {
  local f pid
  # Jobs first: their slurmstepd and ranks would outlive the daemons.
  if [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    export SLURM_CONF=$dir/slurm.conf
    squeue -h -o %i | xargs -r scancel 2>/dev/null || true
    for _ in $(seq 100); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  for f in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

start() {
  mkdir -p "$dir/state" "$dir/spool"
  cat > "$dir/gres.conf" <<EOF
NodeName=localhost Name=gpu File=/dev/null
NodeName=localhost Name=gpu File=/dev/zero
EOF
  # cred_expire, bf_interval and sched_interval: a requeued job starts again
  # after ~15 s instead of up to 2.5 min.
  # MpiDefault=pmix: Debian's Open MPI speaks PMIx only.
  cat > "$dir/slurm.conf" <<EOF
ClusterName=zsseg-test
SlurmctldHost=localhost
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
AuthInfo=cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=pmix
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 Sockets=1 CoresPerSocket=4 ThreadsPerCore=1 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -c -f "$SLURM_CONF"
  slurmd -N localhost -f "$SLURM_CONF"
  local state=""
  for _ in $(seq 100); do
    state=$(sinfo -h -N -o %t 2>/dev/null || true)
    [ "$state" = idle ] && return 0
    sleep 0.2
  done
  echo "cluster.sh: node not idle after 20 s (state '$state'); logs:" >&2
  tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  stop
  return 1
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
