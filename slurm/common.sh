# shellcheck shell=bash
# Shared body of train.sbatch and train_multinode.sbatch, sourced by both:
#   zs_train CONFIG [RUN_DIR] [zsseg train options...]
# Launches `zsseg train` on every task of the allocation, forwards SIGUSR1 and
# SIGTERM of the batch shell to the ranks (they checkpoint at the next
# iteration boundary and exit 0), then decides:
#   zsseg failed (status != 0)        -> exit with its status, no requeue
#   RUN_DIR/DONE exists               -> exit 0, training finished
#   exit 0 without DONE, after SIGTERM -> exit 0, no requeue: scancel, the hard
#                                        time limit, or preemption (which
#                                        requeues by itself where configured)
#   exit 0 without DONE otherwise      -> `scontrol requeue`: the job comes back
#   (SIGUSR1: the time limit is near)    and `--resume auto` continues from
#                                        RUN_DIR/ckpt/latest
# Environment: ZSSEG (binary; default zsseg on PATH, else build/cpu/zsseg of
# this checkout), LAUNCHER (srun | mpirun; default srun when it offers PMIx),
# MAX_REQUEUES (default 20: stop requeueing a job that never gets further).

zs_log() { echo "[$(date '+%F %T')] slurm: $*"; }

zs_fail() { zs_log "error: $*" >&2; exit 1; }

zs_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# run.out_dir of CONFIG with the --set overrides among ARGS: where DONE appears
# when RUN_DIR is not given.
zs_config_run_dir() {
  local config=$1 sets=()
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --set) sets+=(--set "$2"); shift ;;
      --set=*) sets+=("$1") ;;
    esac
    shift
  done
  "$zs_bin" config -c "$config" "${sets[@]}" |
    awk -F'"' '/^run = \{/ { r = 1 } r && /^  out_dir = / { print $2; exit }'
}

zs_launcher_cmd() {
  local launcher=${LAUNCHER:-}
  if [ -z "$launcher" ]; then
    if srun --mpi=list 2>&1 | grep -q pmix; then launcher=srun; else launcher=mpirun; fi
  fi
  case $launcher in
    # srun does not inherit --cpus-per-task from sbatch since SLURM 22.05.
    srun) zs_cmd=(srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task="$OMP_NUM_THREADS") ;;
    # mpirun reads the allocation itself (nodes, tasks per node); --bind-to none
    # leaves each rank's OpenMP threads free to use its cores.
    mpirun) zs_cmd=(mpirun -np "$SLURM_NTASKS" --bind-to none -x OMP_NUM_THREADS -x OMP_WAIT_POLICY) ;;
    *) zs_fail "LAUNCHER='$launcher': use LAUNCHER=srun or LAUNCHER=mpirun" ;;
  esac
  zs_launcher=$launcher
}

# Forwarded as SIGUSR1 whatever arrived: both srun and mpirun pass SIGUSR1 on
# to every rank, while a SIGTERM to mpirun would kill the ranks outright. The
# first signal decides about the requeue: SIGTERM at the time limit, after a
# SIGUSR1 whose checkpoint took too long, still requeues.
zs_on_signal() {
  zs_log "received SIG$1: asking the ranks to checkpoint and stop"
  [ -n "$zs_stop" ] || zs_stop=$1
  [ -z "$zs_pid" ] || kill -USR1 "$zs_pid" 2>/dev/null || true
}

zs_train() {
  [ -n "${SLURM_JOB_ID:-}" ] || zs_fail "not inside a SLURM job: submit with sbatch"
  [ $# -ge 1 ] || zs_fail "usage: sbatch $(basename "$0") CONFIG [RUN_DIR] [--set KEY=VALUE]..."
  local config=$1 run_dir=""
  shift
  if [ $# -ge 1 ] && [ "${1#-}" = "$1" ]; then run_dir=$1; shift; fi
  [ -f "$config" ] || zs_fail "config '$config' not found (relative paths start at $PWD)"

  zs_bin=${ZSSEG:-$(command -v zsseg || echo "$zs_root/build/cpu/zsseg")}
  [ -x "$zs_bin" ] || zs_fail "zsseg binary '$zs_bin' not found: build it (make build) or set ZSSEG=/path/to/zsseg"
  if [ -z "$run_dir" ]; then
    run_dir=$(zs_config_run_dir "$config" "$@")
    [ -n "$run_dir" ] || zs_fail "cannot resolve run.out_dir of '$config': pass RUN_DIR after CONFIG"
  fi

  export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
  export OMP_WAIT_POLICY=PASSIVE
  zs_launcher_cmd
  zs_log "job $SLURM_JOB_ID restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NUM_NODES:-1} node(s):" \
    "$SLURM_NTASKS ranks x $OMP_NUM_THREADS threads via $zs_launcher, GPUs '${CUDA_VISIBLE_DEVICES:-none}', run dir $run_dir"

  zs_stop="" zs_pid=""
  trap 'zs_on_signal USR1' USR1
  trap 'zs_on_signal TERM' TERM
  trap 'zs_on_signal INT' INT
  "${zs_cmd[@]}" "$zs_bin" train -c "$config" --run-dir "$run_dir" "$@" &
  zs_pid=$!
  # A signal arriving before the launch is forwarded now.
  [ -z "$zs_stop" ] || kill -USR1 "$zs_pid" 2>/dev/null || true
  # A trapped signal interrupts `wait`; bash keeps the exit status, so the
  # last `wait` returns it whether or not the loop was interrupted.
  while kill -0 "$zs_pid" 2>/dev/null; do wait "$zs_pid" || true; done
  local rc=0
  wait "$zs_pid" || rc=$?

  if [ "$rc" -ne 0 ]; then
    zs_log "zsseg exited with status $rc: not requeueing (see the messages above)"
    exit "$rc"
  fi
  if [ -f "$run_dir/DONE" ]; then
    zs_log "training finished: $run_dir/DONE"
    exit 0
  fi
  # SLURM would even requeue a job scancel has just cancelled.
  if [ "$zs_stop" = TERM ]; then
    zs_log "stopped by SIGTERM (scancel, time limit or preemption): not requeueing;" \
      "submit the same command to continue from $run_dir/ckpt/latest"
    exit 0
  fi
  local restarts=${SLURM_RESTART_COUNT:-0} max=${MAX_REQUEUES:-20}
  [ "$restarts" -lt "$max" ] ||
    zs_fail "stopped again after $restarts restarts (MAX_REQUEUES=$max): not requeueing; resubmit to continue from $run_dir/ckpt/latest"
  zs_log "stopped at a checkpoint before the end: requeueing job $SLURM_JOB_ID (restart $((restarts + 1)))"
  scontrol requeue "$SLURM_JOB_ID" ||
    zs_fail "scontrol requeue failed (job submitted with --no-requeue?): resubmit the same command to resume from $run_dir/ckpt/latest"
  exit 0
}
