#!/usr/bin/env bash
# The gyre command end to end:
#  - pagerank and cc on a SNAP file give byte-identical output alone and under mpiexec -n NP;
#  - a malformed input fails with file:line on stderr, a non-zero exit, and no output file;
#  - --help explains the flags; a missing --input is a usage error.
#   cli_test.sh MPIEXEC NP GYRE DATASETS [mpiexec flags...]
set -euo pipefail
mpiexec=$1; np=$2; gyre=$3; data=$4; shift 4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
snap="$data/snap/email-Eu-core/email-Eu-core.txt"

for cmd in pagerank cc; do
  "$gyre" "$cmd" --input "$snap" --output "$work/$cmd.alone" 2>/dev/null
  "$mpiexec" -n "$np" "$@" "$gyre" "$cmd" --input "$snap" --threads 1 --output "$work/$cmd.spread" \
    --metrics "$work/$cmd.json" 2>/dev/null
  cmp "$work/$cmd.alone" "$work/$cmd.spread" || { echo "FAIL: $cmd output differs at $np ranks"; exit 1; }
  test "$(wc -l < "$work/$cmd.alone")" -eq 1005 || { echo "FAIL: $cmd: expected 1005 vertices"; exit 1; }
  sort -c -n -k1,1 "$work/$cmd.alone" || { echo "FAIL: $cmd output not sorted by id"; exit 1; }
  grep -q '"supersteps"' "$work/$cmd.json" || { echo "FAIL: $cmd metrics lack supersteps"; exit 1; }
done

# generate: the same file alone and under mpiexec, 16 x 2^10 edges after a header line.
"$gyre" generate --scale 10 --seed 3 --output "$work/k.alone" 2>/dev/null
"$mpiexec" -n "$np" "$@" "$gyre" generate --scale 10 --seed 3 --output "$work/k.spread" 2>/dev/null
cmp "$work/k.alone" "$work/k.spread" || { echo "FAIL: generate differs at $np ranks"; exit 1; }
test "$(grep -vc '^#' "$work/k.alone")" -eq 16384 || { echo "FAIL: generate: expected 16384 edges"; exit 1; }
"$gyre" generate --kind uniform --scale 10 --seed 4 --output "$work/u" 2>/dev/null
cmp -s "$work/k.alone" "$work/u" && { echo "FAIL: uniform and kronecker gave the same file"; exit 1; }

printf '1 2\n2 3\n3 x\n' > "$work/bad.txt"
if "$mpiexec" -n "$np" "$@" "$gyre" pagerank --input "$work/bad.txt" --output "$work/bad.out" 2> "$work/err"; then
  echo "FAIL: malformed input accepted"; exit 1
fi
grep -q "bad.txt:3: " "$work/err" || { echo "FAIL: error does not name file and line:"; cat "$work/err"; exit 1; }
test ! -e "$work/bad.out" || { echo "FAIL: output written despite the error"; exit 1; }
ls "$work" | grep -q gyre-tmp && { echo "FAIL: temporary file left behind"; exit 1; }

"$gyre" pagerank --help | grep -q -- "--damping" || { echo "FAIL: --help does not explain --damping"; exit 1; }
if "$gyre" cc --output x 2>/dev/null; then echo "FAIL: missing --input accepted"; exit 1; fi
echo "gyre pagerank and cc: identical output alone and at $np ranks; bad input rejected"
