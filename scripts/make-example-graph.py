#!/usr/bin/env python3
"""Writes datasets/graphs/rmat-10.txt, the bundled example graph: R-MAT with the Graph500
parameters (A=0.57, B=0.19, C=0.19), scale 10, edge factor 8, seed 1, vertex ids permuted,
self-loops and duplicate edges dropped. Deterministic: re-running gives the same file."""
import os
import random

random.seed(1)
scale, ef = 10, 8
n = 1 << scale
perm = list(range(n))
random.shuffle(perm)
edges = set()
while len(edges) < n * ef:
    u = v = 0
    for _ in range(scale):
        r = random.random()
        a, b = (0, 0) if r < 0.57 else (0, 1) if r < 0.76 else (1, 0) if r < 0.95 else (1, 1)
        u, v = (u << 1) | a, (v << 1) | b
    if u != v:
        edges.add((perm[u], perm[v]))
out = os.path.join(os.path.dirname(__file__), '..', 'datasets', 'graphs', 'rmat-10.txt')
with open(out, 'w') as f:
    f.write('# R-MAT graph: scale 10 (1024 vertex ids), edge factor 8, A=0.57 B=0.19 C=0.19, seed 1,\n')
    f.write('# vertex ids permuted, self-loops and duplicate edges dropped. Directed: src dst.\n')
    for u, v in sorted(edges):
        f.write(f'{u} {v}\n')
