#!/usr/bin/env python
"""Where a pre-training batch of the trainer spends its time, part by part.

    python benchmarks/profile_trainer.py --data ../shared/data/amazon [--batches 30] [--tau 24]
        [--stage N]

Builds the pre-training graph and the model exactly as ``graphpro pretrain`` does, then times
``--batches`` consecutive batches of 2048, splitting each into: negative sampling, the forward loss
(gather + ``lightgcn`` + BPR), backward, and the Adam step, for both per-batch propagation modes
(``--batch-graph subgraph``: the exact 3-hop subgraph around the batch; ``full``: every node with
edges). It also times ``khop_subgraph`` alone, and ``lightgcn`` forward and forward+backward on the
batch subgraphs and on the whole graph. Medians over the batches are printed, plus the projected
training seconds per epoch (median batch time x batches per epoch). ``--stage N`` profiles
the graph that full retraining trains on at stage N instead (pre-training file plus snapshots
1..N), ``--snapshot N`` the graph a fine-tuning stage N trains on (snapshot N alone; GraphPro's
prompt edges left out), and every run prints the mode ``--batch-graph auto`` picks for the graph.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from graphpro_ext.graphpro import backend
from graphpro_ext.graphpro.data import Interactions, load_snapshot_folder
from graphpro_ext.graphpro.model import EmbeddingModel, compact, xavier_embeddings
from graphpro_ext.graphpro.planning import AUTO_SHARE, BatchPlanner
from graphpro_ext.graph import TemporalGraph


def _ms(ts):
    return f"{statistics.median(ts) * 1e3:7.1f} ms (min {min(ts) * 1e3:6.1f})"


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--tau", type=float, default=24.0)
    p.add_argument("--keep-prob", type=float, default=0.8)
    p.add_argument("--time-weight", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--stage", type=int, default=0,
                   help="profile full retraining's graph at this stage (0: pre-training)")
    p.add_argument("--snapshot", type=int, default=0,
                   help="profile the fine-tuning graph of this stage (its snapshot alone)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    data = load_snapshot_folder(a.data)
    for flag in ("stage", "snapshot"):
        if not 0 <= getattr(a, flag) <= data.num_stages:
            p.error(f"--{flag} {getattr(a, flag)}: between 0 and {data.num_stages}")
    if a.stage and a.snapshot:
        p.error("--stage and --snapshot: give one")
    pre = (data.snapshots[a.snapshot - 1] if a.snapshot
           else Interactions.concat([data.pretrain, *data.snapshots[:a.stage]]))
    g = TemporalGraph.from_interactions(pre.users, pre.items, pre.times, data.num_users,
                                        data.num_items, tau_hours=a.tau)
    cg = compact(g)
    x = xavier_embeddings(data.num_users, data.num_items, 64, torch.Generator().manual_seed(0))
    model = EmbeddingModel(x, 3, a.time_weight)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    rp, cols = g.user_history()
    pair_users = torch.from_numpy(np.repeat(np.arange(g.num_users), np.diff(rp.numpy())))
    pair_items = cols.long()
    n = pair_users.numel()
    perm = torch.from_numpy(np.random.default_rng(0).permutation(n))
    print(f"graph: {g.num_nodes} nodes ({cg.glob.numel()} with edges), {g.num_edges} directed "
          f"edges, {n} interactions -> {-(-n // a.batch_size)} batches/epoch; "
          f"{torch.get_num_threads()} threads")
    batches = [perm[(b * a.batch_size) % n:][:a.batch_size] for b in range(a.batches + 3)]
    idx0 = batches[0]  # the rows the trainer's first batch hands the planner
    neg0 = backend.sample_negatives(rp, cols, pair_users[idx0], g.num_items, 1, 0)[:, 0]
    rows0 = torch.cat([pair_users[idx0], g.num_users + pair_items[idx0], g.num_users + neg0])
    picked, ext = BatchPlanner().mode(g, rows0, 3, "auto")
    print(f"--batch-graph auto picks {picked}: the first batch's 3-hop subgraph holds "
          f"{ext[1].numel()} of {cg.glob.numel()} nodes with edges "
          f"({ext[1].numel() / cg.glob.numel():.0%}; subgraph at most {AUTO_SHARE:.0%})")
    for mode in ("subgraph", "full"):
        parts = {k: [] for k in ("sample", "forward", "zero_grad+backward", "adam",
                                  "batch")}
        for b, idx in enumerate(batches):
            users, pos = pair_users[idx], pair_items[idx]
            t0 = time.perf_counter()
            neg = backend.sample_negatives(rp, cols, users, g.num_items, 1, b)[:, 0]
            t1 = time.perf_counter()
            loss = model.batch_loss(g, users, pos, neg, a.keep_prob, b, 1e-4,
                                    mode=mode)
            t2 = time.perf_counter()
            opt.zero_grad(set_to_none=False)
            loss.backward()
            t3 = time.perf_counter()
            opt.step()
            t4 = time.perf_counter()
            if b >= 3:  # warm-up: allocator, thread pool, caches
                for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                    parts[k].append(v)
        print(f"--batch-graph {mode}:")
        for k, v in parts.items():
            print(f"  {k:18s} {_ms(v)}")
        epoch = statistics.median(parts["batch"]) * -(-n // a.batch_size)
        print(f"  projected epoch: {epoch:.2f} s")
    kt, sf, sfb, sizes = [], [], [], []
    for b, idx in enumerate(batches[3:]):
        seeds = torch.cat([pair_users[idx], g.num_users + pair_items[idx],
                           g.num_users + torch.randint(g.num_items, (idx.numel(),))])
        t0 = time.perf_counter()
        sub, nodes = backend.khop_subgraph(g, seeds, 3)
        t1 = time.perf_counter()
        xs = model.x.detach()[nodes].requires_grad_()
        t2 = time.perf_counter()
        h = backend.lightgcn(sub, xs, 3, a.time_weight, a.keep_prob, b)
        t3 = time.perf_counter()
        h.backward(torch.ones_like(h))
        t4 = time.perf_counter()
        kt.append(t1 - t0)
        sf.append(t3 - t2)
        sfb.append(t4 - t2)
        sizes.append((nodes.numel(), sub.num_edges))
    print(f"batch subgraphs: {statistics.median(s[0] for s in sizes):.0f} nodes, "
          f"{statistics.median(s[1] for s in sizes):.0f} directed edges (medians)")
    print(f"  khop_subgraph {_ms(kt)}")
    print(f"  lightgcn on the subgraph: forward {_ms(sf)}; forward+backward {_ms(sfb)}")
    xs = model.x.detach()[cg.glob].requires_grad_()
    fw, fb = [], []
    for _ in range(a.batches):
        t0 = time.perf_counter()
        h = backend.lightgcn(cg.sub, xs, 3, a.time_weight, a.keep_prob, 1)
        t1 = time.perf_counter()
        h.backward(torch.ones_like(h))
        t2 = time.perf_counter()
        fw.append(t1 - t0)
        fb.append(t2 - t0)
    print(f"  lightgcn on the whole graph: forward {_ms(fw)}; forward+backward {_ms(fb)}")


if __name__ == "__main__":
    main()
