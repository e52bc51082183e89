#!/usr/bin/env bash
# A rank killed with SIGKILL must end the whole job within seconds with a non-zero exit.
#   kill_test.sh MPIEXEC NP HELPER [mpiexec flags...]
set -u
mpiexec=$1; np=$2; helper=$3; shift 3
start=$(date +%s.%N)
timeout 60 "$mpiexec" -n "$np" "$@" "$helper" $((np - 1)) 300 > /tmp/gyre_kill_test.$$.log 2>&1
rc=$?
end=$(date +%s.%N)
elapsed=$(echo "$end - $start" | bc)
echo "mpiexec exit code $rc after ${elapsed} s"
rm -f /tmp/gyre_kill_test.$$.log
if [ "$rc" -eq 0 ]; then echo "FAIL: the job exited 0"; exit 1; fi
if [ "$rc" -eq 124 ]; then echo "FAIL: the job hung (killed by timeout after 60 s)"; exit 1; fi
if [ "$(echo "$elapsed > 10" | bc)" -eq 1 ]; then echo "FAIL: took more than 10 s"; exit 1; fi
echo "ok"
