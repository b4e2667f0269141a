"""The ``graphpro`` command line: ``run``, ``pretrain``, ``finetune``, ``train``, ``report``,
``synth``, and for serving ``recommend``, ``export`` and ``update``.

Hyper-parameter defaults are the reference implementation's; ``--preset`` swaps in a dataset's
settings (``amazon``: the README's Amazon settings plus epoch caps that fit the time budget;
``synthetic``: small caps for the built-in dataset, implied when no data is given). Flags given
explicitly always win over a preset.

Errors policy: every flag is range-checked when parsed; bad data, flags, output folders and
checkpoints end in one line on stderr and exit code 2 (the traceback goes to ``OUT/log.txt``,
or to the terminal with ``--debug``).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import sys
import time
import traceback

import numpy as np
import torch
from tqdm import tqdm

from .errors import ConfigError, GraphproError, RunDirError, Stopped, shorten
from .planning import AUTO_SHARE
from .runtime import graceful_stop

__all__ = ["main", "build_parser", "resolve"]

log = logging.getLogger("graphpro")

# The reference implementation's defaults (HKUDS/GraphPro utils/parse_args.py).
REFERENCE = dict(
    dim=64, layers=3, lr=1e-3, batch_size=2048, weight_decay=1e-4, edge_dropout=0.5,
    time_weight=0.5, tau_pretrain=1.0, tau_finetune=1.0, window=1, sample_decay=0.05,
    epochs=300, patience=10, stage_epochs=300, stage_patience=10, seed=2023,
    interp_order="reference", select_on="val", val_frac=0.1, pretrain_val_users=3000,
    ckpt_every=0, ckpt_minutes=5.0, eval_batch=2048, topk=20, batch_graph="auto",
    auto_share=AUTO_SHARE, lr_rule="none", warmup_epochs=1.0,
)
PRESETS = {
    "reference": {},
    # data/amazon/README.md settings; epoch caps keep pre-training + 8 GraphPro stages within
    # the time budget docs/TRAINER.md states (the reference trains up to 300 epochs).
    "amazon": dict(edge_dropout=0.2, tau_pretrain=24.0, tau_finetune=24.0, window=4,
                   sample_decay=-0.1, epochs=40, stage_epochs=20, patience=5, stage_patience=5),
    # the built-in synthetic dataset: small caps so the whole default run (7 methods) is short
    "synthetic": dict(edge_dropout=0.2, tau_pretrain=24.0, tau_finetune=24.0, window=2,
                      sample_decay=-0.1, batch_size=1024, epochs=20, stage_epochs=8,
                      patience=4, stage_patience=3),
}
MAX_LAYERS = 64


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int(lo: int, hi: int | None = None):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo or (hi is not None and v > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise argparse.ArgumentTypeError(f"must be an integer {rng}, got {v}")
        return v
    return parse


def _float(lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        bad = not math.isfinite(v)
        if lo is not None:
            bad |= v <= lo if lo_open else v < lo
        if hi is not None:
            bad |= v >= hi if hi_open else v > hi
        if bad:
            left = "" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
            right = "" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
            rng = (f"in {left}, {right}" if lo is not None and hi is not None else
                   f"{'>' if lo_open else '>='} {lo:g}" if lo is not None else
                   f"{'<' if hi_open else '<='} {hi:g}" if hi is not None else "finite")
            raise argparse.ArgumentTypeError(f"must be a finite number {rng}, got {text}")
        return v
    return parse


def _duration(text: str) -> str:
    from .data import parse_duration

    try:
        parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _size(text: str) -> int:
    from .resources import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _device(text: str) -> str:
    import re

    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: choose cpu, cuda or cuda:N")
    return text


def _batch_size(text: str):
    if text == "auto":
        return text
    try:
        return POS(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {text!r}") \
            from None


def _columns(text: str) -> tuple[str, str, str]:
    cols = tuple(c.strip() for c in text.split(","))
    if len(cols) != 3 or not all(cols):
        raise argparse.ArgumentTypeError(f"needs three names user,item,time, got {text!r}")
    return cols


POS = _int(1)


def _choice(text: str, choices) -> str:
    if text not in choices:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}, got {text!r}")
    return text
# name, type, help; shared by every training command
_HYPER = [
    ("dim", POS, "embedding size"),
    ("layers", _int(0, MAX_LAYERS), "propagation layers"),
    ("lr", _float(0, lo_open=True), "Adam learning rate"),
    ("batch-size", _batch_size, "BPR batch size, or auto: the rule of docs/SCALE.md from the "
     "number of training interactions"),
    ("lr-rule", lambda t: _choice(t, ("none", "sqrt", "linear")),
     "lr scaling above batch 2048: none (default) | sqrt | linear, lr * (B/2048)^a"),
    ("warmup-epochs", _float(0), "linear lr warm-up (epochs) when the batch is above 2048"),
    ("weight-decay", _float(0), "L2 on ego embeddings of the batch"),
    ("edge-dropout", _float(0, 1, hi_open=True),
     "edge dropout while training (keep_prob = 1 - this), in [0, 1)"),
    ("epochs", POS, "max (pre-)training epochs"), ("patience", POS, "early-stopping patience"),
    ("seed", _int(0, 2**63 - 1), "seed of every random choice"),
    ("val-frac", _float(0, 1, True, True), "--select-on val: share of the data held out"),
    ("ckpt-every", _int(0), "also checkpoint every this many epochs inside a phase (0: by "
     "--ckpt-minutes only)"),
    ("ckpt-minutes", _float(0), "checkpoint after the epoch that ends this many minutes after "
     "the last checkpoint (0: by --ckpt-every only; both 0: only at phase ends and on SIGTERM)"),
    ("eval-batch", POS, "users per evaluation batch"), ("topk", POS, "K of Recall/NDCG@K"),
]
# only the dynamic protocol (run, pretrain, finetune) has these
_DYNAMIC = [
    ("time-weight", _float(0, 1), "weight of the temporal prompt in each layer (0: LightGCN)"),
    ("tau-pretrain", _float(0, lo_open=True), "hours per time step, pre-training and prompts"),
    ("tau-finetune", _float(0, lo_open=True), "hours per time step, fine-tuning snapshots"),
    ("window", POS, "omega: fine-tuned stages mixed by the interpolative update"),
    ("sample-decay", _float(-1, 1), "phi: prompt-graph sampling decay (<0: newest kept whole)"),
    ("stage-epochs", POS, "max epochs per stage"),
    ("stage-patience", POS, "early-stopping patience per stage"),
    ("pretrain-val-users", POS, "users of snapshot 1 used to early-stop pre-training"),
]


def _add_data(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (default: the built-in synthetic dataset)")
    g.add_argument("--data", help="GraphPro snapshot folder (pretrain file, fine_tune.txt, "
                                  "test_1..N.txt)")
    g.add_argument("--pretrain-file", help="pre-training file name inside --data "
                                           "(default: pretrain.txt, else pretrain_val.txt)")
    g.add_argument("--table", help="interactions table (.csv with header or .parquet)")
    g.add_argument("--columns", type=_columns, default=("user", "item", "timestamp"),
                   help="user,item,time column names of --table")
    g.add_argument("--pretrain-span", type=_duration, default="30d",
                   help="--table: pre-training span, e.g. 30d")
    g.add_argument("--snapshot", type=_duration, default="7d",
                   help="--table: snapshot length, e.g. 7d")
    _add_synthetic(g)


def _add_synthetic(g) -> None:
    g.add_argument("--synthetic-users", type=POS, default=3000)
    g.add_argument("--synthetic-items", type=POS, default=2000)
    g.add_argument("--synthetic-snapshots", type=_int(2), default=5,
                   help="snapshots incl. the fine-tuning one (stages = this - 1), >= 2")
    g.add_argument("--synthetic-seed", type=_int(0, 2**32 - 1), default=0)


def _add_training(p: argparse.ArgumentParser, dynamic: bool) -> None:
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="skip (and count) malformed rows instead of failing")
    h = p.add_argument_group("hyper-parameters (default: reference values; see --preset)")
    h.add_argument("--preset", choices=sorted(PRESETS),
                   help="amazon | synthetic (implied without data) | reference")
    for name, typ, helptext in _HYPER + (_DYNAMIC if dynamic else []):
        h.add_argument(f"--{name}", type=typ, help=helptext)
    if dynamic:
        h.add_argument("--tau", type=_float(0, lo_open=True),
                       help="set --tau-pretrain and --tau-finetune together")
        h.add_argument("--interp-order", choices=["reference", "paper"],
                       help="interpolation weights: newest stage heaviest (reference code) or "
                            "oldest heaviest (paper text)")
        h.add_argument("--drop-seen-test-pairs", action="store_true",
                       help="evaluate without test pairs already in the history")
    h.add_argument("--select-on", choices=["val", "test"],
                   help="epoch selection: held-out slice of the training data (val) or the "
                        "test data as the reference code does (test)")
    h.add_argument("--batch-graph", choices=["auto", "subgraph", "full"],
                   help="what each training batch propagates over: the exact L-hop subgraph "
                        "around the batch, every node with edges, or auto (default): the "
                        "subgraph when it holds at most --auto-share of the nodes with edges")
    h.add_argument("--auto-share", type=_float(0, 1, lo_open=True),
                   help=f"--batch-graph auto's threshold, in (0, 1] (default {AUTO_SHARE}; "
                        "runs begun before this flag existed used 0.5: resume them with it)")
    r = p.add_argument_group("run")
    r.add_argument("--out", default="runs/graphpro", help="output folder")
    if dynamic:
        r.add_argument("--resume", action="store_true", help="continue from OUT/ckpt")
    r.add_argument("--overwrite", action="store_true",
                   help="replace a previous run's outputs in OUT (deleted only once the new "
                        "input has been validated)")
    r.add_argument("--max-memory", type=_size,
                   help="refuse runs estimated to need more memory than this, e.g. 8G "
                        "(default: the memory available now)")
    r.add_argument("--device", type=_device, default="cpu", help="cpu | cuda | cuda:N")
    r.add_argument("--threads", type=POS, help="torch CPU threads")
    r.add_argument("--ops", choices=["fused", "reference"],
                   help="fused graphpro_ext ops (default when built) or the plain-PyTorch "
                        "reference formulation (to time it in the same trainer)")
    r.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="graphpro", description="GraphPro: temporal-prompt pre-training and "
                "prompt fine-tuning for dynamic recommendation")
    from .methods import DESCRIPTIONS as METHOD_HELP
    from .models import DESCRIPTIONS as MODEL_HELP
    from .models import MODELS
    from .reorder import RULES as REORDER_RULES
    from .methods import DEFAULT_METHODS
    from .methods.base import STAGE_LOSSES
    from .stages import METHODS

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("methods (--methods):\n" + "\n".join(f"  {k:12s} {METHOD_HELP[k]}" for k in METHODS)
                + "\n\nbackbones (--backbone, train --model):\n"
                + "\n".join(f"  {k:12s} {MODEL_HELP[k]}" for k in MODELS))
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext, default_methods in [
        ("run", "pre-train, fine-tune every stage, baselines, report",
         ",".join(DEFAULT_METHODS)),
        ("pretrain", "pre-train only (checkpoint in OUT/ckpt)", "graphpro"),
        ("finetune", "fine-tune every stage from OUT/ckpt's pre-trained model", "graphpro"),
    ]:
        sp = sub.add_parser(name, help=helptext)
        _add_data(sp)
        _add_training(sp, dynamic=True)
        sp.add_argument("--methods", default=default_methods,
                        help=f"comma-separated names (graphpro --help lists them), or all "
                             f"(default: "
                             f"{default_methods})")
        sp.add_argument("--backbone", choices=sorted(MODELS), default="lightgcn",
                        help="the backbone every pre-training (and full retraining) "
                             "trains; see graphpro --help")
        sp.add_argument("--stage-loss", choices=STAGE_LOSSES, default="backbone",
                        help="what the stages train: the backbone's own loss (default, as the "
                             "reference code's plug-in fine-tunes; DGCN keeps BPR) or LightGCN's "
                             "BPR")
        sp.add_argument("--reorder", choices=REORDER_RULES, default="auto",
                        help="renumber nodes by degree for memory locality, invisibly to "
                             "outputs (auto: from 1M directed pre-training edges; "
                             "docs/SCALE.md)")
        sp.add_argument("--serve", help="the method whose model is saved per stage in OUT/model "
                                        "(default: the first of --methods; 'none' saves no "
                                        "model: experiment grids that only report metrics)")
        sp.add_argument("--no-final-test", action="store_true",
                        help="also train a last stage on the newest snapshot (untested), so "
                             "the served model has seen all data")
    sp = sub.add_parser("train", help="static training of one backbone (--model, default "
                                      "LightGCN) on train.txt / test.txt")
    sp.add_argument("--train", required=True, help="LightGCN-format train file")
    sp.add_argument("--test", required=True, help="LightGCN-format test file")
    sp.add_argument("--model", choices=sorted(MODELS), default="lightgcn",
                    help="the backbone (see graphpro --help)")
    _add_training(sp, dynamic=False)
    sp = sub.add_parser("report", help="rebuild results.json/md/png of OUT from its "
                                       "checkpoints (for a run still going or interrupted)")
    sp.add_argument("--out", required=True)
    sp.add_argument("--topk", type=POS, default=20)
    sp.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    _add_serving(sub)
    sp = sub.add_parser("synth", help="write the synthetic dataset as a snapshot folder")
    sp.add_argument("dir")
    _add_synthetic(sp)
    sp.add_argument("--hold-out-last", action="store_true",
                    help="write the newest snapshot as DIR/next_snapshot.txt instead of a test "
                         "file (a newer week to try `graphpro update` with)")
    sp.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


def _add_serving(sub) -> None:
    def common(sp, stage=True):
        sp.add_argument("--run", required=True, help="a run folder (its OUT)")
        if stage:
            sp.add_argument("--stage", type=_int(0),
                            help="the model of this stage (default: the newest, OUT/model/LATEST)")
        sp.add_argument("--threads", type=POS, help="torch CPU threads")
        sp.add_argument("--debug", action="store_true", help="show tracebacks of errors")

    sp = sub.add_parser("recommend", help="top-k items for users, from a run's saved model")
    common(sp)
    sp.add_argument("--users", required=True,
                    help="user ids: a file (one per line) or a comma-separated list")
    sp.add_argument("--k", type=POS, default=20)
    sp.add_argument("--format", choices=["csv", "json", "parquet"], default="csv")
    sp.add_argument("--output", help="file to write (default: standard output; parquet needs it)")
    sp.add_argument("--include-seen", action="store_true",
                    help="do not exclude the items a user has interacted with")
    sp = sub.add_parser("export", help="final user and item embeddings with their ids, for an "
                                       "ANN index")
    common(sp)
    sp.add_argument("--format", choices=["npy", "parquet"], default="npy")
    sp.add_argument("--out", required=True, help="folder to write into")
    sp = sub.add_parser("update", help="absorb a new snapshot into a run: the next model version")
    common(sp, stage=False)
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--snapshot", help="a GraphPro-format snapshot file")
    src.add_argument("--table", help="a table slice (.csv with header or .parquet)")
    sp.add_argument("--columns", type=_columns, default=("user", "item", "timestamp"),
                    help="user,item,time column names of --table")
    sp.add_argument("--mode", choices=["prompt", "finetune"], default="prompt",
                    help="prompt: the structural-prompt pass only, no training (fast); "
                         "finetune: a stage of fine-tuning")
    sp.add_argument("--budget-seconds", type=_float(0), default=0.0,
                    help="--mode finetune: stop training after this many seconds (0: none)")
    sp.add_argument("--skip-bad-rows", action="store_true",
                    help="skip (and count) malformed rows instead of failing")
    sp.add_argument("--device", type=_device, default="cpu", help="cpu | cuda | cuda:N")


def resolve(args: argparse.Namespace) -> dict:
    """Reference defaults < preset < explicit flags."""
    preset = args.preset or ("synthetic" if not (getattr(args, "data", None) or
                                                  getattr(args, "table", None) or
                                                  getattr(args, "train", None)) else "reference")
    hp = dict(REFERENCE)
    hp.update(PRESETS[preset])
    if getattr(args, "tau", None) is not None:
        hp["tau_pretrain"] = hp["tau_finetune"] = args.tau
    for k in REFERENCE:
        v = getattr(args, k, None)
        if v is not None:
            hp[k] = v
    if not 0.0 <= hp["edge_dropout"] < 1.0:
        raise ConfigError("--edge-dropout must be in [0, 1)")
    hp["preset"] = preset
    return hp


_LOG_FILE: str | None = None


def _setup_logging(out: str, rank: int = 0) -> None:
    """Rank 0 logs to the terminal and OUT/log.txt; other ranks only their warnings and errors,
    to the terminal."""
    global _LOG_FILE
    log.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    log.handlers.clear()
    log.propagate = False

    class _TqdmHandler(logging.Handler):  # keeps progress bars intact
        def emit(self, record):
            tqdm.write(self.format(record), file=sys.stderr)

    fmt = logging.Formatter("%(asctime)s %(message)s" if rank == 0 else
                            f"%(asctime)s [rank {rank}] %(message)s", "%H:%M:%S")
    _LOG_FILE = os.path.join(out, "log.txt") if rank == 0 else None
    for h in (_TqdmHandler(),) + ((logging.FileHandler(_LOG_FILE),) if _LOG_FILE else ()):
        h.setFormatter(fmt)
        log.addHandler(h)


def _close_logging() -> None:
    global _LOG_FILE
    for h in list(log.handlers):
        h.close()
        log.removeHandler(h)
    _LOG_FILE = None


def _check_device(device: str) -> None:
    if not device.startswith("cuda"):
        return
    import graphpro_ext

    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: this torch ({torch.__version__}) sees no CUDA "
                          "device (a CPU-only build, or no GPU here); use --device cpu")
    info = graphpro_ext.build_info()
    if not info.get("with_cuda"):
        raise ConfigError(f"--device {device}: this graphpro_ext build has no CUDA kernels; "
                          "rebuild it with `GRAPHPRO_CUDA=ON pip install --no-build-isolation "
                          "--no-deps -e .` (see docs/CUDA.md)")


def _log_file_stats(files: list[dict], name: str) -> None:
    from .data import _iso

    for st in files:
        f = st.get("file", name)
        if st.get("time_range") and st["time_range"][1] > 0:
            lo, hi = st["time_range"]
            log.info(f"{f}: {st['interactions']} interactions, times {_iso(lo)} .. {_iso(hi)}")
        for w in st.get("warnings", []):
            log.warning(w)
        if st.get("rows_skipped"):
            log.warning(f"{f}: skipped {st['rows_skipped']} bad rows, e.g. "
                        f"{st['skipped_examples'][0]}")
        if st.get("duplicates_merged"):
            log.info(f"{f}: {st['duplicates_merged']} repeated (user, item) pairs will be "
                     "merged (latest time kept)")


def _load_data(args):
    from . import data as D

    if args.data and args.table:
        raise D.DataError("give --data or --table, not both")
    mapping = None
    if args.data:
        d = D.load_snapshot_folder(args.data, args.pretrain_file, args.skip_bad_rows)
    elif args.table:
        d, mapping = D.load_table(args.table, args.pretrain_span, args.snapshot, args.columns,
                                  args.skip_bad_rows)
    else:
        d = D.synthetic(args.synthetic_users, args.synthetic_items,
                        num_snapshots=args.synthetic_snapshots, seed=args.synthetic_seed)
    _log_file_stats(d.stats.get("files", []), d.name)
    log.info(f"dataset {d.name}: {d.num_users} users, {d.num_items} items, "
             f"{len(d.pretrain)} pre-training interactions, {len(d.snapshots)} snapshots "
             f"({d.num_stages} stages): {[len(s) for s in d.snapshots]}")
    return d, mapping


def _check_memory(args, hp, num_users, num_items, parts, files, window=0) -> None:
    from .resources import check_memory, fmt_bytes

    users = np.concatenate([p.users for p in parts])
    items = np.concatenate([p.items for p in parts])
    hint = ("remap the ids to a dense range: give the interactions as a table (--table "
            "user,item,timestamp CSV or Parquet), whose ids are mapped" if not
            getattr(args, "table", None) else "")
    from .train import resolve_batch_size

    est = check_memory(num_users, num_items, files, users, items, hp["dim"], users.size,
                       hp["eval_batch"], window, args.max_memory, hint,
                       resolve_batch_size(hp["batch_size"], users.size,
                                          int(np.count_nonzero(np.bincount(users)))))
    log.info(f"memory estimate {fmt_bytes(est)} ({est} bytes)")


def _train_configs(hp: dict):
    from .train import TrainConfig

    common = dict(batch_size=hp["batch_size"], lr=hp["lr"], weight_decay=hp["weight_decay"],
                  keep_prob=1.0 - hp["edge_dropout"], topk=hp["topk"],
                  eval_batch=hp["eval_batch"], ckpt_every=hp["ckpt_every"], seed=hp["seed"],
                  ckpt_minutes=hp["ckpt_minutes"],
                  batch_graph=hp["batch_graph"], auto_share=hp["auto_share"],
                  lr_rule=hp["lr_rule"],
                  warmup_epochs=hp["warmup_epochs"])
    return (TrainConfig(epochs=hp["epochs"], patience=hp["patience"], **common),
            TrainConfig(epochs=hp["stage_epochs"], patience=hp["stage_patience"], **common))


def _fresh(args) -> bool:
    """A run that starts OUT afresh (not `finetune`, which continues `pretrain`, nor --resume)."""
    return args.command != "finetune" and not getattr(args, "resume", False)


def _prepare_out(rd, args) -> None:
    """Refuse (before reading any data) to run over a previous run unless asked to."""
    if _fresh(args) and not args.overwrite:
        rd.refuse_previous_run()
    n = rd.clean_temporaries()
    if n:
        log.info(f"removed {n} temporary file(s) of interrupted writes")


def _start_writing(rd, args) -> None:
    """Input validated: now (and only now) a fresh --overwrite run clears the previous one."""
    if _fresh(args) and args.overwrite:
        gone = rd.remove_previous_run()
        if gone:
            log.info(f"--overwrite: removed the previous run's {', '.join(gone)}")


def _cmd_dynamic(args, hp, rd, shard) -> int:
    from .checkpoint import CheckpointLayout
    from .data import save_id_map
    from .report import write_reports
    from .stages import METHODS, RunConfig, Runner

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if methods == ["all"]:
        methods = list(METHODS)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ConfigError(f"--methods: unknown method(s) {bad[:5]}; choose from "
                          f"{','.join(METHODS)}")
    if args.command == "finetune":
        layout = CheckpointLayout(args.out)
        needed = {METHODS[m].pretrain for m in methods} - {None}
        missing = [k for k in needed if not os.path.exists(layout.pretrain(k))]
        if missing:
            raise RunDirError(f"no pre-trained {missing} in {layout.root}; run `graphpro pretrain "
                              f"--out {args.out} --methods {args.methods}` first")
    data, mapping = _load_data(args)
    files = data.stats.get("files", [])
    _check_memory(args, hp, data.num_users, data.num_items, [data.pretrain, *data.snapshots],
                  files, hp["window"])
    pre_cfg, stage_cfg = _train_configs(hp)
    cfg = RunConfig(out=args.out, methods=methods, dim=hp["dim"], layers=hp["layers"],
                    time_weight=hp["time_weight"], tau_pretrain=hp["tau_pretrain"],
                    tau_finetune=hp["tau_finetune"], window=hp["window"],
                    sample_decay=hp["sample_decay"], interp_order=hp["interp_order"],
                    select_on=hp["select_on"], val_frac=hp["val_frac"],
                    pretrain_val_users=hp["pretrain_val_users"],
                    drop_seen_test_pairs=args.drop_seen_test_pairs, device=args.device,
                    seed=hp["seed"], pretrain_train=pre_cfg, stage_train=stage_cfg,
                    serve=args.serve, final_test=not args.no_final_test,
                    backbone=args.backbone, stage_loss=args.stage_loss, reorder=args.reorder)
    t0 = time.perf_counter()
    ids = None
    if mapping is not None:
        from .serving import IdMap

        ids = (IdMap(mapping["users"]), IdMap(mapping["items"]))
    runner = Runner(data, cfg, shard, ids=ids)
    if shard.rank == 0:
        _start_writing(rd, args)
    if shard.sharded:  # the other ranks read OUT only once rank 0 has prepared it
        torch.distributed.barrier()
    runner.check_config()  # refuses other configurations / other data before anything runs
    if mapping is not None and shard.rank == 0:  # the rows as the run numbers them
        mapping = {"users": runner.ids[0].to_list(), "items": runner.ids[1].to_list()}
        save_id_map(mapping, os.path.join(args.out, "id_map.json"))
        log.info(f"id mapping saved to {os.path.join(args.out, 'id_map.json')}")
    phases = ("pretrain",) if args.command == "pretrain" else ("pretrain", "stages")
    res = runner.run(phases)
    wall = {f"pretrain-{k}": v["wall_s"] for k, v in res["pretrain"].items()}
    wall.update({m: v["wall_s"] for m, v in res["methods"].items()})
    wall["this_process"] = time.perf_counter() - t0
    results = {"dataset": data.name, "command": command_line(args), "preset": hp["preset"],
               "protocol": {"select_on": cfg.select_on, "val_frac": cfg.val_frac,
                            "drop_seen_test_pairs": cfg.drop_seen_test_pairs,
                            "stages": data.num_stages, "topk": hp["topk"],
                            "interp_order": cfg.interp_order,
                            "reorder": runner.cfg.reorder,
                            "cold_nodes": "every user/item of the global id space has an "
                                          "embedding; nodes never seen in training keep their "
                                          "initialisation (plus prompt propagation if they "
                                          "appear in earlier snapshots)"},
               "hyperparameters": {**hp, "backbone": runner.cfg.backbone,
                                   "stage_loss": runner.cfg.stage_loss},
               "num_users": data.num_users,
               "num_items": data.num_items, "data_fingerprint": runner.fingerprint,
               "device": args.device, "wall_s": wall,
               "distributed": {"world_size": shard.world, "backend": _backend_of(shard),
                               "sharding": "embedding columns" if shard.sharded else None},
               **res}
    if shard.rank != 0:
        return 0
    write_reports(results, args.out, hp["topk"])
    k = hp["topk"]
    for m, v in res["methods"].items():
        log.info(f"{m:12s} avg recall@{k} {v['average'][f'recall@{k}']:.4f}  "
                 f"ndcg@{k} {v['average'][f'ndcg@{k}']:.4f}")
    log.info(f"wrote {os.path.join(args.out, 'results.json')} ({wall['this_process']:.1f}s)")
    return 0


def _cmd_train(args, hp, rd) -> int:
    """Static LightGCN: train on --train, report Recall/NDCG@K on --test."""
    from graphpro_ext.graph import TemporalGraph

    from . import data as D
    from . import models
    from .metrics import make_eval_set
    from .report import write_json_atomic
    from .runtime import derive_seed
    from .train import evaluate_model, fit

    sd = D.load_static(args.train, args.test, args.skip_bad_rows)
    _log_file_stats(sd.stats["files"], "train")
    tr, te, nu, ni = sd.train, sd.test, sd.num_users, sd.num_items
    _check_memory(args, hp, nu, ni, [tr, te], sd.stats["files"])
    _start_writing(rd, args)
    pre_cfg, _ = _train_configs(hp)
    fit_tr, val = tr, None
    if hp["select_on"] == "val":  # the stages' split: a seeded share of distinct pairs
        fit_tr, val = D.hold_out_pairs(tr, ni, hp["val_frac"],
                                       derive_seed(hp["seed"], "static-val"))
    dev = torch.device(args.device)
    g = TemporalGraph.from_interactions(fit_tr.users, fit_tr.items, fit_tr.times, nu, ni,
                                        tau_hours=1.0).to(dev)
    test = make_eval_set(te.users, te.items, tr.users, tr.items, nu)
    select = test if val is None else make_eval_set(val.users, val.items, fit_tr.users,
                                                    fit_tr.items, nu)
    # the backbone of the stages' LightGCN methods, built as they build it
    gen = torch.Generator().manual_seed(derive_seed(hp["seed"], "init", "static"))
    cls = models.model_class(args.model)
    model = models.build(args.model, cls.init_table(nu, ni, hp["dim"], gen).to(dev),
                         hp["layers"], 0.0)
    t0 = time.perf_counter()
    s = fit(model, g, g.user_history(), select, pre_cfg, "train")
    m = evaluate_model(model, g, test, hp["topk"], hp["eval_batch"])
    k = hp["topk"]
    from .serving import IdMap, write_model

    with torch.no_grad():
        final = model(g)
    write_model(args.out, stage=0, method="train",
                config={"command": "train", **hp, "model": args.model},
                user_map=IdMap.identity(nu), item_map=IdMap.identity(ni), table=model.table(),
                gate=model.input_transform(), final=final, history=[tr], pending=[],
                graph=fit_tr, graph_tau=1.0, metrics=m,
                extra={"dataset": os.path.dirname(os.path.abspath(args.train))})
    log.info(f"test recall@{k} {m[f'recall@{k}']:.4f} ndcg@{k} {m[f'ndcg@{k}']:.4f} "
             f"(best epoch {s['best_epoch']})")
    res = {"dataset": os.path.dirname(os.path.abspath(args.train)), "command": command_line(args),
           "hyperparameters": {**hp, "model": args.model},
           "protocol": {"select_on": hp["select_on"], "static": True},
           "test": m, "train": s, "wall_s": {"train": time.perf_counter() - t0},
           "data": sd.stats, "data_fingerprint": sd.fingerprint()}
    write_json_atomic(res, os.path.join(args.out, "results.json"))
    return 0


def _cmd_report(args) -> int:
    from .report import collect_checkpoints, write_reports

    if not os.path.isdir(args.out):
        raise RunDirError(f"--out {args.out}: no such folder")
    write_reports(collect_checkpoints(args.out, args.topk), args.out, args.topk)
    print(f"wrote {os.path.join(args.out, 'results.md')} (partial: from checkpoints)")
    return 0


def _cmd_synth(args) -> int:
    from .data import synthetic, write_snapshot_folder
    from .rundir import ensure_folder

    from .data import write_snapshot_file

    ensure_folder(args.dir)
    d = synthetic(args.synthetic_users, args.synthetic_items,
                  num_snapshots=args.synthetic_snapshots, seed=args.synthetic_seed)
    if args.hold_out_last:
        if len(d.snapshots) < 3:
            raise ConfigError("--hold-out-last needs --synthetic-snapshots >= 3 (two stay for "
                              "fine-tuning and a test)")
        write_snapshot_file(d.snapshots[-1], os.path.join(args.dir, "next_snapshot.txt"))
        d.snapshots = d.snapshots[:-1]
    write_snapshot_folder(d, args.dir)
    print(f"wrote {args.dir}")
    return 0


def _read_user_ids(text: str) -> list:
    if os.path.isfile(text):
        import csv

        with open(text, newline="") as f:  # one id per line, or a CSV's first column
            ids = [row[0].strip() for row in csv.reader(f) if row and row[0].strip()]
        if ids and ids[0] in ("user", "user_id", "id"):  # a header line
            ids = ids[1:]
        if not ids:
            raise ConfigError(f"--users {text}: no ids in the file")
        return ids
    ids = [t.strip() for t in text.split(",") if t.strip()]
    if not ids:
        raise ConfigError("--users: give a file of ids or a comma-separated list")
    return ids


def _cmd_recommend(args) -> int:
    from .serving import load

    t0 = time.perf_counter()
    m = load(args.run, "latest" if args.stage is None else args.stage)
    users = _read_user_ids(args.users)
    rec = m.recommend(users, k=args.k, exclude_seen=not args.include_seen)
    unknown = int(rec.fallback.sum())
    if args.format == "parquet" and not args.output:
        raise ConfigError("--format parquet needs --output FILE")
    if args.format == "json":
        import json

        rows, items = [], rec.items
        for r, u in enumerate(rec.users):
            m_ = int((rec.item_rows[r] >= 0).sum())
            rows.append({"user": u, "fallback": bool(rec.fallback[r]),
                         "items": items[r, :m_].tolist(),
                         "scores": rec.scores[r, :m_].tolist()})
        _write_output(json.dumps(rows, default=str) + "\n", args.output)
    else:
        _write_table(rec.columns(), args.format, args.output)
    sys.stderr.write(f"graphpro recommend: {len(users)} user(s) from stage {m.stage} "
                     f"({m.method}) of {args.run}; {unknown} unknown (most popular items); "
                     f"{time.perf_counter() - t0:.2f}s\n")
    return 0


def _write_output(text, output: str | None) -> None:
    """``text``: a str, or a list of bytes-like parts (written without joining them)."""
    parts = [text.encode("utf-8")] if isinstance(text, str) else text
    if output:
        from .runtime import write_bytes_atomic

        write_bytes_atomic(parts, output)
    else:
        sys.stdout.flush()
        for p in parts:
            sys.stdout.buffer.write(p)
        sys.stdout.buffer.flush()


def _write_table(cols: dict, fmt: str, output: str | None) -> None:
    """CSV or Parquet of ``Recommendations.columns()``: through pyarrow when it is installed
    (vectorised), else the csv module."""
    try:
        import pyarrow as pa
    except ImportError:
        if fmt == "parquet":
            raise ConfigError("--format parquet needs pyarrow (pip install pyarrow)") from None
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(list(cols))
        for u, r, i, s, fb in zip(*cols.values()):
            w.writerow([u, r, i, f"{s:.6g}", int(fb)])
        return _write_output(buf.getvalue(), output)
    def ids(col):  # integer ids stay integers in CSV; Parquet holds ids as strings
        if col.dtype.kind in "iu" and fmt == "csv":
            return pa.array(col)
        return pa.array(col if col.dtype.kind in "iuU" else col.astype(str)).cast(pa.string())

    table = pa.table({"user": ids(cols["user"]),
                      "rank": pa.array(cols["rank"].astype(np.int32)),
                      "item": ids(cols["item"]),
                      "score": pa.array(cols["score"].astype(np.float32)),
                      "fallback": pa.array(cols["fallback"].astype(bool))})
    if fmt == "csv":
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        table = table.set_column(4, "fallback", pa.array(cols["fallback"].astype(np.int8)))
        # quote only when an id needs it (pyarrow's "needed" quotes every string)
        special = any(pa.types.is_string(table[c].type)
                      and pc.any(pc.match_substring_regex(table[c], '[,"\r\n]')).as_py()
                      for c in ("user", "item"))
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(
            include_header=False, quoting_style="needed" if special else "none"))
        return _write_output([(",".join(cols) + "\n").encode(), sink.getvalue()], output)
    import pyarrow.parquet as pq

    tmp = output + f".tmp{os.getpid()}"
    pq.write_table(table, tmp)
    os.replace(tmp, output)


def _cmd_export(args) -> int:
    from .rundir import ensure_folder
    from .serving import load

    m = load(args.run, "latest" if args.stage is None else args.stage)
    ensure_folder(args.out)
    parts = {"users": m.user_embeddings(), "items": m.item_embeddings()}
    written = []
    for name, (ids, emb) in parts.items():
        if args.format == "npy":
            for suffix, arr in (("ids", ids), ("embeddings", emb.numpy())):
                path = os.path.join(args.out, f"{name}_{suffix}.npy")
                tmp = path + f".tmp{os.getpid()}.npy"
                np.save(tmp, arr)
                os.replace(tmp, path)
                written.append(path)
        else:
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                raise ConfigError("--format parquet needs pyarrow (pip install pyarrow)") \
                    from None
            e = emb.numpy()
            vec = pa.FixedSizeListArray.from_arrays(pa.array(e.reshape(-1)), e.shape[1])
            table = pa.table({"id": pa.array(ids.tolist()), "embedding": vec})
            path = os.path.join(args.out, f"{name}.parquet")
            tmp = path + f".tmp{os.getpid()}"
            pq.write_table(table, tmp)
            os.replace(tmp, path)
            written.append(path)
    print(f"wrote {', '.join(written)} (stage {m.stage}, {m.num_users} users, {m.num_items} "
          f"items, d = {m.user_embeddings()[1].shape[1]})")
    return 0


def _cmd_update(args) -> int:
    from . import data as D
    from .rundir import RunDir
    from .update import RawSnapshot, updatable, update

    _check_device(args.device)
    if not os.path.isdir(args.run):
        raise RunDirError(f"--run {args.run}: no such folder")
    rec = updatable(args.run)  # before reading the snapshot: is there anything to update?
    if args.snapshot:
        inter, st = D.read_snapshot_file(args.snapshot, args.skip_bad_rows)
        raw = RawSnapshot(inter.users.tolist(), inter.items.tolist(), inter.times,
                          args.snapshot)
    else:
        errs = D._RowErrors(args.skip_bad_rows)
        u, i, t, _ = D.read_table_rows(args.table, args.columns, errs)
        raw = RawSnapshot(u, i, t, args.table)
    with RunDir(args.run):
        _setup_logging(args.run)
        try:
            res = update(args.run, raw, args.mode, args.budget_seconds, args.device, rec)
        except BaseException as e:
            _note_traceback(e)
            raise
        finally:
            _close_logging()
    print(f"stage {res['stage']} ({res['mode']}): {res['interactions']} interactions, "
          f"{res['new_users']} new users, {res['new_items']} new items, "
          f"{res['seconds']:.2f}s -> {res['model']}")
    return 0


def _backend_of(shard) -> str | None:
    return torch.distributed.get_backend() if shard.sharded else None


def _run(args) -> int:
    import contextlib

    from .distributed import init_from_env
    from .rundir import RunDir

    if args.command == "synth":
        return _cmd_synth(args)
    if args.command in ("recommend", "export", "update"):
        if args.threads:
            torch.set_num_threads(args.threads)
        return {"recommend": _cmd_recommend, "export": _cmd_export,
                "update": _cmd_update}[args.command](args)
    if args.command == "report":
        return _cmd_report(args)
    hp = resolve(args)
    _check_device(args.device)
    shard = init_from_env(args.device)  # torchrun: this rank's embedding columns
    if shard.sharded and args.command == "train":
        raise ConfigError("graphpro train runs in one process; launch run/pretrain/finetune "
                          "with torchrun for column-sharded training")
    try:
        # SIGTERM: finish the epoch, checkpoint, exit 143 (train keeps no checkpoint: it dies)
        with graceful_stop() if args.command != "train" else contextlib.nullcontext():
            return _run_locked(args, hp, shard, RunDir(args.out) if shard.rank == 0 else
                               contextlib.nullcontext())
    finally:
        if shard.sharded and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _run_locked(args, hp, shard, lock) -> int:
    """The run under rank 0's lock on OUT (other ranks write only their own checkpoints)."""
    with lock as rd:
        _setup_logging(args.out, shard.rank)
        try:
            if shard.rank == 0:
                _prepare_out(rd, args)
            if args.threads:
                torch.set_num_threads(args.threads)
            torch.manual_seed(hp["seed"])
            from . import backend

            # every call chooses (an earlier in-process call's --ops must not linger)
            backend.use(args.ops or ("fused" if backend.FUSED_ERROR is None else "reference"))
            log.info(f"graphpro {args.command}: preset {hp['preset']}, ops "
                     f"{backend.backend_name()}, device {args.device}, "
                     f"{torch.get_num_threads()} threads"
                     + (f", {shard.world} ranks ({_backend_of(shard)}), embedding columns "
                        "sharded" if shard.sharded else ""))
            if args.command == "train":
                return _cmd_train(args, hp, rd)
            return _cmd_dynamic(args, hp, rd, shard)
        except BaseException as e:
            _note_traceback(e)
            raise
        finally:
            _close_logging()


def _note_traceback(e: BaseException) -> None:
    """Keep the full traceback in OUT/log.txt (the terminal gets one line)."""
    if _LOG_FILE is None or isinstance(e, (SystemExit, Stopped)):
        return
    try:
        with open(_LOG_FILE, "a") as f:
            f.write(f"error: {shorten(e, 600)}\n" + "".join(traceback.format_exception(e)))
    except OSError:
        pass


def _out_of(args) -> str:
    return getattr(args, "out", None) or getattr(args, "run", None) or "."


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"graphpro: error: {message}\n")
    sys.stderr.flush()
    return code


def command_line(args) -> str:
    """The command as a user would retype it: ``graphpro`` and the arguments main() parsed,
    without the interpreter's or the script's path on this machine."""
    return shlex.join(["graphpro", *args.argv])


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args)
    except GraphproError as e:
        if args.debug:
            raise
        return _fail(shorten(e, 600), 2)
    except KeyboardInterrupt:
        return _fail("interrupted; continue the run with --resume", 130)
    except Stopped as e:  # asked for, not an error: the run resumes from its checkpoint
        sys.stderr.write(f"graphpro: {shorten(e, 600)}\n")
        return 128 + e.signum
    except OSError as e:  # a full disk, a file vanishing under us, permissions
        if args.debug:
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return _fail(f"{where}{e.strerror or shorten(e)}", 2)
    except MemoryError:
        return _fail("out of memory (see the memory estimate in OUT/log.txt; --max-memory, a "
                     "smaller --dim or --eval-batch)", 2)
    except Exception as e:  # noqa: BLE001 - a bug: one line, the traceback in the log
        if args.debug:
            raise
        return _fail(f"internal error: {type(e).__name__}: {shorten(e, 300)} (traceback in "
                     f"{os.path.join(_out_of(args), 'log.txt')}; please report it)", 1)
