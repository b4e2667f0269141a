#!/usr/bin/env python3
"""How much of the pre-trained ranking each method's stage 1 starts with (issue 13).

Builds every requested method's stage-1 model from a run's pre-trainings exactly as ``graphpro
run`` would (same configuration, same seeded initialisation), evaluates it untrained on the
stage's test snapshot and prints Recall@k / NDCG@k per method. A baseline whose untrained start
is far below the pre-trained table's own ranking (``finetune``'s start) has thrown part of the
pre-training away before it trains. ::

    python scripts/stage_starts.py RUN/ckpt [--data ../shared/data/amazon] [--methods a,b]

``RUN/ckpt`` is a run's checkpoint folder (its ``config.json`` and ``pretrain_<kind>.pt``);
nothing in it is written: the stage is built in a temporary folder. Without ``--methods``, every
method whose pre-training is there. Bad arguments: one line, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile


class UsageError(Exception):
    pass


def _config(ckpt: str, out: str, methods: list[str]):
    from graphpro_ext.graphpro.stages import RunConfig

    path = os.path.join(ckpt, "config.json")
    try:
        with open(path) as f:
            cfg = RunConfig.from_saved(json.load(f), out)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UsageError(f"{path}: not a run's configuration ({e})") from None
    cfg.methods, cfg.serve, cfg.device = methods, "none", "cpu"
    return cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt", help="a run's checkpoint folder (config.json, pretrain_<kind>.pt)")
    ap.add_argument("--data", default=os.path.join("..", "shared", "data", "amazon"),
                    help="the run's snapshot folder")
    ap.add_argument("--methods", default=None, help="comma-separated (default: every method "
                    "whose pre-training is in CKPT)")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except UsageError as e:
        print(f"stage_starts: error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from graphpro_ext.graphpro import data as D
    from graphpro_ext.graphpro.errors import GraphproError
    from graphpro_ext.graphpro.methods import METHODS
    from graphpro_ext.graphpro.stages import Runner
    from graphpro_ext.graphpro.train import evaluate_model

    if not os.path.isfile(os.path.join(args.ckpt, "config.json")):
        raise UsageError(f"{args.ckpt}: no config.json (a run's ckpt folder expected)")
    have = {k for k in ("graphpro", "lightgcn")
            if os.path.isfile(os.path.join(args.ckpt, f"pretrain_{k}.pt"))}
    if args.methods:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        bad = [m for m in methods if m not in METHODS]
        if bad or not methods:
            raise UsageError(f"--methods: unknown {bad}; choose from {','.join(METHODS)}")
        missing = sorted({METHODS[m].pretrain for m in methods} - have - {None})
        if missing:
            raise UsageError(f"--methods: {args.ckpt} has no pretrain_{missing[0]}.pt")
        if "full" in methods:
            raise UsageError("--methods: full starts from scratch, not from a pre-training")
    else:
        methods = [m for m, s in METHODS.items() if s.pretrain in have]
        if not methods:
            raise UsageError(f"{args.ckpt}: no pretrain_graphpro.pt or pretrain_lightgcn.pt")
    if not os.path.isdir(args.data):
        raise UsageError(f"--data {args.data}: not a snapshot folder")
    with tempfile.TemporaryDirectory(prefix="stage_starts-") as out:
        os.makedirs(os.path.join(out, "ckpt"))
        shutil.copy(os.path.join(args.ckpt, "config.json"), os.path.join(out, "ckpt"))
        for k in have:  # read-only use: links, not copies
            os.symlink(os.path.abspath(os.path.join(args.ckpt, f"pretrain_{k}.pt")),
                       os.path.join(out, "ckpt", f"pretrain_{k}.pt"))
        cfg = _config(args.ckpt, out, methods)
        try:
            data = D.load_snapshot_folder(args.data)
            runner = Runner(data, cfg)
            runner.check_config()  # the data and configuration the pre-trainings were made with
        except GraphproError as e:
            raise UsageError(str(e).splitlines()[0]) from None
        k = cfg.stage_train.topk
        test = runner.test_set(1)
        pre = {kind: runner.pretrain(kind) for kind in have}
        print(f"untrained stage-1 models of {args.ckpt} ({cfg.backbone}, seed {cfg.seed}), "
              f"tested on snapshot 2 ({len(test)} users)")
        print(f"| method | recall@{k} | ndcg@{k} |\n|---|---|---|")
        for m in methods:
            st, model = runner.start_stage(m, 1, pre)
            res = evaluate_model(model, st.graph, test, k, cfg.stage_train.eval_batch)
            print(f"| {m} | {res[f'recall@{k}']:.4f} | {res[f'ndcg@{k}']:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
