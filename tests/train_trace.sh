#!/usr/bin/env bash
# Coordinator under mpirun: step1 (4 iterations) then mixed (14, interval 3)
# on 2 ranks; each rank writes the records it followed (log.trace) and both
# must equal the hand-written sequence. Then `zsseg eval --ckpt` on the saved
# parameters must print the same summary as the end-of-training evaluation,
# and `zsseg predict` must write the segmentation, overlay and legend files.
# usage: train_trace.sh ZSSEG WORKDIR
set -euo pipefail
zsseg=$1 work=$2
src=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$work" && mkdir -p "$work"
cd "$src"
"$zsseg" synth -c configs/tiny_test.cfg -o "$work/data" > /dev/null
set_data=(--set "data.root=\"$work/data\"" --set "data.classes=\"$work/data/classes.tsv\""
          --set "data.seen=\"$work/data/seen.txt\"" --set "data.unseen=\"$work/data/unseen.txt\""
          --set "run.out_dir=\"$work/run\"")
mpirun --oversubscribe -np 2 "$zsseg" train -c configs/tiny_test.cfg "${set_data[@]}" \
  --set schedule.step1_iters=4 --set schedule.mixed_iters=14 --set schedule.mixed_interval=3 \
  --set log.trace=true > "$work/train.log" 2>&1 || { cat "$work/train.log"; exit 1; }
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
