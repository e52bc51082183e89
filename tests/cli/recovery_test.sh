#!/usr/bin/env bash
# Kill and resume, end to end: PageRank and CC (with checkpoints: min-label propagation) under
# mpiexec -n NP with checkpoints every 3 supersteps; a rank killed (SIGKILL) at several
# supersteps — before the first checkpoint, right
# after one, between two, after tail logs — then the same command with --resume: the output is
# byte-identical to a failure-free run. Also: resume with another number of ranks; the newest
# checkpoint truncated → the previous one is used and the run says so; a thrown task rolls back
# in-process; another job's checkpoints are refused. A full file system (a 200k tmpfs: needs root,
# as CI has; otherwise this test fails) ends a run, alone and under mpiexec, with the file and
# "No space left on device" and exit 1, never a crash, and what was committed resumes. A run
# without --resume removes the old entries first; asynchronous checkpoints of a long run leave
# the newest two entries, all committed.
#   recovery_test.sh MPIEXEC NP GYRE DATASETS [mpiexec flags...]
set -uo pipefail
mpiexec=$1; np=$2; gyre=$3; data=$4; shift 4
work=$(mktemp -d)
trap 'umount "$work/full" 2>/dev/null; rm -rf "$work"' EXIT
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
  # cc with --checkpoint-dir is min-label propagation, a loop; without, union-find (no loop):
  # the reference runs the loop (to count its supersteps), and the union-find gives the same file.
  ref_flags=(); [ "$alg" = cc ] && ref_flags=(--checkpoint-dir "$work/ck-cc-ref")
  run "$np" "$alg" "$in" "$ref" "$work/log" "${ref_flags[@]}" || fail "$alg: the failure-free run failed: $(cat "$work/log")"
  if [ "$alg" = cc ]; then
    run "$np" cc "$in" "$work/cc.uf" "$work/uf.log" || fail "cc (union-find) failed: $(cat "$work/uf.log")"
    cmp -s "$ref" "$work/cc.uf" || fail "cc: union-find and min-label propagation differ"
  fi
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

# A full file system: alone and under mpiexec, exit 1 with the file and the reason, no crash, no
# output; the entries committed before are kept, and a run resumed from a copy of them on a disk
# with room gives the failure-free output.
[ "$(id -u)" -eq 0 ] || fail "the full-disk check mounts a small tmpfs and needs root (CI runs as root)"
"$gyre" generate --kind kronecker --scale 12 --output "$work/k12.txt" > /dev/null 2>&1 || fail "generate failed"
# 1000 iterations: enough writes in the asynchronous mode (which skips entries while one is in
# flight) that the third entry, beside the two kept, does not fit in 150 KiB.
long=(--iterations 1000)
run "$np" pagerank "$work/k12.txt" "$work/k12.ref" "$work/log" "${long[@]}" || fail "k12: the failure-free run failed: $(cat "$work/log")"
mkdir -p "$work/full"
mount -t tmpfs -o size=150k tmpfs "$work/full" || fail "cannot mount a tmpfs at $work/full"
for n in 0 "$np"; do
  for wait in "" --checkpoint-wait; do
    rm -rf "$work/full/ck" "$work/k12.out"
    if [ "$n" -eq 0 ]; then
      "$gyre" pagerank --input "$work/k12.txt" --output "$work/k12.out" --threads 1 --no-progress \
        --checkpoint-dir "$work/full/ck" --checkpoint-every 1 $wait "${long[@]}" > "$work/full.log" 2>&1 < /dev/null
    else
      run "$n" pagerank "$work/k12.txt" "$work/k12.out" "$work/full.log" --checkpoint-dir "$work/full/ck" \
        --checkpoint-every 1 $wait "${long[@]}"
    fi
    rc=$?
    what="full disk ($([ "$n" -eq 0 ] && echo alone || echo "$n ranks")${wait:+, $wait})"
    [ "$rc" -eq 1 ] || fail "$what: exit $rc, not 1: $(cat "$work/full.log")"
    grep -q "cannot write checkpoint $work/full/ck/[a-z]*-[0-9]*/[A-Za-z0-9.-]*: No space left on device" "$work/full.log" \
      || fail "$what: no message naming the file and the reason: $(cat "$work/full.log")"
    ! grep -qi "segmentation\|signal\|HDF5" "$work/full.log" || fail "$what: crashed: $(cat "$work/full.log")"
    [ ! -e "$work/k12.out" ] || fail "$what: wrote output"
    ls "$work"/full/ck/*/MANIFEST.h5 > /dev/null 2>&1 || fail "$what: nothing committed before the disk was full"
    rm -rf "$work/ck-copy" && cp -r "$work/full/ck" "$work/ck-copy"
    run "$np" pagerank "$work/k12.txt" "$work/k12.out" "$work/resume.log" --checkpoint-dir "$work/ck-copy" --resume "${long[@]}" \
      || fail "$what: resume from the committed entries failed: $(cat "$work/resume.log")"
    grep -q "resuming 'pagerank' after superstep [1-9]" "$work/resume.log" || fail "$what: did not resume: $(cat "$work/resume.log")"
    cmp -s "$work/k12.ref" "$work/k12.out" || fail "$what: resumed output differs"
    echo "ok: $what: exit 1, $(grep -o 'No space left on device' "$work/full.log" | head -1), resumed from what was committed"
  done
done
umount "$work/full"

# A run without --resume removes the old entries first (and says so); asynchronous checkpoints
# of a long run (600 fast supersteps) leave only the newest two entries, all committed.
ck="$work/ck-async"
run "$np" pagerank "$work/k12.txt" "$work/k12.out" "$work/log" --checkpoint-dir "$ck" --checkpoint-every 5 \
  --checkpoint-mode both --iterations 600 || fail "async run failed: $(cat "$work/log")"
entries=$(ls -d "$ck"/head-* "$ck"/tail-* 2>/dev/null | wc -l)
committed=$(ls "$ck"/*/MANIFEST.h5 2>/dev/null | wc -l)
[ "$entries" -ge 1 ] && [ "$entries" -le 2 ] && [ "$committed" -eq "$entries" ] \
  || fail "async run left $entries entries, $committed committed: $(ls "$ck")"
echo "ok: a 600-superstep run with asynchronous checkpoints left $entries committed entries: $(ls "$ck" | tr '\n' ' ')"
run "$np" pagerank "$work/k12.txt" "$work/k12.out" "$work/log" --checkpoint-dir "$ck" --checkpoint-every 5 \
  --inject-failure "rank=0,superstep=3,mode=kill"
grep -q "removed $entries old checkpoint(s) from $ck" "$work/log" || fail "a fresh run did not remove the old entries: $(cat "$work/log")"
run "$np" pagerank "$work/k12.txt" "$work/k12.out" "$work/log" --checkpoint-dir "$ck" --checkpoint-every 5 --resume \
  || fail "resume after the fresh run failed: $(cat "$work/log")"
! grep -q "resuming 'pagerank' after superstep [1-9][0-9]" "$work/log" || fail "resumed from the old run: $(cat "$work/log")"
run "$np" pagerank "$work/k12.txt" "$work/k12.ref20" "$work/log" || fail "k12: the failure-free run failed: $(cat "$work/log")"
cmp -s "$work/k12.ref20" "$work/k12.out" || fail "resumed after a fresh run: output differs"
echo "ok: a fresh run removed the $entries old entries; the resume did not use them"
