#!/usr/bin/env bash
# Quick start, command 1: installs what gyre needs, builds it (Release) and runs the main jobs
# under mpirun on 2 ranks: PageRank and connected components of the bundled example graph
# (datasets/graphs/rmat-10.txt) with the `gyre` command, showing the top results; then word
# count over the bundled text, with its plan and a job summary. Arguments go to word count.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The same build directory and configuration as scripts/run-tests.sh (tests stay configured), but
# only the two programs shown here are built.
cmake --preset release > build-configure.log 2>&1 || { cat build-configure.log; exit 1; }
rm -f build-configure.log
cmake --build --preset release --target gyre_cli word_count
mpirun=(mpirun -n 2 --bind-to none --oversubscribe --allow-run-as-root --mca pml ob1 --mca btl self,vader)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
graph=datasets/graphs/rmat-10.txt

echo "== gyre pagerank --input $graph (2 ranks)"
"${mpirun[@]}" ./build/release/cli/gyre pagerank --input "$graph" --output "$out/pr.txt" --threads 1 --no-progress
echo "top 10 vertices by PageRank:"
sort -k2,2 -g -r "$out/pr.txt" | awk 'NR <= 10 { printf "  %6s  %.6f\n", $1, $2 }'

echo "== gyre cc --input $graph (2 ranks)"
"${mpirun[@]}" ./build/release/cli/gyre cc --input "$graph" --output "$out/cc.txt" --threads 1 --no-progress
echo "largest components (label = smallest vertex id, vertices):"
awk '{ n[$2]++ } END { for (l in n) print l, n[l] }' "$out/cc.txt" | sort -k2,2 -n -r \
  | awk 'NR <= 5 { printf "  %6s  %d\n", $1, $2 }'

echo "== word count (2 ranks)"
"${mpirun[@]}" ./build/release/examples/word_count --explain "$@"
