#!/usr/bin/env python
"""The trainer's BPR step against its floor, the fused ops alone, in the same process.

    python benchmarks/trainer_step.py [--graph gowalla_like|amazon] [--keep-prob 0.5] [--rounds 40]

Per round (interleaved, medians reported):

* ``step``: exactly ``train.fit``'s inner loop body at the trainer's batch size (2048, one
  negative per positive, ``--batch-graph auto``): ``sample_negatives``, ``model.batch_loss``
  (gathers, ``lightgcn``, BPR), ``zero_grad`` + ``backward``, the loss read-back and fused Adam;
* ``floor``: ``sample_negatives`` for the same batch plus ``lightgcn`` forward + backward over the
  graph the step propagated (the whole graph with edges in full mode, the batch's 3-hop subgraph
  in subgraph mode, extraction excluded), same keep_prob: the work no trainer can avoid.

Also, in the shapes the trainer uses them: ``sample_negatives`` at B = 2048 x k = 1 (samples/s),
``lightgcn`` with edge dropout on the per-batch subgraphs, and one full-ranking evaluation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from graphpro_ext import synthetic
from graphpro_ext.graph import TemporalGraph
from graphpro_ext.graphpro import backend, models
from graphpro_ext.graphpro.data import load_snapshot_folder
from graphpro_ext.graphpro.metrics import evaluate, make_eval_set
from graphpro_ext.graphpro.planning import DEFAULT as PLANNER


def _graph(name: str, data: str):
    if name == "gowalla_like":
        g = synthetic.gowalla_like(seed=0)
        return g, 0.0  # static LightGCN
    if name.startswith("syn:"):  # synthetic_graph(E), e.g. syn:10000000
        return synthetic.synthetic_graph(int(float(name[4:])), seed=0), 0.5
    d = load_snapshot_folder(data)
    p = d.pretrain
    return TemporalGraph.from_interactions(p.users, p.items, p.times, d.num_users, d.num_items,
                                           tau_hours=24.0), 0.5


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--graph", default="gowalla_like",
                   help="gowalla_like | amazon (GraphPro pre-training graph) | syn:E")
    p.add_argument("--data", default="../shared/data/amazon")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--keep-prob", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--eval-users", type=int, default=20000)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    g, tw = _graph(a.graph, a.data)
    gen = torch.Generator().manual_seed(0)
    x = models.model_class("lightgcn").init_table(g.num_users, g.num_items, 64, gen)
    model = models.build("lightgcn", x, 3, tw)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    rp, cols = g.user_history()
    pu = torch.from_numpy(np.repeat(np.arange(g.num_users), np.diff(rp.numpy())))
    pi = cols.long()
    n = pu.numel()
    perm = torch.from_numpy(np.random.default_rng(0).permutation(n))
    cg = PLANNER.compact(g)
    parts = {k: [] for k in ("sample", "loss (gather+lightgcn+BPR)", "zero_grad+backward",
                              "item+adam", "step", "floor", "floor sample", "floor lightgcn")}
    modes = []
    for r in range(a.rounds + 3):
        idx = perm[(r * a.batch_size) % n:][:a.batch_size]
        users, pos = pu[idx], pi[idx]
        model.train()
        t0 = time.perf_counter()
        neg = backend.sample_negatives(rp, cols, users, g.num_items, 1, r)[:, 0]
        t1 = time.perf_counter()
        loss = model.batch_loss(g, users, pos, neg, a.keep_prob, r, 1e-4, mode="auto")
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        t3 = time.perf_counter()
        loss.item()
        opt.step()
        t4 = time.perf_counter()
        rows = torch.cat([users, g.num_users + pos, g.num_users + neg])
        mode, extracted = PLANNER.mode(g, rows, 3, "auto")
        modes.append(mode)
        if mode == "subgraph":
            sub, nodes = extracted or backend.khop_subgraph(g, rows, 3)
        else:
            sub, nodes = cg.sub, cg.glob
        xs = model.x.detach()[nodes].requires_grad_()
        t5 = time.perf_counter()
        backend.sample_negatives(rp, cols, users, g.num_items, 1, r + 7)
        t6 = time.perf_counter()
        h = backend.lightgcn(sub, xs, 3, tw, a.keep_prob, r)
        h.backward(torch.ones_like(h))
        t7 = time.perf_counter()
        if r >= 3:
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0,
                                    t7 - t5, t6 - t5, t7 - t6)):
                parts[k].append(v)
    med = {k: statistics.median(v) * 1e3 for k, v in parts.items()}
    print(f"# {a.graph}: {g.num_users} users, {g.num_items} items, {g.num_edges} directed edges; "
          f"B = {a.batch_size}, keep_prob {a.keep_prob}, time_weight {tw}, "
          f"{torch.get_num_threads()} threads, {a.rounds} rounds (medians); "
          f"batch graph: {max(set(modes), key=modes.count)}; {time.strftime('%Y-%m-%d')}")
    print("| part | ms |")
    print("|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.1f} |")
    print(f"| **step / floor** | **{med['step'] / med['floor']:.2f}x** |")
    # sample_negatives in the trainer's shape
    ts = []
    for r in range(50):
        users = pu[perm[r * 2048 % n:][:2048]]
        t0 = time.perf_counter()
        backend.sample_negatives(rp, cols, users, g.num_items, 1, r)
        ts.append(time.perf_counter() - t0)
    t = statistics.median(ts)
    print(f"\nsample_negatives B = 2048 x k = 1: {t * 1e6:.0f} us per call, "
          f"{2048 / t / 1e6:.1f}M samples/s")
    # evaluation: one full-ranking pass over every user with a held-out item
    k = min(a.eval_users, n)
    es = make_eval_set(pu[perm[:k]].numpy(), pi[perm[:k]].numpy(), pu.numpy(),
                       pi.numpy(), g.num_users)
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        emb = model(g)
    t1 = time.perf_counter()
    evaluate(emb, g.num_users, es, 20, 2048)
    t2 = time.perf_counter()
    print(f"evaluation of {len(es)} users over {g.num_items} items: propagation "
          f"{(t1 - t0) * 1e3:.0f} ms, ranking {(t2 - t1) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
