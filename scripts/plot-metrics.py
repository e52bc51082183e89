#!/usr/bin/python3
"""Plots of a gyre --metrics JSON file (PNG, matplotlib from Debian's python3-matplotlib).

  scripts/plot-metrics.py METRICS.json [--out-dir DIR] [--prefix NAME]
      For every loop of the file's jobs (e.g. the "pagerank" job of `gyre pagerank --metrics`):
        NAME-time.png         time per superstep (ms)
        NAME-convergence.png  the loop's aggregators per superstep (active vertices, residual, ...),
                              log scale where the values span more than a factor 10
        NAME-bytes.png        bytes exchanged per superstep (and bytes between ranks)
        NAME-overview.png     the three side by side
      NAME defaults to the file name without .json (plus the job name when several jobs loop).
  scripts/plot-metrics.py --scaling A.json B.json ... [--labels L1,L2,...] [--out FILE.png]
      One bar group per file: load job, algorithm job and its supersteps (seconds), with the
      speed-up of the algorithm job against the first file; labelled "R rank(s), P partitions"
      (from each file) unless --labels is given.

Exit status: 0 written, 1 a missing or invalid metrics file, 2 bad arguments, 3 matplotlib missing.
"""
import argparse
import json
import os
import sys


def fail(msg, code=1):
    print(f"plot-metrics: error: {msg}", file=sys.stderr)
    sys.exit(code)


def load_plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        fail(f"matplotlib is not installed for {sys.executable} (Debian: apt-get install python3-matplotlib; "
             "scripts/setup.sh installs it)", 3)


def read_metrics(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        fail(f"{path}: cannot read ({e.strerror})")
    try:
        m = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})")
    if isinstance(m, dict) and "jobs" not in m and "loops" in m:
        m = {"jobs": [dict(m, name="job")]}  # a single JobResult::write_json file
    if not isinstance(m, dict) or not isinstance(m.get("jobs"), list):
        fail(f"{path}: not a gyre metrics file (no \"jobs\" list; write one with `gyre pagerank ... --metrics FILE`)")
    for i, job in enumerate(m["jobs"]):
        if not isinstance(job, dict) or not isinstance(job.get("seconds", 0), (int, float)):
            fail(f"{path}: jobs[{i}] is not a job object")
        for j, loop in enumerate(job.get("loops", [])):
            if not isinstance(loop, dict) or not isinstance(loop.get("steps", []), list):
                fail(f"{path}: jobs[{i}].loops[{j}] has no \"steps\" list")
            for k, st in enumerate(loop.get("steps", [])):
                if not isinstance(st, dict) or "superstep" not in st:
                    fail(f"{path}: jobs[{i}].loops[{j}].steps[{k}] has no \"superstep\"")
    return m


def looping_jobs(m):
    return [(job, loop) for job in m["jobs"] for loop in job.get("loops", []) if loop.get("steps")]


def partitions(job):
    return max([t.get("subtasks", 0) for t in job.get("tasks", [])] or [0])


def integer_x(ax):
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def log_if_wide(ax, values):
    pos = [v for v in values if v is not None and v > 0]
    if pos and max(pos) > 10 * min(pos):
        ax.set_yscale("log")


def draw_time(ax, job, loop):
    steps = loop["steps"]
    x = [s["superstep"] for s in steps]
    ms = [(s.get("seconds") or 0) * 1e3 for s in steps]
    ax.bar(x, ms, color="tab:blue")
    integer_x(ax)
    ax.set_xlabel("superstep")
    ax.set_ylabel("time (ms)")
    total = sum(ms)
    ax.set_title(f"{job.get('name', 'job')}: time per superstep ({total:.1f} ms in {len(steps)})")


def draw_convergence(axes, job, loop):
    steps = loop["steps"]
    x = [s["superstep"] for s in steps]
    names = []
    for s in steps:
        for n in (s.get("aggregators") or {}):
            if n not in names:
                names.append(n)
    if not names:  # no aggregators: the records per superstep instead
        names = ["size"]
    colours = ["tab:green", "tab:red", "tab:purple", "tab:orange", "tab:brown"]
    for i, (ax, name) in enumerate(zip(axes, names)):
        vals = [s.get("size") if name == "size" else (s.get("aggregators") or {}).get(name) for s in steps]
        xs = [a for a, v in zip(x, vals) if v is not None]
        vs = [v for v in vals if v is not None]
        ax.plot(xs, vs, marker="o", markersize=3, color=colours[i % len(colours)])
        log_if_wide(ax, vs)
        ax.set_ylabel(name)
        ax.grid(True, which="major", alpha=0.3)
        integer_x(ax)
    axes[0].set_title(f"{job.get('name', 'job')}: convergence per superstep")
    axes[-1].set_xlabel("superstep")
    return names


def draw_bytes(ax, job, loop):
    steps = loop["steps"]
    x = [s["superstep"] for s in steps]
    ex = [s.get("exchange_bytes") or 0 for s in steps]
    wire = [s.get("wire_bytes") or 0 for s in steps]
    ax.plot(x, ex, marker="o", markersize=3, label="exchanged", color="tab:blue")
    if any(wire):
        ax.plot(x, wire, marker="s", markersize=3, label="between ranks", color="tab:orange")
    ax.legend()
    integer_x(ax)
    log_if_wide(ax, ex + wire)
    ax.set_xlabel("superstep")
    ax.set_ylabel("bytes")
    ax.set_title(f"{job.get('name', 'job')}: bytes per superstep ({job.get('ranks', 1)} rank(s))")


def aggregator_count(loop):
    names = set()
    for s in loop["steps"]:
        names.update((s.get("aggregators") or {}).keys())
    return max(1, len(names))


def plot_one(plt, path, out_dir, prefix):
    m = read_metrics(path)
    loops = looping_jobs(m)
    if not loops:
        fail(f"{path}: no job with supersteps (the metrics of a run that iterated, e.g. `gyre pagerank --metrics`)")
    base = prefix or os.path.splitext(os.path.basename(path))[0]
    written = []
    for job, loop in loops:
        name = base if len(loops) == 1 else f"{base}-{job.get('name', 'job')}-{loop.get('name', 'loop')}"
        name = name.replace("/", "_").replace(" ", "_")
        out = lambda what: os.path.join(out_dir, f"{name}-{what}.png")  # noqa: E731
        fig, ax = plt.subplots(figsize=(6, 3.5))
        draw_time(ax, job, loop)
        fig.tight_layout()
        fig.savefig(out("time"), dpi=100)
        plt.close(fig)
        k = aggregator_count(loop)
        fig, axes = plt.subplots(k, 1, figsize=(6, 2.2 * k + 0.8), sharex=True, squeeze=False)
        draw_convergence([a[0] for a in axes], job, loop)
        fig.tight_layout()
        fig.savefig(out("convergence"), dpi=100)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        draw_bytes(ax, job, loop)
        fig.tight_layout()
        fig.savefig(out("bytes"), dpi=100)
        plt.close(fig)
        # Overview: time | convergence (stacked) | bytes.
        fig = plt.figure(figsize=(15, 4))
        grid = fig.add_gridspec(k, 3)
        draw_time(fig.add_subplot(grid[:, 0]), job, loop)
        first = fig.add_subplot(grid[0, 1])
        conv = [first] + [fig.add_subplot(grid[i, 1], sharex=first) for i in range(1, k)]
        draw_convergence(conv, job, loop)
        draw_bytes(fig.add_subplot(grid[:, 2]), job, loop)
        fig.suptitle(f"{os.path.basename(path)}: {job.get('name', 'job')}, {job.get('ranks', 1)} rank(s), "
                     f"{partitions(job)} partitions, {job.get('seconds', 0):.3f} s", fontsize=11)
        fig.tight_layout()
        fig.savefig(out("overview"), dpi=80)
        plt.close(fig)
        written += [out(w) for w in ("time", "convergence", "bytes", "overview")]
    return written


def plot_scaling(plt, paths, labels, out):
    rows = []
    for p in paths:
        m = read_metrics(p)
        loops = looping_jobs(m)
        if not loops:
            fail(f"{p}: no job with supersteps")
        job, loop = loops[0]
        load = sum(j.get("seconds", 0) for j in m["jobs"] if j.get("name") in ("load", "convert"))
        steps = sum((s.get("seconds") or 0) for s in loop["steps"])
        rows.append({"label": f"{job.get('ranks', 1)} rank(s), {partitions(job)} partitions", "load": load,
                     "job": job.get("seconds", 0), "steps": steps, "name": job.get("name", "job")})
    if labels:
        if len(labels) != len(rows):
            fail(f"--labels: {len(labels)} labels for {len(rows)} files", 2)
        for r, label in zip(rows, labels):
            r["label"] = label
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rows) + 2), 4))
    width = 0.27
    xs = range(len(rows))
    ax.bar([x - width for x in xs], [r["load"] for r in rows], width, label="load job", color="tab:gray")
    ax.bar(list(xs), [r["job"] for r in rows], width, label=f"{rows[0]['name']} job", color="tab:blue")
    ax.bar([x + width for x in xs], [r["steps"] for r in rows], width, label="its supersteps", color="tab:cyan")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r["label"] for r in rows])
    ax.set_ylabel("seconds")
    for x, r in zip(xs, rows):
        if r["job"] > 0:
            ax.annotate(f"{rows[0]['job'] / r['job']:.2f}×", (x, r["job"]), ha="center", va="bottom", fontsize=8)
    ax.set_title(f"{rows[0]['name']}: load, job and supersteps per run\n(speed-up of the job against the first run "
                 "above its bar)", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return [out]


def main():
    ap = argparse.ArgumentParser(description="Plots (PNG) of gyre --metrics JSON files.")
    ap.add_argument("metrics", nargs="?", help="a --metrics JSON file")
    ap.add_argument("--out-dir", default=".", help="directory for the PNG files (default: .)")
    ap.add_argument("--prefix", help="file name prefix (default: the metrics file's name)")
    ap.add_argument("--scaling", nargs="+", metavar="JSON", help="several runs' metrics files: one scaling plot")
    ap.add_argument("--labels", help="comma-separated labels for --scaling (default: ranks x partitions)")
    ap.add_argument("--out", help="the --scaling PNG (default: OUT_DIR/scaling.png)")
    args = ap.parse_args()
    if bool(args.metrics) == bool(args.scaling):
        ap.print_usage(sys.stderr)
        fail("give one metrics file, or --scaling with several", 2)
    if not os.path.isdir(args.out_dir):
        fail(f"--out-dir {args.out_dir}: not a directory", 2)
    plt = load_plt()
    if args.scaling:
        labels = args.labels.split(",") if args.labels else None
        written = plot_scaling(plt, args.scaling, labels, args.out or os.path.join(args.out_dir, "scaling.png"))
    else:
        written = plot_one(plt, args.metrics, args.out_dir, args.prefix)
    for w in written:
        print(f"wrote {w}")


if __name__ == "__main__":
    main()
