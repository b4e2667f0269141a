#!/usr/bin/env python
"""A small, fixed set of CUDA op calls for compute-sanitizer (scripts/gpu_check.sh).

Every CUDA kernel runs at least once, forward and backward, on a graph with light rows and one
heavy row (degree 3000 > the 1024- and 256-edge slots, starting mid-slot), with d = 64 fp32 (the
16-byte vector path), d = 5 (scalar path), fp16, int32 and int64 columns, and dropout. Each result
is compared loosely with the CPU kernel, so a run that is sanitizer-clean but wrong still fails.
Run it without the caching allocator (PYTORCH_NO_CUDA_MEMORY_CACHING=1), so that an
out-of-bounds access lands outside a cudaMalloc block and memcheck sees it.

    compute-sanitizer --tool memcheck python scripts/sanitizer_cases.py [--only edge_softmax,...]
"""

from __future__ import annotations

import argparse
import sys

import torch

import graphpro_ext
import graphpro_ext.ops as ops
from graphpro_ext.graph import TemporalGraph

CASES = ["edge_softmax", "spmm", "sddmm", "temporal_propagate", "lightgcn", "sample_negatives",
         "topk_masked", "khop_subgraph", "simgcl_perturb"]


def graph(index_dtype: torch.dtype) -> TemporalGraph:
    gen = torch.Generator().manual_seed(1234)
    nu, ni = 200, 3500
    users = torch.randint(1, nu, (4000,), generator=gen)
    items = torch.randint(0, ni, (4000,), generator=gen)
    # user 0: a heavy row of 3000 distinct items
    users = torch.cat([users, torch.zeros(3000, dtype=torch.int64)])
    items = torch.cat([items, torch.randperm(ni, generator=gen)[:3000]])
    times = torch.randint(0, 90 * 86400, (users.numel(),), generator=gen).double()
    g = TemporalGraph.from_interactions(users.numpy(), items.numpy(), times.numpy(), nu, ni,
                                        tau_hours=24)
    g.col = g.col.to(index_dtype)
    return g


def close(a: torch.Tensor, b: torch.Tensor, name: str, tol: float) -> None:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    err = ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
    if not err <= tol:
        raise AssertionError(f"{name}: relative error {err:.3g} > {tol} against the CPU kernel")
    print(f"  {name}: ok (rel err {err:.2e})", flush=True)


def run(case: str, g: TemporalGraph, dev: str) -> None:
    tag = f"{case}[col {str(g.col.dtype)[6:]}]"
    on = lambda t: None if t is None else t.to(dev)  # noqa: E731
    rowptr, col = g.rowptr, g.col
    e = col.numel()
    gen = torch.Generator().manual_seed(7)
    if case == "edge_softmax":
        for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 2e-3)):
            s = torch.randn(e, generator=gen).to(dtype).requires_grad_()
            sd = s.detach().to(dev).requires_grad_()
            y, yd = ops.edge_softmax(rowptr, s), ops.edge_softmax(on(rowptr), sd)
            gy = torch.randn(e, generator=gen).to(dtype)
            y.backward(gy)
            yd.backward(gy.to(dev))
            close(yd, y, f"{tag} {dtype} fwd", tol)
            close(sd.grad, s.grad, f"{tag} {dtype} bwd", tol * 10)
    elif case in ("spmm", "sddmm"):
        for d in (64, 5):
            w = torch.rand(e, generator=gen)
            x = torch.randn(g.num_nodes, d, generator=gen)
            if case == "spmm":
                xs, xd = x.clone().requires_grad_(), x.to(dev).requires_grad_()
                y, yd = ops.spmm(rowptr, col, w, xs), ops.spmm(on(rowptr), on(col), on(w), xd)
                gy = torch.randn_like(y)
                y.backward(gy)
                yd.backward(gy.to(dev))
                close(yd, y, f"{tag} d={d} fwd", 1e-5)
                close(xd.grad, xs.grad, f"{tag} d={d} bwd", 1e-5)
            else:
                y = ops.sddmm(rowptr, col, x, x)
                close(ops.sddmm(on(rowptr), on(col), on(x), on(x)), y, f"{tag} d={d}", 1e-5)
    elif case in ("temporal_propagate", "lightgcn"):
        for d, keep in ((64, 1.0), (64, 0.8), (5, 0.8)):
            x = torch.randn(g.num_nodes, d, generator=gen)
            xs, xd = x.clone().requires_grad_(), x.to(dev).requires_grad_()
            args = (rowptr, col, g.edge_time, g.node_norm)
            dargs = tuple(on(t) for t in args)
            if case == "temporal_propagate":
                kw = dict(time_weight=0.5, keep_prob=keep, seed=3)
                y, yd = ops.temporal_propagate(*args, xs, **kw), ops.temporal_propagate(*dargs, xd, **kw)
            else:
                kw = dict(num_layers=3, time_weight=0.5, keep_prob=keep, seed=3)
                y, yd = ops.lightgcn(*args, xs, **kw), ops.lightgcn(*dargs, xd, **kw)
            gy = torch.randn_like(y)
            y.backward(gy)
            yd.backward(gy.to(dev))
            close(yd, y, f"{tag} d={d} keep={keep} fwd", 1e-4)
            close(xd.grad, xs.grad, f"{tag} d={d} keep={keep} bwd", 1e-4)
    elif case == "sample_negatives":
        hr, hi = g.user_history()
        users = torch.arange(g.num_users)
        a = ops.sample_negatives(hr, hi, users, g.num_items, 4, 11)
        b = ops.sample_negatives(on(hr), on(hi), on(users), g.num_items, 4, 11)
        if not torch.equal(a, b.cpu()):
            raise AssertionError(f"{tag}: CUDA draws differ from the CPU's")
        print(f"  {tag}: ok (bit-identical)", flush=True)
    elif case == "topk_masked":
        hr, hi = g.user_history()
        ue = torch.randn(g.num_users, 64, generator=gen)
        ie = torch.randn(g.num_items, 64, generator=gen)
        for chunk in (65536, 1000):
            s, i = ops.topk_masked(ue, ie, hr, hi, k=20, chunk_items=chunk)
            sd, _ = ops.topk_masked(on(ue), on(ie), on(hr), on(hi), k=20, chunk_items=chunk)
            close(sd, s, f"{tag} chunk={chunk} scores", 1e-5)
    elif case == "khop_subgraph":
        seeds = torch.tensor([0, 5, 17], dtype=torch.int64)
        a = ops.khop_subgraph(rowptr, col, seeds, 2)
        b = ops.khop_subgraph(on(rowptr), on(col), on(seeds), 2)
        for x, y in zip(a, b):
            if not torch.equal(x, y.cpu().to(x.dtype)):
                raise AssertionError(f"{tag}: CUDA subgraph differs from the CPU's")
        print(f"  {tag}: ok (identical)", flush=True)
    elif case == "simgcl_perturb":  # independent of the graph: d = 64, 5 and a warp-plus row
        for d, dtype, tol in ((64, torch.float32, 1e-6), (5, torch.float32, 1e-6),
                              (200, torch.float32, 1e-6), (64, torch.float16, 2e-3)):
            x = torch.randn(g.num_nodes, d, generator=gen).to(dtype).requires_grad_()
            xd = x.detach().to(dev).requires_grad_()
            y, yd = ops.simgcl_perturb(x, 0.1, 5), ops.simgcl_perturb(xd, 0.1, 5)
            yd.backward(torch.ones_like(yd))
            close(yd, y, f"{case} d={d} {dtype}", tol)
            close(xd.grad, torch.ones_like(x), f"{case} d={d} {dtype} bwd", 0.0)
    else:
        raise ValueError(case)
    if dev != "cpu":
        torch.cuda.synchronize()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(CASES))
    p.add_argument("--index", default="int32,int64")
    p.add_argument("--device", default="cuda", help="cpu: a dry run of the cases themselves")
    args = p.parse_args()
    if args.device == "cuda" and (not torch.cuda.is_available() or not graphpro_ext.with_cuda()):
        print(f"sanitizer_cases: needs a GPU and a CUDA build (cuda available: "
              f"{torch.cuda.is_available()}, build: {graphpro_ext.build_info()})", file=sys.stderr)
        return 2
    for idx in args.index.split(","):
        g = graph(getattr(torch, idx))
        for case in args.only.split(","):
            print(f"{case} ({idx} columns)", flush=True)
            run(case, g, args.device)
    print("sanitizer_cases: all cases ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
