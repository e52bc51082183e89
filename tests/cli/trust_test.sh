#!/usr/bin/env bash
# The gyre command refuses what would silently give a wrong answer or lose data:
#  - an --output (or --metrics) that is an input file, or the same file as the other, is refused
#    before anything is loaded, and the input is left as it was;
#  - an unwritable --output is reported before loading (no "loaded" line);
#  - a Graphalytics .properties file's PageRank parameters are used (p2p-31 within 1e-4 of the
#    reference), flags override them;
#  - --resume refuses checkpoints of another computation: other --iterations, or an input edited
#    in place with the same size and modification time;
#  - number flags say what they want in words; cc prints its components;
#  - a full disk while writing a graph or result is an error naming the file, exit 1;
#  - without mpirun the command does not initialise MPI (no orted daemon is started).
#   trust_test.sh MPIEXEC NP GYRE DATASETS [mpiexec flags...]
set -uo pipefail
mpiexec=$1; np=$2; gyre=$3; data=$4; shift 4
mpiexec_flags=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
snap="$data/snap/email-Eu-core/email-Eu-core.txt"
cp "$snap" "$work/g.txt"
cp "$snap" "$work/g.orig"

# Output = input, metrics = output: refused, input unchanged, nothing loaded.
if "$gyre" pagerank --input "$work/g.txt" --output "$work/g.txt" 2> "$work/err"; then fail "output = input accepted"; fi
grep -q "is an input file" "$work/err" || fail "unclear error: $(cat "$work/err")"
cmp -s "$work/g.txt" "$work/g.orig" || fail "the input was changed"
ln -s g.txt "$work/link.txt"
if "$gyre" cc --input "$work/link.txt" --output "$work/g.txt" 2> "$work/err"; then fail "output = input via a symlink accepted"; fi
cmp -s "$work/g.txt" "$work/g.orig" || fail "the input was changed (symlink)"
if "$gyre" cc --input "$work/g.txt" --output "$work/o.txt" --metrics "$work/o.txt" 2> "$work/err"; then
  fail "metrics = output accepted"; fi
grep -q "are the same file" "$work/err" || fail "unclear error: $(cat "$work/err")"
test ! -e "$work/o.txt" || fail "output written despite the error"
if "$gyre" convert --input "$work/g.txt" --output "$work/g.txt" 2> "$work/err"; then fail "convert output = input accepted"; fi
cmp -s "$work/g.txt" "$work/g.orig" || fail "convert changed the input"
# Under mpiexec too: every rank refuses, non-zero exit.
if "$mpiexec" -n "$np" "${mpiexec_flags[@]}" "$gyre" pagerank --input "$work/g.txt" --output "$work/g.txt" \
     > "$work/err" 2>&1; then fail "output = input accepted under mpiexec"; fi
cmp -s "$work/g.txt" "$work/g.orig" || fail "the input was changed under mpiexec"

# An output that is a device is refused and left as it is (renaming over it would replace it);
# an output that is a symbolic link is written through to its target.
mknod "$work/nulldev" c 1 3 || fail "test set-up: mknod"
if "$gyre" pagerank --input "$work/g.txt" --output "$work/nulldev" 2> "$work/err"; then fail "a device as output accepted"; fi
grep -q "is not a regular file (a device)" "$work/err" || fail "unclear error: $(cat "$work/err")"
test -c "$work/nulldev" || fail "the device was replaced"
if "$gyre" generate --scale 4 --output "$work/nulldev" 2> "$work/err"; then fail "generate to a device accepted"; fi
test -c "$work/nulldev" || fail "generate replaced the device"
ln -s target.txt "$work/outlink"
"$gyre" cc --input "$work/g.txt" --output "$work/outlink" --no-progress 2> "$work/err" || fail "cc to a symlink: $(cat "$work/err")"
test -L "$work/outlink" && test -s "$work/target.txt" || fail "the symlink was replaced instead of written through"
# generate writes plain text: a .gz name is refused (gyre would then refuse to read it).
if "$gyre" generate --scale 4 --output "$work/g.gz" 2> "$work/err"; then fail "generate --output x.gz accepted"; fi
test ! -e "$work/g.gz" || fail "generate wrote $work/g.gz"

# An empty or comments-only input is an error, not an empty result.
printf '# nothing here\n' > "$work/empty.txt"
for cmd in pagerank cc; do
  if "$gyre" "$cmd" --input "$work/empty.txt" --output "$work/o.txt" 2> "$work/err"; then fail "$cmd on an empty graph exited 0"; fi
  grep -q "has no vertices" "$work/err" || fail "unclear error: $(cat "$work/err")"
  test ! -e "$work/o.txt" || fail "output written for an empty graph"
done
# A .properties file whose meta.vertices disagrees with its vertex file (a cut .v).
gdir="$data/graphalytics"
sed -e 's/meta.vertices = 10/meta.vertices = 11/' -e "s|= example-directed\.|= $gdir/example-directed.|" \
  "$gdir/example-directed.properties" > "$work/x.properties"
if "$gyre" pagerank --input "$work/x.properties" --output "$work/o.txt" 2> "$work/err"; then fail "meta.vertices mismatch accepted"; fi
grep -q "meta.vertices = 11 but" "$work/err" || fail "unclear error: $(cat "$work/err")"

# An unwritable output is reported before the graph is loaded.
if "$gyre" pagerank --input "$work/g.txt" --output "$work/no/such/dir/pr.txt" 2> "$work/err"; then
  fail "output in a missing directory accepted"; fi
grep -q "does not exist" "$work/err" || fail "unclear error: $(cat "$work/err")"
grep -q "^loaded" "$work/err" && fail "the graph was loaded before the output was checked"
mkdir "$work/adir"
if "$gyre" cc --input "$work/g.txt" --output "$work/adir" 2> "$work/err"; then fail "output = a directory accepted"; fi
grep -q "is not a regular file (a directory)" "$work/err" || fail "unclear error: $(cat "$work/err")"

# Graphalytics parameters: p2p-31 says 10 iterations; the reference is within 1e-4.
props="$data/graphalytics/p2p-31/p2p-31.properties"
ref="$data/graphalytics/p2p-31/p2p-31-PR"
"$gyre" pagerank --input "$props" --output "$work/p2p.pr" --no-progress 2> "$work/log" || fail "p2p-31: $(cat "$work/log")"
grep -q "iterations 10" "$work/log" || fail "p2p-31: the file's iterations were not reported: $(cat "$work/log")"
grep -q "10 supersteps" "$work/log" || fail "p2p-31: not 10 iterations: $(cat "$work/log")"
worst() { awk 'NR == FNR { r[$1] = $2; next } { d = ($2 - r[$1]) / r[$1]; if (d < 0) d = -d; if (d > m) m = d }
               END { printf "%.3g", m }' "$ref" "$1"; }
awk -v m="$(worst "$work/p2p.pr")" 'BEGIN { exit !(m <= 1e-4) }' || fail "p2p-31 PR off the reference by $(worst "$work/p2p.pr")"
"$gyre" pagerank --input "$props" --iterations 20 --output "$work/p2p20.pr" --no-progress 2> "$work/log" ||
  fail "p2p-31 --iterations 20: $(cat "$work/log")"
grep -q "20 supersteps" "$work/log" || fail "--iterations did not override the file: $(cat "$work/log")"

# Resume of another computation is refused.
run() { "$gyre" pagerank --input "$1" --output "$work/pr.out" --threads 1 --no-progress --checkpoint-dir "$work/ck" \
          --checkpoint-every 2 --checkpoint-wait "${@:2}" > "$work/log" 2>&1 < /dev/null; }
run "$work/g.txt" --inject-failure rank=0,superstep=12,mode=kill && fail "the injected kill did not happen"
if run "$work/g.txt" --resume --iterations 10; then fail "a 20-iteration checkpoint resumed with --iterations 10"; fi
grep -q "belongs to another job" "$work/log" || fail "unclear error: $(cat "$work/log")"
test ! -e "$work/pr.out" || fail "output written by a refused resume"
# The same size and modification time, another content: still refused.
sed -i 's/^0 /1 /' "$work/g.txt"
touch -r "$work/g.orig" "$work/g.txt"
test "$(stat -c %s "$work/g.txt")" = "$(stat -c %s "$work/g.orig")" || fail "test set-up: sizes differ"
if run "$work/g.txt" --resume; then fail "checkpoints of another input content resumed"; fi
grep -q "belongs to another job" "$work/log" || fail "unclear error: $(cat "$work/log")"
cp "$work/g.orig" "$work/g.txt"
run "$work/g.txt" --resume || fail "the matching resume failed: $(cat "$work/log")"
grep -q "resumed after superstep" "$work/log" || fail "did not resume: $(cat "$work/log")"

# Number flags.
if "$gyre" cc --input "$work/g.txt" --output "$work/o.txt" --threads -1 2> "$work/err"; then fail "--threads -1 accepted"; fi
grep -q "must be a whole number, 0 or more (got -1)" "$work/err" || fail "unclear error: $(cat "$work/err")"
grep -q "[0-9]\{20\}" "$work/err" && fail "a huge bound in the message: $(cat "$work/err")"
if "$gyre" pagerank --input "$work/g.txt" --output "$work/o.txt" --damping 1.5 2> "$work/err"; then fail "--damping 1.5 accepted"; fi
grep -q "between 0 and 1" "$work/err" || fail "unclear error: $(cat "$work/err")"

# cc says what it found.
"$gyre" cc --input "$work/g.txt" --output "$work/cc.out" --no-progress 2> "$work/log" || fail "cc: $(cat "$work/log")"
grep -q "^loaded 1005 vertices" "$work/log" || fail "cc: no loaded line: $(cat "$work/log")"
n=$(awk '{ print $2 }' "$work/cc.out" | sort -u | wc -l)
grep -q "$n components (largest: " "$work/log" || fail "cc: no component summary ($n components): $(cat "$work/log")"

# A full file system while writing a graph or a result: a message naming the file, exit 1, no
# crash (HDF5 builds the file in memory), nothing left behind.
[ "$(id -u)" -eq 0 ] || fail "the full-disk check mounts a small tmpfs and needs root (CI runs as root)"
mkdir "$work/full"
mount -t tmpfs -o size=12k tmpfs "$work/full" || fail "cannot mount a tmpfs at $work/full"
for out in g.h5 pr.h5 pr.txt; do
  cmd=pagerank; [ "$out" = g.h5 ] && cmd=convert
  "$gyre" "$cmd" --input "$work/g.txt" --output "$work/full/$out" > "$work/err" 2>&1; rc=$?
  [ "$rc" -eq 1 ] || { umount "$work/full"; fail "$cmd to a full disk: exit $rc, not 1: $(cat "$work/err")"; }
  grep -q "cannot write output file '$work/full/$out': No space left on device" "$work/err" ||
    { umount "$work/full"; fail "$cmd to a full disk: unclear error: $(cat "$work/err")"; }
  left=$(ls -A "$work/full")
  [ -z "$left" ] || { umount "$work/full"; fail "$cmd to a full disk left $left"; }
done
umount "$work/full"

# Without mpirun there is no MPI: no orted is started (Open MPI's singleton start-up).
"$gyre" cc --input "$work/g.txt" --output "$work/cc2.out" --no-progress 2>/dev/null &
pid=$!
for _ in 1 2 3 4 5 6 7 8 9 10; do pgrep -P "$pid" orted > /dev/null && fail "an orted daemon was started"; sleep 0.02; done
wait "$pid" || fail "cc failed"
echo "ok: trust checks at $np ranks"
