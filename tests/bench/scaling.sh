#!/usr/bin/env bash
# Data-parallel scaling of `zsseg train` on the synthetic demo config: step1
# images/s with 1 rank x 1 thread and with 2 ranks x 1 thread, same global
# batch (8), images decoded on the training thread (data.workers = 0) so each
# rank is exactly one thread (zsseg also sizes OpenBLAS's pool to it), ITERS iterations (the first log window, ITERS/2, is warm-up; the
# second is timed). Prints the speedup and the share of the 2-rank run's wall
# time spent in the gradient allreduce (including waits for the slower rank).
# Goal (issue 5): speedup >= 1.8, allreduce share <= 5%. Run on an idle machine
# with at least 2 cores; not CI. ~2 min.
#
#   tests/bench/scaling.sh
#
# BUILD_DIR (default build/cpu); DATA_DIR (default /tmp/zsseg-bench-synth,
# generated if missing); ITERS (default 60); extra `--set` options in SETS.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD_DIR:-build/cpu}
DATA=${DATA_DIR:-/tmp/zsseg-bench-synth}
ITERS=${ITERS:-60}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CFG=configs/synthetic_cagnet.cfg

[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DZSSEG_CUDA=OFF
cmake --build "$BUILD" --target zsseg > /dev/null
[ -f "$DATA/SYNTH_DONE" ] || "$BUILD/zsseg" synth -c $CFG -o "$DATA" 2>&1 | grep -v warning
SETS_ALL=(--set "data.root=\"$DATA\"" --set "data.classes=\"$DATA/classes.tsv\""
          --set "data.seen=\"$DATA/seen.txt\"" --set "data.unseen=\"$DATA/unseen.txt\""
          --set schedule.step1_iters=$ITERS --set schedule.mixed_iters=0
          --set log.every=$((ITERS / 2)) --set eval.max_images=8 --set log.tensorboard=false
          --set run.threads=1 --set data.workers=0 ${SETS:-})

run() {  # run NP -> "img/s allreduce_percent"
  local dir=/tmp/zsseg-bench-scaling-np$1
  rm -rf "$dir"
  mpirun --oversubscribe -np "$1" "$BUILD/zsseg" train -c $CFG "${SETS_ALL[@]}" --run-dir "$dir" \
    > "$dir.log" 2>&1 || { tail "$dir.log"; exit 1; }
  local ips share
  ips=$(grep '"kind": *"step1"' "$dir/metrics.jsonl" | tail -1 | sed 's/.*"img\/s": *\([0-9.e+-]*\).*/\1/')
  share=$(sed -n 's/.*gradient allreduce [0-9.]* s (\([0-9.]*\)%).*/\1/p' "$dir.log")
  echo "$ips $share"
}
read -r ips1 _ < <(run 1)
read -r ips2 share2 < <(run 2)
python3 - "$ips1" "$ips2" "$share2" <<'PY'
import sys
i1, i2, share = map(float, sys.argv[1:])
s = i2 / i1
print(f"step1 images/s: 1 rank x 1 thread {i1:.1f}, 2 ranks x 1 thread {i2:.1f}")
print(f"speedup {s:.2f} (goal >= 1.8); allreduce share of the 2-rank run {share:.1f}% (goal <= 5%)")
PY
