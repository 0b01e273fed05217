#!/usr/bin/env bash
# Kill at every file-system commit point (issue 13). Tiny config, 2 ranks,
# step1 4 + mixed 8 (interval 2), a checkpoint every 2 iterations, keep 2: the
# run renames, fsyncs and unlinks checkpoints, ckpt/latest, model.h5,
# model_<stage>.h5, eval files, config.cfg and DONE, all on rank 0.
# A straight run under tests/fault/kill_shim.c (counting only) is the
# reference and lists the kill points: every rename/fsync/unlink of rank 0
# under the run directory. For each kill point, before and after the call
# (evenly sampled down to KILLPOINTS_MAX cases, default 40; 0 = all), rank 0
# gets SIGKILL there, then the same command with --resume auto, without the
# shim, must:
#   exit 0 ("resume"), write DONE ("done"), leave model.h5 bitwise equal to
#   the straight run's ("model.h5"), every model_<stage>.h5 of the straight
#   run present and bitwise equal ("model_<stage>.h5"), ckpt/latest pass
#   `zsseg ckpt verify` ("verify"), and the per-iteration losses equal
#   bitwise ("losses").
# Prints one line per failing case (op, index, when, the call, which checks)
# and "killpoints: N cases, R resumed bitwise, F failures"; exit 1 on any
# failure.
# usage: train_killpoints.sh ZSSEG H5_COMPARE KILL_SHIM WORKDIR
set -euo pipefail
zsseg=$1 h5cmp=$2 shim=$3 work=$4
for f in "$zsseg" "$h5cmp" "$shim"; do [ -f "$f" ] || { echo "FAIL: no $f"; exit 1; }; done
source "$(dirname "$0")/tiny_data.sh"
tiny_setup "$zsseg" "$work"
work=$(cd "$work" && pwd -P)  # the shim matches resolved paths
max=${KILLPOINTS_MAX:-40}
base=(-c configs/tiny_test.cfg "${TINY_DATA[@]}"
      --set schedule.step1_iters=4 --set schedule.mixed_iters=8 --set schedule.mixed_interval=2
      --set checkpoint.every=2 --set checkpoint.keep=2 --set log.every=1)
train() {  # train RUN_DIR [args...]: exit status of mpirun, log in RUN_DIR.log (appended)
  local dir=$1; shift
  mpirun --oversubscribe -np 2 "$zsseg" train "${base[@]}" --run-dir "$dir" "$@" \
    >> "$dir.log" 2>&1
}
fail() { echo "FAIL: $*"; exit 1; }
t_start=$SECONDS

ref="$work/straight"
LD_PRELOAD="$shim" ZSSEG_KILL_RANK=0 ZSSEG_KILL_PATH="$ref" ZSSEG_KILL_COUNT="$work/count" \
  ZSSEG_KILL_TRACE="$work/points" train "$ref" || { cat "$ref.log"; fail "straight run"; }
[ -f "$ref/DONE" ] || fail "straight run wrote no DONE"
[ -s "$work/count" ] || fail "the shim reported no count (not preloaded?)"
total=$(tail -n 1 "$work/count")
[ "$total" -gt 0 ] || fail "no kill points counted"
[ "$(wc -l < "$work/points")" -eq "$total" ] || fail "trace and count disagree"
stages=()
for f in "$ref"/model_*.h5; do [ -f "$f" ] && stages+=("$(basename "$f")"); done
[ ${#stages[@]} -gt 0 ] || fail "straight run wrote no model_<stage>.h5"
# kill point g: its op class and index among that op's calls, and the call
# (the run directory spelt RUN)
declare -a p_op p_idx p_call
declare -A n_op=([rename]=0 [fsync]=0 [unlink]=0)
while read -r g name _ paths; do
  case $name in
    rename | renameat) op=rename ;;
    fsync | fdatasync) op=fsync ;;
    unlink | unlinkat) op=unlink ;;
    *) fail "unknown call '$name' in the shim's trace" ;;
  esac
  n_op[$op]=$((n_op[$op] + 1))
  p_op[g]=$op p_idx[g]=${n_op[$op]} p_call[g]="$name ${paths//"$ref"/RUN}"
done < "$work/points"
echo "== straight run: $total kill points (${n_op[rename]} rename, ${n_op[fsync]} fsync," \
     "${n_op[unlink]} unlink) on rank 0; stage files: ${stages[*]}"

# cases: (point, when) in call order; sampled evenly, first and last kept
ncase_all=$((2 * total))
picks=()
if [ "$max" -gt 0 ] && [ "$ncase_all" -gt "$max" ]; then
  for ((i = 0; i < max; i++)); do picks+=($(((i * (ncase_all - 1) + (max - 1) / 2) / (max - 1)))); done
else
  for ((i = 0; i < ncase_all; i++)); do picks+=("$i"); done
fi
[ ${#picks[@]} -lt "$ncase_all" ] &&
  echo "== sampling ${#picks[@]} of $ncase_all cases (KILLPOINTS_MAX=$max; 0 runs all)"

n=0 ok=0 nfail=0 failures=()
for c in "${picks[@]}"; do
  g=$((c / 2 + 1)) when=before
  [ $((c % 2)) -eq 1 ] && when=after
  op=${p_op[g]} idx=${p_idx[g]}
  name="${op}_${idx}_$when" dir="$work/${op}_${idx}_$when"
  bad=()
  n=$((n + 1))
  if LD_PRELOAD="$shim" ZSSEG_KILL_RANK=0 ZSSEG_KILL_PATH="$dir" ZSSEG_KILL_OP="$op" \
     ZSSEG_KILL_AT="$idx" ZSSEG_KILL_WHEN="$when" ZSSEG_KILL_TRACE="$dir.points" train "$dir"; then
    bad+=("killed run exited 0")
  fi
  # the shim logs the call it kills at: it must be the straight run's point g
  killed=$(grep ' KILL$' "$dir.points" 2> /dev/null | head -n 1 || true)
  if [ -z "$killed" ]; then
    bad+=("no kill happened")
  else
    kname=$(echo "$killed" | awk '{print $2}')
    kpaths=$(echo "$killed" | cut -d' ' -f4- | sed 's/ KILL$//')
    kcall="$kname ${kpaths//"$dir"/RUN}"
    [ "$kcall" = "${p_call[g]}" ] || bad+=("killed at '$kcall', not at the straight run's call")
  fi
  if ! train "$dir" --resume auto; then
    bad+=("resume")
  else
    [ -f "$dir/DONE" ] || bad+=("done")
    "$h5cmp" "$ref/model.h5" "$dir/model.h5" 0 >> "$dir.cmp" 2>&1 || bad+=("model.h5")
    for s in "${stages[@]}"; do
      if [ ! -f "$dir/$s" ]; then
        bad+=("$s missing")
      else
        "$h5cmp" "$ref/$s" "$dir/$s" 0 >> "$dir.cmp" 2>&1 || bad+=("$s differs")
      fi
    done
    latest="$dir/ckpt/$(cat "$dir/ckpt/latest" 2> /dev/null || true)"
    out=$("$zsseg" ckpt verify "$latest" 2>&1) && [[ $out == *"ok ("*" datasets verified)"* ]] ||
      bad+=("verify")
    python3 tests/compare_losses.py "$ref/metrics.jsonl" "$dir/metrics.jsonl" 0 \
      >> "$dir.cmp" 2>&1 || bad+=("losses")
  fi
  if [ ${#bad[@]} -eq 0 ]; then
    ok=$((ok + 1))
    rm -rf "$dir" "$dir.log" "$dir.points" "$dir.cmp"
  else
    nfail=$((nfail + 1))
    msg=$(IFS=';'; echo "${bad[*]}")
    failures+=("$op $idx $when (point $g: ${p_call[g]}): ${msg//;/; }")
    echo "case FAIL: ${failures[-1]}"
  fi
done

for f in "${failures[@]}"; do echo "FAIL: $f"; done
echo "killpoints: $n cases, $ok resumed bitwise, $nfail failures ($((SECONDS - t_start)) s)"
[ "$nfail" -eq 0 ]
