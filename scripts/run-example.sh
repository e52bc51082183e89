#!/usr/bin/env bash
# Quick start, command 1: installs what gyre needs, builds it (Release) and runs the example job
# (word count over the bundled text in datasets/text/) under mpirun on 2 ranks, showing its plan,
# a job summary and the top words. Arguments go to the example (a file, --top N, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release -DGYRE_BUILD_TESTS=OFF -DGYRE_BUILD_BENCH=OFF > build-configure.log 2>&1 \
  || { cat build-configure.log; exit 1; }
rm -f build-configure.log
cmake --build --preset release --target word_count
mpirun -n 2 --bind-to none --oversubscribe --allow-run-as-root --mca pml ob1 --mca btl self,vader \
  ./build/release/examples/word_count --explain "$@"
