#!/usr/bin/env python
"""Where the time of ours ``temporal_propagate`` goes: its kernels timed one by one, interleaved.

    python benchmarks/profile_temporal.py [--graph amazon_like] [--dim 64] [--repeats 15]

Parts: ``temporal_row_stats`` (per-row log-sum-exp of the edge times: the softmax pass),
``temporal_spmm`` forward and transposed (the backward), the whole op forward and forward+backward,
and for scale a plain weighted ``graphpro.spmm`` forward with precomputed weights and
``torch.sparse.mm``. Each line shows the median, the minimum and the bytes-model bandwidth.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ops  # noqa: E402
import bytes_model as bm  # noqa: E402

from graphpro_ext import ops, reference  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--graph", default="amazon_like")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    args = bench_ops.parse_args(["--graphs", a.graph, "--seed", str(a.seed)])
    g = bench_ops.build_graph(a.graph, args)
    n, e, d = g.num_nodes, g.num_edges, a.dim
    rp, col, et, nn = g.rowptr, g.col, g.edge_time, g.node_norm
    gen = torch.Generator().manual_seed(a.seed)
    x = torch.randn(n, d, generator=gen)
    gy = torch.randn(n, d, generator=gen)
    xg = x.clone().requires_grad_(True)
    G = torch.ops.graphpro
    lse = G.temporal_row_stats(rp, col, et, 1.0, 0)
    w = reference.temporal_edge_weights(rp, col, et, nn, 0.5)
    A = torch.sparse_csr_tensor(rp.int(), col, w, (n, n), check_invariants=False)

    def fb():
        xg.grad = None
        ops.temporal_propagate(rp, col, et, nn, xg, 0.5).backward(gy)

    parts = {
        "row_stats (softmax lse pass)": (lambda: G.temporal_row_stats(rp, col, et, 1.0, 0),
                                         8 * (n + 1) + 8 * e + 4 * n),
        "temporal_spmm forward": (lambda: G.temporal_spmm(rp, col, et, nn, lse, x, 0.5, 1.0, 0,
                                                           False),
                                  bm.temporal_propagate(n, e, d)),
        "temporal_spmm transposed (bwd)": (lambda: G.temporal_spmm(rp, col, et, nn, lse, gy, 0.5,
                                                                    1.0, 0, True),
                                           bm.temporal_propagate_backward(n, e, d)),
        "temporal_propagate fwd": (lambda: ops.temporal_propagate(rp, col, et, nn, x, 0.5),
                                   bm.temporal_propagate(n, e, d)),
        "temporal_propagate fwd+bwd": (fb, bm.temporal_propagate(n, e, d)
                                       + bm.temporal_propagate_backward(n, e, d)),
        "graphpro.spmm fwd (precomputed w)": (lambda: ops.spmm(rp, col, w, x), bm.spmm(n, e, d)),
        "torch.sparse.mm fwd (precomputed w)": (lambda: torch.sparse.mm(A, x), bm.spmm(n, e, d)),
    }
    cpu = torch.device("cpu")
    for f, _ in parts.values():
        f()
        f()
    times = {k: [] for k in parts}
    for _ in range(a.repeats):
        for k, (f, _) in parts.items():
            times[k].append(bench_ops.time_call(f, cpu))
    bw = bench_ops.copy_bandwidth(cpu)
    print(f"# {a.graph}: N={n:,} E={e:,} d={d} | copy bandwidth {bw / 1e9:.1f} GB/s | "
          f"loadavg {bench_ops.loadavg()}")
    print(f"{'part':40s} {'median ms':>10s} {'min ms':>8s} {'GB/s(med)':>10s} {'GB/s(min)':>10s}")
    for k, (_, nbytes) in parts.items():
        med, mn = statistics.median(times[k]), min(times[k])
        print(f"{k:40s} {med * 1e3:10.1f} {mn * 1e3:8.1f} {nbytes / med / 1e9:10.2f} "
              f"{nbytes / mn / 1e9:10.2f}")


if __name__ == "__main__":
    main()
