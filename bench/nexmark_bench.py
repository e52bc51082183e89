#!/usr/bin/env python3
"""Nexmark benchmarks (issue 15): q0, q1, q2, q5, q7, q8, q11 in events/s per core at
1 rank x 2 threads and 2 ranks x 1 thread, the generator in the same process, beside the
hand-written single-threaded q5 loop in the same run; window latency p50/p99 at a fixed rate
with a 1 ms buffer timeout; peak memory of q11 over growing event-time spans.

    bench/nexmark_bench.py --build build/release [--events 10000000] [--skip-latency] [--skip-memory]

Prints a Markdown table (with the load average before and after each run) and the raw JSON.
The baseline is checked against gyre's q5 lines on a small input first.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

MPI = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "--mca", "pml", "ob1",
       "--mca", "btl", "self,vader"]
TARGETS = {"q0": 2e6, "q1": 2e6, "q2": 2e6, "q5": 0.5e6, "q7": 0.3e6, "q8": 0.3e6, "q11": 0.3e6}


def load():
    return "%.2f" % os.getloadavg()[0]


def run_json(cmd):
    before = load()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    r = json.loads(line)
    r["load_before"], r["load_after"] = before, load()
    r["command"] = " ".join(cmd)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--queries", default="q0,q1,q2,q5,q7,q8,q11")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    a = ap.parse_args()
    bench = os.path.join(a.build, "bench", "nexmark_bench")
    baseline = os.path.join(a.build, "bench", "nexmark_baseline")
    gyre = os.path.join(a.build, "cli", "gyre")
    results = []

    # The baseline is only a reference if it is right: its q5 lines against gyre's.
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([baseline, "--events", "300000", "--output", f"{d}/base"], check=True, capture_output=True)
        subprocess.run([gyre, "nexmark", "--query", "q5", "--events", "300000", "--output", f"{d}/gyre"], check=True,
                       capture_output=True)
        if sorted(open(f"{d}/base").read().splitlines()) != sorted(open(f"{d}/gyre").read().splitlines()):
            sys.exit("the hand-written q5 gives other lines than gyre nexmark q5")

    rows = []
    for q in a.queries.split(","):
        r1 = run_json([bench, "--query", q, "--events", str(a.events), "--threads", "2"])
        r2 = run_json(MPI + ["-np", "2", bench, "--query", q, "--events", str(a.events), "--threads", "1"])
        results += [r1, r2]
        base = None
        if q == "q5":
            base = run_json([baseline, "--events", str(a.events)])
            results.append(base)
        rows.append((q, r1, r2, base))

    print("| query | 1 rank x 2 threads (ev/s/core) | 2 ranks x 1 thread (ev/s/core) | target | events per CPU s "
          "(1x2, 2x1) | results | hand-written, 1 thread (ev/s; per CPU s) | load avg (before/after) |")
    print("|---|---|---|---|---|---|---|---|")
    for q, r1, r2, base in rows:
        t = TARGETS.get(q, 0)
        best = max(r1["events_per_s_per_core"], r2["events_per_s_per_core"])
        mark = "met" if best >= t else "missed"
        b = "%.2fM; %.2fM (gyre/hand per core: %.2f, %.2f; per CPU s: %.2f, %.2f)" % (
            base["events_per_s_per_core"] / 1e6, base["events_per_cpu_s"] / 1e6,
            r1["events_per_s_per_core"] / base["events_per_s_per_core"],
            r2["events_per_s_per_core"] / base["events_per_s_per_core"],
            r1["events_per_cpu_s"] / base["events_per_cpu_s"], r2["events_per_cpu_s"] / base["events_per_cpu_s"]) if base else ""
        print("| %s | %.2fM | %.2fM | %.1fM (%s) | %.2fM, %.2fM | %d | %s | %s/%s, %s/%s |" % (
            q, r1["events_per_s_per_core"] / 1e6, r2["events_per_s_per_core"] / 1e6, t / 1e6, mark,
            r1["events_per_cpu_s"] / 1e6, r2["events_per_cpu_s"] / 1e6, r1["results"], b,
            r1["load_before"], r1["load_after"], r2["load_before"], r2["load_after"]))

    if not a.skip_latency:
        print("\n| query | rate | buffer timeout | windows | p50 | p99 | max | load avg |")
        print("|---|---|---|---|---|---|---|---|")
        for q in ["q5", "q7", "q11"]:
            # 100k events/s for 20 s of processing time (200 s of event time).
            r = run_json([bench, "--query", q, "--events", "2000000", "--threads", "2", "--rate", "100000",
                          "--buffer-timeout-ms", "1"])
            results.append(r)
            print("| %s | 100k/s | 1 ms | %d | %.2f ms | %.2f ms | %.2f ms | %s/%s |" % (
                q, r["windows_measured"], r["latency_p50_ms"], r["latency_p99_ms"], r["latency_max_ms"],
                r["load_before"], r["load_after"]))

    if not a.skip_memory:
        print("\n| q11 events | event-time span | peak RSS | seconds | load avg |")
        print("|---|---|---|---|---|")
        for n in [1_000_000, 4_000_000, 16_000_000]:
            r = run_json([bench, "--query", "q11", "--events", str(n), "--threads", "2"])
            results.append(r)
            print("| %d | %d s | %.0f MB | %.1f | %s/%s |" % (n, n // 10000, r["peak_rss_mb"], r["seconds"],
                                                            r["load_before"], r["load_after"]))

    print("\nraw:")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
