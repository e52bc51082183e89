#!/usr/bin/env bash
# Quick start, command 1: installs what gyre needs, builds it (Release) and runs the example job
# (word count over the bundled text in datasets/text/), showing its plan and the top words.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release -DGYRE_BUILD_TESTS=OFF -DGYRE_BUILD_BENCH=OFF > build-configure.log 2>&1 \
  || { cat build-configure.log; exit 1; }
rm -f build-configure.log
cmake --build --preset release --target word_count
./build/release/examples/word_count "$@"
