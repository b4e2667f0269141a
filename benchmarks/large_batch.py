#!/usr/bin/env python
"""Large-batch training: Recall@20 reached against training wall time, per batch size and lr rule.

    python benchmarks/large_batch.py --dataset gowalla --batches 2048,16384,65536,262144 \
        --rules sqrt --budget 300 [--base-budget 1500] [--json out.json]
    python benchmarks/large_batch.py --dataset amazon --data ../shared/data/amazon ...

Each configuration trains with the trainer's own loop (``train.fit``: BPR, one negative per
positive, per-batch propagation, Adam, edge dropout) from the same seeded table, evaluates after
every epoch, and stops when its training time passes its budget (B = 2048 gets
``--base-budget``) or after ``--patience`` epochs without a better Recall@20 (the reference's
early stopping).
Time is training time only (evaluation is reported apart). Configurations run one after another
in one process; run it alone on the machine.

* gowalla: ``synthetic.gowalla_like()`` (29,858 users, 40,981 items, ~810k interactions), a seeded
  20% of the distinct pairs held out as the test set; static LightGCN (no temporal prompt),
  edge dropout 0 (LightGCN's default).
* amazon: the GraphPro pre-training phase on the Amazon files: train on ``pretrain_val.txt``
  with the temporal prompt (tau 24 h, edge dropout 0.2), test on ``fine_tune.txt`` (the next
  week), as pre-training's early stopping does.

Reported per configuration: the best Recall@20 and when it was reached, and the training time
at which it first came within 2% of B = 2048's best ("time to quality") with its ratio to
B = 2048's.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from graphpro_ext import synthetic
from graphpro_ext.graph import TemporalGraph
from graphpro_ext.graphpro import models
from graphpro_ext.graphpro.data import Interactions, hold_out_pairs, load_snapshot_folder
from graphpro_ext.graphpro.metrics import make_eval_set
from graphpro_ext.graphpro.train import TrainConfig, fit, scaled_lr


def gowalla(seed: int, eval_users: int):
    g = synthetic.gowalla_like(seed=seed)
    rp, cols = g.user_history()
    users = np.repeat(np.arange(g.num_users), np.diff(rp.numpy()))
    inter = Interactions(users.astype(np.int64), cols.numpy().astype(np.int64),
                         np.zeros(users.size))
    train, test = hold_out_pairs(inter, g.num_items, 0.2, seed + 1)
    graph = TemporalGraph.from_interactions(train.users, train.items, train.times, g.num_users,
                                            g.num_items, tau_hours=1.0)
    es = make_eval_set(test.users, test.items, train.users, train.items, g.num_users,
                       max_users=eval_users, seed=seed)
    return graph, es, dict(time_weight=0.0, keep_prob=1.0)


def amazon(path: str, eval_users: int):
    data = load_snapshot_folder(path)
    pre, first = data.pretrain, data.snapshots[0]
    graph = TemporalGraph.from_interactions(pre.users, pre.items, pre.times, data.num_users,
                                            data.num_items, tau_hours=24.0)
    es = make_eval_set(first.users, first.items, pre.users, pre.items, data.num_users,
                       max_users=eval_users, seed=0)
    return graph, es, dict(time_weight=0.5, keep_prob=0.8)


def run_one(graph, es, how, batch, rule, lr, warmup, budget, seed, max_epochs, patience):
    gen = torch.Generator().manual_seed(seed)
    x = models.model_class("lightgcn").init_table(graph.num_users, graph.num_items, 64, gen)
    model = models.build("lightgcn", x, 3, how["time_weight"])
    cfg = TrainConfig(epochs=max_epochs, patience=patience, batch_size=batch, lr=lr,
                      keep_prob=how["keep_prob"], ckpt_every=0, seed=seed, lr_rule=rule,
                      warmup_epochs=warmup, budget_s=budget)
    s = fit(model, graph, graph.user_history(), es, cfg, f"B{batch}-{rule}")
    t, curve = 0.0, []
    for h in s["history"]:
        t += h["train_s"]
        curve.append((round(t, 2), h["recall@20"], h["ndcg@20"]))
    return {"batch": batch, "rule": rule, "lr": scaled_lr(lr, batch, rule), "warmup": warmup,
            "curve": curve, "eval_s": s["eval_s"], "best": max(c[1] for c in curve)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=["gowalla", "amazon"], default="gowalla")
    p.add_argument("--data", default="../shared/data/amazon")
    p.add_argument("--batches", default="2048,16384,65536,262144")
    p.add_argument("--rules", default="sqrt", help="lr rules for B > 2048, comma-separated")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up epochs for B > 2048")
    p.add_argument("--budget", type=float, default=300.0, help="training seconds per config")
    p.add_argument("--base-budget", type=float, default=None,
                   help="training seconds for B = 2048 (default: 10 x --budget)")
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--patience", type=int, default=10,
                   help="epochs without a better Recall@20 before stopping (the reference's 10)")
    p.add_argument("--eval-users", type=int, default=5000)
    p.add_argument("--seed", type=int, default=2023)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", help="also write the curves here")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    graph, es, how = (gowalla(0, a.eval_users) if a.dataset == "gowalla"
                      else amazon(a.data, a.eval_users))
    n = graph.num_edges // 2
    print(f"# {a.dataset}: {graph.num_users} users, {graph.num_items} items, {n} training "
          f"interactions, {len(es)} test users; {torch.get_num_threads()} threads; "
          f"{time.strftime('%Y-%m-%d')}")
    runs = []
    for batch in [int(b) for b in a.batches.split(",")]:
        rules = ["none"] if batch <= 2048 else a.rules.split(",")
        for rule in rules:
            budget = (a.base_budget or 10 * a.budget) if batch <= 2048 else a.budget
            r = run_one(graph, es, how, batch, rule, a.lr, 0.0 if batch <= 2048 else a.warmup,
                        budget, a.seed, a.max_epochs, a.patience)
            runs.append(r)
            print(f"# done B={batch} {rule}: best {r['best']:.4f}, {len(r['curve'])} epochs, "
                  f"train {r['curve'][-1][0]:.0f}s, eval {r['eval_s']:.0f}s",
                  flush=True)
            if a.json:
                with open(a.json, "w") as f:
                    json.dump({"dataset": a.dataset, "args": vars(a), "runs": runs}, f)
    base = next((r for r in runs if r["batch"] <= 2048), None)
    print("| B | lr rule | lr | epochs | best Recall@20 | at (s) "
          "| reaches 98% of B=2048 best at (s) | time ratio vs B=2048 |")
    print("|---|---|---|---|---|---|---|---|")
    t_base = None
    if base:
        target = 0.98 * base["best"]
        t_base = next(t for t, r, _ in base["curve"] if r >= target)
    for r in runs:
        bt, br = max(((t, rec) for t, rec, _ in r["curve"]), key=lambda c: c[1])
        hit = next((t for t, rec, _ in r["curve"] if base and rec >= target), None)
        ratio = f"{hit / t_base:.3f}" if hit is not None and t_base else "never"
        print(f"| {r['batch']} | {r['rule']} | {r['lr']:.2e} | {len(r['curve'])} | {br:.4f} | "
              f"{bt:.0f} | {'-' if hit is None else f'{hit:.0f}'} | {ratio} |")


if __name__ == "__main__":
    main()
