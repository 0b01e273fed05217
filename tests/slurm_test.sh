#!/usr/bin/env bash
# slurm/*.sbatch on a real one-node SLURM (tests/slurm/cluster.sh: munged,
# slurmctld, slurmd), 2 ranks each, one metrics record per iteration:
#   train.sbatch on the synthetic config with --time=1 --signal=B:USR1@25:
#   SLURM itself signals the batch shell 5 to 35 s into each run (see
#   slurm/README.md, "Test"), the ranks checkpoint, the job requeues itself
#   until training ends (Restarts >= 1, each run resuming from the
#   checkpoint of the one before, DONE) with the final parameters BITWISE
#   those of an uninterrupted run.
#   train.sbatch on the tiny config (150 + 10 iterations) via srun and via
#   LAUNCHER=mpirun, each stopped mid-run by
#   `scancel -b -s USR1` (what --signal=B:USR1@120 sends before the time
#   limit): the batch shell forwards it, the ranks checkpoint and exit 0, the
#   job requeues itself (Restarts=1), comes back, resumes from the checkpoint
#   and finishes (DONE). Its per-step losses and final parameters must equal
#   BITWISE those of an uninterrupted mpirun run of the same config.
#   train.sbatch cancelled by `scancel` mid-run: the ranks checkpoint, the job
#   stays CANCELLED (SLURM would let the script requeue it).
#   train_multinode.sbatch on the node's 2 fake GPUs (--gres=gpu:2): runs to
#   DONE, every rank seeing both GPUs.
# Exit 77 (skip), with the reason, when not root, slurm-wlm is not installed
# or the cluster does not come up; munge missing only means auth/none.
# usage: slurm_test.sh ZSSEG H5_COMPARE WORKDIR
set -euo pipefail
zsseg=$1 h5cmp=$2 work=$3
src=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: starting slurmctld and slurmd needs root"; exit 77; }
for c in slurmctld slurmd sbatch srun scontrol scancel squeue sinfo; do
  command -v "$c" > /dev/null || { echo "SKIP: $c not found (apt-get install slurm-wlm)"; exit 77; }
done
fail() { echo "FAIL: $*"; exit 1; }
t0=$SECONDS
say() { echo "[$((SECONDS - t0)) s] $*"; }

cluster=$src/tests/slurm/cluster.sh
# Daemons a killed earlier run left behind (ctest's TIMEOUT) hold the ports.
[ ! -d "$work/cluster" ] || "$cluster" stop "$work/cluster"
rm -rf "$work" && mkdir -p "$work"
cd "$src"
"$zsseg" synth -c configs/tiny_test.cfg -o "$work/data" > /dev/null 2>&1
synth=(--set synth.train_images=64 --set synth.test_images=8)
"$zsseg" synth -c configs/synthetic_cagnet.cfg "${synth[@]}" -o "$work/sdata" > /dev/null 2>&1
sdata=(--set "data.root=\"$work/sdata\"" --set "data.classes=\"$work/sdata/classes.tsv\""
       --set "data.seen=\"$work/sdata/seen.txt\"" --set "data.unseen=\"$work/sdata/unseen.txt\""
       "${synth[@]}" --set 'run.device="cpu"' --set run.threads=1 --set schedule.mixed_iters=0)
# The time-limit job trains for ~40 s when alone on this machine (at least
# 60 iterations): longer than its first run lasts before SLURM's signal
# (~28 s here, 35 s at most).
bench=$(mpirun --oversubscribe -np 2 "$zsseg" train -c configs/synthetic_cagnet.cfg "${sdata[@]}" \
          --set schedule.step1_iters=10 --run-dir "$work/bench" 2>&1 |
          grep -o 'training done: 10 iterations in [0-9.]* s' | cut -d' ' -f6) ||
  fail "the synthetic config does not train (run $zsseg train -c configs/synthetic_cagnet.cfg by hand)"
slow_iters=$(awk -v s="$bench" 'BEGIN { n = int(400 / s); print (n < 60 ? 60 : (n > 5000 ? 5000 : n)) }')
say "synthetic config: 10 iterations in $bench s alone, the time-limit job gets $slow_iters"

trap '"$cluster" stop "$work/cluster"' EXIT
# 6 CPUs: the time-limit job and the two requeue jobs run side by side.
"$cluster" start "$work/cluster" 6 ||
  { echo "SKIP: SLURM does not start on this machine (cluster.sh's reason above)"; exit 77; }
# sbatch passes this environment on to the jobs; the root check above makes
# the mpirun overrides safe to set here.
export SLURM_CONF=$work/cluster/slurm.conf ZSSEG=$zsseg
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
say "cluster up: $(sinfo -h -N -o '%N %t %c CPUs %G'), $(scontrol show config | awk '/^AuthType/ { print $3 }')"

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
  until [ "$(grep -cs '"kind": "step1"' "$work/$2/metrics.jsonl" || true)" -ge 30 ]; do
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
check_resumed() {  # check_resumed JOB NAME REF: finished bitwise equal to the run in REF,
  # every run but the last stopped at a checkpoint that the next one resumed from
  local out=$work/$2.out n p saved resumed
  n=$(job_field "$1" Restarts)
  [ "$(job_field "$1" ExitCode)" = 0:0 ] || fail "$2: ExitCode=$(job_field "$1" ExitCode)"
  for p in "stopped by a signal" "requeueing job $1 (restart" "resumed from $work/$2/ckpt/iter_"; do
    [ "$(grep -cF "$p" "$out")" = "$n" ] ||
      { cat "$out"; fail "$2: '$p' $(grep -cF "$p" "$out") times in the job's output, Restarts=$n"; }
  done
  saved=$(grep -o 'checkpoint of iteration [0-9]* written' "$out" | cut -d' ' -f4 | xargs)
  resumed=$(grep -o 'resumed from [^:]*: iteration [0-9]*' "$out" | sed 's/.* //' | xargs)
  [ "$saved" = "$resumed" ] ||
    { cat "$out"; fail "$2: checkpoints of iterations '$saved' but resumed at '$resumed'"; }
  { grep -qF "training finished" "$out" && [ -f "$work/$2/DONE" ]; } || { cat "$out"; fail "$2: no DONE"; }
  say "$2: Restarts=$n, stopped at and resumed from iterations $saved"
  python3 tests/compare_losses.py "$work/$3/metrics.jsonl" "$work/$2/metrics.jsonl" 0 ||
    fail "$2: losses differ from the uninterrupted run"
  "$h5cmp" "$work/$3/model.h5" "$work/$2/model.h5" 0 ||
    fail "$2: final parameters differ from the uninterrupted run"
}
check_requeued_once() {  # check_requeued_once JOB NAME: stopped by our SIGUSR1, requeued once, resumed
  local out=$work/$2.out
  [ "$(job_field "$1" Restarts)" = 1 ] || fail "$2: Restarts=$(job_field "$1" Restarts), expected 1"
  for p in "received SIGUSR1" "job $1 restart 1 on"; do
    grep -qF "$p" "$out" || { cat "$out"; fail "$2: the job's output lacks '$p'"; }
  done
  check_resumed "$1" "$2" ref
}
check_time_limit() {  # check_time_limit JOB NAME: SLURM's --signal stopped it at least once, no one else did
  local out=$work/$2.out n
  [ "$(job_field "$1" TimeLimit)" = 00:01:00 ] || fail "$2: TimeLimit=$(job_field "$1" TimeLimit)"
  n=$(job_field "$1" Restarts)
  [ "$n" -ge 1 ] || { cat "$out"; fail "$2: Restarts=0: no signal from SLURM during training"; }
  { [ "$(grep -cF "received SIGUSR1" "$out")" -ge "$n" ] && ! grep -qF "received SIGTERM" "$out"; } ||
    { cat "$out"; fail "$2: expected $n SIGUSR1 (--signal) and no SIGTERM (hard time limit)"; }
  check_resumed "$1" "$2" tref
}

# Each job gets --time=5 unless it says otherwise: a script that loops or
# hangs ends there, not at ctest's TIMEOUT.
submit() {  # submit NAME SCRIPT CONFIG [sbatch options] -- [train args]: prints the job id
  local name=$1 script=$2 config=$3 opts=()
  shift 3
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  sbatch --parsable --time=5 --job-name="$name" --output="$work/$name.out" "${opts[@]}" \
    "slurm/$script" "$config" "$work/$name" "$@"
}
reference() {  # reference NAME CONFIG [train args]: the uninterrupted run, 2 ranks
  mpirun --oversubscribe -np 2 "$zsseg" train -c "$2" "${@:3}" --run-dir "$work/$1" > "$work/$1.log" 2>&1 ||
    { cat "$work/$1.log"; fail "reference run $1"; }
  say "reference run $1 done"
}

# The time-limit job first: started with the cluster, it gets its first
# signal from SLURM's first time-limit check, ~28 s in. Its only checkpoints
# are those of the signals.
slow=("${sdata[@]}" --set schedule.step1_iters="$slow_iters" --set checkpoint.every=100000
      --set log.every=1)
jtime=$(LAUNCHER=srun submit timelimit train.sbatch configs/synthetic_cagnet.cfg \
          --time=1 --signal=B:USR1@25 -- "${slow[@]}")
# The two 2-rank jobs run beside it.
jsrun=$(LAUNCHER=srun submit srun train.sbatch configs/tiny_test.cfg -- "${long[@]}")
jmpi=$(LAUNCHER=mpirun submit mpirun train.sbatch configs/tiny_test.cfg -- "${long[@]}")
jcan=$(LAUNCHER=srun submit cancel train.sbatch configs/tiny_test.cfg -- "${data[@]}" \
         --set schedule.step1_iters=100000 --set log.every=1)
jmn=$(submit multinode train_multinode.sbatch configs/tiny_test.cfg --nodes=1 --ntasks-per-node=2 \
        --gres=gpu:2 --cpus-per-task=1 -- "${data[@]}" --set 'run.device="cpu"')
say "submitted jobs: timelimit $jtime, srun $jsrun, mpirun $jmpi, cancel $jcan, multinode $jmn"
stop_mid_run "$jsrun" srun
stop_mid_run "$jmpi" mpirun

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

# The references, while the stopped jobs wait to come back.
reference ref configs/tiny_test.cfg "${long[@]}"
wait_done "$jmn" multinode 120
[ -f "$work/multinode/DONE" ] || fail "multinode: no DONE"
grep -qF "2 ranks x 1 threads via srun, GPUs '0,1'" "$work/multinode.out" ||
  { cat "$work/multinode.out"; fail "multinode: ranks did not see GPUs 0,1"; }
say "multinode: finished (srun, GPUs 0,1)"
wait_done "$jsrun" srun 150
check_requeued_once "$jsrun" srun
wait_done "$jmpi" mpirun 150
check_requeued_once "$jmpi" mpirun

reference tref configs/synthetic_cagnet.cfg "${slow[@]}"
wait_done "$jtime" timelimit 180
check_time_limit "$jtime" timelimit
say "PASS"
