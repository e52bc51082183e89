#!/usr/bin/env bash
# Quick start, command 2: installs what gyre needs, then builds and runs the whole test suite
# twice: Release, and RelWithDebInfo under AddressSanitizer + UndefinedBehaviorSanitizer.
#   scripts/run-tests.sh            both builds
#   scripts/run-tests.sh release    Release only (faster)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
presets=(release asan)
if [ $# -gt 0 ]; then presets=("$@"); fi
jobs=$(nproc)
for p in "${presets[@]}"; do
  echo "== $p: configure, build, test"
  cmake --preset "$p" > "build-$p-configure.log" 2>&1 || { cat "build-$p-configure.log"; exit 1; }
  rm -f "build-$p-configure.log"
  cmake --build --preset "$p" -j "$jobs"
  GTEST_COLOR=no ctest --preset "$p" -j "$jobs"
done
