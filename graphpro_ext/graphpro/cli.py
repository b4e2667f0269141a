"""The ``graphpro`` command line: ``run``, ``pretrain``, ``finetune``, ``train`` and ``synth``.

Hyper-parameter defaults are the reference implementation's; ``--preset`` swaps in a dataset's
settings (``amazon``: the README's Amazon settings plus epoch caps that fit the time budget;
``synthetic``: small caps for the built-in dataset, implied when no data is given). Flags given
explicitly always win over a preset.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

__all__ = ["main", "build_parser", "resolve"]

log = logging.getLogger("graphpro")

# The reference implementation's defaults (HKUDS/GraphPro utils/parse_args.py).
REFERENCE = dict(
    dim=64, layers=3, lr=1e-3, batch_size=2048, weight_decay=1e-4, edge_dropout=0.5,
    time_weight=0.5, tau_pretrain=1.0, tau_finetune=1.0, window=1, sample_decay=0.05,
    epochs=300, patience=10, stage_epochs=300, stage_patience=10, seed=2023,
    interp_order="reference", select_on="val", val_frac=0.1, pretrain_val_users=3000,
    ckpt_every=5, eval_batch=2048, topk=20, batch_graph="auto",
)
PRESETS = {
    "reference": {},
    # data/amazon/README.md settings; epoch caps keep pre-training + 8 GraphPro stages within
    # the 15-minute budget on a 2-core CPU (the reference trains up to 300 epochs).
    "amazon": dict(edge_dropout=0.2, tau_pretrain=24.0, tau_finetune=24.0, window=4,
                   sample_decay=-0.1, epochs=40, stage_epochs=20, patience=5, stage_patience=5),
    # the built-in synthetic dataset: a whole default run (7 methods) in about 2 minutes
    "synthetic": dict(edge_dropout=0.2, tau_pretrain=24.0, tau_finetune=24.0, window=2,
                      sample_decay=-0.1, batch_size=1024, epochs=20, stage_epochs=8,
                      patience=4, stage_patience=3),
}


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (default: the built-in synthetic dataset)")
    g.add_argument("--data", help="GraphPro snapshot folder (pretrain file, fine_tune.txt, "
                                  "test_1..N.txt)")
    g.add_argument("--pretrain-file", help="pre-training file name inside --data "
                                           "(default: pretrain.txt, else pretrain_val.txt)")
    g.add_argument("--table", help="interactions table (.csv with header or .parquet)")
    g.add_argument("--columns", default="user,item,timestamp",
                   help="user,item,time column names of --table")
    g.add_argument("--pretrain-span", default="30d", help="--table: pre-training span, e.g. 30d")
    g.add_argument("--snapshot", default="7d", help="--table: snapshot length, e.g. 7d")
    g.add_argument("--skip-bad-rows", action="store_true",
                   help="skip (and count) malformed rows instead of failing")
    g.add_argument("--synthetic-users", type=int, default=3000)
    g.add_argument("--synthetic-items", type=int, default=2000)
    g.add_argument("--synthetic-snapshots", type=int, default=5,
                   help="snapshots incl. the fine-tuning one (stages = this - 1)")
    g.add_argument("--synthetic-seed", type=int, default=0)
    h = p.add_argument_group("hyper-parameters (default: reference values; see --preset)")
    h.add_argument("--preset", choices=sorted(PRESETS),
                   help="amazon | synthetic (implied without data) | reference")
    for name, typ, helptext in [
        ("dim", int, "embedding size"), ("layers", int, "propagation layers"),
        ("lr", float, "Adam learning rate"), ("batch-size", int, "BPR batch size"),
        ("weight-decay", float, "L2 on ego embeddings of the batch"),
        ("edge-dropout", float, "edge dropout while training (keep_prob = 1 - this)"),
        ("time-weight", float, "weight of the temporal prompt in each layer (0: LightGCN)"),
        ("tau-pretrain", float, "hours per time step, pre-training and prompt graphs"),
        ("tau-finetune", float, "hours per time step, fine-tuning snapshots"),
        ("window", int, "omega: fine-tuned stages mixed by the interpolative update"),
        ("sample-decay", float, "phi: prompt-graph sampling decay (<0: newest kept whole)"),
        ("epochs", int, "max pre-training epochs"), ("patience", int, "pre-training patience"),
        ("stage-epochs", int, "max epochs per stage"),
        ("stage-patience", int, "early-stopping patience per stage"),
        ("seed", int, "seed of every random choice"),
        ("val-frac", float, "--select-on val: share of each snapshot held out"),
        ("pretrain-val-users", int, "users of snapshot 1 used to early-stop pre-training"),
        ("ckpt-every", int, "epochs between mid-phase checkpoints (0: only at phase ends)"),
        ("eval-batch", int, "users per evaluation batch"), ("topk", int, "K of Recall/NDCG@K"),
    ]:
        h.add_argument(f"--{name}", type=typ, help=helptext)
    h.add_argument("--tau", type=float, help="set --tau-pretrain and --tau-finetune together")
    h.add_argument("--interp-order", choices=["reference", "paper"],
                   help="interpolation weights: newest stage heaviest (reference code) or "
                        "oldest heaviest (paper text)")
    h.add_argument("--select-on", choices=["val", "test"],
                   help="epoch selection: held-out slice of the snapshot (val) or the test "
                        "snapshot as the reference code does (test)")
    h.add_argument("--batch-graph", choices=["auto", "subgraph", "full"],
                   help="what each training batch propagates over: the exact L-hop subgraph "
                        "around the batch, every node with edges, or auto (default): the "
                        "subgraph when it holds under half of the nodes with edges")
    h.add_argument("--drop-seen-test-pairs", action="store_true",
                   help="evaluate without test pairs already in the history")
    r = p.add_argument_group("run")
    r.add_argument("--out", default="runs/graphpro", help="output folder")
    r.add_argument("--resume", action="store_true", help="continue from OUT/ckpt")
    r.add_argument("--device", default="cpu", help="cpu | cuda")
    r.add_argument("--threads", type=int, help="torch CPU threads")
    r.add_argument("--ops", choices=["fused", "reference"],
                   help="fused graphpro_ext ops (default when built) or the plain-PyTorch "
                        "reference formulation (to time it in the same trainer)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphpro", description="GraphPro: temporal-prompt "
                                "pre-training and prompt fine-tuning for dynamic recommendation")
    sub = p.add_subparsers(dest="command", required=True)
    from .stages import METHODS

    for name, helptext, default_methods in [
        ("run", "pre-train, fine-tune every stage, baselines, report", ",".join(METHODS)),
        ("pretrain", "pre-train only (checkpoint in OUT/ckpt)", "graphpro"),
        ("finetune", "fine-tune every stage from OUT/ckpt's pre-trained model", "graphpro"),
    ]:
        sp = sub.add_parser(name, help=helptext)
        _add_common(sp)
        sp.add_argument("--methods", default=default_methods,
                        help=f"comma-separated, from {','.join(METHODS)}")
    sp = sub.add_parser("train", help="static LightGCN training on train.txt / test.txt")
    _add_common(sp)
    sp.add_argument("--train", required=True, help="LightGCN-format train file")
    sp.add_argument("--test", required=True, help="LightGCN-format test file")
    sp = sub.add_parser("report", help="rebuild results.json/md/png of OUT from its "
                                       "checkpoints (for a run still going or interrupted)")
    sp.add_argument("--out", required=True)
    sp.add_argument("--topk", type=int, default=20)
    sp = sub.add_parser("synth", help="write the synthetic dataset as a snapshot folder")
    sp.add_argument("dir")
    sp.add_argument("--synthetic-users", type=int, default=3000)
    sp.add_argument("--synthetic-items", type=int, default=2000)
    sp.add_argument("--synthetic-snapshots", type=int, default=5)
    sp.add_argument("--synthetic-seed", type=int, default=0)
    return p


def resolve(args: argparse.Namespace) -> dict:
    """Reference defaults < preset < explicit flags."""
    preset = args.preset or ("synthetic" if not (args.data or args.table or
                                                  getattr(args, "train", None)) else "reference")
    hp = dict(REFERENCE)
    hp.update(PRESETS[preset])
    if args.tau is not None:
        hp["tau_pretrain"] = hp["tau_finetune"] = args.tau
    for k in REFERENCE:
        v = getattr(args, k, None)
        if v is not None:
            hp[k] = v
    if not 0.0 <= hp["edge_dropout"] < 1.0:
        raise SystemExit("--edge-dropout must be in [0, 1)")
    hp["preset"] = preset
    return hp


def _setup_logging(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    log.setLevel(logging.INFO)
    log.handlers.clear()
    log.propagate = False

    class _TqdmHandler(logging.Handler):  # keeps progress bars intact
        def emit(self, record):
            tqdm.write(self.format(record), file=sys.stderr)

    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    for h in (_TqdmHandler(), logging.FileHandler(os.path.join(out, "log.txt"))):
        h.setFormatter(fmt)
        log.addHandler(h)


def _load_data(args):
    from . import data as D

    if args.data and args.table:
        raise D.DataError("give --data or --table, not both")
    if args.data:
        d = D.load_snapshot_folder(args.data, args.pretrain_file, args.skip_bad_rows)
    elif args.table:
        cols = tuple(c.strip() for c in args.columns.split(","))
        if len(cols) != 3:
            raise D.DataError("--columns needs three names: user,item,time")
        d, mapping = D.load_table(args.table, args.pretrain_span, args.snapshot, cols,
                                  args.skip_bad_rows)
        D.save_id_map(mapping, os.path.join(args.out, "id_map.json"))
        log.info(f"id mapping saved to {os.path.join(args.out, 'id_map.json')}")
    else:
        d = D.synthetic(args.synthetic_users, args.synthetic_items,
                        num_snapshots=args.synthetic_snapshots, seed=args.synthetic_seed)
    for st in d.stats.get("files", [d.stats]):
        if st.get("rows_skipped"):
            log.warning(f"{st.get('file', d.name)}: skipped {st['rows_skipped']} bad rows, e.g. "
                        f"{st['skipped_examples'][0]}")
        if st.get("duplicates_merged"):
            log.info(f"{st.get('file', d.name)}: {st['duplicates_merged']} repeated "
                     "(user, item) pairs will be merged (latest time kept)")
    log.info(f"dataset {d.name}: {d.num_users} users, {d.num_items} items, "
             f"{len(d.pretrain)} pre-training interactions, {len(d.snapshots)} snapshots "
             f"({d.num_stages} stages): {[len(s) for s in d.snapshots]}")
    return d


def _train_configs(hp: dict):
    from .train import TrainConfig

    common = dict(batch_size=hp["batch_size"], lr=hp["lr"], weight_decay=hp["weight_decay"],
                  keep_prob=1.0 - hp["edge_dropout"], topk=hp["topk"],
                  eval_batch=hp["eval_batch"], ckpt_every=hp["ckpt_every"], seed=hp["seed"],
                  batch_graph=hp["batch_graph"])
    return (TrainConfig(epochs=hp["epochs"], patience=hp["patience"], **common),
            TrainConfig(epochs=hp["stage_epochs"], patience=hp["stage_patience"], **common))


def _cmd_dynamic(args, hp) -> int:
    from .report import write_reports
    from .stages import METHODS, RunConfig, Runner

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"unknown method(s) {bad}; choose from {','.join(METHODS)}")
    ckpt = os.path.join(args.out, "ckpt")
    if args.command == "finetune":
        needed = {METHODS[m]["pretrain"] for m in methods} - {None}
        missing = [k for k in needed if not os.path.exists(os.path.join(ckpt, f"pretrain_{k}.pt"))]
        if missing:
            raise SystemExit(f"no pre-trained {missing} in {ckpt}; run `graphpro pretrain "
                             f"--out {args.out} --methods {args.methods}` first")
    elif not args.resume and os.path.isdir(ckpt):
        shutil.rmtree(ckpt)  # a fresh run: our own checkpoints only
    data = _load_data(args)
    pre_cfg, stage_cfg = _train_configs(hp)
    cfg = RunConfig(out=args.out, methods=methods, dim=hp["dim"], layers=hp["layers"],
                    time_weight=hp["time_weight"], tau_pretrain=hp["tau_pretrain"],
                    tau_finetune=hp["tau_finetune"], window=hp["window"],
                    sample_decay=hp["sample_decay"], interp_order=hp["interp_order"],
                    select_on=hp["select_on"], val_frac=hp["val_frac"],
                    pretrain_val_users=hp["pretrain_val_users"],
                    drop_seen_test_pairs=args.drop_seen_test_pairs, device=args.device,
                    seed=hp["seed"], pretrain_train=pre_cfg, stage_train=stage_cfg)
    t0 = time.perf_counter()
    runner = Runner(data, cfg)
    phases = ("pretrain",) if args.command == "pretrain" else ("pretrain", "stages")
    res = runner.run(phases)
    wall = {f"pretrain-{k}": v["wall_s"] for k, v in res["pretrain"].items()}
    wall.update({m: v["wall_s"] for m, v in res["methods"].items()})
    wall["this_process"] = time.perf_counter() - t0
    results = {"dataset": data.name, "command": " ".join(sys.argv), "preset": hp["preset"],
               "protocol": {"select_on": cfg.select_on, "val_frac": cfg.val_frac,
                            "drop_seen_test_pairs": cfg.drop_seen_test_pairs,
                            "stages": data.num_stages, "topk": hp["topk"],
                            "interp_order": cfg.interp_order,
                            "cold_nodes": "every user/item of the global id space has an "
                                          "embedding; nodes never seen in training keep their "
                                          "initialisation (plus prompt propagation if they "
                                          "appear in earlier snapshots)"},
               "hyperparameters": hp, "num_users": data.num_users,
               "num_items": data.num_items, "device": args.device, "wall_s": wall, **res}
    write_reports(results, args.out, hp["topk"])
    k = hp["topk"]
    for m, v in res["methods"].items():
        log.info(f"{m:12s} avg recall@{k} {v['average'][f'recall@{k}']:.4f}  "
                 f"ndcg@{k} {v['average'][f'ndcg@{k}']:.4f}")
    log.info(f"wrote {os.path.join(args.out, 'results.json')} ({wall['this_process']:.1f}s)")
    return 0


def _cmd_train(args, hp) -> int:
    """Static LightGCN: train on --train, report Recall/NDCG@K on --test."""
    from graphpro_ext.graph import TemporalGraph

    from . import data as D
    from .metrics import evaluate, make_eval_set
    from .model import EmbeddingModel, xavier_embeddings
    from .report import write_reports
    from .train import derive_seed, fit

    sd = D.load_static(args.train, args.test, args.skip_bad_rows)
    tr, te, nu, ni = sd.train, sd.test, sd.num_users, sd.num_items
    pre_cfg, _ = _train_configs(hp)
    fit_tr, val = tr, None
    if hp["select_on"] == "val":
        key = tr.users * ni + tr.items
        uniq = np.unique(key)
        rng = np.random.default_rng(derive_seed(hp["seed"], "static-val"))
        held = np.isin(key, rng.choice(uniq, int(round(hp["val_frac"] * uniq.size)),
                                       replace=False))
        fit_tr, val = tr.subset(~held), tr.subset(held)
    dev = torch.device(args.device)
    g = TemporalGraph.from_interactions(fit_tr.users, fit_tr.items, fit_tr.times, nu, ni,
                                        tau_hours=1.0).to(dev)
    test = make_eval_set(te.users, te.items, tr.users, tr.items, nu)
    select = test if val is None else make_eval_set(val.users, val.items, fit_tr.users,
                                                    fit_tr.items, nu)
    gen = torch.Generator().manual_seed(derive_seed(hp["seed"], "init", "static"))
    model = EmbeddingModel(xavier_embeddings(nu, ni, hp["dim"], gen).to(dev), hp["layers"], 0.0)
    t0 = time.perf_counter()
    s = fit(model, g, g.user_history(), select, pre_cfg, "train")
    model.eval()
    with torch.no_grad():
        m = evaluate(model(g), nu, test, hp["topk"], hp["eval_batch"])
    k = hp["topk"]
    log.info(f"test recall@{k} {m[f'recall@{k}']:.4f} ndcg@{k} {m[f'ndcg@{k}']:.4f} "
             f"(best epoch {s['best_epoch']})")
    res = {"dataset": os.path.dirname(os.path.abspath(args.train)), "command": " ".join(sys.argv),
           "hyperparameters": hp, "protocol": {"select_on": hp["select_on"], "static": True},
           "test": m, "train": s, "wall_s": {"train": time.perf_counter() - t0},
           "data": sd.stats}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=float)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "synth":
        from .data import synthetic, write_snapshot_folder

        write_snapshot_folder(synthetic(args.synthetic_users, args.synthetic_items,
                                        num_snapshots=args.synthetic_snapshots,
                                        seed=args.synthetic_seed), args.dir)
        print(f"wrote {args.dir}")
        return 0
    if args.command == "report":
        from .report import collect_checkpoints, write_reports

        write_reports(collect_checkpoints(args.out, args.topk), args.out, args.topk)
        print(f"wrote {os.path.join(args.out, 'results.md')} (partial: from checkpoints)")
        return 0
    _setup_logging(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    hp = resolve(args)
    torch.manual_seed(hp["seed"])
    from . import backend
    from .data import DataError

    if args.ops:
        backend.use(args.ops)

    log.info(f"graphpro {args.command}: preset {hp['preset']}, ops {backend.backend_name()}, "
             f"device {args.device}, {torch.get_num_threads()} threads")
    try:
        if args.command == "train":
            return _cmd_train(args, hp)
        return _cmd_dynamic(args, hp)
    except DataError as e:
        log.error(f"data error: {e}")
        return 2
