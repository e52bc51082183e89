#!/usr/bin/python3
"""scripts/plot-metrics.py on the metrics of real `gyre pagerank` runs: every PNG it names exists
and is a valid PNG (signature, IHDR with a non-zero size, IEND at the end); the scaling plot from
two runs; a missing file, invalid JSON and a JSON that is no metrics file are clear errors.
Fails (never skips) when matplotlib is missing: scripts/setup.sh installs python3-matplotlib.

  plot_metrics_test.py PLOT_SCRIPT GYRE GRAPH
"""
import os
import struct
import subprocess
import sys
import tempfile

script, gyre, graph = sys.argv[1:4]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


try:
    import matplotlib  # noqa: F401
except ImportError:
    fail(f"matplotlib is missing for {sys.executable}: run scripts/setup.sh (it installs python3-matplotlib)")


def check_png(path):
    if not os.path.isfile(path):
        fail(f"{path}: not written")
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path}: no PNG signature")
    length, kind = struct.unpack(">I4s", data[8:16])
    width, height = struct.unpack(">II", data[16:24])
    if kind != b"IHDR" or length != 13 or width == 0 or height == 0:
        fail(f"{path}: bad IHDR")
    if data[-8:-4] != b"IEND":
        fail(f"{path}: no IEND chunk at the end (truncated)")
    return width, height


def run(args, expect_ok=True):
    r = subprocess.run([sys.executable, script] + args, capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        fail(f"plot-metrics {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r


with tempfile.TemporaryDirectory() as work:
    runs = []
    for threads in (2, 1):
        m = os.path.join(work, f"m{threads}.json")
        r = subprocess.run([gyre, "pagerank", "--input", graph, "--undirected", "--threads", str(threads),
                            "--no-progress", "--metrics", m, "--output", os.path.join(work, f"pr{threads}.txt")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"gyre pagerank exited {r.returncode}: {r.stderr}")
        runs.append(m)
    r = run([runs[0], "--out-dir", work, "--prefix", "pr"])
    names = [line.split(" ", 1)[1] for line in r.stdout.splitlines() if line.startswith("wrote ")]
    expected = [os.path.join(work, f"pr-{w}.png") for w in ("time", "convergence", "bytes", "overview")]
    if names != expected:
        fail(f"wrote {names}, expected {expected}")
    for p in expected:
        check_png(p)
    out = os.path.join(work, "scaling.png")
    run(["--scaling"] + runs + ["--labels", "2 threads,1 thread", "--out", out])
    check_png(out)
    run(["--scaling"] + runs + ["--out-dir", work])  # default labels and name
    check_png(os.path.join(work, "scaling.png"))

    # Clear errors, non-zero exits, no PNG written.
    bad = os.path.join(work, "bad.json")
    open(bad, "w").write('{"jobs": [')
    other = os.path.join(work, "other.json")
    open(other, "w").write('{"hello": 1}')
    for args, words in (([os.path.join(work, "missing.json"), "--out-dir", work], "cannot read"),
                        ([bad, "--out-dir", work], "not valid JSON (line 1"),
                        ([other, "--out-dir", work], "not a gyre metrics file"),
                        (["--scaling", runs[0], bad, "--out", os.path.join(work, "s2.png")], "not valid JSON"),
                        ([], "give one metrics file")):
        r = run(args, expect_ok=False)
        if r.returncode == 0 or words not in r.stderr:
            fail(f"plot-metrics {args}: exit {r.returncode}, stderr {r.stderr!r} (expected {words!r})")
    for stray in ("bad-time.png", "other-time.png", "s2.png"):
        if os.path.exists(os.path.join(work, stray)):
            fail(f"{stray} written for an invalid input")
print("plot-metrics: all PNGs valid, errors clear")
