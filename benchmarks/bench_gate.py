#!/usr/bin/env python
"""GraphPro's gate ``x * sigmoid(x W + b)`` (eqs. 9 and 11): the trainer's in-place
``sigmoid_gate`` against the plain expression, in the same process, interleaved.

    python benchmarks/bench_gate.py [--rows 238735] [--dim 64] [--rounds 30] [--threads N]

Two cases the trainer runs: ``eval``, no autograd, over the whole table (every evaluation's
forward gates all U + I rows; 238,735 is Amazon's id space), and ``train``, forward + backward
over a batch scope of ``--scope-share`` of the rows. Printed: medians, their ratio, and whether
the outputs (and gradients) are equal bit for bit.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from graphpro_ext.graphpro.models.base import sigmoid_gate


def plain(x, w, b):
    return x * torch.sigmoid(x @ w + b)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=238735)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--scope-share", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.rows < 1 or a.dim < 1 or a.rounds < 1 or not 0 < a.scope_share <= 1:
        p.error("--rows, --dim and --rounds must be positive, --scope-share in (0, 1]")
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

    for case, run in (("eval", run_eval), ("train", train)):
        same = all(torch.equal(u, v) for u, v in zip(run(sigmoid_gate), run(plain)))
        times = {"in place": [], "plain": []}
        for r in range(a.rounds + 1):  # round 0 warms up
            order = [("in place", sigmoid_gate), ("plain", plain)]
            for name, fn in order if r % 2 else order[::-1]:
                t0 = time.perf_counter()
                run(fn)
                if r:
                    times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"  {case:5s}  in place {med['in place'] * 1e3:7.1f} ms  plain "
              f"{med['plain'] * 1e3:7.1f} ms  speed-up {med['plain'] / med['in place']:.2f}x  "
              f"bitwise equal: {same}")
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
