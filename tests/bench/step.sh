#!/usr/bin/env bash
# One CaGNet step1 iteration (forward, three backward passes, three optimizer
# updates) of the published setting at batch 1, crop 321, MSC on: zsseg
# (bench_step.c) vs the PyTorch reference (bench_step.py), each in its own
# process with 2 threads; 1 warm-up + 5 timed runs; median s/iter, ratio and
# peak RSS. PyTorch runs twice: the reference as it is (numpy Philox draws,
# frozen BN as four saved elementwise ops), and as the original CaGNet code
# would run it (torch's RNG, one F.batch_norm per BN). Needs torch, numpy
# (not CI). Takes ~10 min on 2 cores.
#
#   tests/bench/step.sh [--size N] [--warmup N] [--iters N]   # passed to both drivers
#
# BUILD_DIR (default build/cpu) is where the C driver is built. Threads:
# OMP_NUM_THREADS (default 2) for both; OpenBLAS gets the same count.
# OMP_WAIT_POLICY defaults to PASSIVE (as ctest runs): with libgomp's default
# spinning, idle OpenMP workers compete with OpenBLAS's own threads for the
# cores (see README, "Benchmark").
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD_DIR:-build/cpu}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OPENBLAS_NUM_THREADS=$OMP_NUM_THREADS
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DZSSEG_CUDA=OFF
cmake --build "$BUILD" --target bench_step
BIN=$BUILD/tests/bench_step
CFG=$BUILD/bench_step.cfg
"$BIN" --print-config > "$CFG"  # the resolved config, so both sides run the same values

load=$(cut -d' ' -f1 /proc/loadavg)
echo "threads $OMP_NUM_THREADS, OMP_WAIT_POLICY $OMP_WAIT_POLICY, $(nproc) cores, load average $load"
awk -v l="$load" 'BEGIN { exit !(l > 0.5) }' &&
  echo "WARNING: the machine is busy (load $load); timings will be noisy"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$BIN" "$@" | tee -a "$out"
python3 tests/bench/bench_step.py --config "$CFG" "$@" | tee -a "$out"
python3 tests/bench/bench_step.py --config "$CFG" --draws torch --bn fused "$@" | tee -a "$out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

awk '/^RESULT/ { for (i = 3; i <= NF; i++) { split($i, kv, "="); v[$2 "." kv[1]] = kv[2] } }
function mib(key) { return v[key ".maxrss_kb"] / 1024 }
function row(name, key) {
  printf "  %-30s %7.3f %7.3f %7.3f   %6.0f %6.0f", name, v[key ".median_s"], v[key ".min_s"],
         v[key ".cpu_s"], mib(key), (v[key ".maxrss_kb"] - v[key ".start_kb"]) / 1024
  if (key != "zsseg")
    printf "   %.2f  %.2f", c / v[key ".median_s"], mib("zsseg") / mib(key)
  printf "\n"
}
END {
  c = v["zsseg.median_s"]
  printf "\nsummary (s/iter; peak RSS = ru_maxrss in MiB, and its part above the RSS at start:\n"
  printf "PyTorch starts at ~0.5 GiB after import, zsseg at ~12 MiB)\n"
  printf "  %-30s %7s %7s %7s   %6s %6s   %s\n", "", "median", "min", "CPU", "peak", "above",
         "zsseg/this: time, peak"
  row("zsseg", "zsseg")
  row("PyTorch reference", "pytorch_philox_reference")
  row("PyTorch, torch RNG + fused BN", "pytorch_torch_fused")
  printf "zsseg GEMM time %.3f s/iter; the reference spends %.3f s/iter (median) in its numpy draws\n",
         v["zsseg.gemm_s"], v["pytorch_philox_reference.draws_s"]
}' "$out"
