#!/usr/bin/env python
"""The CPU backward's symmetry check, remembered against redone, in the same process.

    python benchmarks/bench_symmetry_check.py [--dataset amazon|syn:EDGES] [--data DIR]
        [--dim 64] [--rounds 30] [--threads N]

The transposed ``temporal_spmm`` (one GraphPro layer's backward) first checks that the graph is
symmetric; a graph that passed is remembered by a fingerprint of its content
(``csrc/cpu/check_symmetric.cpp``). Three calls, interleaved per round: on a graph checked
before (a fingerprint pass, no check: what a trainer's cached full or stage graph gets at every
batch), on a graph never seen (fingerprint + full check: a new subgraph per batch; here the same
structure with its times shifted, still symmetric), and the untransposed layer (no check at all,
the floor). Printed: medians and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import graphpro_ext.ops  # noqa: F401  (registers torch.ops.graphpro)
from bench_mixgcf import load


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="amazon", help="amazon or syn:EDGES")
    p.add_argument("--data", default="../shared/data/amazon")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.dataset != "amazon" and not (a.dataset.startswith("syn:") and a.dataset[4:].isdigit()):
        p.error(f"--dataset {a.dataset}: amazon or syn:EDGES")
    if a.dim < 1 or a.rounds < 1:
        p.error("--dim and --rounds must be positive")
    if a.threads:
        torch.set_num_threads(a.threads)
    g = load(a.dataset, a.data)
    ops = torch.ops.graphpro
    x = torch.randn(g.num_nodes, a.dim, generator=torch.Generator().manual_seed(0))
    _, lse = ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, x, 0.5, 0.8, 7)
    # a fresh symmetric graph per round: never remembered (the memory holds 16)
    fresh = [g.edge_time + (k + 1) * 1e-3 for k in range(a.rounds + 1)]

    def layer(times, transpose):
        return ops.temporal_spmm(g.rowptr, g.col, times, g.node_norm, lse, x, 0.5, 0.8, 7,
                                 transpose)

    layer(g.edge_time, True)  # checked once: remembered from here on
    print(f"{a.dataset}: {g.num_nodes} nodes, {g.num_edges} directed edges, d = {a.dim}; "
          f"{torch.get_num_threads()} threads")
    cases = [("remembered graph", lambda r: layer(g.edge_time, True)),
             ("new graph", lambda r: layer(fresh[r], True)),
             ("untransposed", lambda r: layer(g.edge_time, False))]
    times = {name: [] for name, _ in cases}
    for r in range(a.rounds + 1):  # round 0 warms up
        for name, fn in cases if r % 2 else cases[::-1]:
            t0 = time.perf_counter()
            fn(r)
            if r:
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["remembered graph"]
    for k, v in med.items():
        print(f"  transposed layer, {k:16s} {v * 1e3:8.2f} ms  ({v / base:.2f}x the remembered)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
