#!/usr/bin/env bash
# gyre train logreg --online end to end on a9a: offline model -> online warm start publishing
# versions -> predict/evaluate on the store's newest -> a batch retrain published into the store
# -> the online trainer restarted continues from it (parent = the batch version); standard
# input as the stream; refusals (a linreg model as warm start, no --model-dir); alone and under
# mpiexec -n NP (the same number of examples and versions).
#   online_cli_test.sh MPIEXEC NP GYRE DATASETS [mpiexec flags...]
set -uo pipefail
mpiexec=$1; np=$2; gyre=$3; data=$4; shift 4
mpiexec_flags=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
a9a="$data/ml/a9a"
mpi() { "$mpiexec" -n "$np" "${mpiexec_flags[@]}" "$gyre" "$@" < /dev/null; }

"$gyre" train logreg --input "$a9a/a9a" --output "$work/offline.h5" --no-progress > "$work/log" 2>&1 \
  || fail "offline train: $(cat "$work/log")"
"$gyre" train logreg --online --input "$a9a/a9a" --warm-start "$work/offline.h5" --model-dir "$work/store" \
  --publish-every 10000 --metrics "$work/m.json" > "$work/out" 2> "$work/log" || fail "online: $(cat "$work/log")"
[ "$(grep -c '^version ' "$work/out")" -ge 3 ] || fail "fewer than 3 versions: $(cat "$work/out")"
grep -q '"progressive_auc"' "$work/m.json" || fail "--metrics has no per-version progressive_auc"
[ -f "$work/store/model-000001.h5" ] && [ -f "$work/store/model-000003.h5" ] || fail "store: $(ls "$work/store")"
h5dump -a /version "$work/store/model-000003.h5" > /dev/null || fail "h5dump cannot read a version"
n=$(ls "$work/store" | grep -c '^model-')
"$gyre" predict --model "$work/store" --input "$a9a/a9a.t" --output "$work/p" > "$work/log" 2>&1 || fail "predict DIR: $(cat "$work/log")"
[ "$(awk '{print $2}' "$work/p" | sort -u)" = "$n" ] || fail "predict DIR does not use the newest version $n"
"$gyre" evaluate --model "$work/store" --input "$a9a/a9a.t" > "$work/e" 2>&1 || fail "evaluate DIR: $(cat "$work/e")"
awk '$1 == "auc" && $2 >= 0.90 { ok = 1 } END { exit !ok }' "$work/e" || fail "online AUC: $(cat "$work/e")"

# A batch retrain supersedes: published into the store as the next version (parent: the newest
# online one); the online trainer restarted continues from it.
b=$((n + 1))
"$gyre" train logreg --input "$a9a/a9a" --model-dir "$work/store" --no-progress > "$work/log" 2>&1 || fail "batch: $(cat "$work/log")"
grep -q "version $b, parent $n" "$work/log" || fail "batch publish: $(cat "$work/log")"
"$gyre" train logreg --online --input "$a9a/a9a.t" --model-dir "$work/store" > "$work/out2" 2> "$work/log" \
  || fail "online restart: $(cat "$work/log")"
grep -q "continuing from .*model-$(printf %06d $b).h5" "$work/log" || fail "restart did not continue from $b: $(cat "$work/log")"
grep -q "^version $((b + 1)) parent $b " "$work/out2" || fail "restart: $(cat "$work/out2")"

# Standard input as the stream (ends when closed).
cat "$a9a/a9a" | "$gyre" train logreg --online --input - --model-dir "$work/stdin" --algorithm adaptive \
  > "$work/out3" 2> "$work/log" || fail "stdin: $(cat "$work/log")"
grep -q "32561 examples" "$work/log" || fail "stdin: $(cat "$work/log")"

# Under mpiexec: every example once, versions published by rank 0.
mpi train logreg --online --input "$a9a/a9a" --model-dir "$work/mpi" --publish-every 10000 > "$work/out4" 2> "$work/log" \
  || fail "online -n $np: $(cat "$work/log")"
grep -q "32561 examples" "$work/log" || fail "online -n $np: $(cat "$work/log")"
[ "$(grep -c '^version ' "$work/out4")" -ge 3 ] || fail "online -n $np versions: $(cat "$work/out4")"

# Refusals: another loss; no --model-dir.
"$gyre" train linreg --input "$a9a/a9a" --output "$work/lin.h5" --no-progress > /dev/null 2>&1 || fail "linreg"
"$gyre" train logreg --online --input "$a9a/a9a" --warm-start "$work/lin.h5" --model-dir "$work/x" > /dev/null 2> "$work/log" \
  && fail "a linreg warm start was accepted"
grep -q "'linreg' model, not 'logreg'" "$work/log" || fail "refusal message: $(cat "$work/log")"
[ ! -e "$work/x" ] || fail "a refused run created the store"
"$gyre" train logreg --online --input "$a9a/a9a" > /dev/null 2> "$work/log" && fail "no --model-dir accepted"
grep -q -- "--model-dir" "$work/log" || fail "no --model-dir message: $(cat "$work/log")"
echo "online CLI: ok"
