#!/usr/bin/env python
"""Does renumbering nodes for locality speed propagation up? Same graph, three numberings.

    python benchmarks/reorder.py --edges 1000000,10000000 [--rounds 5]

For ``synthetic_graph(E)`` the users and items are renumbered (each within its block, so the
graph stays bipartite with users first): as generated, in a random order (no locality at all),
and by decreasing degree (hubs packed together, the cheap reordering a loader could apply once).
Each numbering runs the trainer's full-graph propagation, ``lightgcn`` forward + backward
(3 layers, d = 64, temporal prompt, keep_prob 0.8), interleaved in one process; medians and
ratios to the generated order are printed. Then the trainer's whole step (``train.fit``'s loop
body: negatives, ``batch_loss`` with ``--batch-graph auto``, backward, fused Adam) at the batch
sizes of ``--step-batches`` (``auto``: the ``--batch-size auto`` rule for that graph), the same
way. The degree numbering is the trainer's own (``--reorder degree``, graphpro/reorder.py).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from graphpro_ext import synthetic
from graphpro_ext.graph import TemporalGraph
from graphpro_ext.graphpro import backend, models, reorder
from graphpro_ext.graphpro.train import resolve_batch_size


def _renumber(users, items, times, nu, ni, perm_u, perm_i):
    return TemporalGraph.from_interactions(perm_u[users], perm_i[items], times, nu, ni,
                                           tau_hours=24.0)


def _degree_rank(ids, n):
    """The trainer's renumbering (graphpro reorder.degree_order), as new id of every old id."""
    order = reorder.degree_order(ids, n)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    return rank


def _step(g, model, opt, pu, pi, rp, cols, batch, r):
    """One of train.fit's steps: negatives, batch loss (--batch-graph auto), backward, Adam."""
    idx = torch.randint(pu.numel(), (batch,), generator=torch.Generator().manual_seed(r))
    users, pos = pu[idx], pi[idx]
    neg = backend.sample_negatives(rp, cols, users, g.num_items, 1, r)[:, 0]
    loss = model.batch_loss(g, users, pos, neg, 0.8, r, 1e-4, mode="auto")
    opt.zero_grad(set_to_none=False)
    loss.backward()
    loss.item()
    opt.step()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--edges", default="1000000,10000000")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--step-batches", default="2048,auto",
                   help="also time the trainer's whole step at these batch sizes ('' to skip)")
    a = p.parse_args(argv)
    print(f"# {torch.get_num_threads()} threads, d = {a.dim}, {time.strftime('%Y-%m-%d')}")
    print("| directed edges | numbering | what | ms | vs generated |")
    print("|---|---|---|---|---|")
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
            print(f"| {g.num_edges:,} | {k} | lightgcn fwd+bwd | {m * 1e3:.0f} | {m / base:.2f}x |",
                  flush=True)
        for b in [x for x in a.step_batches.split(",") if x]:
            batch = resolve_batch_size(b, users.size, nu)
            steps = {}
            for k, gk in graphs.items():
                x = models.model_class("lightgcn").init_table(nu, ni, a.dim,
                                                              torch.Generator().manual_seed(0))
                model = models.build("lightgcn", x, 3, 0.5)
                rp, cols = gk.user_history()
                pu = torch.from_numpy(np.repeat(np.arange(nu), np.diff(rp.numpy())))
                steps[k] = (gk, model, torch.optim.Adam(model.parameters(), lr=1e-3, fused=True),
                            pu, cols.long(), rp, cols)
            ts = {k: [] for k in graphs}
            for r in range(a.rounds + 1):
                for k, args in steps.items():
                    t0 = time.perf_counter()
                    _step(*args, batch, r)
                    if r:  # the first round warms up
                        ts[k].append(time.perf_counter() - t0)
            base = statistics.median(ts["generated"])
            for k, v in ts.items():
                m = statistics.median(v)
                print(f"| {g.num_edges:,} | {k} | trainer step, B = {batch} ({b}) | "
                      f"{m * 1e3:.0f} | {m / base:.2f}x |", flush=True)

if __name__ == "__main__":
    main()
