# Tests that drive the zsseg binary: usage, exit codes, config errors as a user
# sees them, every shipped config, the `zsseg config` round trip and README drift.
# Included from tests/CMakeLists.txt; label "cli".

# bash -c SCRIPT bash WANT_RC PATTERN... -- COMMAND ARGS...
# Runs COMMAND, prints its output, and fails unless it exits with WANT_RC and
# its output (stdout and stderr) contains every PATTERN as a fixed string.
set(ZSSEG_CLI_EXPECT [=[
want_rc=$1
shift
patterns=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]
do
  patterns+=("$1")
  shift
done
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -ne "$want_rc" ]
then
  echo "FAIL: exit code $rc, expected $want_rc"
  exit 1
fi
for p in "${patterns[@]}"
do
  if ! printf '%s\n' "$out" | grep -qF -- "$p"
  then
    echo "FAIL: output lacks: $p"
    exit 1
  fi
done
]=])

# zsseg_cli_test(NAME WANT_RC PATTERNS pattern... ARGS arg...)
function(zsseg_cli_test name want_rc)
  cmake_parse_arguments(T "" "" "PATTERNS;ARGS" ${ARGN})
  add_test(NAME cli_${name}
           COMMAND bash -c "${ZSSEG_CLI_EXPECT}" bash ${want_rc} ${T_PATTERNS} --
                   $<TARGET_FILE:zsseg> ${T_ARGS}
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(cli_${name} PROPERTIES LABELS cli TIMEOUT 60
                       ENVIRONMENT "${ZSSEG_TEST_ENV}")
endfunction()

# ---------------------------------------------------------------- usage and exit codes
zsseg_cli_test(help 0 PATTERNS "Usage: zsseg <command>" "train" "config" ARGS --help)
zsseg_cli_test(version 0 PATTERNS "zsseg ${PROJECT_VERSION}" ARGS --version)
zsseg_cli_test(no_command 2 PATTERNS "Usage: zsseg <command>")
zsseg_cli_test(unknown_command 2 PATTERNS "unknown command 'frobnicate'" "Usage: zsseg <command>"
               ARGS frobnicate)
zsseg_cli_test(unknown_option 2 PATTERNS "zsseg train: unknown option '--bogus'"
               ARGS train --bogus)
zsseg_cli_test(missing_value 2 PATTERNS "option --config needs a value" ARGS config -c)
foreach(cmd train eval predict extract embed synth ckpt config bench)
  zsseg_cli_test(${cmd}_help 0 PATTERNS "Usage: zsseg ${cmd}" "--config FILE" "--set KEY=VALUE"
                 ARGS ${cmd} --help)
endforeach()
zsseg_cli_test(train_help_options 0 PATTERNS "--run-dir DIR" ARGS train --help)

# ---------------------------------------------------------------- extract
# A tiny run (synth, 2 step1 iterations), then the features store from 2
# ranks: the test split to -o FILE, the training split capped at 5 rows per
# class into the default RUN_DIR/features_train.h5 (6 seen classes: 30 rows),
# each listed back by `ckpt info` (and h5dump; h5diff: the 2-rank file equals
# a 1-rank extraction); a missing checkpoint and option errors.
set(ZSSEG_CLI_EXTRACT [=[
zsseg=$1 mpiexec=$2 work=$3
fail() { echo "FAIL: $*"; exit 1; }
expect() {  # expect OUTPUT PATTERN...: every pattern as a fixed string
  local out=$1; shift
  for p in "$@"; do printf '%s\n' "$out" | grep -qF -- "$p" || fail "output lacks: $p"; done
}
rm -rf "$work" && mkdir -p "$work" || exit 1
"$zsseg" synth -c configs/tiny_test.cfg -o "$work/data" > "$work/synth.log" 2>&1 || fail "synth"
set_data=(-c configs/tiny_test.cfg --set "data.root=\"$work/data\""
          --set "data.classes=\"$work/data/classes.tsv\"" --set "data.seen=\"$work/data/seen.txt\""
          --set "data.unseen=\"$work/data/unseen.txt\"" --set "run.out_dir=\"$work/run\"")
"$zsseg" train "${set_data[@]}" --set 'schedule.stages=["step1"]' --set schedule.step1_iters=2 \
  > "$work/train.log" 2>&1 || { cat "$work/train.log"; fail "train"; }
out=$("$mpiexec" --oversubscribe -np 2 "$zsseg" extract "${set_data[@]}" --split test \
      -o "$work/test.h5" 2>&1) || { printf '%s\n' "$out"; fail "extract --split test"; }
printf '%s\n' "$out"
expect "$out" "parameters from $work/run/model.h5" "from 8 test images" "wrote $work/test.h5 ("
[ -s "$work/test.h5" ] && [ ! -e "$work/test.h5.tmp" ] || fail "no $work/test.h5, or its .tmp left"
rows=$(printf '%s\n' "$out" | sed -n 's/^extract: \([0-9]*\) rows (D = 16, .*/\1/p')
[ -n "$rows" ] && [ "$rows" -gt 0 ] || fail "no row count in the log"
expect "$("$zsseg" ckpt info "$work/test.h5")" "/features" "float32  ($rows, 16)" "/latent" \
  "uint8    ($rows)" "int32    ($rows)"
# read back by HDF5's own tools: shapes, and the same content as a 1-rank extraction
expect "$(h5dump -H "$work/test.h5")" "DATASET \"features\"" "( $rows, 16 )" "DATASET \"image_index\""
"$mpiexec" --oversubscribe -np 1 "$zsseg" extract "${set_data[@]}" --split test \
  -o "$work/test1.h5" > "$work/extract1.log" 2>&1 || fail "1-rank extract"
h5diff "$work/test.h5" "$work/test1.h5" || fail "2-rank and 1-rank features files differ (h5diff)"
out=$("$mpiexec" --oversubscribe -np 2 "$zsseg" extract "${set_data[@]}" --max-per-class 5 2>&1) ||
  { printf '%s\n' "$out"; fail "extract --max-per-class 5"; }
printf '%s\n' "$out"
expect "$out" "extract: 30 rows (D = 16, 6 of 8 classes, subsampled) from 16 training images" \
  "wrote $work/run/features_train.h5 ("
expect "$("$zsseg" ckpt info "$work/run/features_train.h5")" "float32  (30, 16)" "uint8    (30)"
out=$("$zsseg" extract "${set_data[@]}" --ckpt "$work/none.h5" 2>&1) && fail "a missing --ckpt was accepted"
expect "$out" "cannot read weights file '$work/none.h5'" "HINT:"
echo "extract ok"
]=])
add_test(NAME cli_extract
         COMMAND bash -c "${ZSSEG_CLI_EXTRACT}" bash $<TARGET_FILE:zsseg> ${MPIEXEC_EXECUTABLE}
                 ${CMAKE_CURRENT_BINARY_DIR}/extract_cli
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(cli_extract PROPERTIES LABELS "cli;mpi" TIMEOUT 120
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")
zsseg_cli_test(extract_bad_split 2 PATTERNS "zsseg extract: --split val: expected train or test"
               ARGS extract --split val)
zsseg_cli_test(extract_bad_cap 2
               PATTERNS "zsseg extract: --max-per-class 0: expected a positive integer"
               ARGS extract --max-per-class 0)
zsseg_cli_test(extract_help_options 0 PATTERNS "--ckpt PATH" "--split train|test" "--out FILE"
                                               "--max-per-class N"
               ARGS extract --help)
zsseg_cli_test(train_bad_config 2
               PATTERNS "bad_unknown_key.cfg:4: unknown key 'data.crop_siz' (did you mean 'data.crop_size'?)"
               ARGS train -c tests/configs/bad_unknown_key.cfg)
zsseg_cli_test(train_bad_set 2
               PATTERNS "--set data.batch_size=abc: got \"abc\"" "expected int in [1, 65536]"
               ARGS train -c configs/tiny_test.cfg --set data.batch_size=abc)

# ---------------------------------------------------------------- config errors
zsseg_cli_test(config_bad_unknown_key 2
               PATTERNS "tests/configs/bad_unknown_key.cfg:4: unknown key 'data.crop_siz'"
                        "did you mean 'data.crop_size'?"
               ARGS config -c tests/configs/bad_unknown_key.cfg)
zsseg_cli_test(config_bad_type 2
               PATTERNS "bad_type.cfg:3: data.crop_size: got float 368.5" "expected int in [8, 8192]"
               ARGS config -c tests/configs/bad_type.cfg)
zsseg_cli_test(config_bad_range 2
               PATTERNS "bad_range.cfg:3: data.batch_size: 0 is out of range"
                        "expected int in [1, 65536]"
               ARGS config -c tests/configs/bad_range.cfg)
zsseg_cli_test(config_bad_choice 2
               PATTERNS "bad_choice.cfg:3: model.backbone:" "is not a valid choice"
                        "expected one of resnet101, resnet50, tiny"
               ARGS config -c tests/configs/bad_choice.cfg)
zsseg_cli_test(config_bad_list 2
               PATTERNS "bad_list.cfg:3: data.mean: got 2 elements" "expected list of 3 floats"
               ARGS config -c tests/configs/bad_list.cfg)
zsseg_cli_test(config_bad_syntax 2 PATTERNS "bad_syntax.cfg:4: syntax error"
               ARGS config -c tests/configs/bad_syntax.cfg)
zsseg_cli_test(config_missing_file 2 PATTERNS "cannot read config file 'no/such.cfg'"
               ARGS config -c no/such.cfg)
zsseg_cli_test(config_set_unknown 2
               PATTERNS "--set data.crop_siz=3: unknown key 'data.crop_siz' (did you mean 'data.crop_size'?)"
               ARGS config --set data.crop_siz=3)
zsseg_cli_test(config_set_source 0 PATTERNS "crop_size = 300" "# --set"
               ARGS config -c configs/tiny_test.cfg --set data.crop_size=300)
zsseg_cli_test(config_reference 0
               PATTERNS "| `data.crop_size` | int | `368` | [8, 8192] |" "### `optim`"
               ARGS config --reference)

# ---------------------------------------------------------------- shipped configs
# Each loads cleanly, reports its own lines as sources, and its resolved text
# (with a --set on top) loads back to the same values.
set(ZSSEG_CLI_ROUNDTRIP [=[
zsseg=$1
cfg=$2
out=$3
"$zsseg" config -c "$cfg" --set optim.lr=1e-7 --set run.out_dir=runs/roundtrip > "$out.1" || exit 1
"$zsseg" config -c "$out.1" > "$out.2" || exit 1
sed 's/ *#.*$//' "$out.1" > "$out.1.values"
sed 's/ *#.*$//' "$out.2" > "$out.2.values"
if ! diff -u "$out.1.values" "$out.2.values"
then
  echo "FAIL: zsseg config output does not load back to the same values"
  exit 1
fi
if ! grep -q "# --set" "$out.1" || ! grep -q "^  lr = 1e-07" "$out.2.values"
then
  echo "FAIL: the --set value or its source is missing"
  exit 1
fi
echo "round trip of $cfg ok"
]=])
file(GLOB ZSSEG_SHIPPED_CONFIGS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/configs/*.cfg)
foreach(cfg ${ZSSEG_SHIPPED_CONFIGS})
  get_filename_component(cfg_name ${cfg} NAME_WE)
  zsseg_cli_test(config_${cfg_name} 0 PATTERNS "${cfg_name}.cfg:" ARGS config -c ${cfg})
  add_test(NAME cli_config_roundtrip_${cfg_name}
           COMMAND bash -c "${ZSSEG_CLI_ROUNDTRIP}" bash $<TARGET_FILE:zsseg> ${cfg}
                   ${CMAKE_CURRENT_BINARY_DIR}/roundtrip_${cfg_name}.cfg)
  set_tests_properties(cli_config_roundtrip_${cfg_name} PROPERTIES LABELS cli TIMEOUT 60
                       ENVIRONMENT "${ZSSEG_TEST_ENV}")
endforeach()

# ---------------------------------------------------------------- README drift
add_test(NAME cli_readme_reference
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/check_readme_reference.sh $<TARGET_FILE:zsseg>
                 ${CMAKE_SOURCE_DIR}/README.md)
set_tests_properties(cli_readme_reference PROPERTIES LABELS cli TIMEOUT 60
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")

# ---------------------------------------------------------------- ckpt info
# test_weights_h5 PATH writes its small 5-tensor model to PATH.
add_test(NAME cli_ckpt_info_make_file
         COMMAND test_weights_h5 ${CMAKE_CURRENT_BINARY_DIR}/ckpt_info_small.h5)
set_tests_properties(cli_ckpt_info_make_file PROPERTIES LABELS cli TIMEOUT 60
                     FIXTURES_SETUP ckpt_info_file ENVIRONMENT "${ZSSEG_TEST_ENV}")
zsseg_cli_test(ckpt_info 0
               PATTERNS "/params/backbone/layer1/conv1/conv/weight" "float32  (4, 3, 3, 3)"
                        "/params/backbone/layer1/conv1/bn/running_var" "/params/dc/gan/bias"
                        "5 datasets, 137 elements, 0.0 MB"
               ARGS ckpt info ${CMAKE_CURRENT_BINARY_DIR}/ckpt_info_small.h5)
set_tests_properties(cli_ckpt_info PROPERTIES FIXTURES_REQUIRED ckpt_info_file)
zsseg_cli_test(ckpt_info_missing 1 PATTERNS "cannot read weights file 'no/such.h5'" "HINT:"
               ARGS ckpt info no/such.h5)
zsseg_cli_test(ckpt_info_not_hdf5 1
               PATTERNS "'configs/tiny_test.cfg' is not an HDF5 file" "convert_weights.py"
               ARGS ckpt info configs/tiny_test.cfg)
zsseg_cli_test(ckpt_bad_subcommand 2 PATTERNS "zsseg ckpt: expected 'info PATH' or 'verify PATH'"
               ARGS ckpt show x.h5)
zsseg_cli_test(ckpt_missing_path 2 PATTERNS "zsseg ckpt: expected 'info PATH' or 'verify PATH'"
               ARGS ckpt info)
zsseg_cli_test(ckpt_verify_missing 1 PATTERNS "zsseg ckpt verify:" "no/such.h5"
               ARGS ckpt verify no/such.h5)
zsseg_cli_test(ckpt_verify_not_hdf5 1 PATTERNS "zsseg ckpt verify:" "configs/tiny_test.cfg"
               ARGS ckpt verify configs/tiny_test.cfg)
# test_checkpoint DIR writes the tiny model's checkpoint of iteration 7 to
# DIR/ckpt/iter_00000007.h5 and a copy with one parameter bit flipped to DIR/flipped.h5.
set(ZSSEG_CKPT_DIR ${CMAKE_CURRENT_BINARY_DIR}/cli_ckpt_run)
add_test(NAME cli_ckpt_make_checkpoint COMMAND test_checkpoint ${ZSSEG_CKPT_DIR})
set_tests_properties(cli_ckpt_make_checkpoint PROPERTIES LABELS cli TIMEOUT 60
                     FIXTURES_SETUP ckpt_checkpoint_file ENVIRONMENT "${ZSSEG_TEST_ENV}")
zsseg_cli_test(ckpt_verify_ok 0
               PATTERNS "${ZSSEG_CKPT_DIR}/ckpt/iter_00000007.h5: ok (" " datasets verified)"
               ARGS ckpt verify ${ZSSEG_CKPT_DIR}/ckpt/iter_00000007.h5)
zsseg_cli_test(ckpt_verify_flipped_bit 1
               PATTERNS "zsseg ckpt verify: '${ZSSEG_CKPT_DIR}/flipped.h5': dataset /params/dc/"
                        "fails its CRC-32C check" "the file is corrupt"
               ARGS ckpt verify ${ZSSEG_CKPT_DIR}/flipped.h5)
zsseg_cli_test(ckpt_info_checkpoint 0
               PATTERNS "checkpoint ${ZSSEG_CKPT_DIR}/ckpt/iter_00000007.h5"
                        "/state: iter 7 stage 1 iter_in_stage 3" "seed 17375808098319191535"
                        "best_metric 0.4321" "/meta: format_version 2" "world_size 3"
                        "CRC-32C checksums" "/optim/e: kind sgd step 5" "/optim/d: kind adam step 7"
                        "/config " "/optim/g/v "
               ARGS ckpt info ${ZSSEG_CKPT_DIR}/ckpt/iter_00000007.h5)
set_tests_properties(cli_ckpt_verify_ok cli_ckpt_verify_flipped_bit cli_ckpt_info_checkpoint
                     PROPERTIES FIXTURES_REQUIRED ckpt_checkpoint_file)

# ---------------------------------------------------------------- convert_weights.py
# The deeplab-pytorch -> zsseg name mapping (standard library only; skipped without python3).
add_test(NAME cli_convert_weights_mapping
         COMMAND bash -c "command -v python3 >/dev/null || exit 77; python3 \"$0\" --self-test"
                 ${CMAKE_SOURCE_DIR}/datasets/convert_weights.py)
set_tests_properties(cli_convert_weights_mapping PROPERTIES LABELS cli TIMEOUT 60
                     SKIP_RETURN_CODE 77)

# ---------------------------------------------------------------- embed
# The shipped COCO-stuff vectors (defaults of data.classes and data.word_vectors):
# 182 x 600, listed back by `ckpt info`.
zsseg_cli_test(embed_cocostuff 0
               PATTERNS "datasets/cocostuff/fasttext.vec: 300-d, 182/182 classes (182 whole name"
                        "datasets/cocostuff/word2vec.vec: 300-d, 182/182 classes"
                        "wrote ${CMAKE_CURRENT_BINARY_DIR}/embed_cocostuff.h5"
                        "(182, 600) float32, rows L2-normalised"
               ARGS embed -o ${CMAKE_CURRENT_BINARY_DIR}/embed_cocostuff.h5)
set_tests_properties(cli_embed_cocostuff PROPERTIES FIXTURES_SETUP embed_cocostuff_file)
zsseg_cli_test(embed_ckpt_info 0 PATTERNS "/embeddings" "float32  (182, 600)" "/names"
               ARGS ckpt info ${CMAKE_CURRENT_BINARY_DIR}/embed_cocostuff.h5)
set_tests_properties(cli_embed_ckpt_info PROPERTIES FIXTURES_REQUIRED embed_cocostuff_file)
zsseg_cli_test(embed_voc12_to_config_path 0
               PATTERNS "datasets/voc12/word2vec.vec: 300-d, 21/21 classes"
                        "wrote ${CMAKE_CURRENT_BINARY_DIR}/embed_voc12.h5" "(21, 600) float32"
               ARGS embed --set data.classes=datasets/voc12/classes.tsv
                    --set data.word_vectors=datasets/voc12/fasttext.vec,datasets/voc12/word2vec.vec
                    --set data.embedding=${CMAKE_CURRENT_BINARY_DIR}/embed_voc12.h5)
# Context classes from the VOC vectors: every class that cannot be embedded, per file.
zsseg_cli_test(embed_missing_classes 1
               PATTERNS "class 0 'unlabel': not in datasets/voc12/fasttext.vec"
                        "class 21 'sky': not in datasets/voc12/word2vec.vec"
                        "class 33 'ceiling': not in datasets/voc12/word2vec.vec"
                        "14 of 34 classes cannot be embedded" "HINT:"
               ARGS embed -o ${CMAKE_CURRENT_BINARY_DIR}/embed_never.h5
                    --set data.classes=datasets/context/classes.tsv
                    --set data.word_vectors=datasets/voc12/fasttext.vec,datasets/voc12/word2vec.vec)
zsseg_cli_test(embed_no_output 2
               PATTERNS "zsseg embed: no output file: give -o FILE or set data.embedding"
               ARGS embed)
zsseg_cli_test(embed_bad_class_list 1 PATTERNS "datasets/cocostuff/seen.txt:1: bad class line"
               ARGS embed -o ${CMAKE_CURRENT_BINARY_DIR}/embed_never.h5
                    --set data.classes=datasets/cocostuff/seen.txt)
zsseg_cli_test(embed_missing_vectors 1 PATTERNS "cannot open file 'no/such.vec'"
               ARGS embed -o ${CMAKE_CURRENT_BINARY_DIR}/embed_never.h5
                    --set data.word_vectors=no/such.vec)

# ---------------------------------------------------------------- synth
# The tiny dataset into the build tree: layout and counts, then the overwrite
# rules on the same directory, the command-line sizes, and option errors.
set(ZSSEG_SYNTH_DIR ${CMAKE_CURRENT_BINARY_DIR}/synth_cli)
set(ZSSEG_CLI_SYNTH_LAYOUT [=[
zsseg=$1
dir=$2
rm -rf "$dir"
"$zsseg" synth -c configs/tiny_test.cfg -o "$dir" || exit 1
for f in classes.tsv seen.txt unseen.txt train_ids.txt test_ids.txt embedding.h5 SYNTH_DONE
do
  [ -s "$dir/$f" ] || { echo "FAIL: missing $dir/$f"; exit 1; }
done
n() { ls "$1" | wc -l; }
[ "$(n "$dir/images/train2017")" -eq 16 ] && [ "$(n "$dir/annotations/train2017")" -eq 16 ] &&
[ "$(n "$dir/images/val2017")" -eq 8 ] && [ "$(n "$dir/annotations/val2017")" -eq 8 ] ||
  { echo "FAIL: expected 16 + 8 image/label pairs"; exit 1; }
[ "$(wc -l < "$dir/classes.tsv")" -eq 8 ] && [ "$(wc -l < "$dir/unseen.txt")" -eq 2 ] ||
  { echo "FAIL: expected 6 + 2 classes"; exit 1; }
grep -qx "seed 1" "$dir/SYNTH_DONE" || { echo "FAIL: run.seed 1 not used"; exit 1; }
echo "synth layout ok"
]=])
add_test(NAME cli_synth_layout
         COMMAND bash -c "${ZSSEG_CLI_SYNTH_LAYOUT}" bash $<TARGET_FILE:zsseg> ${ZSSEG_SYNTH_DIR}
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(cli_synth_layout PROPERTIES LABELS cli TIMEOUT 60 FIXTURES_SETUP synth_dir
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")
zsseg_cli_test(synth_refuses_existing 1 PATTERNS "exists and is not empty" "HINT: pass --force"
               ARGS synth -c configs/tiny_test.cfg -o ${ZSSEG_SYNTH_DIR})
zsseg_cli_test(synth_force 0
               PATTERNS "6 seen + 2 unseen classes, 5 train + 8 test scenes of 24x24"
               ARGS synth -c configs/tiny_test.cfg -o ${ZSSEG_SYNTH_DIR} --force --seed 3
                    --images 5 --size 24 --quality 90)
set_tests_properties(cli_synth_refuses_existing PROPERTIES FIXTURES_REQUIRED synth_dir)
set_tests_properties(cli_synth_force PROPERTIES FIXTURES_REQUIRED synth_dir
                     DEPENDS cli_synth_refuses_existing)
# a directory that zsseg synth did not write survives even --force
set(ZSSEG_CLI_SYNTH_FOREIGN [=[
zsseg=$1
dir=$2
rm -rf "$dir"
mkdir -p "$dir" && echo keep > "$dir/notes.txt" || exit 1
out=$("$zsseg" synth -c configs/tiny_test.cfg -o "$dir" --force 2>&1)
rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 1 ] || { echo "FAIL: exit code $rc, expected 1"; exit 1; }
printf '%s\n' "$out" | grep -qF "holds no SYNTH_DONE marker" || { echo "FAIL: no refusal message"; exit 1; }
[ "$(cat "$dir/notes.txt")" = keep ] || { echo "FAIL: the directory was changed"; exit 1; }
ls -d "$dir".* 2>/dev/null && { echo "FAIL: temporary directories left"; exit 1; }
echo "foreign directory kept"
]=])
add_test(NAME cli_synth_refuses_foreign
         COMMAND bash -c "${ZSSEG_CLI_SYNTH_FOREIGN}" bash $<TARGET_FILE:zsseg>
                 ${CMAKE_CURRENT_BINARY_DIR}/synth_foreign
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(cli_synth_refuses_foreign PROPERTIES LABELS cli TIMEOUT 60
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")
zsseg_cli_test(synth_bad_size 2 PATTERNS "zsseg synth: --size 8: expected an integer in [16, 4096]"
               ARGS synth -c configs/tiny_test.cfg -o ${ZSSEG_SYNTH_DIR}_bad --size 8)
zsseg_cli_test(synth_help_options 0
               PATTERNS "--out DIR" "--seed S" "--images N" "--size P" "--quality Q" "--from DIR" "--force"
               ARGS synth --help)

# ---------------------------------------------------------------- bench
# zsseg bench on the tiny config (COCO-stuff class lists: K = 182), batch 4
# over --gpus 4: the counted lines must be flops_print of flops_cagnet for a
# 1 x 3 x 32 x 32 batch (test_flops CFG K B H W prints it), and the times the
# formulas below recomputed from the printed counts: GEMM = FLOPs / (peak *
# efficiency), element-wise = bytes / HBM bandwidth, allreduce = bytes / algbw
# with algbw = busbw * n / (2(n - 1)), scaling t / (t + t_ar) and
# t / max(t, t_ar). Then 2 ranks: the measured allreduce and the formula.
set(ZSSEG_CLI_BENCH [=[
zsseg=$1 test_flops=$2 mpiexec=$3
fail() { echo "FAIL: $*"; exit 1; }
cls=(--set 'data.classes="datasets/cocostuff/classes.tsv"'
     --set 'data.seen="datasets/cocostuff/seen.txt"' --set 'data.unseen="datasets/cocostuff/unseen.txt"')
K=$(grep -c . datasets/cocostuff/classes.tsv)
out=$("$zsseg" bench -c configs/tiny_test.cfg "${cls[@]}" --set data.batch_size=4 --iters 2 --gpus 4 \
      --peak-tflops 0.001 \
      --efficiency 0.5 --hbm-gbs 2 --busbw-gbs 0.5 2>&1) || { printf '%s\n' "$out"; fail "zsseg bench"; }
printf '%s\n' "$out"
want=$("$test_flops" configs/tiny_test.cfg "$K" 1 32 32) || fail "test_flops $K 1 32 32"
[ "$(printf '%s\n' "$out" | grep -E '^(flops|bytes) ')" = "$want" ] ||
  fail "the counted lines are not flops_cagnet's:"$'\n'"$want"
printf '%s\n' "$out" | grep -qE '^measured step1 [0-9.e+-]+ s/iter = [0-9.e+-]+ GFLOP/s' ||
  fail "no measured step1 line"
printf '%s\n' "$out" | awk '
  function close_to(got, want, what) {
    if (got == "" || (got - want) ^ 2 > (1e-5 * want + 1e-4) ^ 2) {
      printf "FAIL: %s: printed %s, formula %.9g\n", what, got, want; bad = 1
    }
    n_checked++
  }
  $1 == "flops" && $2 == "step1.total" { F = $3 }
  $1 == "flops" && $2 == "step2.total" { F2 = $3 }
  $1 == "bytes" { M = $3 }
  $1 == "grad" { G = $4 }
  /^allreduce on 4 GPUs/ { ar = $(NF - 1) }
  /^time  step1 at 50%/ { gemm50 = $9; mem50 = $13; t50 = $(NF - 1) }
  /^time  step1 at 100%/ { gemm100 = $9; t100 = $(NF - 1) }
  /^time  step2 at 50%/ { s2 = $(NF - 1) }
  /^scaling on 4 GPUs, step1 at 50%/ { no50 = $(NF - 3); sub(/,/, "", no50); full50 = $NF }
  END {
    t_mem = M / 2e9; t_ar = G / (0.5e9 * 4 / (2 * (4 - 1)))
    t_1 = F / 1e9 + t_mem; t_h = F / 0.5e9 + t_mem
    close_to(gemm100, F / 1e9 * 1e3, "GEMM ms at 100% of 0.001 TFLOP/s")
    close_to(t100, t_1 * 1e3, "step1 ms at 100%")
    close_to(gemm50, F / 0.5e9 * 1e3, "GEMM ms at 50%")
    close_to(mem50, t_mem * 1e3, "element-wise ms at 2 GB/s")
    close_to(t50, t_h * 1e3, "step1 ms at 50%")
    close_to(s2, F2 / 0.5e9 * 1e3, "step2 ms at 50%")
    close_to(ar, t_ar * 1e3, "allreduce ms on 4 GPUs at busbw 0.5 GB/s")
    close_to(no50, t_h / (t_h + t_ar), "scaling without overlap")
    close_to(full50, t_h / (t_h > t_ar ? t_h : t_ar), "scaling with full overlap")
    if (F == "" || M == "" || G == "" || n_checked != 9) { print "FAIL: unparsed output"; bad = 1 }
    exit bad
  }' || fail "the on-paper arithmetic"
out=$("$mpiexec" --oversubscribe -np 2 "$zsseg" bench -c configs/tiny_test.cfg "${cls[@]}" --iters 1 \
      --busbw-gbs 0.5 2>&1) || { printf '%s\n' "$out"; fail "zsseg bench on 2 ranks"; }
printf '%s\n' "$out"
ar=$(printf '%s\n' "$out" | sed -n 's/^allreduce on 2 GPUs at busbw 0.5 GB\/s (algbw 0.5 GB\/s) = \(.*\) ms$/\1/p')
[ -n "$ar" ] || fail "no on-paper allreduce line"
printf '%s\n' "$out" | grep -qE "^measured allreduce on 2 ranks: [0-9.e+-]+ ms for .*the formula at busbw 0.5 GB/s: $ar ms$" ||
  fail "no measured allreduce line with the formula's $ar ms"
echo "bench ok"
]=])
add_test(NAME cli_bench
         COMMAND bash -c "${ZSSEG_CLI_BENCH}" bash $<TARGET_FILE:zsseg> $<TARGET_FILE:test_flops>
                 ${MPIEXEC_EXECUTABLE}
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(cli_bench PROPERTIES LABELS "cli;mpi" TIMEOUT 120
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")
zsseg_cli_test(bench_bad_gpus 1 PATTERNS "data.batch_size 2 (the global batch) does not split over 3 GPUs"
               "HINT:" ARGS bench -c configs/tiny_test.cfg --gpus 3 --iters 0
                    --set data.classes=datasets/cocostuff/classes.tsv
                    --set data.seen=datasets/cocostuff/seen.txt
                    --set data.unseen=datasets/cocostuff/unseen.txt)
zsseg_cli_test(bench_bad_option 2 PATTERNS "zsseg bench: --peak-tflops fast: expected a number"
               ARGS bench --peak-tflops fast)
zsseg_cli_test(bench_help_options 0
               PATTERNS "--iters N" "--gpus N" "--peak-tflops X" "--efficiency F" "--hbm-gbs Y"
                        "--busbw-gbs Z"
               ARGS bench --help)

# ---------------------------------------------------------------- inputs that are not files
# A FIFO given as a config, checkpoint, weights file or image used to block
# its reader forever, a directory read as 2^63 bytes: each is refused, naming
# the path, well within the TIMEOUT. The tiny dataset also gets an image with
# no label file, which `zsseg data check` lists. Also a wide integer in a
# config file, and a system directory as run.out_dir.
set(ZSSEG_CLI_IRREGULAR [=[
zsseg=$1 work=$2
fail() { echo "FAIL: $*"; exit 1; }
# expect RC PATTERN... -- COMMAND...: exit code RC and every pattern (fixed strings)
expect() {
  local want=$1 pats=(); shift
  while [ "$1" != "--" ]; do pats+=("$1"); shift; done; shift
  local out; out=$(timeout 10 "$@" 2>&1); local rc=$?
  printf '%s\n' "$out"
  [ "$rc" -eq "$want" ] || fail "exit code $rc, expected $want: $*"
  for p in "${pats[@]}"; do printf '%s\n' "$out" | grep -qF -- "$p" || fail "output lacks: $p"; done
}
rm -rf "$work" && mkdir -p "$work/dir" && mkfifo "$work/fifo" || exit 1
"$zsseg" synth -c configs/tiny_test.cfg -o "$work/data" > "$work/synth.log" 2>&1 || fail "synth"
d=$work/data
set_data=(-c configs/tiny_test.cfg --set "data.root=\"$d\"" --set "data.classes=\"$d/classes.tsv\""
          --set "data.seen=\"$d/seen.txt\"" --set "data.unseen=\"$d/unseen.txt\""
          --set "run.out_dir=\"$work/run\"")
expect 2 "'$work/fifo' is a FIFO, not a regular file" -- "$zsseg" config -c "$work/fifo"
expect 2 "'$work/dir' is a directory, not a regular file" -- "$zsseg" config -c "$work/dir"
expect 1 "zsseg ckpt verify: '$work/fifo' is a FIFO, not a regular file" -- \
  "$zsseg" ckpt verify "$work/fifo"
expect 1 "'$work/dir' is a directory, not a regular file" -- "$zsseg" ckpt verify "$work/dir"
expect 1 "'$work/fifo' is a FIFO, not a regular file" "HINT:" -- "$zsseg" ckpt info "$work/fifo"
expect 1 "'$work/fifo' is a FIFO, not a regular file" "HINT:" -- \
  "$zsseg" eval "${set_data[@]}" --ckpt "$work/fifo"
expect 1 "'$work/dir' is a directory, not a regular file" "HINT:" -- \
  "$zsseg" eval "${set_data[@]}" --ckpt "$work/dir"
expect 1 "'$work/fifo' is a FIFO, not a regular file" -- \
  "$zsseg" predict "${set_data[@]}" --ckpt "$work/fifo" "$work/fifo"
img=$d/images/train2017/000000000001.jpg
rm -f "$img" && mkfifo "$img" && rm "$d/annotations/train2017/000000000002.png" || exit 1
expect 1 "problem: training image '000000000001': '$img' is a FIFO, not a regular file" \
  "problem: training image '000000000002': '$d/images/train2017/000000000002.jpg' has no label file in '$d/annotations/train2017'" \
  "problems: 2 of 24 images" -- "$zsseg" data check "${set_data[@]}"
printf 'data = {\n  batch_size = 4294967306;\n};\n' > "$work/wide.cfg"
expect 2 "data.batch_size at $work/wide.cfg:2: 4294967306 is out of range [1, 65536]" -- \
  "$zsseg" config -c "$work/wide.cfg"
expect 1 "run.out_dir (--set) is '/etc', a system or home directory" -- \
  "$zsseg" train "${set_data[@]}" --run-dir /etc
echo "irregular inputs ok"
]=])
add_test(NAME cli_irregular_inputs
         COMMAND bash -c "${ZSSEG_CLI_IRREGULAR}" bash $<TARGET_FILE:zsseg>
                 ${CMAKE_CURRENT_BINARY_DIR}/irregular_cli
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(cli_irregular_inputs PROPERTIES LABELS cli TIMEOUT 20
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")

# The memory plan against the host's memory (CPU runs; ZSSEG_MEM_AVAILABLE
# fixes the available bytes): a crop of 8192 and an evaluation batch of 65536
# are refused at startup, naming the sizes and the config key to lower.
set(ZSSEG_CLI_MEM_PLAN_HOST [=[
zsseg=$1
work=$2
rm -rf "$work" && mkdir -p "$work" || exit 1
"$zsseg" synth -c configs/tiny_test.cfg -o "$work/data" > /dev/null 2>&1 || { echo "FAIL: synth"; exit 1; }
data=(--set "data.root=\"$work/data\"" --set "data.classes=\"$work/data/classes.tsv\""
      --set "data.seen=\"$work/data/seen.txt\"" --set "data.unseen=\"$work/data/unseen.txt\"")
refused() {  # refused NAME KEY [--set ...]: exit 1 naming the key, within 60 s
  local name=$1 key=$2; shift 2
  local out rc
  out=$(ZSSEG_MEM_AVAILABLE=4294967296 timeout 60 "$zsseg" train -c configs/tiny_test.cfg \
        "${data[@]}" --run-dir "$work/$name" "$@" 2>&1)
  rc=$?
  printf '%s\n' "$out" | grep -v '^\[rank 0\] warning'
  [ "$rc" -eq 1 ] || { echo "FAIL: $name: exit code $rc, expected 1"; exit 1; }
  for p in "of host memory per rank" "4.00 GiB is available per rank" "ZSSEG_MEM_AVAILABLE" "$key"; do
    printf '%s\n' "$out" | grep -qF -- "$p" || { echo "FAIL: $name: output lacks: $p"; exit 1; }
  done
  [ ! -e "$work/$name/ckpt" ] || { echo "FAIL: $name: training started"; exit 1; }
}
refused crop data.crop_size --set data.crop_size=8192 --set data.warp_size=8192
refused eval eval.batch_size --set eval.batch_size=65536
echo "memory plan refusals ok"
]=])
add_test(NAME cli_mem_plan_host
         COMMAND bash -c "${ZSSEG_CLI_MEM_PLAN_HOST}" bash $<TARGET_FILE:zsseg>
                 ${CMAKE_CURRENT_BINARY_DIR}/cli_mem_plan_host
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(cli_mem_plan_host PROPERTIES LABELS cli TIMEOUT 120
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")
