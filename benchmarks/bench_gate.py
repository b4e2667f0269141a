#!/usr/bin/env python
"""GraphPro's gate ``x * sigmoid(x W + b)`` (eqs. 9 and 11): the trainer's in-place
``sigmoid_gate`` against the plain expression, in the same process, interleaved.

    python benchmarks/bench_gate.py [--rows 238735] [--dim 64] [--rounds 30] [--threads N]

Two cases the trainer runs: ``eval``, no autograd, over the whole table (every evaluation's
forward gates all U + I rows; 238,735 is Amazon's id space), and ``train``, forward + backward
over a batch scope of ``--scope-share`` of the rows. A third, ``forward``, is the whole
evaluation forward of a gated model on a power-law graph of ``--interactions`` over that id
space: the model's (the propagated rows written into the gate's fresh table) against the same
with ``index_copy`` into a second table (before 2026-12-07). Printed: medians, their ratio, and
whether the outputs (and gradients) are equal bit for bit.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from graphpro_ext import synthetic
from graphpro_ext.graphpro import backend
from graphpro_ext.graphpro.models import EmbeddingModel
from graphpro_ext.graphpro.models.base import sigmoid_gate


def plain(x, w, b):
    return x * torch.sigmoid(x @ w + b)


def copied_forward(model, graph):
    """``EmbeddingModel.forward`` with the propagated rows copied into a new table."""
    cg = model.planner.compact(graph)
    e = model.ego()
    h = backend.lightgcn(cg.sub, e[cg.glob], model.num_layers, model.time_weight, 1.0, 0)
    return e.index_copy(0, cg.glob, h)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=238735)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--scope-share", type=float, default=0.5)
    p.add_argument("--interactions", type=int, default=135898,
                   help="the forward case's graph (Amazon's pre-training count)")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if min(a.rows - 1, a.dim, a.rounds, a.interactions) < 1 or not 0 < a.scope_share <= 1:
        p.error("--rows (2 or more), --dim, --rounds and --interactions must be positive, "
                "--scope-share in (0, 1]")
    if a.threads:
        torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(a.rows, a.dim, generator=gen)
    w = torch.randn(a.dim, a.dim, generator=gen) * a.dim ** -0.5
    b = torch.randn(1, a.dim, generator=gen)
    scope = x[: max(1, int(a.rows * a.scope_share))]
    print(f"gate over {a.rows} x {a.dim} (train: {scope.shape[0]} rows); "
          f"{torch.get_num_threads()} threads")

    def train(fn):
        xs, ws, bs = (t.clone().requires_grad_() for t in (scope, w, b))
        fn(xs, ws, bs).sum().backward()
        return xs.grad, ws.grad, bs.grad

    def run_eval(fn):
        with torch.no_grad():
            return (fn(x, w, b),)

    nu = a.rows // 2
    graph = synthetic.power_law_graph(nu, a.rows - nu, a.interactions)
    model = EmbeddingModel(x.clone(), 3, 0.5, gate=True, generator=gen)

    def run_forward(fn):
        with torch.no_grad():
            return (fn(model, graph),)

    for case, run, ours, theirs in (("eval", run_eval, sigmoid_gate, plain),
                                    ("train", train, sigmoid_gate, plain),
                                    ("forward", run_forward, EmbeddingModel.forward,
                                     copied_forward)):
        same = all(torch.equal(u, v) for u, v in zip(run(ours), run(theirs)))
        times = {"in place": [], "plain": []}
        for r in range(a.rounds + 1):  # round 0 warms up
            order = [("in place", ours), ("plain", theirs)]
            for name, fn in order if r % 2 else order[::-1]:
                t0 = time.perf_counter()
                run(fn)
                if r:
                    times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"  {case:7s}  in place {med['in place'] * 1e3:7.1f} ms  plain "
              f"{med['plain'] * 1e3:7.1f} ms  speed-up {med['plain'] / med['in place']:.2f}x  "
              f"bitwise equal: {same}")
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
