#!/usr/bin/env bash
# Checkpoint overhead and recovery time of PageRank (20 supersteps) on a graph file, e.g. the
# Kronecker scale-22 graph (gyre generate --scale 22, then gyre convert to .h5):
#   bench/checkpoint_bench.sh GYRE GRAPH RANKS THREADS [REPEATS] [CHECKPOINT_DIR]
# For each setting (no checkpoints; head checkpoints every 5 supersteps; heads every 5 + tail
# logs in between) it runs PageRank REPEATS times and prints the iteration job's time (the
# --metrics "seconds": load excluded) and the overhead against no checkpoints (medians). Then
# it kills a rank at the start of superstep 18 (heads + tails) and times the resumed run:
# wall time of the whole command (load, restore, the remaining supersteps) and its job time.
set -euo pipefail
gyre=$1; graph=$2; ranks=$3; threads=$4; repeats=${5:-3}; ck=${6:-$(mktemp -d)/ck}
work=$(mktemp -d)
trap 'rm -rf "$work" "$ck"' EXIT
mpi=(mpirun -n "$ranks" --bind-to none --oversubscribe --allow-run-as-root --mca pml ob1 --mca btl self,vader)
run() {  # run OUTPUT_JSON [flags...]: the job's seconds
  local json=$1; shift
  "${mpi[@]}" "$gyre" pagerank --input "$graph" --output "$work/pr.txt" --threads "$threads" --no-progress \
    --metrics "$json" "$@" > "$work/log" 2>&1 < /dev/null || { cat "$work/log"; exit 1; }
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$json"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A t
for mode in none head both; do
  for i in $(seq "$repeats"); do
    rm -rf "$ck"
    case $mode in
      none) run "$work/m.json" ;;
      head) run "$work/m.json" --checkpoint-dir "$ck" --checkpoint-every 5 --checkpoint-mode head ;;
      both) run "$work/m.json" --checkpoint-dir "$ck" --checkpoint-every 5 --checkpoint-mode both ;;
    esac
  done > "$work/$mode.times"
  t[$mode]=$(median < "$work/$mode.times")
  echo "$mode: $(tr '\n' ' ' < "$work/$mode.times")s -> median ${t[$mode]} s"
done
for mode in head both; do
  awk -v a="${t[$mode]}" -v b="${t[none]}" -v m="$mode" 'BEGIN {printf "overhead %s: %.1f%%\n", m, (a / b - 1) * 100}'
done
du -sh "$ck" 2>/dev/null | awk '{print "checkpoint directory after the last run: " $1}'

# Recovery: kill at the start of superstep 18, resume.
rm -rf "$ck"
"${mpi[@]}" "$gyre" pagerank --input "$graph" --output "$work/pr.txt" --threads "$threads" --no-progress \
  --checkpoint-dir "$ck" --checkpoint-every 5 --inject-failure "rank=$((ranks - 1)),superstep=18,mode=kill" \
  > "$work/kill.log" 2>&1 < /dev/null && { echo "the killed run exited 0"; exit 1; }
start=$(date +%s.%N)
job=$(run "$work/r.json" --checkpoint-dir "$ck" --checkpoint-every 5 --resume)
end=$(date +%s.%N)
grep -h "resuming" "$work/log" | sed 's|/[^ ]*/ck/||g'
awk -v s="$start" -v e="$end" -v j="$job" 'BEGIN {printf "resume after the kill: %.2f s wall (load + restore + the rest), job %.3f s\n", e - s, j}'
