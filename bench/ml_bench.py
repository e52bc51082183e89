#!/usr/bin/python3
"""Offline ML benchmark: `gyre train logreg` on a9a end to end beside liblinear-train, k-means
Lloyd steps beside a hand-written Eigen loop, and scoring throughput on parsed rows.

  bench/ml_bench.py [--build build/release] [--data ../shared/datasets/ml/a9a] [--repeat N]
                    [--kmeans-rows 200000] [--json OUT.json]

(1) a9a: the whole command as a user runs it (start, parse, train, write the model), timed from
    outside, alternating `gyre train logreg --input a9a --output M.h5` (default threads, and
    --threads 1) with Debian's `liblinear-train -q -s 0 -B 1 a9a M.model` in the same run
    (package liblinear-tools); median wall time of --repeat runs each; test AUC of both models.
(2) k-means: --kmeans-rows uniform random points in [0,1]^16 (CSV, made once in a temp dir),
    k = 16, 10 Lloyd steps from the first 16 rows, one thread: `ml_baseline kmeans-eigen`
    (Eigen, rowwise squared norms) against `ml_baseline kmeans-gyre` (gyre::ml::kmeans_lloyd on
    the parsed rows); seconds per step, median of 3.
(3) scoring: `ml_baseline score` (gyre::ml::score, one thread) on a9a.t's parsed rows.
The machine's load average is printed beside the figures.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def timed(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"ml_bench: {' '.join(cmd)} failed:\n{p.stderr}")
    return t, p.stdout


def json_line(out):
    return json.loads(out.strip().splitlines()[-1])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(here, "..", "build", "release"))
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "datasets", "ml", "a9a"))
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--kmeans-rows", type=int, default=200000)
    ap.add_argument("--json")
    a = ap.parse_args()
    gyre = os.path.join(a.build, "cli", "gyre")
    base = os.path.join(a.build, "bench", "ml_baseline")
    for exe in (gyre, base):
        if not os.access(exe, os.X_OK):
            sys.exit(f"ml_bench: {exe} not built (cmake --build {a.build} --target gyre_cli ml_baseline)")
    liblinear = "/usr/bin/liblinear-train"
    if not os.access(liblinear, os.X_OK):
        sys.exit("ml_bench: liblinear-train missing (apt-get install -y liblinear-tools; scripts/setup.sh)")
    train, test = os.path.join(a.data, "a9a"), os.path.join(a.data, "a9a.t")
    results = {"load_before": loadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        model, llmodel = os.path.join(tmp, "a9a.h5"), os.path.join(tmp, "a9a.model")
        runs = {"gyre": [], "gyre --threads 1": [], "liblinear-train -s 0 -B 1": []}
        cmds = {
            "gyre": [gyre, "train", "logreg", "--input", train, "--output", model, "--no-progress"],
            "gyre --threads 1": [gyre, "train", "logreg", "--input", train, "--output", model, "--no-progress",
                                 "--threads", "1"],
            "liblinear-train -s 0 -B 1": [liblinear, "-q", "-s", "0", "-B", "1", train, llmodel],
        }
        for _ in range(a.repeat):
            for name, cmd in cmds.items():
                runs[name].append(timed(cmd)[0])
        _, ev = timed([gyre, "evaluate", "--model", model, "--input", test])
        gyre_metrics = dict((l.split()[0], float(l.split()[1])) for l in ev.splitlines())
        # liblinear's test AUC, from its decision values (-b 1 probabilities).
        p = subprocess.run(["/usr/bin/liblinear-predict", "-b", "1", test, llmodel, os.path.join(tmp, "ll.out")],
                           stdout=subprocess.PIPE, text=True)
        ll_auc = None
        if p.returncode == 0:
            lines = open(os.path.join(tmp, "ll.out")).read().split("\n")
            header = lines[0].split()
            col = header.index("1") if "1" in header else header.index("+1")
            probs = [float(l.split()[col]) for l in lines[1:] if l.strip()]
            labels = [float(l.split()[0]) > 0 for l in open(test) if l.strip()]
            order = sorted(range(len(probs)), key=lambda i: probs[i])
            ranks, i = [0.0] * len(probs), 0
            while i < len(order):
                j = i
                while j < len(order) and probs[order[j]] == probs[order[i]]:
                    j += 1
                for t in range(i, j):
                    ranks[order[t]] = (i + 1 + j) / 2
                i = j
            pos = sum(labels)
            neg = len(labels) - pos
            ll_auc = (sum(r for r, y in zip(ranks, labels) if y) - pos * (pos + 1) / 2) / (pos * neg)
        med = {k: statistics.median(v) for k, v in runs.items()}
        results["a9a"] = {"median_seconds": med, "runs": runs, "gyre_test": gyre_metrics, "liblinear_test_auc": ll_auc}
        ll = med["liblinear-train -s 0 -B 1"]
        print(f"a9a end to end (median of {a.repeat}, load {results['load_before']}):")
        for k, v in med.items():
            print(f"  {k:28s} {v * 1000:8.1f} ms   {v / ll:5.2f}x liblinear")
        print(f"  test AUC: gyre {gyre_metrics.get('auc'):.4f} (log loss {gyre_metrics.get('log_loss'):.4f}), "
              f"liblinear {ll_auc if ll_auc is None else round(ll_auc, 4)}")

        # k-means
        csv = os.path.join(tmp, "points.csv")
        import random
        rng = random.Random(1)
        with open(csv, "w") as f:
            f.write("label," + ",".join(f"x{j}" for j in range(16)) + "\n")
            for i in range(a.kmeans_rows):
                f.write("0," + ",".join(f"{rng.random():.5f}" for _ in range(16)) + "\n")
        km = {"eigen": [], "gyre": []}
        inertia = {}
        for _ in range(3):
            for name in km:
                _, out = timed([base, "kmeans-" + name, csv, "16", "10"])
                j = json_line(out)
                km[name].append(j["seconds_per_iteration"])
                inertia[name] = j["inertia"]
        kmed = {k: statistics.median(v) for k, v in km.items()}
        results["kmeans"] = {"rows": a.kmeans_rows, "dimension": 16, "k": 16, "seconds_per_step": kmed,
                             "inertia": inertia}
        print(f"k-means Lloyd step, {a.kmeans_rows} x 16, k 16, one thread (median of 3):")
        print(f"  Eigen loop {kmed['eigen'] * 1000:.2f} ms, gyre {kmed['gyre'] * 1000:.2f} ms "
              f"({kmed['gyre'] / kmed['eigen']:.2f}x); inertia after 10 steps {inertia['eigen']:.6f} / {inertia['gyre']:.6f}")

        # scoring
        _, out = timed([base, "score", model, test, "200"])
        s = json_line(out)
        results["score"] = s
        print(f"scoring a9a.t parsed rows, one thread: {s['rows_per_second'] / 1e6:.1f} M rows/s")
    results["load_after"] = loadavg()
    print(f"load average: {results['load_before']} before, {results['load_after']} after")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
