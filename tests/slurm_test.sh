#!/usr/bin/env bash
# slurm/*.sbatch on a real one-node SLURM (tests/slurm/cluster.sh), 2 ranks of
# the tiny config, 150 + 10 iterations, one metrics record per iteration:
#   train.sbatch via srun and via LAUNCHER=mpirun, each stopped mid-run by
#   `scancel -b -s USR1` (what --signal=B:USR1@120 sends before the time
#   limit): the batch shell forwards it, the ranks checkpoint and exit 0, the
#   job requeues itself (Restarts=1), comes back, resumes from the checkpoint
#   and finishes (DONE). Its per-step losses and final parameters must equal
#   BITWISE those of an uninterrupted mpirun run of the same config.
#   train.sbatch cancelled by `scancel` mid-run: the ranks checkpoint, the job
#   stays CANCELLED (SLURM would let the script requeue it).
#   train_multinode.sbatch on the node's 2 fake GPUs (--gres=gpu:2): runs to
#   DONE, every rank seeing both GPUs.
# Exit 77 (skip) only when not root or slurm-wlm is not installed.
# usage: slurm_test.sh ZSSEG H5_COMPARE WORKDIR
set -euo pipefail
zsseg=$1 h5cmp=$2 work=$3
src=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: starting slurmctld and slurmd needs root"; exit 77; }
for c in slurmctld slurmd sbatch scontrol; do
  command -v "$c" > /dev/null || { echo "SKIP: $c not found (apt-get install slurm-wlm)"; exit 77; }
done
fail() { echo "FAIL: $*"; exit 1; }
t0=$SECONDS
say() { echo "[$((SECONDS - t0)) s] $*"; }

rm -rf "$work" && mkdir -p "$work"
cluster=$src/tests/slurm/cluster.sh
trap '"$cluster" stop "$work/cluster"' EXIT
"$cluster" start "$work/cluster"
# sbatch passes this environment on to the jobs; the root check above makes
# the mpirun overrides safe to set here.
export SLURM_CONF=$work/cluster/slurm.conf ZSSEG=$zsseg
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
say "cluster up: $(sinfo -h -N -o '%N %t %c CPUs %G')"

cd "$src"
"$zsseg" synth -c configs/tiny_test.cfg -o "$work/data" > /dev/null 2>&1
data=(--set "data.root=\"$work/data\"" --set "data.classes=\"$work/data/classes.tsv\""
      --set "data.seen=\"$work/data/seen.txt\"" --set "data.unseen=\"$work/data/unseen.txt\"")
# log.every=1: a record is one iteration's losses, not a window's mean that a
# stop cuts short.
long=("${data[@]}" --set schedule.step1_iters=150 --set checkpoint.every=100 --set log.every=1)

job_field() {  # job_field JOB KEY: KEY=VALUE of `scontrol show job`
  scontrol show job -o "$1" | grep -o " $2=[^ ]*" | cut -d= -f2
}
wait_done() {  # wait_done JOB NAME SECONDS: until the job leaves the queue for good
  local state="" deadline=$((SECONDS + $3))
  while [ $SECONDS -lt $deadline ]; do
    state=$(job_field "$1" JobState)
    case $state in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;; esac
    sleep 0.5
  done
  [ "$state" = COMPLETED ] || { cat "$work/$2.out"; fail "$2: job $1 ends in state '$state' after $3 s"; }
}
wait_training() {  # wait_training JOB NAME: until 30 iterations are logged
  local deadline=$((SECONDS + 60))
  until [ "$(grep -cs '"kind": "step1"' "$work/$2/metrics.jsonl")" -ge 30 ]; do
    case $(job_field "$1" JobState) in PENDING | RUNNING) ;; *) cat "$work/$2.out"; fail "$2: job $1 ended before training" ;; esac
    [ $SECONDS -lt $deadline ] || { cat "$work/$2.out"; fail "$2: not 30 iterations within 60 s"; }
    sleep 0.1
  done
}
stop_mid_run() {  # stop_mid_run JOB NAME: SIGUSR1 to the batch shell after 30 iterations
  wait_training "$1" "$2"
  scancel -b -s USR1 "$1"
  say "$2: SIGUSR1 sent to the batch shell of job $1"
}
check_requeued() {  # check_requeued JOB NAME: stopped, requeued once, resumed, finished, bitwise equal
  local out=$work/$2.out
  [ "$(job_field "$1" Restarts)" = 1 ] || fail "$2: Restarts=$(job_field "$1" Restarts), expected 1"
  [ "$(job_field "$1" ExitCode)" = 0:0 ] || fail "$2: ExitCode=$(job_field "$1" ExitCode)"
  for p in "received SIGUSR1" "stopped by a signal" "requeueing job $1 (restart 1)" \
           "job $1 restart 1 on" "resumed from $work/$2/ckpt/iter_" "training finished"; do
    grep -qF "$p" "$out" || { cat "$out"; fail "$2: the job's output lacks '$p'"; }
  done
  [ -f "$work/$2/DONE" ] || fail "$2: no DONE"
  say "$2: $(grep -o 'resumed from [^:]*' "$out")"
  python3 tests/compare_losses.py "$work/ref/metrics.jsonl" "$work/$2/metrics.jsonl" 0 ||
    fail "$2: losses differ from the uninterrupted run"
  "$h5cmp" "$work/ref/model.h5" "$work/$2/model.h5" 0 ||
    fail "$2: final parameters differ from the uninterrupted run"
}

# Each job gets --time=5: a script that loops or hangs ends there, not at ctest's TIMEOUT.
submit() {  # submit NAME SCRIPT [sbatch options] -- [train args]: prints the job id
  local name=$1 script=$2 opts=()
  shift 2
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  sbatch --parsable --time=5 --job-name="$name" --output="$work/$name.out" "${opts[@]}" \
    "slurm/$script" configs/tiny_test.cfg "$work/$name" "$@"
}
# The node offers 4 CPUs: the two 2-rank jobs run side by side.
jsrun=$(LAUNCHER=srun submit srun train.sbatch -- "${long[@]}")
jmpi=$(LAUNCHER=mpirun submit mpirun train.sbatch -- "${long[@]}")
jcan=$(LAUNCHER=srun submit cancel train.sbatch -- "${data[@]}" --set schedule.step1_iters=100000 \
         --set log.every=1)
jmn=$(submit multinode train_multinode.sbatch --nodes=1 --ntasks-per-node=2 --gres=gpu:2 \
        --cpus-per-task=1 -- "${data[@]}" --set 'run.device="cpu"')
say "submitted jobs: srun $jsrun, mpirun $jmpi, cancel $jcan, multinode $jmn"
stop_mid_run "$jsrun" srun
stop_mid_run "$jmpi" mpirun

# The reference, while the stopped jobs wait to come back.
mpirun --oversubscribe -np 2 "$zsseg" train -c configs/tiny_test.cfg "${long[@]}" \
  --run-dir "$work/ref" > "$work/ref.log" 2>&1 || { cat "$work/ref.log"; fail "reference run"; }
say "reference run done"

wait_done "$jmn" multinode 120
[ -f "$work/multinode/DONE" ] || fail "multinode: no DONE"
grep -qF "2 ranks x 1 threads via srun, GPUs '0,1'" "$work/multinode.out" ||
  { cat "$work/multinode.out"; fail "multinode: ranks did not see GPUs 0,1"; }
say "multinode: finished (srun, GPUs 0,1)"

wait_training "$jcan" cancel
scancel "$jcan"
deadline=$((SECONDS + 60))
until grep -qF "not requeueing" "$work/cancel.out"; do
  [ $SECONDS -lt $deadline ] || { cat "$work/cancel.out"; fail "cancel: no 'not requeueing' within 60 s"; }
  sleep 0.2
done
for _ in $(seq 100); do [ "$(job_field "$jcan" JobState)" = COMPLETING ] || break; sleep 0.2; done
state="$(job_field "$jcan" JobState) Restarts=$(job_field "$jcan" Restarts)"
[ "$state" = "CANCELLED Restarts=0" ] || { cat "$work/cancel.out"; fail "cancel: job $jcan is $state"; }
grep -qF "checkpoint of iteration" "$work/cancel.out" || { cat "$work/cancel.out"; fail "cancel: no checkpoint"; }
say "cancel: $state, $(grep -o 'checkpoint of iteration [0-9]*' "$work/cancel.out")"
wait_done "$jsrun" srun 150
check_requeued "$jsrun" srun
wait_done "$jmpi" mpirun 150
check_requeued "$jmpi" mpirun
say "PASS"
