#!/usr/bin/env python
"""Does renumbering nodes for locality speed propagation up? Same graph, three numberings.

    python benchmarks/reorder.py --edges 1000000,10000000 [--rounds 5]

For ``synthetic_graph(E)`` the users and items are renumbered (each within its block, so the
graph stays bipartite with users first): as generated, in a random order (no locality at all),
and by decreasing degree (hubs packed together, the cheap reordering a loader could apply once).
Each numbering runs the trainer's full-graph propagation, ``lightgcn`` forward + backward
(3 layers, d = 64, temporal prompt, keep_prob 0.8), interleaved in one process; medians and
ratios to the generated order are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from graphpro_ext import synthetic
from graphpro_ext.graph import TemporalGraph
from graphpro_ext.graphpro import backend


def _renumber(users, items, times, nu, ni, perm_u, perm_i):
    return TemporalGraph.from_interactions(perm_u[users], perm_i[items], times, nu, ni,
                                           tau_hours=24.0)


def _degree_rank(ids, n):
    deg = np.bincount(ids, minlength=n)
    order = np.argsort(-deg, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    return rank


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--edges", default="1000000,10000000")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dim", type=int, default=64)
    a = p.parse_args(argv)
    print(f"# {torch.get_num_threads()} threads, d = {a.dim}, {time.strftime('%Y-%m-%d')}")
    print("| directed edges | numbering | lightgcn fwd+bwd (ms) | vs generated |")
    print("|---|---|---|---|")
    for e in [int(x) for x in a.edges.split(",")]:
        g = synthetic.synthetic_graph(e, seed=0)
        rp, cols = g.user_history()
        users = np.repeat(np.arange(g.num_users), np.diff(rp.numpy()))
        items = cols.numpy().astype(np.int64)
        times = np.asarray(g.edge_time[:users.size].numpy(), np.float64) * 86400.0
        nu, ni = g.num_users, g.num_items
        rng = np.random.default_rng(0)
        orders = {"generated": (np.arange(nu), np.arange(ni)),
                  "random": (rng.permutation(nu), rng.permutation(ni)),
                  "degree": (_degree_rank(users, nu), _degree_rank(items, ni))}
        graphs = {k: _renumber(users, items, times, nu, ni, *v) for k, v in orders.items()}
        x = torch.randn(nu + ni, a.dim)
        ts = {k: [] for k in graphs}
        for _ in range(a.rounds):
            for k, gk in graphs.items():
                xs = x.clone().requires_grad_()
                t0 = time.perf_counter()
                h = backend.lightgcn(gk, xs, 3, 0.5, 0.8, 1)
                h.backward(torch.ones_like(h))
                ts[k].append(time.perf_counter() - t0)
        base = statistics.median(ts["generated"])
        for k, v in ts.items():
            m = statistics.median(v)
            print(f"| {g.num_edges:,} | {k} | {m * 1e3:.0f} | {m / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
