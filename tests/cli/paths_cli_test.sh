#!/usr/bin/env bash
# gyre bfs / gyre sssp end to end under mpiexec -n NP: every Graphalytics graph with a BFS or
# SSSP reference (BFS byte-identical, SSSP within 1e-4 relative, "infinity" where unreached); the
# same bytes alone and at NP ranks; the source from the .properties file or --source; a source
# that is not a vertex (or none) refused with exit 1 and no output; HDF5 output; a rank killed
# (SIGKILL) mid-run, then --resume: the failure-free output.
#   paths_cli_test.sh MPIEXEC NP GYRE DATASETS [mpiexec flags...]
set -uo pipefail
mpiexec=$1; np=$2; gyre=$3; data=$4; shift 4
mpiexec_flags=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
g="$data/graphalytics"

# mpiexec flags go before the program; gyre flags after it.
run() {
  local n=$1 alg=$2 in=$3 out=$4 log=$5; shift 5
  "$mpiexec" -n "$n" "${mpiexec_flags[@]}" "$gyre" "$alg" --input "$in" --output "$out" --threads 1 --no-progress "$@" \
    > "$log" 2>&1 < /dev/null
}

"$gyre" --help | grep -q "bfs" || fail "--help does not list bfs"
"$gyre" sssp --help | grep -q -- "--source" || fail "sssp --help has no --source"

# References: BFS exact, SSSP within 1e-4 relative.
checked=0
for ref in "$g"/*-BFS "$g"/*/*-BFS "$g"/*-SSSP "$g"/*/*-SSSP; do
  [ -e "$ref" ] || continue
  alg=bfs; case "$ref" in *-SSSP) alg=sssp ;; esac
  props="${ref%-*}.properties"
  [ -e "$props" ] || continue
  name=$(basename "$ref")
  out="$work/$name.out"
  run "$np" "$alg" "$props" "$out" "$work/log" || fail "$name: gyre $alg failed: $(cat "$work/log")"
  if [ "$alg" = bfs ]; then
    cmp -s <(sort -n "$ref") "$out" || fail "$name: output differs from the reference: $(diff <(sort -n "$ref") "$out" | head -5)"
  else
    awk 'NR == FNR { want[$1] = $2; next }
         { n++; w = want[$1]
           if (!($1 in want)) { print "vertex " $1 " not in the reference"; bad++; next }
           if (w == "infinity" || $2 == "infinity") { if (w != $2) { print $1 ": " $2 " vs " w; bad++ }; next }
           d = $2 - w; if (d < 0) d = -d; a = w < 0 ? -w : w
           if (d > 1e-4 * a) { print $1 ": " $2 " vs " w; bad++ } }
         END { if (n != length(want)) { print n " vertices, reference " length(want); bad++ }; exit bad > 0 }' \
      "$ref" "$out" > "$work/cmp" || fail "$name: SSSP differs from the reference: $(head -5 "$work/cmp")"
  fi
  # The same bytes in one process.
  "$gyre" "$alg" --input "$props" --output "$work/one.out" --no-progress > "$work/log1" 2>&1 \
    || fail "$name: gyre $alg alone failed: $(cat "$work/log1")"
  cmp -s "$out" "$work/one.out" || fail "$name: $np ranks and one process differ"
  checked=$((checked + 1))
  echo "ok: $alg $name"
done
[ "$checked" -ge 10 ] || fail "only $checked reference outputs found under $g"

# --source overrides the file; a source that is not a vertex, or none at all, is refused.
run "$np" bfs "$g/example-directed.properties" "$work/s.out" "$work/log" --source 2 || fail "bfs --source 2: $(cat "$work/log")"
grep -qx "2 0" "$work/s.out" || fail "bfs --source 2: vertex 2 is not at 0 hops"
for alg in bfs sssp; do
  rm -f "$work/bad.out"
  run "$np" "$alg" "$g/example-directed.properties" "$work/bad.out" "$work/log" --source 424242
  rc=$?
  [ "$rc" -ne 0 ] || fail "$alg --source 424242 exited 0"
  [ ! -e "$work/bad.out" ] || fail "$alg --source 424242 left an output file"
  grep -q "424242 is not a vertex" "$work/log" || fail "$alg --source 424242: no clear message: $(cat "$work/log")"
  run "$np" "$alg" "$g/example-directed.e" "$work/bad.out" "$work/log"
  [ $? -ne 0 ] && [ ! -e "$work/bad.out" ] && grep -q -- "--source is required" "$work/log" \
    || fail "$alg on an edge list without --source: $(cat "$work/log")"
done
# sssp needs weights.
run "$np" sssp "$g/test-bfs-directed.properties" "$work/bad.out" "$work/log" --source 1
[ $? -ne 0 ] && [ ! -e "$work/bad.out" ] || fail "sssp on an unweighted graph: $(cat "$work/log")"
echo "ok: sources and refusals"

# HDF5 output.
run "$np" sssp "$g/example-undirected.properties" "$work/r.h5" "$work/log" || fail "sssp to .h5: $(cat "$work/log")"
[ -s "$work/r.h5" ] && head -c 8 "$work/r.h5" | grep -q "HDF" || fail "sssp did not write an HDF5 file"
echo "ok: HDF5 output"

# Kill and resume: a weighted path of 30 vertices (ids scattered) runs 30 supersteps.
for i in $(seq 0 28); do
  echo "$(( (i * 7919) % 100003 + 5000 )) $(( ((i + 1) * 7919) % 100003 + 5000 )) 0.$(( i % 9 + 1 ))"
done > "$work/path.txt"
src=5000
for alg in bfs sssp; do
  ref="$work/$alg.path.ref"
  run "$np" "$alg" "$work/path.txt" "$ref" "$work/log" --undirected --source $src || fail "$alg path: $(cat "$work/log")"
  ck="$work/ck-$alg"; out="$work/$alg.path.out"
  ck_flags=(--checkpoint-dir "$ck" --checkpoint-every 3 --checkpoint-wait)
  run "$np" "$alg" "$work/path.txt" "$out" "$work/kill.log" --undirected --source $src "${ck_flags[@]}" \
    --inject-failure "rank=$((np - 1)),superstep=8,mode=kill"
  [ $? -ne 0 ] || fail "$alg: the run killed at superstep 8 exited 0"
  [ ! -e "$out" ] || fail "$alg: the killed run left an output file"
  run "$np" "$alg" "$work/path.txt" "$out" "$work/resume.log" --undirected --source $src "${ck_flags[@]}" --resume \
    || fail "$alg: resume failed: $(cat "$work/resume.log")"
  grep -q "resumed after superstep 6" "$work/resume.log" || fail "$alg: did not resume after superstep 6: $(cat "$work/resume.log")"
  cmp -s "$ref" "$out" || fail "$alg: the resumed output differs"
  # Another source is another job: its checkpoints are not used.
  run "$np" "$alg" "$work/path.txt" "$out" "$work/other.log" --undirected --source 12919 "${ck_flags[@]}" --resume
  ! grep -q "resumed after" "$work/other.log" || fail "$alg: resumed another source's checkpoints"
  echo "ok: $alg killed at superstep 8, resumed"
done
echo "all paths CLI checks passed"
