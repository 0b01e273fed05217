#!/usr/bin/env bash
# Same global batch, different world size: 20 step1 iterations, then a mixed
# stage of 20 step1 (E frozen) + 20 step2, global batch 6, on 1, 2 and 3
# ranks. Per-iteration losses (metrics.jsonl, log.every = 1) and the final
# parameters (model.h5) of 2 and 3 ranks must match 1 rank within 1e-4.
# usage: train_equiv.sh ZSSEG H5_COMPARE WORKDIR
set -euo pipefail
zsseg=$1 h5cmp=$2 work=$3
source "$(dirname "$0")/tiny_data.sh"
tiny_setup "$zsseg" "$work"
common=("${TINY_DATA[@]}"
        --set data.batch_size=6 --set schedule.step1_iters=20 --set schedule.mixed_iters=40
        --set schedule.mixed_interval=20 --set log.every=1 --set dist.check_every=10
        --set model.msc=true --set "model.msc_scales=[0.75]")
for np in 1 2 3; do
  mpirun --oversubscribe -np $np "$zsseg" train -c configs/tiny_test.cfg "${common[@]}" \
    --run-dir "$work/np$np" > "$work/np$np.log" 2>&1 || { cat "$work/np$np.log"; exit 1; }
done
rc=0
for np in 2 3; do
  echo "== 1 rank vs $np ranks"
  python3 "$src/tests/compare_losses.py" "$work/np1/metrics.jsonl" "$work/np$np/metrics.jsonl" 1e-4 || rc=1
  "$h5cmp" "$work/np1/model.h5" "$work/np$np/model.h5" 1e-4 || rc=1
done
exit $rc
