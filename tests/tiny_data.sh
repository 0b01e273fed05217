# Sourced by the training test scripts:
#   source "$(dirname "$0")/tiny_data.sh"; tiny_setup ZSSEG WORKDIR
# empties WORKDIR, moves to the source tree (and sets src to it), generates
# configs/tiny_test.cfg's synthetic dataset into WORKDIR/data and sets the
# array TINY_DATA to the --set options that point a run at it.
tiny_setup() {
  src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  rm -rf "$2" && mkdir -p "$2"
  cd "$src"
  "$1" synth -c configs/tiny_test.cfg -o "$2/data" > /dev/null 2>&1 ||
    { echo "FAIL: synth into $2/data"; exit 1; }
  TINY_DATA=(--set "data.root=\"$2/data\"" --set "data.classes=\"$2/data/classes.tsv\""
             --set "data.seen=\"$2/data/seen.txt\"" --set "data.unseen=\"$2/data/unseen.txt\"")
}
