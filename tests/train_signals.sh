#!/usr/bin/env bash
# Stopping a 2-rank run by a signal (issue 13): SIGINT, SIGTERM and SIGUSR1 to
# the launcher (slurm/zsseg-mpirun, the README's command line) and SIGTERM to
# one rank. Each must end with exit 0, "stopped by a signal" and a checkpoint
# of an iteration at least the one the signal arrived at (checkpoint.every is
# larger than the run: the only checkpoint is the stop's); the resumed run
# continues from that iteration to the end with per-iteration losses and
# final parameters BITWISE those of an uninterrupted run. Then two SIGINTs to
# the launcher stop at once (exit 130), and a plain `mpirun` given SIGTERM
# shows what the launcher script is for (exit != 0; reported, not required).
# usage: train_signals.sh ZSSEG H5_COMPARE WORKDIR
set -euo pipefail
zsseg=$1 h5cmp=$2 work=$3
source "$(dirname "$0")/tiny_data.sh"
tiny_setup "$zsseg" "$work"
launch=$src/slurm/zsseg-mpirun
base=(-c configs/tiny_test.cfg "${TINY_DATA[@]}" --set data.batch_size=6
      --set schedule.step1_iters=16 --set schedule.mixed_iters=32 --set schedule.mixed_interval=4
      --set checkpoint.every=100000 --set log.every=1 --set dist.check_every=4)
total=48
fail() { echo "FAIL: $*"; exit 1; }
# Job control: the launcher runs in its own process group with SIGINT not
# ignored (bash ignores SIGINT in a script's background jobs otherwise, and a
# signal ignored at a shell's start cannot be trapped).
set -m
start() {  # start DIR [args]: launcher in the background, pid in $pid
  "$launch" --oversubscribe -np 2 "$zsseg" train "${base[@]}" --run-dir "$1" "${@:2}" >> "$1.log" 2>&1 &
  pid=$!
}
records() { wc -l 2> /dev/null < "$1/metrics.jsonl" || echo 0; }
wait_records() {  # wait_records DIR N: until N iterations are logged
  for _ in $(seq 600); do [ "$(records "$1")" -ge "$2" ] && return 0; sleep 0.05; done
  cat "$1.log"; fail "$(basename "$1"): not $2 iterations within 30 s"
}
finish() {  # finish DIR: exit status of the launcher in $rc
  rc=0
  for _ in $(seq 1200); do kill -0 "$pid" 2> /dev/null || break; sleep 0.05; done
  wait "$pid" || rc=$?
}
ckpt_iter() { sed 's/iter_0*\([0-9][0-9]*\)\.h5/\1/' "$1/ckpt/latest"; }
same() {
  python3 tests/compare_losses.py "$1/metrics.jsonl" "$2/metrics.jsonl" 0 &&
    "$h5cmp" "$1/model.h5" "$2/model.h5" 0
}

"$launch" --oversubscribe -np 2 "$zsseg" train "${base[@]}" --run-dir "$work/straight" \
  > "$work/straight.log" 2>&1 || { cat "$work/straight.log"; fail "straight run"; }
[ -f "$work/straight/DONE" ] || fail "straight run wrote no DONE"

stop() {  # stop NAME SIG TARGET(launcher|rank)
  local name=$1 sig=$2 target=$3 dir="$work/$1" at it victim
  start "$dir"
  wait_records "$dir" 6
  victim=$pid
  if [ "$target" = rank ]; then  # rank 1 or 0: a child of mpirun, the launcher's child
    victim=$(pgrep -P "$(pgrep -P "$pid" | head -1)" | tail -1)
    [ -n "$victim" ] || fail "$name: no rank process found"
  fi
  at=$(records "$dir")
  kill -s "$sig" "$victim"
  finish "$dir"
  [ $rc -eq 0 ] || { cat "$dir.log"; fail "$name: exit $rc after SIG$sig to the $target"; }
  grep -q "stopped by a signal" "$dir.log" || { cat "$dir.log"; fail "$name: no 'stopped by a signal'"; }
  [ ! -f "$dir/DONE" ] || fail "$name: DONE written by a stopped run (signal too late: at $at)"
  [ -f "$dir/ckpt/latest" ] || { cat "$dir.log"; fail "$name: no checkpoint"; }
  it=$(ckpt_iter "$dir")
  [ "$it" -ge "$at" ] && [ "$it" -lt $total ] ||
    fail "$name: checkpoint of iteration $it, the signal came after $at iterations"
  "$launch" --oversubscribe -np 2 "$zsseg" train "${base[@]}" --run-dir "$dir" >> "$dir.log" 2>&1 ||
    { cat "$dir.log"; fail "$name: resume failed"; }
  grep -q "resumed from .*iter_$(printf %08d "$it").h5" "$dir.log" || { cat "$dir.log"; fail "$name: not resumed from $it"; }
  [ -f "$dir/DONE" ] || fail "$name: resumed run wrote no DONE"
  same "$work/straight" "$dir" || fail "$name: resumed run differs from the straight run"
  echo "== $name: SIG$sig to the $target after $at iterations: exit 0, checkpoint of iteration $it, resumed, bitwise equal"
}
stop int INT launcher
stop term TERM launcher
stop usr1 USR1 launcher
stop rankterm TERM rank

# Two SIGINTs: the second stops at once.
dir=$work/twice
start "$dir" --set schedule.step1_iters=100000
wait_records "$dir" 3
kill -INT $pid
for _ in $(seq 200); do grep -q "asking the ranks" "$dir.log" && break; sleep 0.01; done
kill -INT $pid
finish "$dir"
[ $rc -eq 130 ] || { cat "$dir.log"; fail "twice: exit $rc after two SIGINTs, expected 130"; }
echo "== twice: two SIGINTs to the launcher: exit 130"

# Plain mpirun (no launcher script), SIGTERM: Open MPI aborts the job.
dir=$work/plain
mpirun --oversubscribe -np 2 "$zsseg" train "${base[@]}" --run-dir "$dir" \
  --set schedule.step1_iters=100000 > "$dir.log" 2>&1 &
pid=$!
wait_records "$dir" 3
kill -TERM $pid
finish "$dir"
echo "== plain mpirun, SIGTERM: exit $rc (Open MPI's abort; the launcher script gives 0)"
echo "all signal checks passed"
