#!/usr/bin/env python3
"""A synthetic KDD-like LIBSVM set for the online benchmark (deterministic for a seed).

KDD Cup 2010 (the LIBSVM 'kdda' set) is binary, very sparse (~36 non-zeros a row over 20M
features) with a heavy-tailed feature frequency; this imitates its shape at a smaller size:
ROWS rows (default 400k), about 12.5 non-zeros a row (1 + Poisson(11.5)), feature ids drawn
from a Zipf-like law over 2^20 ids, values 1, labels +1/-1 from a hidden sparse linear model.

  make_kdd_like.py [--rows N] [--seed S] [--features F] OUT
"""
import argparse
import math
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=400000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--features", type=int, default=1 << 20)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    F = a.features
    w = {}
    lines = []
    with open(a.out, "w") as f:
        for _ in range(a.rows):
            # Poisson(11.5) by inversion.
            L, k, p = math.exp(-11.5), 0, 1.0
            while True:
                p *= rng.random()
                if p <= L:
                    break
                k += 1
            nnz = 1 + k
            ids = set()
            while len(ids) < nnz:
                # Zipf-like: id = floor(F^u) for u uniform (log-uniform over [1, F)).
                ids.add(min(F, int(F ** rng.random())))
            m = -0.5
            for i in ids:
                if i not in w:
                    w[i] = random.Random(a.seed * 1000003 + i).gauss(0, 1)
                m += w[i] * 0.5
            y = 1 if rng.random() < 1 / (1 + math.exp(-m)) else -1
            lines.append(("+1" if y > 0 else "-1") + " " + " ".join(f"{i}:1" for i in sorted(ids)) + "\n")
            if len(lines) >= 10000:
                f.writelines(lines)
                lines = []
        f.writelines(lines)


if __name__ == "__main__":
    main()
