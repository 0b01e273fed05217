#!/usr/bin/env bash
# Data loader throughput (decode + augment): zsseg's loader (bench_loader.c)
# vs a PyTorch DataLoader with the CaGNet reference code's OpenCV transforms
# (bench_loader.py), same images, same transform values, same worker count:
# 200 COCO-sized (640x640) JPEG/PNG pairs from `zsseg synth`, warp 513, scale
# 0.5-1.5, crop 368, flip, batch 8; 1 warm-up + 3 timed epochs (600 images)
# per run, the training loop doing nothing. Per core = images per CPU-second
# of everything the loader runs (zsseg: its decoder threads and the caller,
# which decodes while it waits; PyTorch: the workers and the main process).
# Then a one-thread breakdown of each side (decode vs transform). Needs torch,
# numpy and OpenCV (`pip install opencv-python-headless`); not CI. ~1 min.
#
#   tests/bench/loader.sh
#
# BUILD_DIR (default build/cpu): where the C driver is built. DATA_DIR
# (default /tmp/zsseg-bench-data): the dataset, generated if it has no
# SYNTH_DONE (delete it to regenerate). WORKERS (default "0 1 2"): worker
# counts; 0 decodes in the calling thread (zsseg) / the main process (PyTorch),
# i.e. exactly one thread on both sides.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD_DIR:-build/cpu}
DATA=${DATA_DIR:-/tmp/zsseg-bench-data}
WORKERS=${WORKERS:-0 1 2}
export OMP_NUM_THREADS=1
WARP=513 CROP=368 SCALE_MIN=0.5 SCALE_MAX=1.5 BATCH=8 WARMUP=1 EPOCHS=3

[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DZSSEG_CUDA=OFF
cmake --build "$BUILD" --target zsseg bench_loader
BIN=$BUILD/tests/bench_loader
if [ ! -f "$DATA/SYNTH_DONE" ]; then
  "$BUILD/zsseg" synth -c configs/synthetic_cagnet.cfg -o "$DATA" --size 640 --images 200 \
    --set synth.test_images=8 2>&1 | grep -v warning
fi
C_ARGS=(--data "$DATA" --warmup $WARMUP --epochs $EPOCHS --set data.warp_size=$WARP
        --set data.crop_size=$CROP --set data.scale_range=$SCALE_MIN,$SCALE_MAX
        --set data.flip=true --set data.batch_size=$BATCH)
PY_ARGS=(--data "$DATA" --warmup $WARMUP --epochs $EPOCHS --warp $WARP --crop $CROP
         --scale $SCALE_MIN $SCALE_MAX --batch $BATCH)

load=$(cut -d' ' -f1 /proc/loadavg)
echo "$(getconf _NPROCESSORS_ONLN) cores, load average $load; JPEG $(file -b "$DATA/images/train2017/000000000000.jpg" | grep -o '[0-9]*x[0-9]*' | tail -1)"
awk -v l="$load" 'BEGIN { exit !(l > 0.5) }' &&
  echo "WARNING: the machine is busy (load $load); timings will be noisy"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for w in $WORKERS; do
  "$BIN" "${C_ARGS[@]}" --workers "$w" | grep -v "^training split" | tee -a "$out"
  python3 tests/bench/bench_loader.py "${PY_ARGS[@]}" --workers "$w" | tee -a "$out"
done
"$BIN" "${C_ARGS[@]}" --breakdown | grep -v "^training split" | tee -a "$out"
python3 tests/bench/bench_loader.py "${PY_ARGS[@]}" --breakdown | tee -a "$out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

awk '
function get(line, key,   f, nf, i, kv) {
  nf = split(line, f, " ")
  for (i = 3; i <= nf; i++) { split(f[i], kv, "="); if (kv[1] == key) return kv[2] }
  return 0
}
/^RESULT/ { w = get($0, "workers"); r[$2, w] = $0; if (!(w in seen)) { seen[w] = 1; ws[++n] = w } }
/^BREAKDOWN/ { b[$2] = $0 }
END {
  printf "\nsummary (images/s wall; cores busy = CPU-s / wall-s; per core = images per CPU-s):\n"
  printf "  %-8s %22s %22s   %s\n", "workers", "zsseg", "PyTorch DataLoader", "zsseg/PyTorch"
  printf "  %-8s %8s %5s %7s %8s %5s %7s   %8s %6s\n", "", "img/s", "cores", "/core",
         "img/s", "cores", "/core", "per core", "img/s"
  for (k = 1; k <= n; k++) {
    w = ws[k]; c = r["zsseg", w]; p = r["pytorch", w]
    ci = get(c, "images"); cw = get(c, "wall_s"); cc = get(c, "cpu_s")
    pi = get(p, "images"); pw = get(p, "wall_s"); pc = get(p, "cpu_s")
    printf "  %-8s %8.1f %5.2f %7.1f %8.1f %5.2f %7.1f   %7.2fx %5.2fx\n", w, ci / cw, cc / cw,
           ci / cc, pi / pw, pc / pw, pi / pc, (ci / cc) / (pi / pc), (ci / cw) / (pi / pw)
  }
  printf "\none-thread breakdown, ms per image:\n"
  printf "  zsseg:   JPEG read+decode %.2f, PNG %.2f, label check %.2f, transform %.2f, remap %.2f: %.2f\n",
         get(b["zsseg"], "jpeg_ms"), get(b["zsseg"], "png_ms"), get(b["zsseg"], "check_ms"),
         get(b["zsseg"], "transform_ms"), get(b["zsseg"], "remap_ms"), get(b["zsseg"], "total_ms")
  printf "  PyTorch: JPEG imread %.2f, astype(float32) %.2f, PNG %.2f, transform %.2f: %.2f\n",
         get(b["pytorch"], "jpeg_ms"), get(b["pytorch"], "to_float_ms"), get(b["pytorch"], "png_ms"),
         get(b["pytorch"], "transform_ms"), get(b["pytorch"], "total_ms")
}' "$out"
