# Sourced by the training test scripts (cwd = the source tree):
#   tiny_data ZSSEG DIR
# generates configs/tiny_test.cfg's synthetic dataset into DIR and sets the
# array TINY_DATA to the --set options that point a run at it.
tiny_data() {
  "$1" synth -c configs/tiny_test.cfg -o "$2" > /dev/null 2>&1 || { echo "FAIL: synth into $2"; exit 1; }
  TINY_DATA=(--set "data.root=\"$2\"" --set "data.classes=\"$2/classes.tsv\""
             --set "data.seen=\"$2/seen.txt\"" --set "data.unseen=\"$2/unseen.txt\"")
}
