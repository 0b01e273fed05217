#!/usr/bin/env bash
# Faults that must not lose work or end as "done" (issue 13 parts 3-5), on
# the tiny config, 2 ranks: step1 8 + mixed 8 (interval 2), a checkpoint
# every 2 iterations. A straight run is the reference.
#   non-finite: a loss made inf on rank 1 before iteration 8 and a NaN
#     gradient on rank 0 before iteration 11: every rank stops at once, exit
#     non-zero, "non-finite L_G ... at iteration 8", no DONE, no checkpoint of
#     the bad state, none pruned; --resume auto then finishes bitwise equal
#     to the straight run. loss.gan_weight=1e308: stopped at iteration 1.
#   model files: model.h5 stale and model_mixed.h5 missing in a finished run
#     are re-exported by a resume (bitwise equal); DONE written after them.
#   one run per directory: a second train on a running one is refused at
#     once naming the holder's pid and host; the first is untouched and
#     finishes; after a SIGKILL of the holder the lock is free again.
#   --resume auto on a directory with model.h5 but no checkpoint: the refusal
#     does not talk about --resume none.
# usage: train_faults.sh ZSSEG H5_COMPARE WORKDIR
set -euo pipefail
zsseg=$1 h5cmp=$2 work=$3
source "$(dirname "$0")/tiny_data.sh"
tiny_setup "$zsseg" "$work"
base=(-c configs/tiny_test.cfg "${TINY_DATA[@]}" --set data.batch_size=4
      --set schedule.step1_iters=8 --set schedule.mixed_iters=8 --set schedule.mixed_interval=2
      --set checkpoint.every=2 --set checkpoint.keep=2 --set log.every=1 --set eval.every=0)
train() {  # train RUN_DIR [args...]: exit status of mpirun, log in RUN_DIR.log (appended)
  local dir=$1; shift
  mpirun --oversubscribe -np 2 "$zsseg" train "${base[@]}" --run-dir "$dir" "$@" >> "$dir.log" 2>&1
}
same() { python3 tests/compare_losses.py "$1/metrics.jsonl" "$2/metrics.jsonl" 0 &&
         "$h5cmp" "$1/model.h5" "$2/model.h5" 0; }
fail() { echo "FAIL: $*"; exit 1; }
latest() { cat "$1/ckpt/latest"; }

train "$work/straight" || { cat "$work/straight.log"; fail "straight run"; }

nonfinite() {  # nonfinite NAME FAULT EXPECT_LINE LATEST
  local dir="$work/$1"
  if ZSSEG_FAULT_NONFINITE=$2 train "$dir"; then fail "$1: exit 0 after a non-finite value"; fi
  grep -q "$3" "$dir.log" || { cat "$dir.log"; fail "$1: no '$3' line"; }
  [ ! -f "$dir/DONE" ] || fail "$1: DONE written"
  [ "$(latest "$dir")" = "$4" ] || fail "$1: latest is $(latest "$dir"), want $4"
  local n; n=$(ls "$dir/ckpt" | grep -c '^iter_.*\.h5$')
  [ "$n" = 2 ] || fail "$1: $n checkpoints left, want 2 (none pruned by the bad state)"
  "$zsseg" ckpt verify "$dir/ckpt/$4" > /dev/null || fail "$1: $4 does not verify"
  train "$dir" || { cat "$dir.log"; fail "$1: resume failed"; }
  [ -f "$dir/DONE" ] || fail "$1: resumed run wrote no DONE"
  same "$work/straight" "$dir" || fail "$1: resumed run differs from the straight one"
  echo "== $1: stopped with '$3', resumed from $4, bitwise equal"
}
nonfinite loss 7:1:loss "non-finite L_G (inf) at iteration 8" iter_00000006.h5
nonfinite grad 10:0:grad "non-finite gradient norm (nan) at iteration 11" iter_00000010.h5

dir="$work/overflow"
if train "$dir" --set loss.gan_weight=1e308; then fail "gan_weight 1e308: exit 0"; fi
grep -q "non-finite .* at iteration 1:" "$dir.log" || { cat "$dir.log"; fail "overflow: no line"; }
[ ! -f "$dir/DONE" ] && [ -z "$(ls "$dir/ckpt" 2>/dev/null)" ] || fail "overflow: DONE or a checkpoint"
echo "== overflow: loss.gan_weight=1e308 stopped at iteration 1, nothing saved"

# model files re-exported by a resume of a finished run
dir="$work/export"; cp -r "$work/straight" "$dir"
cp "$dir/model_step1.h5" "$dir/model.h5"; rm "$dir/model_mixed.h5" "$dir/DONE"
train "$dir" || { cat "$dir.log"; fail "export: resume failed"; }
"$h5cmp" "$work/straight/model.h5" "$dir/model.h5" 0 > /dev/null || fail "export: model.h5 stale"
"$h5cmp" "$work/straight/model_mixed.h5" "$dir/model_mixed.h5" 0 > /dev/null ||
  fail "export: model_mixed.h5 not rebuilt"
[ -f "$dir/DONE" ] || fail "export: no DONE"
[ "$dir/DONE" -nt "$dir/model.h5" ] || [ "$(stat -c %Y "$dir/DONE")" = "$(stat -c %Y "$dir/model.h5")" ] ||
  fail "export: DONE older than model.h5"
echo "== export: stale model.h5 and missing model_mixed.h5 rebuilt by the resume"

# one run per directory
dir="$work/lock"
train "$dir" --set schedule.step1_iters=100000 --set checkpoint.every=0 &
first=$!
for _ in $(seq 200); do grep -q "^pid " "$dir/.lock" 2>/dev/null && break; sleep 0.1; done
grep -q "^pid " "$dir/.lock" || fail "lock: the first run holds no lock"
holder=$(awk '{print $2}' "$dir/.lock")
cfg_before=$(sha256sum "$dir/config.cfg" 2>/dev/null || true)
t0=$(date +%s)
if mpirun --oversubscribe -np 2 "$zsseg" train "${base[@]}" --run-dir "$dir" --set run.seed=2 \
     > "$work/second.log" 2>&1; then fail "lock: the second run started"; fi
(( $(date +%s) - t0 < 20 )) || fail "lock: the refusal took too long"
grep -q "in use by another zsseg train (pid $holder on host $(hostname)" "$work/second.log" ||
  { cat "$work/second.log"; fail "lock: the refusal does not name pid $holder"; }
[ "$(sha256sum "$dir/config.cfg" 2>/dev/null || true)" = "$cfg_before" ] || fail "lock: config.cfg touched"
kill -TERM "$holder"
wait "$first" || { cat "$dir.log"; fail "lock: the first run did not stop cleanly"; }
grep -q "stopped by a signal" "$dir.log" || fail "lock: first run not stopped by its signal"
long=(--set schedule.step1_iters=100000 --set checkpoint.every=0)
train "$dir" "${long[@]}" &
first=$!
for _ in $(seq 300); do
  holder2=$(awk '{print $2}' "$dir/.lock"); [ "$holder2" != "$holder" ] && break; sleep 0.1
done
[ "$holder2" != "$holder" ] || fail "lock: the resumed run took no lock"
kill -KILL "$holder2"
if wait "$first"; then fail "lock: a SIGKILLed run exited 0"; fi
train "$dir" "${long[@]}" &
first=$!
for _ in $(seq 300); do grep -q "^pid " "$dir/.lock" && [ "$(awk '{print $2}' "$dir/.lock")" != "$holder2" ] && break; sleep 0.1; done
[ "$(awk '{print $2}' "$dir/.lock")" != "$holder2" ] || fail "lock: not free after the holder was SIGKILLed"
kill -TERM "$(awk '{print $2}' "$dir/.lock")"
wait "$first" || fail "lock: the run after the SIGKILL did not stop cleanly"
echo "== lock: second run refused (pid $holder named), first untouched; free after SIGKILL"

# --resume auto with a model but no checkpoint: no talk of --resume none
dir="$work/nockpt"; mkdir -p "$dir"; cp "$work/straight/model.h5" "$dir/"
if train "$dir"; then fail "nockpt: started over a finished model"; fi
grep -q "no checkpoint in" "$dir.log" && ! grep -q "resume none" "$dir.log" ||
  { cat "$dir.log"; fail "nockpt: wrong refusal"; }
echo "train_faults: all checks passed"
