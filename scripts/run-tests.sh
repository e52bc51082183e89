#!/usr/bin/env bash
# Quick start, command 2: installs what gyre needs, then builds and runs the whole test suite
# twice: Release, and RelWithDebInfo under AddressSanitizer + UndefinedBehaviorSanitizer.
#   scripts/run-tests.sh            both builds
#   scripts/run-tests.sh release    Release only (faster)
# Every test runs whatever configured the build directory before (tests, examples and, in
# Release, benchmarks are switched on explicitly), and the run fails if a build has fewer tests
# than expected (a suite missing) or none.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
presets=(release asan)
if [ $# -gt 0 ]; then presets=("$@"); fi
# The fewest tests each build must have (ctest -N); a build with fewer lost a suite. Raise these
# when adding tests. The sanitizer build has no find_package_consumer test.
declare -A min_tests=([release]=588 [debug]=586 [asan]=586)
jobs=$(nproc)
for p in "${presets[@]}"; do
  echo "== $p: configure, build, test"
  cmake --preset "$p" -DGYRE_BUILD_TESTS=ON -DGYRE_BUILD_EXAMPLES=ON > "build-$p-configure.log" 2>&1 \
    || { cat "build-$p-configure.log"; exit 1; }
  rm -f "build-$p-configure.log"
  cmake --build --preset "$p" -j "$jobs"
  found=$(ctest --preset "$p" -N | sed -n 's/^Total Tests: \([0-9]*\)$/\1/p')
  min=${min_tests[$p]:-1}
  if [ -z "$found" ] || [ "$found" -lt "$min" ]; then
    echo "run-tests: build/$p has ${found:-no} tests, expected at least $min (a test suite is missing)" >&2
    exit 1
  fi
  GTEST_COLOR=no ctest --preset "$p" -j "$jobs" --no-tests=error
done
