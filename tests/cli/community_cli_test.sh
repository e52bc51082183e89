#!/usr/bin/env bash
# gyre cdlp and gyre lcc end to end:
#  - on every Graphalytics graph with a CDLP / LCC reference (iterations from the .properties
#    file): CDLP equal to the reference, LCC within 1e-4 relative; byte-identical alone and under
#    mpiexec -n NP; --output *.h5 writes an HDF5 result;
#  - cdlp with a rank killed (SIGKILL) mid-run, then --resume: the failure-free output;
#  - lcc refuses checkpoint flags; a malformed input fails with file:line, nothing written;
#  - --help explains --iterations.
#   community_cli_test.sh MPIEXEC NP GYRE DATASETS [mpiexec flags...]
set -uo pipefail
mpiexec=$1; np=$2; gyre=$3; data=$4; shift 4
mpiexec_flags=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
g="$data/graphalytics"

checked=0
for ref in "$g"/*-CDLP "$g"/*-LCC "$g"/*/*-CDLP "$g"/*/*-LCC; do
  [ -e "$ref" ] || continue
  alg=$(echo "${ref##*-}" | tr 'A-Z' 'a-z')
  props="${ref%-*}.properties"
  name=$(basename "${ref%-*}")
  [ -e "$props" ] || continue
  "$gyre" "$alg" --input "$props" --output "$work/$name.$alg.alone" --no-progress > "$work/log" 2>&1 \
    || fail "$alg on $name: $(cat "$work/log")"
  "$mpiexec" -n "$np" "${mpiexec_flags[@]}" "$gyre" "$alg" --input "$props" --threads 1 --no-progress \
    --output "$work/$name.$alg.spread" > "$work/log" 2>&1 < /dev/null || fail "$alg on $name at $np ranks: $(cat "$work/log")"
  cmp -s "$work/$name.$alg.alone" "$work/$name.$alg.spread" || fail "$alg on $name: output differs at $np ranks"
  sort -n -k1,1 "$ref" > "$work/want"
  [ "$(wc -l < "$work/want")" -eq "$(wc -l < "$work/$name.$alg.alone")" ] || fail "$alg on $name: vertex count differs"
  if [ "$alg" = cdlp ]; then
    cmp -s "$work/want" "$work/$name.$alg.alone" || fail "cdlp on $name differs from the reference"
  else
    paste -d' ' "$work/$name.$alg.alone" "$work/want" | awk -v n="$name" '
      $1 != $3 { print "FAIL: lcc on " n ": ids differ at line " NR; exit 1 }
      { d = $2 - $4; if (d < 0) d = -d; w = $4 < 0 ? -$4 : $4; if (d > 1e-4 * w) { print "FAIL: lcc on " n ": vertex " $1 " " $2 ", reference " $4; exit 1 } }' \
      || exit 1
  fi
  checked=$((checked + 1))
done
[ "$checked" -ge 10 ] || fail "only $checked reference outputs found under $g"
echo "ok: $checked Graphalytics references (CDLP exact, LCC within 1e-4), identical at $np ranks"

# Parameters: --iterations overrides the .properties value; HDF5 output.
"$gyre" cdlp --input "$g/p2p-31/p2p-31.properties" --iterations 3 --output "$work/c3" --no-progress 2> "$work/log" \
  || fail "cdlp --iterations 3: $(cat "$work/log")"
grep -q "3 supersteps" "$work/log" || fail "cdlp --iterations 3 did not run 3 supersteps: $(cat "$work/log")"
cmp -s "$work/c3" "$work/p2p-31.cdlp.alone" && fail "cdlp with 3 and 10 iterations gave the same labels"
"$gyre" lcc --input "$g/example-directed.properties" --output "$work/lcc.h5" --no-progress 2>/dev/null || fail "lcc --output .h5"
h5dump -H -d /values "$work/lcc.h5" | grep -q "( 10 )" || fail "lcc HDF5 result lacks 10 values"

# cdlp killed and resumed: the failure-free output (p2p-31, 10 iterations, checkpoints every 3).
in="$g/p2p-31/p2p-31.properties"
ck="$work/ck"
ck_flags=(--checkpoint-dir "$ck" --checkpoint-every 3 --checkpoint-wait --threads 1 --no-progress)
"$mpiexec" -n "$np" "${mpiexec_flags[@]}" "$gyre" cdlp --input "$in" --output "$work/killed" "${ck_flags[@]}" \
  --inject-failure "rank=$((np - 1)),superstep=5,mode=kill" > "$work/log" 2>&1 < /dev/null && fail "the killed cdlp run exited 0"
[ ! -e "$work/killed" ] || fail "the killed cdlp run left an output file"
"$mpiexec" -n "$np" "${mpiexec_flags[@]}" "$gyre" cdlp --input "$in" --output "$work/resumed" "${ck_flags[@]}" --resume \
  > "$work/log" 2>&1 < /dev/null || fail "cdlp --resume: $(cat "$work/log")"
grep -q "resumed after superstep 3" "$work/log" || fail "cdlp did not resume after superstep 3: $(cat "$work/log")"
cmp -s "$work/resumed" "$work/p2p-31.cdlp.alone" || fail "cdlp killed and resumed: output differs"
echo "ok: cdlp killed at superstep 5 and resumed after superstep 3 at $np ranks: the same labels"

# Refusals.
if "$gyre" lcc --input "$in" --output "$work/x" --checkpoint-dir "$work/ck2" 2> "$work/err"; then fail "lcc took --checkpoint-dir"; fi
grep -q "lcc is not a loop" "$work/err" || fail "unclear lcc refusal: $(cat "$work/err")"
printf '1 2\n2 3\n3 x\n' > "$work/bad.txt"
for alg in cdlp lcc; do
  if "$mpiexec" -n "$np" "${mpiexec_flags[@]}" "$gyre" "$alg" --input "$work/bad.txt" --output "$work/bad.out" \
    2> "$work/err" < /dev/null; then fail "$alg: malformed input accepted"; fi
  grep -q "bad.txt:3: " "$work/err" || fail "$alg: error does not name file and line: $(cat "$work/err")"
  [ ! -e "$work/bad.out" ] || fail "$alg: output written despite the error"
done
"$gyre" cdlp --help | grep -q -- "--iterations" || fail "cdlp --help does not explain --iterations"
echo "gyre cdlp and lcc: Graphalytics references, identical at $np ranks, resume after a kill, bad input rejected"
