#!/usr/bin/env python
"""Each backbone against LightGCN, static: at a training-time budget, or to convergence.

    python benchmarks/backbone_check.py [--dataset gowalla|amazon] [--budget 150]
        [--models lightgcn,sgl,simgcl,mixgcf] [--max-epochs N] [--patience 10]

Same split, seed, batch size (2048), lr (1e-3) and evaluation as ``benchmarks/large_batch.py``:
gowalla_like with a seeded 20% of the pairs held out (Recall@20 / NDCG@20 on 5,000 test users),
or the Amazon release's pre-training file with its fine-tuning snapshot's users as the test
(3,000 users). Every model trains plainly: no temporal prompt, no edge dropout outside the
backbone's own views. Each stops at ``--budget`` seconds of training time (0: none), after
``--max-epochs`` or after ``--patience`` epochs without a better Recall@20 (convergence).
Reported: best Recall@20 / NDCG@20, the epoch it came at, epochs run, seconds per epoch, and
most-popular ranking as the floor a model must clear to have learnt anything beyond popularity.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from graphpro_ext.graphpro import models
from graphpro_ext.graphpro.metrics import evaluate
from graphpro_ext.graphpro.train import TrainConfig, fit

from large_batch import amazon, gowalla


def most_popular(graph, es) -> dict:
    """Every user ranks items by their training degree (history masked like the models')."""
    _, cols = graph.user_history()
    deg = torch.bincount(cols.long(), minlength=graph.num_items).float()
    final = torch.cat([torch.ones(graph.num_users, 1), deg[:, None]])
    return evaluate(final, graph.num_users, es, 20, 4096)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=["gowalla", "amazon"], default="gowalla")
    p.add_argument("--data", default="../shared/data/amazon")
    p.add_argument("--models", default="lightgcn,sgl,simgcl,mixgcf")
    p.add_argument("--budget", type=float, default=150.0,
                   help="training seconds per model (0: no budget)")
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--eval-users", type=int, default=None,
                   help="test users (default 5,000 on gowalla, 3,000 on amazon)")
    p.add_argument("--seed", type=int, default=2023)
    p.add_argument("--json", help="also write every model's per-epoch curve here")
    a = p.parse_args(argv)
    if a.dataset == "gowalla":
        graph, es, _ = gowalla(0, a.eval_users or 5000)
    else:
        graph, es, _ = amazon(a.data, a.eval_users or 3000)
    budget = max(a.budget, 0.0)
    print(f"# {a.dataset}: {graph.num_users} users, {graph.num_items} items, "
          f"{graph.num_edges // 2} training interactions, {len(es)} test users; B = 2048, "
          f"lr 1e-3, budget {a.budget:g} s, max {a.max_epochs} epochs, patience {a.patience}; "
          f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}")
    pop = most_popular(graph, es)
    print("| model | best Recall@20 | NDCG@20 there | best epoch | epochs | s / epoch |")
    print("|---|---|---|---|---|---|")
    print(f"| most popular | {pop['recall@20']:.4f} | {pop['ndcg@20']:.4f} | - | - | - |",
          flush=True)
    curves = {}
    for name in a.models.split(","):
        gen = torch.Generator().manual_seed(a.seed)
        x = models.model_class(name).init_table(graph.num_users, graph.num_items, 64, gen)
        model = models.build(name, x, 3, 0.0)
        cfg = TrainConfig(epochs=a.max_epochs, patience=a.patience, batch_size=2048, lr=1e-3,
                          keep_prob=1.0, ckpt_every=0, seed=a.seed, budget_s=budget)
        s = fit(model, graph, graph.user_history(), es, cfg, name)
        best = max(s["history"], key=lambda h: h["recall@20"])
        curves[name] = [(h["recall@20"], h["ndcg@20"], h["train_s"]) for h in s["history"]]
        print(f"| {name} | {best['recall@20']:.4f} | {best['ndcg@20']:.4f} | "
              f"{s['best_epoch']} | {s['epochs_run']} | {s['epoch_train_s']:.1f} |", flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"args": vars(a), "most_popular": pop, "curves": curves}, f)


if __name__ == "__main__":
    main()
