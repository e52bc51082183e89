#!/usr/bin/env bash
# The example's output under mpiexec -n NP is byte-identical to its one-process output.
#   same_output_test.sh MPIEXEC NP PROGRAM [mpiexec flags...]
set -euo pipefail
mpiexec=$1; np=$2; program=$3; shift 3
alone=$(mktemp); spread=$(mktemp)
trap 'rm -f "$alone" "$spread"' EXIT
"$program" --top 50 > "$alone" 2>/dev/null
"$mpiexec" -n "$np" "$@" "$program" --top 50 > "$spread" 2>/dev/null
if ! diff "$alone" "$spread"; then echo "FAIL: output differs at $np ranks"; exit 1; fi
test -s "$alone" || { echo "FAIL: no output"; exit 1; }
echo "identical ($(wc -l < "$alone") lines) at 1 and $np ranks"
