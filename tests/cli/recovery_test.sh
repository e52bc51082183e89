#!/usr/bin/env bash
# Kill and resume, end to end: PageRank and CC under mpiexec -n NP with checkpoints every 3
# supersteps; a rank killed (SIGKILL) at several supersteps — before the first checkpoint, right
# after one, between two, after tail logs — then the same command with --resume: the output is
# byte-identical to a failure-free run. Also: resume with another number of ranks; the newest
# checkpoint truncated → the previous one is used and the run says so; a thrown task rolls back
# in-process; another job's checkpoints are refused.
#   recovery_test.sh MPIEXEC NP GYRE DATASETS [mpiexec flags...]
set -uo pipefail
mpiexec=$1; np=$2; gyre=$3; data=$4; shift 4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
other=$(( np == 2 ? 4 : 2 ))
fail() { echo "FAIL: $*"; exit 1; }

# CC needs a graph with a long diameter to run many supersteps: a path of 40 vertices (ids
# scattered) next to email-Eu-core.
snap="$data/snap/email-Eu-core/email-Eu-core.txt"
for i in $(seq 0 38); do echo "$(( (i * 7919) % 100003 + 5000 )) $(( ((i + 1) * 7919) % 100003 + 5000 ))"; done > "$work/path.txt"
cat "$snap" >> "$work/path.txt"

# mpiexec flags go before the program; gyre flags after it.
run() {
  local n=$1 alg=$2 in=$3 out=$4 log=$5; shift 5
  "$mpiexec" -n "$n" "${mpiexec_flags[@]}" "$gyre" "$alg" --input "$in" --output "$out" --threads 1 --no-progress "$@" \
    > "$log" 2>&1 < /dev/null
}
mpiexec_flags=("$@")

for alg in pagerank cc; do
  in="$snap"; [ "$alg" = cc ] && in="$work/path.txt"
  ref="$work/$alg.ref"
  run "$np" "$alg" "$in" "$ref" "$work/log" || fail "$alg: the failure-free run failed: $(cat "$work/log")"
  steps=$(grep -o '[0-9]* supersteps' "$work/log" | cut -d' ' -f1)
  [ "$steps" -ge 12 ] || fail "$alg: only $steps supersteps, too few for the kill points"

  # kill point, mode, expected resume message, ranks to resume with
  while read -r at mode expect resume_np; do
    ck="$work/ck-$alg-$at-$mode"; out="$work/$alg.out"
    rm -f "$out"
    ck_flags=(--checkpoint-dir "$ck" --checkpoint-every 3 --checkpoint-mode "$mode" --checkpoint-wait)
    run "$np" "$alg" "$in" "$out" "$work/kill.log" "${ck_flags[@]}" \
      --inject-failure "rank=$((np - 1)),superstep=$at,mode=kill"
    rc=$?
    [ "$rc" -ne 0 ] || fail "$alg: the run killed at superstep $at exited 0"
    [ ! -e "$out" ] || fail "$alg: the killed run left an output file"
    run "$resume_np" "$alg" "$in" "$out" "$work/resume.log" "${ck_flags[@]}" --resume \
      || fail "$alg: resume after a kill at $at ($mode) failed: $(cat "$work/resume.log")"
    grep -q "$expect" "$work/resume.log" || fail "$alg: kill at $at ($mode): expected '$expect' in: $(cat "$work/resume.log")"
    cmp -s "$ref" "$out" || fail "$alg: killed at $at ($mode), resumed at $resume_np ranks: output differs"
    echo "ok: $alg killed at superstep $at ($mode), resumed on $resume_np ranks: $(grep -m1 -o "$expect[^(]*" "$work/resume.log")"
  done <<LIST
2 both starts.from.the.beginning $np
5 head after.superstep.3.from.*head-000003 $np
6 head after.superstep.3.from.*head-000003 $np
8 both after.superstep.6.from.*head-000006 $np
7 both after.superstep.5.from.*tail-000005 $np
11 both after.superstep.9 $other
7 tail after.superstep.5.from $other
LIST

  # The newest checkpoint truncated: the previous one is used, and the run says why.
  ck="$work/ck-$alg-trunc"; out="$work/$alg.trunc"
  ck_flags=(--checkpoint-dir "$ck" --checkpoint-every 3 --checkpoint-mode head --checkpoint-wait)
  run "$np" "$alg" "$in" "$out" "$work/kill.log" "${ck_flags[@]}" --inject-failure "rank=0,superstep=8,mode=kill"
  [ -e "$ck/head-000006/MANIFEST.h5" ] || fail "$alg: no committed checkpoint after superstep 6"
  truncate -s 100 "$ck/head-000006/rank-0.h5"
  run "$np" "$alg" "$in" "$out" "$work/resume.log" "${ck_flags[@]}" --resume || fail "$alg: resume after truncation failed"
  grep -q "skipped checkpoint .*head-000006.*truncated" "$work/resume.log" || fail "$alg: truncation not reported: $(cat "$work/resume.log")"
  grep -q "after superstep 3 from .*head-000003" "$work/resume.log" || fail "$alg: did not fall back to superstep 3"
  cmp -s "$ref" "$out" || fail "$alg: resumed from the previous checkpoint: output differs"
  echo "ok: $alg newest checkpoint truncated: fell back to superstep 3"

  # A task throws: the job rolls back in-process and finishes with the failure-free output.
  out="$work/$alg.throw"
  run "$np" "$alg" "$in" "$out" "$work/throw.log" --checkpoint-dir "$work/ck-$alg-throw" --checkpoint-every 3 \
    --checkpoint-wait --inject-failure "rank=$((np - 1)),superstep=9,mode=throw" \
    || fail "$alg: in-process recovery failed: $(cat "$work/throw.log")"
  grep -q "1 restart(s)" "$work/throw.log" || fail "$alg: no restart reported: $(cat "$work/throw.log")"
  grep -q "resuming .* after superstep [1-8] " "$work/throw.log" || fail "$alg: did not roll back to a checkpoint: $(cat "$work/throw.log")"
  cmp -s "$ref" "$out" || fail "$alg: output after in-process recovery differs"
  echo "ok: $alg threw at superstep 9, rolled back in-process"
done

# Another job's checkpoints (cc's, resumed as pagerank) are refused, nothing is written.
run "$np" pagerank "$work/path.txt" "$work/mixed" "$work/mixed.log" --checkpoint-dir "$work/ck-cc-throw" --resume \
  && fail "pagerank resumed from cc's checkpoints"
grep -q "another job" "$work/mixed.log" || fail "the refusal does not say why: $(cat "$work/mixed.log")"
[ ! -e "$work/mixed" ] || fail "a refused resume wrote output"
echo "ok: another job's checkpoints refused"
