#!/usr/bin/env bash
# The gyre command end to end:
#  - pagerank and cc on a SNAP file give byte-identical output alone and under mpiexec -n NP;
#  - a malformed input fails with file:line on stderr, a non-zero exit, and no output file;
#  - convert writes an HDF5 graph (h5dump reads it); pagerank and cc read it (each rank its part)
#    and give the same output as from the text file; --output *.h5 writes an HDF5 result;
#  - explain prints the load and iteration (cc: union-find) plans without running them;
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
  if [ "$cmd" = pagerank ]; then
    grep -q '"supersteps"' "$work/$cmd.json" || { echo "FAIL: $cmd metrics lack supersteps"; exit 1; }
  else  # cc's union-find has no loop: its metrics show its stages
    grep -q '"connected components: union-find within the rank"' "$work/$cmd.json" ||
      { echo "FAIL: $cmd metrics lack the union-find stage"; exit 1; }
  fi
done

# generate: the same file alone and under mpiexec, 16 x 2^10 edges after a header line.
"$gyre" generate --scale 10 --seed 3 --output "$work/k.alone" 2>/dev/null
"$mpiexec" -n "$np" "$@" "$gyre" generate --scale 10 --seed 3 --output "$work/k.spread" 2>/dev/null
cmp "$work/k.alone" "$work/k.spread" || { echo "FAIL: generate differs at $np ranks"; exit 1; }
test "$(grep -vc '^#' "$work/k.alone")" -eq 16384 || { echo "FAIL: generate: expected 16384 edges"; exit 1; }
"$gyre" generate --kind uniform --scale 10 --seed 4 --output "$work/u" 2>/dev/null
cmp -s "$work/k.alone" "$work/u" && { echo "FAIL: uniform and kronecker gave the same file"; exit 1; }

# HDF5: convert under mpiexec (every rank parses its share), then read it back.
"$mpiexec" -n "$np" "$@" "$gyre" convert --input "$snap" --output "$work/g.h5" 2>/dev/null
h5dump -H "$work/g.h5" > "$work/g.dump"
grep -q '"targets"' "$work/g.dump" || { echo "FAIL: h5dump does not show /edges/targets"; exit 1; }
for cmd in pagerank cc; do
  "$mpiexec" -n "$np" "$@" "$gyre" "$cmd" --input "$work/g.h5" --threads 1 --output "$work/$cmd.h5in" 2>/dev/null
  cmp "$work/$cmd.alone" "$work/$cmd.h5in" || { echo "FAIL: $cmd from HDF5 differs from text at $np ranks"; exit 1; }
  "$gyre" "$cmd" --input "$work/g.h5" --output "$work/$cmd.out.h5" 2>/dev/null
  h5dump -H -d /values "$work/$cmd.out.h5" > "$work/$cmd.dump"
  grep -q "( 1005 )" "$work/$cmd.dump" || { echo "FAIL: $cmd HDF5 result lacks 1005 values"; exit 1; }
done
# A text file named .h5, and an HDF5 file that is not a graph: clear errors, nothing written.
cp "$snap" "$work/text.h5"
if "$gyre" pagerank --input "$work/text.h5" --output "$work/x.out" 2> "$work/err"; then echo "FAIL: text.h5 accepted"; exit 1; fi
grep -q "text.h5': not an HDF5 file" "$work/err" || { echo "FAIL: unclear error:"; cat "$work/err"; exit 1; }
if "$gyre" cc --input "$work/cc.out.h5" --output "$work/x.out" 2> "$work/err"; then echo "FAIL: result file accepted"; exit 1; fi
grep -q "not a gyre graph file" "$work/err" || { echo "FAIL: unclear error:"; cat "$work/err"; exit 1; }
test ! -e "$work/x.out" || { echo "FAIL: output written despite the error"; exit 1; }

# explain: both jobs' plans, nothing run, nothing written.
"$gyre" explain pagerank --input "$work/g.h5" > "$work/plan" 2>&1
grep -q "job 1: load the graph" "$work/plan" && grep -q "bulk iteration 'pagerank'" "$work/plan" &&
  grep -q "reads its partitions' slices of '$work/g.h5' in place" "$work/plan" ||
  { echo "FAIL: explain pagerank:"; cat "$work/plan"; exit 1; }
"$gyre" explain cc --input "$snap" > "$work/plan" 2>&1
grep -q "connected components: union-find within the rank" "$work/plan" || { echo "FAIL: explain cc"; cat "$work/plan"; exit 1; }

printf '1 2\n2 3\n3 x\n' > "$work/bad.txt"
if "$mpiexec" -n "$np" "$@" "$gyre" pagerank --input "$work/bad.txt" --output "$work/bad.out" 2> "$work/err"; then
  echo "FAIL: malformed input accepted"; exit 1
fi
grep -q "bad.txt:3: " "$work/err" || { echo "FAIL: error does not name file and line:"; cat "$work/err"; exit 1; }
test ! -e "$work/bad.out" || { echo "FAIL: output written despite the error"; exit 1; }
ls "$work" | grep -q gyre-tmp && { echo "FAIL: temporary file left behind"; exit 1; }

"$gyre" pagerank --help | grep -q -- "--damping" || { echo "FAIL: --help does not explain --damping"; exit 1; }
if "$gyre" cc --output x 2>/dev/null; then echo "FAIL: missing --input accepted"; exit 1; fi
echo "gyre pagerank and cc: identical output alone, at $np ranks and from HDF5; bad input rejected"
