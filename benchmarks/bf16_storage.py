#!/usr/bin/env python
"""Would bf16 embedding storage (fp32 accumulation) pay? The propagation's gathers, timed in both.

    python benchmarks/bf16_storage.py --edges 1000000,10000000 [--rounds 5]

On ``synthetic_graph(E)`` (symmetric bi-normalised CSR, d = 64) one propagation layer,
``ops.spmm`` with the graph's edge weights, reads a neighbour's row per edge. The CPU kernel
already takes bf16 rows and accumulates in fp32, so the same op on a bf16 copy of the table
measures what halving the gathered bytes buys, interleaved with fp32 in one process (forward and
forward + backward). Error against an fp64 run of the same layer, with the conventions' rule: the
bf16 result's error must stay within 2x that of a same-precision PyTorch version (the reference
gather / scale / index_add in bf16); the error of the exact result merely rounded to bf16 (the
storage rounding alone, a lower bound) is shown beside it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import graphpro_ext.ops as ops
from graphpro_ext import reference, synthetic


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--edges", default="1000000,10000000")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dim", type=int, default=64)
    a = p.parse_args(argv)
    print(f"# {torch.get_num_threads()} threads, d = {a.dim}, {time.strftime('%Y-%m-%d')}")
    print("| directed edges | what | fp32 ms | bf16 ms | bf16 speed-up | bf16 max rel err | "
          "torch bf16 err | storage rounding | rule |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in [int(x) for x in a.edges.split(",")]:
        g = synthetic.synthetic_graph(e, seed=0)
        n = g.num_nodes
        rows = torch.repeat_interleave(torch.arange(n), g.rowptr.diff())
        w = (g.node_norm[rows] * g.node_norm[g.col.long()]).contiguous()
        t = ops.csr_transpose(g.rowptr, g.col, n)
        x32 = torch.randn(n, a.dim, generator=torch.Generator().manual_seed(0))
        xs = {"fp32": x32, "bf16": x32.bfloat16()}
        ws = {"fp32": w, "bf16": w.bfloat16()}
        times = {(k, m): [] for k in xs for m in ("fwd", "fwd+bwd")}
        for _ in range(a.rounds):
            for k, x in xs.items():
                t0 = time.perf_counter()
                ops.spmm(g.rowptr, g.col, ws[k], x, t)
                times[(k, "fwd")].append(time.perf_counter() - t0)
                xg = x.clone().requires_grad_()
                t0 = time.perf_counter()
                y = ops.spmm(g.rowptr, g.col, ws[k], xg, t)
                y.backward(torch.ones_like(y))
                times[(k, "fwd+bwd")].append(time.perf_counter() - t0)
        exact = ops.spmm(g.rowptr, g.col, w.double(), x32.double(), None)
        scale = exact.abs().max().item()
        err_bf16 = (ops.spmm(g.rowptr, g.col, ws["bf16"], xs["bf16"], t).double() - exact)
        err_store = (exact.float().bfloat16().double() - exact)
        err_torch = reference.spmm(g.rowptr, g.col, ws["bf16"], xs["bf16"]).double() - exact
        eb, es, et = (e_.abs().max().item() / scale for e_ in (err_bf16, err_store, err_torch))
        for m in ("fwd", "fwd+bwd"):
            f, b = (statistics.median(times[(k, m)]) for k in ("fp32", "bf16"))
            print(f"| {g.num_edges:,} | spmm {m} | {f * 1e3:.0f} | {b * 1e3:.0f} | {f / b:.2f}x | "
                  f"{eb:.1e} | {et:.1e} | {es:.1e} | {'met' if eb <= 2 * et else 'not met'} |", flush=True)


if __name__ == "__main__":
    main()
