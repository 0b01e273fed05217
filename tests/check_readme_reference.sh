#!/usr/bin/env bash
# README.md's configuration reference must be exactly what the binary
# generates from the schema (src/schema.c), between the two markers.
#   check:      tests/check_readme_reference.sh ZSSEG_BINARY [README.md]
#   regenerate: tests/check_readme_reference.sh --update ZSSEG_BINARY [README.md]
set -euo pipefail
update=0
if [ "${1:-}" = "--update" ]; then update=1; shift; fi
zsseg=${1:?usage: $0 [--update] ZSSEG_BINARY [README.md]}
readme=${2:-$(cd "$(dirname "$0")/.." && pwd)/README.md}
begin='<!-- BEGIN CONFIG REFERENCE -->'
end='<!-- END CONFIG REFERENCE -->'

if [ "$(grep -cxF "$begin" "$readme")" != 1 ] || [ "$(grep -cxF "$end" "$readme")" != 1 ]; then
  echo "$readme must hold the lines '$begin' and '$end' once each" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$zsseg" config --reference > "$tmp/generated"
awk -v b="$begin" -v e="$end" '$0 == e {inside = 0} inside {print} $0 == b {inside = 1}' \
  "$readme" > "$tmp/current"

if [ "$update" = 1 ]; then
  awk -v b="$begin" -v e="$end" -v gen="$tmp/generated" '
    $0 == b {print; while ((getline line < gen) > 0) print line; skip = 1; next}
    $0 == e {skip = 0}
    !skip {print}' "$readme" > "$tmp/readme"
  cat "$tmp/readme" > "$readme"
  echo "updated the config reference in $readme"
elif ! cmp -s "$tmp/generated" "$tmp/current"; then
  diff -u --label "README.md (current)" --label "zsseg config --reference" \
    "$tmp/current" "$tmp/generated" | head -40 || true
  echo "README config reference is stale: run tests/check_readme_reference.sh --update $zsseg $readme"
  exit 1
else
  echo "README config reference is up to date"
fi
