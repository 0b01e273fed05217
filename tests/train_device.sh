#!/usr/bin/env bash
# run.device in the trainer, and the GPU against the CPU reference.
#   train_device.sh nobackend ZSSEG WORKDIR  CPU-only build: run.device = cuda refused
#                                            with the rebuild hint, before any training
#   train_device.sh refuse ZSSEG WORKDIR     CUDA build without a GPU: run.device = cuda stops
#                                            with the hint, auto falls back to the CPU
#                                            (exit 77 with a GPU)
#   train_device.sh equiv ZSSEG WORKDIR NP   CUDA build with NP GPUs: 20 iterations (10 step1,
#                                            then a mixed stage of 5 step1 + 5 step2), MSC and
#                                            the MMD content loss, CPU vs GPU losses within
#                                            1e-3, the stage-end evaluations (GPU inference)
#                                            within 0.01 (exit 77 with fewer than NP GPUs)
set -euo pipefail
mode=$1 zsseg=$2 work=$3 np=${4:-1}
gpus=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true)
source "$(dirname "$0")/tiny_data.sh"
tiny_setup "$zsseg" "$work"
common=("${TINY_DATA[@]}" --set data.batch_size=4 --set schedule.step1_iters=10
        --set schedule.mixed_iters=10 --set schedule.mixed_interval=5 --set log.every=1
        --set model.msc=true --set "model.msc_scales=[0.75]" --set 'loss.content="mmd"'
        --set run.tf32=false --set run.deterministic=true)

# expect_refusal LOG PATTERN...: the cuda run failed and its log has every pattern
expect_refusal() {
  local log=$1; shift
  if "$zsseg" train -c configs/tiny_test.cfg "${common[@]}" --set 'run.device="cuda"' \
      --run-dir "$work/cuda" > "$log" 2>&1; then
    echo "FAIL: run.device = cuda trained"; exit 1
  fi
  for p in "$@"; do
    grep -qF -- "$p" "$log" || { echo "FAIL: no '$p' in:"; cat "$log"; exit 1; }
  done
  ! grep -q 'step1' "$log" || { echo "FAIL: training started before the refusal"; exit 1; }
}

if [ "$mode" = nobackend ]; then
  expect_refusal "$work/cuda.log" "built without the CUDA backend" "HINT: rebuild with CUDA"
  echo "run.device = cuda refused with the rebuild hint"
  exit 0
fi

if [ "$mode" = refuse ]; then
  [ "$gpus" -eq 0 ] || { echo "a GPU is visible: the refusal case does not apply"; exit 77; }
  expect_refusal "$work/cuda.log" "no CUDA GPU is visible" "run.device = cpu"
  "$zsseg" train -c configs/tiny_test.cfg "${common[@]}" --set 'run.device="auto"' \
    --set schedule.step1_iters=2 --set schedule.mixed_iters=0 --run-dir "$work/auto" \
    > "$work/auto.log" 2>&1 || { cat "$work/auto.log"; exit 1; }
  grep -q 'device cpu' "$work/auto.log" || { echo "FAIL: auto did not say cpu"; cat "$work/auto.log"; exit 1; }
  echo "run.device = cuda refused with a hint; auto trained on the CPU"
  exit 0
fi

[ "$gpus" -ge "$np" ] || { echo "needs $np GPU(s), $gpus visible: skipped"; exit 77; }
for dev in cpu cuda; do
  mpirun --oversubscribe -np "$np" "$zsseg" train -c configs/tiny_test.cfg "${common[@]}" \
    --set "run.device=\"$dev\"" --run-dir "$work/$dev" > "$work/$dev.log" 2>&1 \
    || { cat "$work/$dev.log"; exit 1; }
done
grep -q 'device GPU' "$work/cuda.log" || { echo "FAIL: the cuda run did not use a GPU"; exit 1; }
python3 tests/compare_losses.py "$work/cpu/metrics.jsonl" "$work/cuda/metrics.jsonl" 1e-3
# the evaluations at the stage ends ran on the GPU (device inference): the
# same metrics up to a few argmax flips
python3 - "$work/cpu/metrics.jsonl" "$work/cuda/metrics.jsonl" <<'PY'
import json, sys
ev = [[json.loads(l) for l in open(p) if '"kind": "eval"' in l] for p in sys.argv[1:3]]
assert len(ev[0]) == len(ev[1]) > 0, "evaluation records differ in number"
for a, b in zip(*ev):
    for k in ("eval/pixel_acc", "eval/miou"):
        assert abs(a[k] - b[k]) <= 0.01, f"step {a['step']} {k}: cpu {a[k]} gpu {b[k]}"
print(f"{len(ev[0])} evaluations: GPU metrics within 0.01 of the CPU's")
PY
