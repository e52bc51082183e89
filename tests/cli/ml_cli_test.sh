#!/usr/bin/env bash
# gyre train / predict / evaluate end to end: a9a logreg (test AUC and log loss against liblinear's
# figures), linreg and kmeans on generated data; the same model, predictions and metrics alone and
# under mpiexec -n NP; malformed input refused with FILE:LINE and exit 1, usage errors exit 2,
# and no output written (an existing one left as it was).
#   ml_cli_test.sh MPIEXEC NP GYRE DATASETS [mpiexec flags...]
set -uo pipefail
mpiexec=$1; np=$2; gyre=$3; data=$4; shift 4
mpiexec_flags=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
a9a="$data/ml/a9a"
mpi() { "$mpiexec" -n "$np" "${mpiexec_flags[@]}" "$gyre" "$@" < /dev/null; }

"$gyre" --help | grep -q "train" || fail "--help does not list train"
"$gyre" train logreg --help | grep -q -- "--l2" || fail "train logreg --help has no --l2"

# ---- a9a: logistic regression alone and at NP ranks
"$gyre" train logreg --input "$a9a/a9a" --test "$a9a/a9a.t" --output "$work/a1.h5" --metrics "$work/m1.json" \
  > "$work/log" 2>&1 || fail "train logreg alone: $(cat "$work/log")"
grep -q "converged" "$work/log" || fail "train logreg: no 'converged' in: $(cat "$work/log")"
grep -q '"test_auc"' "$work/m1.json" || fail "--metrics has no per-superstep test_auc"
grep -q '"gradient_norm"' "$work/m1.json" || fail "--metrics has no gradient_norm"
mpi train logreg --input "$a9a/a9a" --output "$work/a2.h5" > "$work/log" 2>&1 || fail "train logreg -n $np: $(cat "$work/log")"
h5dump -d /weights "$work/a1.h5" > /dev/null || fail "h5dump cannot read the model"
"$gyre" evaluate --model "$work/a1.h5" --input "$a9a/a9a.t" --metrics "$work/e1.json" > "$work/e1" 2>&1 || fail "evaluate: $(cat "$work/e1")"
mpi evaluate --model "$work/a2.h5" --input "$a9a/a9a.t" > "$work/e2" 2>&1 || fail "evaluate -n $np: $(cat "$work/e2")"
cmp -s "$work/e1" "$work/e2" || fail "evaluate differs alone and at $np ranks: $(diff "$work/e1" "$work/e2")"
awk '$1 == "auc" && $2 >= 0.9020 { a = 1 } $1 == "log_loss" && $2 <= 0.3242 { l = 1 } END { exit !(a && l) }' "$work/e1" \
  || fail "a9a test AUC / log loss below liblinear's: $(cat "$work/e1")"
grep -q '"auc"' "$work/e1.json" || fail "evaluate --metrics has no auc"
"$gyre" predict --model "$work/a1.h5" --input "$a9a/a9a.t" --output "$work/p1" > "$work/log" 2>&1 || fail "predict: $(cat "$work/log")"
mpi predict --model "$work/a2.h5" --input "$a9a/a9a.t" --output "$work/p2" > "$work/log" 2>&1 || fail "predict -n $np: $(cat "$work/log")"
[ "$(wc -l < "$work/p1")" = 16281 ] || fail "predict: $(wc -l < "$work/p1") lines, not 16281"
awk 'NF != 2 || $2 != 1 || $1 < 0 || $1 > 1 { bad = 1 } END { exit bad }' "$work/p1" || fail "predict lines are not 'probability 1': $(head -3 "$work/p1")"
cmp -s "$work/p1" "$work/p2" || fail "predictions differ alone and at $np ranks (the models differ)"

# ---- linreg and kmeans on generated data (LIBSVM and CSV)
awk 'BEGIN { srand(7); for (i = 0; i < 3000; i++) { x1 = rand(); x2 = rand() * 2; x3 = rand() - 0.5
  printf "%.6f 1:%.6f 2:%.6f 4:%.6f\n", 3 * x1 - x2 + 0.5 * x3 + 0.01 * rand(), x1, x2, x3 } }' > "$work/reg.svm"
"$gyre" train linreg --input "$work/reg.svm" --output "$work/r1.h5" > "$work/log" 2>&1 || fail "train linreg: $(cat "$work/log")"
mpi train linreg --input "$work/reg.svm" --output "$work/r2.h5" > "$work/log" 2>&1 || fail "train linreg -n $np: $(cat "$work/log")"
"$gyre" predict --model "$work/r1.h5" --input "$work/reg.svm" --output "$work/rp1" > /dev/null 2>&1 || fail "predict linreg"
mpi predict --model "$work/r2.h5" --input "$work/reg.svm" --output "$work/rp2" > /dev/null 2>&1 || fail "predict linreg -n $np"
cmp -s "$work/rp1" "$work/rp2" || fail "linreg predictions differ alone and at $np ranks"
"$gyre" evaluate --model "$work/r1.h5" --input "$work/reg.svm" > "$work/re" 2>&1 || fail "evaluate linreg"
awk '$1 == "rmse" && $2 < 0.2 { ok = 1 } END { exit !ok }' "$work/re" || fail "linreg RMSE: $(cat "$work/re")"

awk 'BEGIN { srand(3); print "label,x,y,z"; for (i = 0; i < 4000; i++) { c = i % 4
  printf "%d,%.5f,%.5f,%.5f\n", c, c * 3 + rand(), (c % 2) * 4 + rand(), rand() } }' > "$work/pts.csv"
"$gyre" train kmeans --k 4 --input "$work/pts.csv" --seed 2 --output "$work/k1.h5" --metrics "$work/km.json" > "$work/log" 2>&1 \
  || fail "train kmeans: $(cat "$work/log")"
grep -q '"inertia"' "$work/km.json" || fail "kmeans --metrics has no inertia"
mpi train kmeans --k 4 --input "$work/pts.csv" --seed 2 --output "$work/k2.h5" > "$work/log" 2>&1 || fail "train kmeans -n $np: $(cat "$work/log")"
"$gyre" predict --model "$work/k1.h5" --input "$work/pts.csv" --output "$work/kp1" > /dev/null 2>&1 || fail "predict kmeans"
mpi predict --model "$work/k2.h5" --input "$work/pts.csv" --output "$work/kp2" > /dev/null 2>&1 || fail "predict kmeans -n $np"
cmp -s "$work/kp1" "$work/kp2" || fail "kmeans assignments differ alone and at $np ranks"
[ "$(cut -d' ' -f1 "$work/kp1" | sort -u | wc -l)" = 4 ] || fail "kmeans: not 4 clusters used"
"$gyre" evaluate --model "$work/k1.h5" --input "$work/pts.csv" > "$work/ke" 2>&1 || fail "evaluate kmeans"
grep -q "^inertia " "$work/ke" || fail "evaluate kmeans: no inertia: $(cat "$work/ke")"

# ---- refusals: FILE:LINE, exit 1, nothing written; usage errors exit 2
printf '+1 1:1 2:1\n-1 3:1\n+1 5:1 4:1\n-1 2:2\n' > "$work/bad.svm"
echo "keep" > "$work/existing.h5"
alone() { "$gyre" "$@" < /dev/null; }
for runner in alone mpi; do
  $runner train logreg --input "$work/bad.svm" --output "$work/bad.h5" > "$work/log" 2>&1 </dev/null
  [ $? = 1 ] || fail "$runner: a malformed row did not exit 1"
  grep -q "gyre: error: $work/bad.svm:3: feature index 4 after 5" "$work/log" || fail "$runner: no FILE:LINE error: $(cat "$work/log")"
  [ -e "$work/bad.h5" ] && fail "$runner: a model was written for malformed input"
  ls "$work" | grep -q "gyre-tmp" && fail "$runner: a temporary file was left behind"
  $runner predict --model "$work/a1.h5" --input "$work/bad.svm" --output "$work/existing.h5" > "$work/log" 2>&1 </dev/null
  [ $? = 1 ] || fail "$runner: predict on a malformed row did not exit 1"
  [ "$(cat "$work/existing.h5")" = keep ] || fail "$runner: predict overwrote its output on failure"
done
"$gyre" predict --model "$work/existing.h5" --input "$a9a/a9a.t" --output "$work/x" > "$work/log" 2>&1
[ $? = 1 ] || fail "a model that is not HDF5 did not exit 1"
grep -q "existing.h5" "$work/log" || fail "the model error does not name the file: $(cat "$work/log")"
"$gyre" train logreg --output "$work/x.h5" > "$work/log" 2>&1
rc=$?; [ $rc = 2 ] || fail "train logreg without --input: exit $rc, not 2 (a usage error)"
grep -q -- "--input is required" "$work/log" || fail "no usage message: $(cat "$work/log")"
"$gyre" train logreg --online --input "$a9a/a9a" --model-dir "$work/store-x" --output "$work/x.h5" > "$work/log" 2>&1
rc=$?; [ $rc = 2 ] || fail "--online with --output (an offline option): exit $rc, not 2"
grep -q -- "excludes" "$work/log" || fail "--online --output: no usage message: $(cat "$work/log")"
test ! -e "$work/x.h5" && test ! -e "$work/store-x" || fail "--online --output wrote something"
"$gyre" train logreg --input "$a9a/a9a" --output "$a9a/a9a" > "$work/log" 2>&1
[ $? = 1 ] || fail "--output = --input did not exit 1: $(cat "$work/log")"
"$gyre" train logreg --input "$work/nonexistent" --output "$work/x.h5" > "$work/log" 2>&1
[ $? = 1 ] || fail "a missing input did not exit 1"
grep -q "nonexistent" "$work/log" || fail "the missing input is not named: $(cat "$work/log")"
echo "ml CLI: all checks passed"
