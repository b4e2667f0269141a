#!/usr/bin/env python
"""Each backbone against LightGCN at the same training-time budget, static, on gowalla_like.

    python benchmarks/backbone_check.py [--budget 150] [--models lightgcn,sgl,simgcl,mixgcf]

Same split, seed, batch size (2048), lr (1e-3) and evaluation as ``benchmarks/large_batch.py``'s
gowalla setting (a seeded 20% of the pairs held out; Recall@20 / NDCG@20 on 5,000 test users);
each model trains for ``--budget`` seconds of training time (early stopping with patience 10 on
the same users). Reported: best Recall@20 / NDCG@20, epochs, seconds per epoch.
"""

from __future__ import annotations

import argparse
import time

import torch

from graphpro_ext.graphpro import models
from graphpro_ext.graphpro.train import TrainConfig, fit

from large_batch import gowalla


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="lightgcn,sgl,simgcl,mixgcf")
    p.add_argument("--budget", type=float, default=150.0)
    p.add_argument("--seed", type=int, default=2023)
    a = p.parse_args(argv)
    graph, es, how = gowalla(0, 5000)
    print(f"# gowalla_like, B = 2048, lr 1e-3, {a.budget:g} s of training each, "
          f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}")
    print("| model | best Recall@20 | NDCG@20 there | epochs | s / epoch |")
    print("|---|---|---|---|---|")
    for name in a.models.split(","):
        gen = torch.Generator().manual_seed(a.seed)
        x = models.model_class(name).init_table(graph.num_users, graph.num_items, 64, gen)
        model = models.build(name, x, 3, 0.0)
        cfg = TrainConfig(epochs=1000, patience=10, batch_size=2048, lr=1e-3, keep_prob=1.0,
                          ckpt_every=0, seed=a.seed, budget_s=a.budget)
        s = fit(model, graph, graph.user_history(), es, cfg, name)
        best = max(s["history"], key=lambda h: h["recall@20"])
        print(f"| {name} | {best['recall@20']:.4f} | {best['ndcg@20']:.4f} | "
              f"{s['epochs_run']} | {s['epoch_train_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
