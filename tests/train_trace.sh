#!/usr/bin/env bash
# Coordinator under mpirun: step1 (4 iterations) then mixed (14, interval 3)
# on 2 ranks; each rank writes the records it followed (log.trace) and both
# must equal the hand-written sequence. Then `zsseg eval --ckpt` on the saved
# parameters must print the same summary as the end-of-training evaluation,
# and `zsseg predict` must write the segmentation, overlay and legend files.
# usage: train_trace.sh ZSSEG WORKDIR
set -euo pipefail
zsseg=$1 work=$2
source "$(dirname "$0")/tiny_data.sh"
tiny_setup "$zsseg" "$work"
set_data=("${TINY_DATA[@]}"
          --set "run.out_dir=\"$work/run\"")
mpirun --oversubscribe -np 2 "$zsseg" train -c configs/tiny_test.cfg "${set_data[@]}" \
  --set schedule.step1_iters=4 --set schedule.mixed_iters=14 --set schedule.mixed_interval=3 \
  --set log.trace=true --set log.tensorboard=true > "$work/train.log" 2>&1 || { cat "$work/train.log"; exit 1; }
{
  for i in 0 1 2 3; do echo "$i step1 step1"; done
  for k in 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do
    i=$((k + 3)); j=$(((k - 1) / 3 % 2))
    [ $j -eq 0 ] && echo "$i mixed step1" || echo "$i mixed step2"
  done
} > "$work/expected.txt"
for r in 0 1; do
  diff "$work/expected.txt" "$work/run/trace/rank_$r.txt" ||
    { echo "FAIL: rank $r followed a different sequence"; exit 1; }
done
echo "both ranks followed the expected 18-record sequence"

# metrics.jsonl and the TensorBoard file (read by an independent decoder) hold
# the same progress records and both evaluations (iterations 4 and 18)
ev=$(ls "$work/run/tb"/events.out.tfevents.*)
python3 tests/tb_read.py "$ev" > "$work/tb.txt" || { echo "FAIL: tb_read.py rejects $ev"; exit 1; }
for tag in L_D ce_step2 lr_d img/s eval/hiou eval/unseen_miou; do
  grep -qP "\t$tag\t" "$work/tb.txt" || { echo "FAIL: no $tag scalar in $ev"; exit 1; }
done
[ "$(grep -cP '\teval/hiou\t' "$work/tb.txt")" -eq 2 ] || { echo "FAIL: expected 2 evaluations"; exit 1; }
[ "$(grep -c '"eval/hiou"' "$work/run/metrics.jsonl")" -eq 2 ] ||
  { echo "FAIL: metrics.jsonl lacks the 2 evaluations"; exit 1; }
[ "$(grep -c '"kind": *"step2"' "$work/run/metrics.jsonl")" -ge 1 ] ||
  { echo "FAIL: metrics.jsonl lacks step2 records"; exit 1; }
echo "metrics.jsonl and $(basename "$ev") hold the progress records and 2 evaluations"

# a fresh run (--resume none) into the same directory is refused, the
# parameters untouched
sum=$(md5sum < "$work/run/model.h5")
if "$zsseg" train -c configs/tiny_test.cfg "${set_data[@]}" --resume none > "$work/again.log" 2>&1; then
  echo "FAIL: training into a finished run directory was accepted"; exit 1
fi
grep -q "already holds a run" "$work/again.log" &&
  [ "$(md5sum < "$work/run/model.h5")" = "$sum" ] ||
  { echo "FAIL: expected a refusal that keeps model.h5"; cat "$work/again.log"; exit 1; }
echo "a second train into the run directory is refused; model.h5 unchanged"

last=$(grep -E '^ *pixel acc' "$work/train.log" | tail -1 | sed 's/^ *//')
[ -n "$last" ] || { echo "FAIL: no evaluation summary in the training log"; cat "$work/train.log"; exit 1; }
mpirun --oversubscribe -np 2 "$zsseg" eval -c configs/tiny_test.cfg "${set_data[@]}" \
  --ckpt "$work/run/model.h5" > "$work/eval.log" 2>&1 || { cat "$work/eval.log"; exit 1; }
again=$(grep -E '^ *pixel acc' "$work/eval.log" | tail -1 | sed 's/^ *//')
[ "$last" = "$again" ] || { echo "FAIL: eval differs: '$last' vs '$again'"; exit 1; }
echo "eval --ckpt reproduces: $again"

img=$(ls "$work/data/images/val2017" | head -1)
"$zsseg" predict -c configs/tiny_test.cfg "${set_data[@]}" -o "$work/pred" \
  "$work/data/images/val2017/$img" > "$work/predict.log" 2>&1 || { cat "$work/predict.log"; exit 1; }
stem=${img%.*}
for f in "${stem}_seg.png" "${stem}_overlay.png" "${stem}_legend.txt"; do
  [ -s "$work/pred/$f" ] || { echo "FAIL: predict did not write $f"; ls "$work/pred"; exit 1; }
done
echo "predict wrote ${stem}_seg.png, ${stem}_overlay.png, ${stem}_legend.txt"
