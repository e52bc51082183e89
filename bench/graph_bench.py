#!/usr/bin/python3
"""Graph benchmark: `gyre pagerank|cc|bfs|sssp` as a user runs it, beside hand-written baselines.

Every measurement is a separate process (one per kernel and configuration), timed from outside:
whole-command wall time, CPU seconds (user + system) and peak memory (max RSS) from wait4() (under mpirun: every rank runs
under /usr/bin/time and the ranks' peaks are added up), load and kernel time from the command's
own report (gyre: its --metrics JSON, jobs "load" and the algorithm's; graph_baseline: its JSON
line). Both read the same text edge list; the baseline is bench/graph_baseline (Afforest CC,
direction-optimising BFS, delta-stepping SSSP, pull PageRank over a CSR, oneTBB).

  bench/graph_bench.py --cache DIR [--build build/release] [--scales 20,22]
                       [--kernels pagerank,cc,bfs,sssp] [--configs 1x2,2x1] [--repeat N]
                       [--json OUT.json] [--gyre-input text|h5]

--cache DIR: the Kronecker graphs (`gyre generate --kind kronecker --scale S`, Graph500
parameters, made once and reused; scale 22 is ~1.1 GB of text: never inside the repository),
their weighted copies for SSSP (`graph_baseline add-weights`: a weight in {0.001..1} that depends
only on the pair of ids) and the result files. Graphs are read as undirected (as GAPBS
symmetrises Kronecker graphs). BFS and SSSP start from the source of the file's first edge.
Configurations: RxT = R processes (mpirun -np R when R > 1) x T threads each; the baseline always
runs as one process with R*T threads. A gyre kernel whose subcommand this build does not have is
reported as NOT AVAILABLE and skipped (the rest still runs). Outputs of gyre and the baseline are
compared (CC and BFS exactly, PageRank and SSSP within 1e-6 relative).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "--mca", "pml", "ob1",
             "--mca", "btl", "self,vader"]
KERNELS = ["pagerank", "cc", "bfs", "sssp"]


def log(msg):
    print(msg, flush=True)


def run_measured(cmd, env=None):
    """Runs cmd; returns (returncode, wall seconds, max RSS in MB of the process tree's largest
    process, CPU seconds (user + system, the process and its waited-for descendants), stdout,
    stderr)."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    return p.returncode, wall, ru.ru_maxrss / 1024.0, ru.ru_utime + ru.ru_stime, out.read().decode(errors="replace"), \
        err.read().decode(errors="replace")


def gyre_subcommands(gyre):
    r = subprocess.run([gyre, "--help"], capture_output=True, text=True)
    text = r.stdout + r.stderr
    subs = set()
    in_subs = False
    for line in text.splitlines():
        if line.strip().upper().startswith("SUBCOMMANDS"):
            in_subs = True
            continue
        if in_subs:
            m = re.match(r"\s+(\S+)", line)
            if m:
                subs.add(m.group(1))
            elif line.strip():
                in_subs = False
    return subs


def first_source(path):
    with open(path) as f:
        for line in f:
            s = line.strip()
            if s and s[0] not in "#%":
                return int(s.split()[0])
    raise SystemExit(f"{path}: no edges")


def ensure_graph(args, gyre, baseline, scale, weighted):
    os.makedirs(args.cache, exist_ok=True)
    text = os.path.join(args.cache, f"kronecker-{scale}.txt")
    if not os.path.exists(text):
        log(f"generating {text} ...")
        t0 = time.monotonic()
        r = subprocess.run([gyre, "generate", "--kind", "kronecker", "--scale", str(scale), "--output", text])
        if r.returncode:
            raise SystemExit(f"gyre generate failed for scale {scale}")
        log(f"  generated in {time.monotonic() - t0:.1f} s")
    if not weighted:
        return text
    wtext = os.path.join(args.cache, f"kronecker-{scale}-w.txt")
    if not os.path.exists(wtext):
        log(f"adding weights: {wtext} ...")
        r = subprocess.run([baseline, "add-weights", "--input", text, "--output", wtext])
        if r.returncode:
            raise SystemExit(f"graph_baseline add-weights failed for {text}")
    return wtext


def ensure_h5(gyre, text):
    h5 = text[:-len(".txt")] + ".h5" if text.endswith(".txt") else text + ".h5"
    if not os.path.exists(h5):
        log(f"converting {text} -> {h5} ...")
        t0 = time.monotonic()
        r = subprocess.run([gyre, "convert", "--input", text, "--undirected", "--no-progress", "--output", h5])
        if r.returncode:
            raise SystemExit(f"gyre convert failed for {text}")
        log(f"  converted in {time.monotonic() - t0:.1f} s")
    return h5


def read_values(path):
    vals = {}
    with open(path) as f:
        for line in f:
            a = line.split()
            if len(a) >= 2 and a[0][0] not in "#%":
                vals[a[0]] = a[1]
    return vals


def compare(kernel, a_path, b_path):
    a, b = read_values(a_path), read_values(b_path)
    if a.keys() != b.keys():
        return f"DIFFER ({len(a)} vs {len(b)} vertices)"
    bad = 0
    for k, x in a.items():
        y = b[k]
        if x == y:
            continue
        if kernel in ("pagerank", "sssp"):
            fx, fy = float(x), float(y)
            if fx == fy or abs(fx - fy) <= 1e-6 * max(abs(fx), abs(fy)):
                continue
        bad += 1
    return "agree" if bad == 0 else f"DIFFER at {bad} vertices"


def gyre_times(metrics_path):
    with open(metrics_path) as f:
        m = json.load(f)
    load = kernel = iters = None
    for job in m.get("jobs", []):
        if job.get("name") == "load":
            load = job.get("seconds")
        else:
            kernel = job.get("seconds")
            steps = [s.get("seconds") or 0 for loop in job.get("loops", []) for s in loop.get("steps", [])]
            iters = sum(steps) if steps else None
    return load, kernel, iters


def run_gyre(args, gyre, kernel, path, ranks, threads, source, tag):
    metrics = os.path.join(args.cache, "out", f"gyre-{tag}.json")
    output = os.path.join(args.cache, "out", f"gyre-{tag}.txt")
    for p in (metrics, output):
        if os.path.exists(p):
            os.remove(p)
    cmd = [gyre, kernel, "--input", path, "--undirected", "--threads", str(threads), "--no-progress",
           "--metrics", metrics, "--output", output]
    if kernel in ("bfs", "sssp"):
        cmd += ["--source", str(source)]
    rss_prefix = os.path.join(args.cache, "out", f"rss-{tag}")
    if ranks > 1:
        for r in range(ranks):
            if os.path.exists(f"{rss_prefix}.{r}"):
                os.remove(f"{rss_prefix}.{r}")
        wrap = ["sh", "-c", 'exec /usr/bin/time -f "%M" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"', rss_prefix]
        cmd = ["mpirun", "-np", str(ranks)] + MPI_FLAGS + wrap + cmd
    rc, wall, rss, cpu, out, err = run_measured(cmd)
    if rc != 0:
        log(f"  gyre {kernel} {ranks}x{threads}: FAILED (exit {rc}): {err.strip()[-400:]}")
        return None
    if ranks > 1:
        peaks = []
        for r in range(ranks):
            with open(f"{rss_prefix}.{r}") as f:
                peaks.append(int(f.read().split()[-1]) / 1024.0)
        rss = sum(peaks)
    load, kern, iters = gyre_times(metrics)
    return {"load": load, "kernel": kern, "iterations": iters, "whole": wall, "cpu": cpu, "rss": rss,
            "output": output}


def run_baseline(args, baseline, kernel, path, threads, source, tag):
    output = os.path.join(args.cache, "out", f"base-{tag}.txt")
    cmd = [baseline, kernel, "--input", path, "--undirected", "--threads", str(threads), "--output", output]
    if kernel in ("bfs", "sssp"):
        cmd += ["--source", str(source)]
    rc, wall, rss, cpu, out, err = run_measured(cmd)
    if rc != 0:
        raise SystemExit(f"graph_baseline {kernel} failed (exit {rc}): {err.strip()}")
    rep = json.loads(out.strip().splitlines()[-1])
    return {"load": rep["load_seconds"], "kernel": rep["kernel_seconds"], "whole": wall, "cpu": cpu, "rss": rss,
            "output": output, "report": rep}


def best(runs):
    """Cell-wise minimum over repeated runs (each figure its best run)."""
    out = dict(runs[0])
    for r in runs[1:]:
        for k in ("load", "kernel", "iterations", "whole", "cpu", "rss"):
            if r.get(k) is not None and out.get(k) is not None:
                out[k] = min(out[k], r[k])
    return out


def fmt(x, unit=""):
    if x is None:
        return "–"
    if unit == "MB":
        return f"{x:,.0f}"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", required=True, help="directory for generated graphs and outputs (not the repo)")
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--scales", default="20")
    ap.add_argument("--kernels", default=",".join(KERNELS))
    ap.add_argument("--configs", default="1x2,2x1")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", help="also write all measurements here")
    ap.add_argument("--gyre-input", choices=["text", "h5"], default="text",
                    help="what gyre reads: the text edge list (as the baseline), or the graph converted once "
                         "to gyre's HDF5 format (`gyre convert --undirected`, cached; the issue's 'binary graph' "
                         "comparison)")
    args = ap.parse_args()
    gyre = os.path.abspath(os.path.join(args.build, "cli", "gyre"))
    baseline = os.path.abspath(os.path.join(args.build, "bench", "graph_baseline"))
    for exe in (gyre, baseline):
        if not os.access(exe, os.X_OK):
            raise SystemExit(f"{exe}: not built (cmake --build {args.build} --target gyre_cli graph_baseline)")
    if shutil.which("mpirun") is None and any(not c.startswith("1x") for c in args.configs.split(",")):
        raise SystemExit("mpirun not found (needed for configurations with more than one process)")
    kernels = [k for k in args.kernels.split(",") if k]
    for k in kernels:
        if k not in KERNELS:
            raise SystemExit(f"--kernels: unknown kernel {k} (known: {', '.join(KERNELS)})")
    configs = []
    for c in args.configs.split(","):
        m = re.fullmatch(r"(\d+)x(\d+)", c)
        if not m:
            raise SystemExit(f"--configs: {c} is not RANKSxTHREADS")
        configs.append((int(m.group(1)), int(m.group(2))))
    os.makedirs(os.path.join(args.cache, "out"), exist_ok=True)
    subs = gyre_subcommands(gyre)
    log(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    rows = []
    baselines = {}
    for scale in [int(s) for s in args.scales.split(",")]:
        for kernel in kernels:
            path = ensure_graph(args, gyre, baseline, scale, kernel == "sssp")
            source = first_source(path)
            for ranks, threads in configs:
                total = ranks * threads
                tag = f"{kernel}-{scale}-{ranks}x{threads}"
                key = (kernel, scale, total)
                fresh = key not in baselines
                if fresh:  # the same baseline command serves every configuration with as many threads
                    baselines[key] = [run_baseline(args, baseline, kernel, path, total, source,
                                                   f"{kernel}-{scale}-t{total}") for _ in range(args.repeat)]
                base_runs = baselines[key]
                b = best(base_runs)
                if fresh:
                        log(f"scale {scale} {kernel} baseline ({total} threads): load {fmt(b['load'])} s, kernel "
                        f"{fmt(b['kernel'])} s, whole {fmt(b['whole'])} s ({fmt(b['cpu'])} CPU s), peak {fmt(b['rss'], 'MB')} MB")
                row = {"scale": scale, "kernel": kernel, "ranks": ranks, "threads": threads, "baseline": b,
                       "baseline_runs": base_runs, "gyre": None, "check": "–"}
                if kernel not in subs:
                    log(f"!!! gyre {kernel}: NOT AVAILABLE (this build's `gyre --help` has no '{kernel}' "
                        f"subcommand); baseline measured, gyre skipped")
                    row["check"] = "gyre: not available"
                    rows.append(row)
                    continue
                gpath = ensure_h5(gyre, path) if args.gyre_input == "h5" else path
                g_runs = [run_gyre(args, gyre, kernel, gpath, ranks, threads, source, tag) for _ in range(args.repeat)]
                if any(r is None for r in g_runs):
                    row["check"] = "gyre FAILED"
                    rows.append(row)
                    continue
                g = best(g_runs)
                row["gyre"], row["gyre_runs"] = g, g_runs
                row["check"] = compare(kernel, g["output"], b["output"])
                log(f"scale {scale} {kernel} gyre {ranks}x{threads}: load {fmt(g['load'])} s, kernel "
                    f"{fmt(g['kernel'])} s, whole {fmt(g['whole'])} s ({fmt(g['cpu'])} CPU s), peak {fmt(g['rss'], 'MB')} MB; "
                    f"outputs {row['check']}")
                rows.append(row)
    log(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("| scale | kernel | gyre ranks × threads | load: baseline / gyre (s) | kernel: baseline / gyre (s) | "
          "kernel ratio | whole command: baseline / gyre (s) | whole ratio | whole command CPU: baseline / gyre "
          "(s) | CPU ratio | peak RSS: baseline / gyre (MB) | "
          "memory ratio | outputs |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        b, g = r["baseline"], r["gyre"] or {}
        print(f"| {r['scale']} | {r['kernel']} | {r['ranks']} × {r['threads']} | {fmt(b['load'])} / "
              f"{fmt(g.get('load'))} | {fmt(b['kernel'])} / {fmt(g.get('kernel'))} | "
              f"{ratio(g.get('kernel'), b['kernel'])} | {fmt(b['whole'])} / {fmt(g.get('whole'))} | "
              f"{ratio(g.get('whole'), b['whole'])} | {fmt(b['cpu'])} / {fmt(g.get('cpu'))} | "
              f"{ratio(g.get('cpu'), b['cpu'])} | {fmt(b['rss'], 'MB')} / {fmt(g.get('rss'), 'MB')} | "
              f"{ratio(g.get('rss'), b['rss'])} | {r['check']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"loadavg_end": os.getloadavg(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
