#!/usr/bin/env bash
# Disk full (issue 13): one rank, a tiny run stopped by SIGTERM (a good
# checkpoint on disk), then resumed with too little room to write:
#   under `ulimit -f N` (SIGXFSZ ignored, so write() fails with EFBIG) for
#   several N: model.h5 (re-exported on resume) and the checkpoint save at
#   several points inside the HDF5 file;
#   on a small tmpfs (ENOSPC; only where mounting one is allowed): model.h5,
#   the checkpoint, model.h5 after a new checkpoint. (The metrics log is
#   not reached: a resume rewrites model.h5, 1 MiB, before any line.)
# Each case must exit 1 (never a crash: 139, 134), name the file and say
# "no space left" / "file too large"; the checkpoints there before must be
# byte-identical, model*.h5 hold the same parameters, every iter_*.h5 must pass `zsseg ckpt
# verify`, `latest` must name one of them, and `--resume auto` with the limit
# lifted must finish the run with the straight run's losses and parameters.
# usage: train_diskfull.sh ZSSEG H5_COMPARE WORKDIR
set -uo pipefail
zsseg=$1 h5cmp=$2 work=$3
source "$(dirname "$0")/tiny_data.sh"
tiny_setup "$zsseg" "$work"
base=(-c configs/tiny_test.cfg "${TINY_DATA[@]}" --set data.batch_size=6
      --set schedule.step1_iters=12 --set schedule.mixed_iters=12 --set schedule.mixed_interval=4
      --set checkpoint.every=4 --set checkpoint.keep=20 --set log.every=1)
cases=0 clean=0 crashes=0
summary() { echo "diskfull: $cases cases, $clean clean errors, $crashes crashes"; }
fail() { echo "FAIL: $*"; summary; exit 1; }
lg() { echo "$work/$(basename "$1")"; }  # lg RUN_DIR: where its logs go (never on the small fs)
train() {  # train RUN_DIR [args...]: one rank, log appended to $(lg RUN_DIR).log
  local dir=$1; shift
  mpirun --oversubscribe -np 1 "$zsseg" train "${base[@]}" --run-dir "$dir" "$@" \
    >> "$(lg "$dir").log" 2>&1
}
limited() {  # limited KIB RUN_DIR [args...]: train under ulimit -f KIB (set inside the rank:
  # mpirun resets SIGXFSZ and its own files must not meet the limit); btl self: no shared
  # memory segment file for the one rank
  local kib=$1 dir=$2; shift 2
  mpirun --oversubscribe -np 1 --mca btl self bash -c 'trap "" XFSZ; ulimit -f "$0"; exec "$@"' \
    "$kib" "$zsseg" train "${base[@]}" --run-dir "$dir" "$@" > "$(lg "$dir").fail.log" 2>&1
}
sums() { (cd "$1" && find . -name '*.h5' ! -name '*.tmp' -print0 | sort -z | xargs -0 md5sum); }

train "$work/straight" || { cat "$work/straight.log"; fail "straight run"; }
[ -f "$work/straight/DONE" ] || fail "straight run wrote no DONE"

# check NAME DIR RC WANT_FILE: the failed run's outcome, then resume without the limit
check() {
  local name=$1 dir=$2 rc=$3 want=$4 log; log=$(lg "$2")
  cases=$((cases + 1))
  local err; err=$(grep -m1 'error at' "$log.fail.log")
  echo "== $name: exit $rc: ${err:-no error line}"
  if [ "$rc" -gt 128 ] || grep -q 'Signal: \|signal [0-9]' "$log.fail.log"; then
    crashes=$((crashes + 1)); cat "$log.fail.log"; fail "$name: crashed (exit $rc)"
  fi
  [ "$rc" = 1 ] || { cat "$log.fail.log"; fail "$name: exit $rc, not 1"; }
  grep -qi 'no space left on device' <<< "$err" || fail "$name: no 'no space left' in: $err"
  [[ $err == *"writing '$dir/"$want"'"* ]] || fail "$name: the message does not name $dir/$want: $err"
  # every file that was there before is unchanged (a half file never renamed into place)
  local line file
  while read -r line; do
    file=${line#*  }
    [ -f "$dir/$file" ] || fail "$name: $file disappeared"
    if [[ $file == ./model*.h5 ]]; then  # rewritten by the resume: same parameters
      "$h5cmp" "$log.keep/$file" "$dir/$file" 0 > /dev/null || fail "$name: $file changed"
    else
      [ "$(cd "$dir" && md5sum "$file")" = "$line" ] || fail "$name: $file changed"
    fi
  done < "$log.before"
  local f
  for f in "$dir"/ckpt/iter_*.h5; do
    "$zsseg" ckpt verify "$f" > /dev/null 2>&1 || fail "$name: $f does not verify"
  done
  [ -f "$dir/ckpt/$(cat "$dir/ckpt/latest")" ] || fail "$name: latest names no checkpoint"
  [ ! -f "$dir/DONE" ] || fail "$name: DONE after the failure"
  train "$dir" --resume auto || { tail -20 "$log.log"; fail "$name: resume without the limit"; }
  [ -f "$dir/DONE" ] || fail "$name: the resumed run wrote no DONE"
  python3 - "$dir/metrics.jsonl" <<'PY' || fail "$name: metrics.jsonl has a broken line"
import json, sys
for n, line in enumerate(open(sys.argv[1]), 1):
    try:
        json.loads(line)
    except ValueError:
        sys.exit(f"line {n}: {line[:80]!r}")
PY
  python3 tests/compare_losses.py "$work/straight/metrics.jsonl" "$dir/metrics.jsonl" 0 > /dev/null &&
    "$h5cmp" "$work/straight/model.h5" "$dir/model.h5" 0 > /dev/null ||
    fail "$name: the resumed run differs from the straight run"
  clean=$((clean + 1))
}
# start NAME STOP_AT: a run stopped by SIGTERM before iteration STOP_AT
start() {  # (in $mnt when it is set)
  local dir="${mnt:-$work}/$1"
  ZSSEG_FAULT_AT="$2:0:15" train "$dir" || { cat "$(lg "$dir").log"; fail "$1: SIGTERM run"; }
  [ -f "$dir/ckpt/latest" ] || fail "$1: no checkpoint after the SIGTERM run"
  sums "$dir" > "$(lg "$dir").before"
  mkdir -p "$(lg "$dir").keep" && cp "$dir"/model*.h5 "$(lg "$dir").keep/"
}

# ulimit -f: KiB limit, stop iteration, the file that must meet the limit.
# A resume first rewrites the parameter files (model.h5: 1 MiB) and config.cfg
# (9 KiB), then checkpoints (2 MiB each) from the next multiple of 4.
ulimit_case() {
  local name=$1 kib=$2 at=$3 want=$4 dir="$work/$1"
  start "$name" "$at"
  limited "$kib" "$dir" --resume auto
  local rc=$?
  cat "$(lg "$dir").fail.log" >> "$(lg "$dir").log"
  check "$name (ulimit -f $kib)" "$dir" "$rc" "$want"
}
ulimit_case resume4 4 6 "*.tmp"  # whichever file the resume writes first
for kib in 16 512; do ulimit_case "model$kib" "$kib" 6 model.h5.tmp; done
for kib in 1100 1536 2040; do ulimit_case "ckpt$kib" "$kib" 6 "ckpt/iter_*.h5.tmp"; done

# tmpfs (ENOSPC): room after the stop for: less than model.h5 (its re-export
# fails); model.h5 but not a checkpoint; a checkpoint but not model.h5 after it
mnt=''
tmpfs="$work/mnt"
mkdir -p "$tmpfs"
if mount -t tmpfs -o size=64m tmpfs "$tmpfs" 2>/dev/null; then
  mnt=$tmpfs
  trap 'umount "$mnt" 2>/dev/null' EXIT
  for c in "tmodel 700 6 model.h5.tmp" "tckpt 1500 6 ckpt/iter_*.h5.tmp" \
           "tmodel_after_ckpt 2600 6 model.h5.tmp"; do
    set -- $c
    name=$1 room=$(( $2 * 1024 )) at=$3 want=$4 dir="$mnt/$1" log="$work/$1"
    start "$name" "$at"
    used=$(df -B1 --output=used "$mnt" | tail -1)
    mount -o remount,size=$(( (used + room + 4095) / 4096 * 4096 )) "$mnt" || fail "remount"
    mpirun --oversubscribe -np 1 "$zsseg" train "${base[@]}" --run-dir "$dir" \
      --resume auto > "$log.fail.log" 2>&1
    rc=$?
    cat "$log.fail.log" >> "$log.log"
    mount -o remount,size=64m "$mnt"
    check "$name (tmpfs, $2 KiB free)" "$dir" "$rc" "$want"
  done
else
  echo "== tmpfs: cannot mount one here (not root?): the ENOSPC cases are skipped"
fi
summary
[ "$clean" = "$cases" ] || exit 1
