#!/usr/bin/env bash
# A one-node SLURM cluster on localhost for the test suite (slurm-wlm 22.05 and
# munge, as root): munged, slurmctld and slurmd with every file in DIR.
# Clients find it through SLURM_CONF=DIR/slurm.conf.
#   cluster.sh start DIR [CPUS]  write DIR/slurm.conf from slurm.conf.in beside
#                                this script, start the daemons, wait for idle
#   cluster.sh stop DIR          cancel the jobs, stop the daemons by the PIDs
#                                in DIR's pid files
# munged is a private one (socket, pid and log in DIR/munge) with the
# machine's key, /etc/munge/munge.key, created if missing; where it cannot
# start, the cluster uses auth/none and says why. The node offers CPUS CPUs
# (default 4) and 2 fake GPUs whatever the machine has (gres.conf).
# start exits 1, the reason and the daemons' logs on stderr and whatever it
# started stopped again, when the node does not come up.
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop DIR [CPUS]} dir=${2:?usage: cluster.sh start|stop DIR [CPUS]}
cpus=${3:-4}
here=$(cd "$(dirname "$0")" && pwd)
munge_key=/etc/munge/munge.key

running() {  # running PIDFILE NAME: the process PIDFILE names runs and is NAME
  [ -s "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$2" ]
}

stop_pid_file() {  # stop_pid_file PIDFILE NAME: TERM, up to 5 s, then KILL
  local pid
  if running "$1" "$2"; then
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

stop() {
  # Jobs first: their slurmstepd and ranks would outlive the daemons.
  if running "$dir/slurmctld.pid" slurmctld; then
    export SLURM_CONF=$dir/slurm.conf
    timeout 10 squeue -h -o %i | xargs -r timeout 10 scancel 2>/dev/null || true
    for _ in $(seq 100); do [ -z "$(timeout 2 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  stop_pid_file "$dir/slurmd.pid" slurmd
  stop_pid_file "$dir/slurmctld.pid" slurmctld
  stop_pid_file "$dir/munge/munged.pid" munged
}

start_munge() {  # start_munge: our munged on DIR/munge/munge.socket, or 1 with $why set
  local m=$dir/munge munged
  munged=$(command -v munged || echo /usr/sbin/munged)
  [ -x "$munged" ] || { why="munged not found (apt-get install munge)"; return 1; }
  id munge > /dev/null 2>&1 || { why="no user 'munge' to run munged as"; return 1; }
  if [ ! -e "$munge_key" ]; then
    if ! { install -d -o munge -g munge -m 0700 "$(dirname "$munge_key")" &&
           if command -v mungekey > /dev/null; then
             mungekey --create --keyfile="$munge_key"
           else
             dd if=/dev/urandom of="$munge_key" bs=1024 count=1 status=none
           fi &&
           chown munge:munge "$munge_key" && chmod 0400 "$munge_key"; }; then
      why="cannot create the munge key $munge_key"
      return 1
    fi
    echo "cluster.sh: created the munge key $munge_key" >&2
  fi
  # munged wants its socket directory searchable by every user.
  install -d -o munge -g munge -m 0755 "$m" || { why="cannot create $m"; return 1; }
  if ! runuser -u munge -- "$munged" --socket="$m/munge.socket" --key-file="$munge_key" \
         --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munged.seed"; then
    why="munged did not start: $(tail -n 1 "$m/munged.log" 2>/dev/null)"
    return 1
  fi
  if ! munge -n -S "$m/munge.socket" | unmunge -S "$m/munge.socket" > /dev/null; then
    why="munged runs but a credential does not round-trip through $m/munge.socket"
    stop_pid_file "$m/munged.pid" munged
    return 1
  fi
}

render() {  # render TEMPLATE OUT NAME=VALUE...: TEMPLATE with every @NAME@ replaced
  local text kv
  text=$(< "$1")
  for kv in "${@:3}"; do text=${text//"@${kv%%=*}@"/"${kv#*=}"}; done
  if [[ $text =~ @[A-Z_]+@ ]]; then
    echo "cluster.sh: $1 has ${BASH_REMATCH[0]}, which cluster.sh does not set" >&2
    return 1
  fi
  printf '%s\n' "$text" > "$2"
}

start() {
  local auth=auth/munge cred=cred/munge info why=""
  mkdir -p "$dir/state" "$dir/spool"
  info="socket=$dir/munge/munge.socket,cred_expire=5"
  if ! start_munge; then
    echo "cluster.sh: $why; using AuthType=auth/none instead" >&2
    auth=auth/none cred=cred/none info=cred_expire=5
  fi
  render "$here/slurm.conf.in" "$dir/slurm.conf" DIR="$dir" CPUS="$cpus" \
    SLURMCTLD_PORT=16817 SLURMD_PORT=16818 AUTH_TYPE=$auth CRED_TYPE=$cred AUTH_INFO="$info"
  # SLURM reads gres.conf from slurm.conf's directory.
  cp "$here/gres.conf" "$dir/gres.conf"
  export SLURM_CONF=$dir/slurm.conf
  local state="" d deadline=$((SECONDS + 20))
  if ! slurmctld -c -f "$SLURM_CONF"; then
    why="slurmctld did not start"
  elif ! slurmd -N localhost -f "$SLURM_CONF"; then
    why="slurmd did not start"
  fi
  # Both daemons fork into the background: a failure shows as a pid file
  # whose process is gone (or as a node that never turns idle).
  while [ -z "$why" ]; do
    state=$(timeout 3 sinfo -h -N -o %t 2>/dev/null || true)
    [ "$state" = idle ] && { echo "cluster.sh: node idle, $auth" >&2; return 0; }
    for d in slurmctld slurmd; do
      if [ -s "$dir/$d.pid" ] && ! running "$dir/$d.pid" $d; then
        why="$d exited: $(grep -m1 fatal "$dir/$d.log" || echo "see $dir/$d.log")"
      fi
    done
    [ $SECONDS -lt $deadline ] || why=${why:-"node not idle after 20 s (state '$state')"}
    sleep 0.2
  done
  echo "cluster.sh: $why; logs:" >&2
  tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  stop
  return 1
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "usage: cluster.sh start|stop DIR [CPUS]" >&2; exit 2 ;;
esac
