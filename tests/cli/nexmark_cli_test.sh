#!/usr/bin/env bash
# gyre nexmark end to end (the CLI contract outside tools rely on):
#  - generate: one event per line (P/A/B with 8/10/7 fields), deterministic for a seed;
#  - every query q0..q11 on the file gives the same lines (sorted) alone, under mpiexec -n NP
#    (1 thread each), and with the generator in the job (--events N, 2 threads, and paced with
#    --rate); q0 gives the file's lines; q12 counts every bid once;
#  - a malformed line: "FILE:LINE: what", exit 1, no output file (alone and under mpiexec);
#  - usage errors exit 2.
#   nexmark_cli_test.sh MPIEXEC NP GYRE [mpiexec flags...]
set -uo pipefail
mpiexec=$1; np=$2; gyre=$3; shift 3
mpiexec_flags=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
n=150000
ev="$work/events.csv"

"$gyre" nexmark generate --events $n --seed 3 --output "$ev" 2> "$work/log" || fail "generate: $(cat "$work/log")"
[ "$(wc -l < "$ev")" -eq $n ] || fail "generate wrote $(wc -l < "$ev") lines, not $n"
awk -F, '($1 == "P" && NF == 8) || ($1 == "A" && NF == 10) || ($1 == "B" && NF == 7) { next }
         { print "FAIL: line " NR ": " $0; exit 1 }' "$ev" || exit 1
head -1 "$ev" | grep -q '^P,0,1000,' || fail "the first event is not person 1000 at 0 ms: $(head -1 "$ev")"
sed -n 2p "$ev" | grep -q '^A,[0-9]*,1000,' || fail "the second event is not auction 1000: $(sed -n 2p "$ev")"
counts=$(cut -c1 "$ev" | sort | uniq -c | awk '{printf "%s%s ", $2, $1}')
[ "$counts" = "A9000 B138000 P3000 " ] || fail "person:auction:bid is not 1:3:46: $counts"
"$gyre" nexmark generate --events $n --seed 3 --output "$work/again.csv" 2>/dev/null || fail "generate again"
cmp -s "$ev" "$work/again.csv" || fail "generate is not deterministic for a seed"
"$mpiexec" -n "$np" "${mpiexec_flags[@]}" "$gyre" nexmark generate --events $n --seed 3 --output "$work/mpi.csv" \
  > /dev/null 2>&1 < /dev/null || fail "generate under mpiexec"
cmp -s "$ev" "$work/mpi.csv" || fail "generate under mpiexec -n $np differs"
"$gyre" nexmark generate --events 1000 --seed 4 --output "$work/other.csv" 2>/dev/null || fail "generate seed 4"
cmp -s <(head -1000 "$ev") "$work/other.csv" && fail "seeds 3 and 4 gave the same events"
echo "ok: generate ($n events, 1:3:46, deterministic, same under mpiexec)"

for q in q0 q1 q2 q3 q4 q5 q7 q8 q11; do
  "$gyre" nexmark --query $q --input "$ev" --output "$work/$q.alone" 2> "$work/log" || fail "$q: $(cat "$work/log")"
  sort "$work/$q.alone" > "$work/$q.want"
  [ -s "$work/$q.want" ] || fail "$q gave no lines"
  "$mpiexec" -n "$np" "${mpiexec_flags[@]}" "$gyre" nexmark --query $q --input "$ev" --threads 1 \
    --output "$work/$q.spread" > "$work/log" 2>&1 < /dev/null || fail "$q at $np ranks: $(cat "$work/log")"
  cmp -s "$work/$q.want" <(sort "$work/$q.spread") || fail "$q: different lines at $np ranks"
  "$gyre" nexmark --query $q --events $n --seed 3 --threads 2 --output "$work/$q.gen" 2> "$work/log" \
    || fail "$q --events: $(cat "$work/log")"
  cmp -s "$work/$q.want" <(sort "$work/$q.gen") || fail "$q: the generator in the job differs from the file"
  "$mpiexec" -n "$np" "${mpiexec_flags[@]}" "$gyre" nexmark --query $q --events $n --seed 3 --threads 2 \
    --watermark-delay 5000 --output "$work/$q.genspread" > "$work/log" 2>&1 < /dev/null || fail "$q --events at $np ranks: $(cat "$work/log")"
  cmp -s "$work/$q.want" <(sort "$work/$q.genspread") || fail "$q: the generator at $np ranks x 2 threads differs"
done
cmp -s <(sort "$ev") "$work/q0.want" || fail "q0 does not give the events as read"
awk -F, '$1 % 123 != 0 { print "FAIL: q2 line " NR ": " $0; exit 1 }' "$work/q2.alone" || exit 1
awk -F, '!/^[0-9]+,[0-9]+\.[0-9][0-9][0-9]$/ { print "FAIL: q4 line: " $0; exit 1 }' "$work/q4.alone" || exit 1
echo "ok: q0 q1 q2 q3 q4 q5 q7 q8 q11 identical alone, at $np ranks, and with the generator in the job"

"$gyre" nexmark --query q5 --events 30000 --seed 3 --rate 300000 --output "$work/q5.paced" 2> "$work/log" \
  || fail "q5 --rate: $(cat "$work/log")"
"$gyre" nexmark --query q5 --events 30000 --seed 3 --output "$work/q5.fast" 2>/dev/null || fail "q5 30000 events"
cmp -s <(sort "$work/q5.paced") <(sort "$work/q5.fast") || fail "q5 paced with --rate differs"
"$gyre" nexmark --query q12 --input "$ev" --output "$work/q12" 2> "$work/log" || fail "q12: $(cat "$work/log")"
bids=$(awk -F, '{ s += $2 } END { print s }' "$work/q12")
[ "$bids" -eq 138000 ] || fail "q12 counted $bids bids, not 138000"
echo "ok: --rate gives the same q5 lines; q12 counts every bid once"

# A malformed line: file and line, exit 1, nothing written.
{ head -100000 "$ev"; echo "B,9999,1000,1001,12x,Google,u"; tail -n +100001 "$ev"; } > "$work/bad.csv"
for run in alone spread; do
  if [ $run = alone ]; then
    "$gyre" nexmark --query q7 --input "$work/bad.csv" --output "$work/bad.out" 2> "$work/err"; rc=$?
  else
    "$mpiexec" -n "$np" "${mpiexec_flags[@]}" "$gyre" nexmark --query q7 --input "$work/bad.csv" --threads 1 \
      --output "$work/bad.out" > "$work/err" 2>&1 < /dev/null; rc=$?
  fi
  [ $rc -eq 1 ] || fail "malformed input ($run): exit $rc, not 1"
  grep -q "gyre: error: $work/bad.csv:100001: price: '12x' is not an integer" "$work/err" \
    || fail "malformed input ($run): no FILE:LINE message: $(cat "$work/err")"
  [ ! -e "$work/bad.out" ] || fail "malformed input ($run): output written"
done
echo "ok: a malformed line fails with FILE:LINE, exit 1, no output (alone and at $np ranks)"

# Usage errors.
"$gyre" nexmark --input "$ev" --output "$work/x" 2>/dev/null; [ $? -eq 2 ] || fail "no --query: not exit 2"
"$gyre" nexmark --query q9 --input "$ev" --output "$work/x" 2>/dev/null; [ $? -eq 2 ] || fail "--query q9: not exit 2"
"$gyre" nexmark --query q1 --output "$work/x" 2>/dev/null; [ $? -eq 2 ] || fail "no input: not exit 2"
"$gyre" nexmark --query q1 --input "$ev" --events 10 --output "$work/x" 2>/dev/null && fail "--input with --events accepted"
"$gyre" nexmark --query q1 --input "$ev" --output "$ev" 2>/dev/null && fail "--output = --input accepted"
[ ! -e "$work/x" ] || fail "a refused run wrote output"
cmp -s "$ev" "$work/again.csv" || fail "the input was overwritten"
echo "gyre nexmark: generate, q0-q12, identical at $np ranks, bad input and usage refused"
