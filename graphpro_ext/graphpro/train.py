"""The BPR training loop shared by pre-training, fine-tuning stages and baselines: shuffled
mini-batches over the training interactions, one uniform negative per positive, propagation per
batch over the batch's L-hop subgraph or the whole graph (``batch_graph``, with edge dropout),
evaluation every epoch, early stopping on Recall@K, and resumable checkpoints.

Every random choice is keyed by (seed, phase tag, epoch, batch), so a run resumed from a
checkpoint replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from . import backend
from .checkpoint import load_checkpoint
from .distributed import Shard, any_ranks
from .errors import Stopped, TrainingDiverged
from .metrics import EvalSet, evaluate
from .models import Model
from .planning import AUTO_SHARE, auto_mode
from .runtime import derive_seed, maybe_fail, save_atomic, stop_requested

log = logging.getLogger("graphpro")

# derive_seed, save_atomic and maybe_fail live in runtime; re-exported for older imports
__all__ = ["TrainConfig", "BASE_BATCH", "auto_batch_size", "scaled_lr", "fit", "evaluate_model",
           "derive_seed", "save_atomic", "maybe_fail"]


@dataclass
class TrainConfig:
    epochs: int = 300
    patience: int = 10
    batch_size: int | str = 2048  # or "auto": auto_batch_size(training interactions)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    keep_prob: float = 0.5  # 1 - edge dropout
    topk: int = 20
    eval_batch: int = 2048
    ckpt_every: int = 0  # also checkpoint every this many epochs (0: by time only)
    # checkpoint once this long has passed since the last one: a crash loses at most this much
    # work, and a fast phase does not spend its time writing tables (0: epochs only); a
    # graceful stop (``runtime.graceful_stop``) always checkpoints
    ckpt_minutes: float = 5.0
    batch_graph: str = "auto"  # per-batch propagation: "auto", "subgraph" (exact L-hop) or "full"
    auto_share: float = AUTO_SHARE  # "auto": subgraph batches up to this share of the nodes
    seed: int = 2023
    # how lr grows with batch_size beyond BASE_BATCH (scaled_lr); "none" by measurement: the
    # scaled rules lost quality on sparse data (docs/SCALE.md, "Large batches")
    lr_rule: str = "none"
    warmup_epochs: float = 1.0  # above BASE_BATCH: linear lr warm-up over this many epochs
    budget_s: float = 0.0  # stop after the epoch that spends this much training time (0: none)


BASE_BATCH = 2048  # the batch size the reference's lr (1e-3) was tuned for
LR_RULES = ("none", "sqrt", "linear")


AUTO_MAX_BATCH = 262144
AUTO_SPARSE_DEGREE = 4.0  # interactions per user below which the data counts as sparse


def auto_batch_size(num_interactions: int, num_users: int | None = None) -> int:
    """``--batch-size auto``: the largest power of two that leaves at least 8 steps per epoch
    (32 when users average fewer than AUTO_SPARSE_DEGREE interactions), within [BASE_BATCH,
    AUTO_MAX_BATCH]. Calibrated by docs/SCALE.md's measurements: on gowalla_like (22
    interactions per user) B = 65,536 keeps B = 2048's Recall@20, on Amazon's sparse
    pre-training data (1 per user) only B = 4096 does."""
    n = int(num_interactions)
    sparse = num_users is not None and n < AUTO_SPARSE_DEGREE * max(int(num_users), 1)
    target = max(n // (32 if sparse else 8), 1)
    b = 1 << (target.bit_length() - 1)
    return int(min(max(b, BASE_BATCH), AUTO_MAX_BATCH))


def resolve_batch_size(batch_size, num_interactions: int, num_users: int | None = None) -> int:
    if batch_size == "auto":
        return auto_batch_size(num_interactions, num_users)
    return int(batch_size)


def scaled_lr(lr: float, batch_size: int, rule: str) -> float:
    """The learning rate used at ``batch_size``: ``lr`` at or below BASE_BATCH; above it
    ``lr * (B / BASE_BATCH) ** a`` with a = 0 (none), 1/2 (sqrt) or 1 (linear). docs/SCALE.md
    has the measurement that picked the default."""
    if rule not in LR_RULES:
        raise ValueError(f"lr rule {rule!r}: choose from {LR_RULES}")
    ratio = max(batch_size / BASE_BATCH, 1.0)
    return lr * ratio ** {"none": 0.0, "sqrt": 0.5, "linear": 1.0}[rule]



def evaluate_model(model: Model, graph, es: EvalSet, k: int, eval_batch: int) -> dict:
    """Recall/NDCG@k on ``es`` of the model's final embeddings over ``graph`` (eval mode, no
    grad): how every epoch, every stage and ``graphpro train`` test a model."""
    model.eval()
    with torch.no_grad():
        return evaluate(model(graph), graph.num_users, es, k, eval_batch)


def _clone_state(model: Model) -> dict:
    return {k: v.detach().clone() for k, v in model.checkpoint_state().items()}


def batch_modes_seen(model, graph, requested: str, before: list[str]) -> list[str]:
    """What the training batches propagated over so far: ``requested`` unless it is ``auto``,
    then the modes ``auto`` resolved to on ``graph`` in this process plus ``before`` (those of
    the processes a resumed run continues), so results say which dropout masks a run drew."""
    planner = getattr(model, "planner", None)
    if requested != "auto" or planner is None:
        return [requested]
    return sorted(set(before) | set(planner.decided(graph).values()))


def _stopped(what: str, resumable: bool) -> Stopped:
    sig = stop_requested() or signal.SIGTERM  # another rank's signal: name the usual one
    log.warning(f"{what}: {signal.Signals(sig).name} received")
    return Stopped(f"{what} on {signal.Signals(sig).name}"
                   + ("; continue the run with --resume" if resumable else " (no checkpoint)"),
                   sig)


def fit(model: Model, graph, neg_hist: tuple[torch.Tensor, torch.Tensor],
        select: EvalSet, cfg: TrainConfig, tag: str, ckpt_path: str | None = None,
        resume: bool = False) -> dict:
    """Train ``model`` with BPR on ``graph``'s interactions; choose the epoch with the best
    Recall@K on ``select`` (restored into ``model`` on return).

    ``neg_hist`` is the history CSR negatives must avoid. Returns a summary: best epoch, its
    metrics, per-epoch history and the time spent training and evaluating."""
    dev = graph.device
    shard = getattr(model, "shard", None) or Shard.single()
    nu, ni = graph.num_users, graph.num_items
    rp, cols = graph.user_history()
    rp_cpu = rp.cpu().numpy()
    pair_users = torch.from_numpy(np.repeat(np.arange(nu, dtype=np.int64), np.diff(rp_cpu)))
    pair_items = cols.cpu().long()
    neg_rp, neg_items = neg_hist[0].to(dev), neg_hist[1].to(dev)
    # A user whose negative-exclusion row holds every item has no negative: BPR skips their
    # positives (sample_negatives would have nothing to draw).
    full = torch.from_numpy(np.diff(neg_hist[0].cpu().numpy()) >= ni)
    skipped_users = int(full[pair_users.unique()].sum()) if pair_users.numel() else 0
    if skipped_users:
        keep = ~full[pair_users]
        pair_users, pair_items = pair_users[keep], pair_items[keep]
        log.warning(f"[{tag}] {skipped_users} user(s) have interacted with every item: no "
                    f"negative exists for them, their {int((~keep).sum())} positives are "
                    "skipped in BPR")
    n = pair_users.numel()
    bs = resolve_batch_size(cfg.batch_size, n, int(np.count_nonzero(np.diff(rp_cpu))))
    lr = scaled_lr(cfg.lr, bs, cfg.lr_rule)
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)  # one pass over [N, d]
    steps_per_epoch = -(-n // bs)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch)) if bs > BASE_BATCH else 0
    mode = auto_mode(cfg.auto_share) if cfg.batch_graph == "auto" else cfg.batch_graph
    if cfg.batch_size == "auto" or bs > BASE_BATCH:
        log.info(f"[{tag}] batch size {bs}{' (auto)' if cfg.batch_size == 'auto' else ''}, "
                 f"lr {lr:.3g} ({cfg.lr_rule} rule), warm-up {warmup} steps")
    st = {"epoch": 0, "best_score": -1.0, "best_epoch": -1, "best_metrics": None, "bad": 0,
          "history": [], "train_s": 0.0, "eval_s": 0.0, "best_state": None}
    if resume and ckpt_path and os.path.exists(ckpt_path):
        saved = load_checkpoint(ckpt_path, f"{tag} from its start", dev)
        model.restore(saved["model"])
        opt.load_state_dict(saved["optim"])
        st = saved["state"]
        # epochs are logged from 0: name the next one so the log reads on without a gap
        log.info(f"[{tag}] resumed from {ckpt_path}: {st['epoch']} epoch(s) done, continuing "
                 f"at epoch {st['epoch']}")
    # time the phase spent in earlier processes, up to their last checkpoint (older
    # checkpoints lack the field: their epochs' train + eval time is the closest figure)
    st.setdefault("elapsed_s", st["train_s"] + st["eval_s"])
    resumed_s = st["elapsed_s"]
    last_save = time.perf_counter()
    # a stop asked for between phases (the last one ended by patience) is honoured here
    if any_ranks((stop_requested() is not None,), shard, dev)[0]:
        raise _stopped(f"[{tag}] stopped before epoch {st['epoch']}", bool(ckpt_path))
    k = cfg.topk
    bar = tqdm(total=cfg.epochs, initial=st["epoch"], desc=tag, unit="ep", leave=False,
               disable=not sys.stderr.isatty())
    for epoch in range(st["epoch"], cfg.epochs):
        if st["bad"] >= cfg.patience:
            break
        if cfg.budget_s and st["train_s"] >= cfg.budget_s:
            log.info(f"[{tag}] training-time budget of {cfg.budget_s:g}s spent after "
                     f"{epoch} epochs")
            break
        t0 = time.perf_counter()
        model.train()
        perm = torch.from_numpy(np.random.default_rng(derive_seed(cfg.seed, tag, epoch))
                                .permutation(n))
        total = 0.0
        for b, start in enumerate(range(0, n, bs)):
            idx = perm[start:start + bs]
            users, pos = pair_users[idx].to(dev), pair_items[idx].to(dev)
            s = derive_seed(cfg.seed, tag, epoch, b)
            neg = backend.sample_negatives(neg_rp, neg_items, users, ni, model.negatives, s)
            neg = neg[:, 0] if model.negatives == 1 else neg
            loss = model.batch_loss(graph, users, pos, neg, cfg.keep_prob, s, cfg.weight_decay,
                                    mode=mode)
            if warmup:
                step = epoch * steps_per_epoch + b
                for group in opt.param_groups:
                    group["lr"] = lr * min(1.0, (step + 1) / warmup)
            opt.zero_grad(set_to_none=False)  # in place: see model._GatherRows
            loss.backward()
            lv = loss.item()
            if not math.isfinite(lv):
                raise TrainingDiverged(f"[{tag}] the loss became {lv} at epoch {epoch}, batch {b}; "
                                       "lower --lr, or check the data and starting embeddings")
            opt.step()
            total += lv * idx.numel()
        t1 = time.perf_counter()
        metrics = evaluate_model(model, graph, select, k, cfg.eval_batch)
        t2 = time.perf_counter()
        st["train_s"] += t1 - t0
        st["eval_s"] += t2 - t1
        score = metrics[f"recall@{k}"]
        if score > st["best_score"]:
            st.update(best_score=score, best_epoch=epoch, best_metrics=metrics, bad=0,
                      best_state=_clone_state(model))
        else:
            st["bad"] += 1
        st["history"].append({"epoch": epoch, "loss": total / max(n, 1), f"recall@{k}": score,
                              f"ndcg@{k}": metrics[f"ndcg@{k}"], "train_s": t1 - t0,
                              "eval_s": t2 - t1})
        st["epoch"] = epoch + 1
        st["batch_modes"] = batch_modes_seen(model, graph, cfg.batch_graph,
                                             st.get("batch_modes", []))
        log.info(f"[{tag}] epoch {epoch:3d}  loss {total / max(n, 1):.4f}  "
                 f"recall@{k} {score:.4f}  ndcg@{k} {metrics[f'ndcg@{k}']:.4f}  "
                 f"train {t1 - t0:.2f}s  eval {t2 - t1:.2f}s"
                 + ("  *" if st["best_epoch"] == epoch else ""))
        bar.update(1)
        now = time.perf_counter()
        st["elapsed_s"] += now - t0
        due = bool(cfg.ckpt_every) and st["epoch"] % cfg.ckpt_every == 0
        # ranks' clocks and signals differ: any one rank decides, for all, in one all_reduce
        timed, stop = any_ranks((bool(cfg.ckpt_minutes) and
                                 now - last_save >= 60.0 * cfg.ckpt_minutes,
                                 stop_requested() is not None), shard, dev)
        if ckpt_path and (due or timed or stop):
            save_atomic({"model": model.checkpoint_state(), "optim": opt.state_dict(), "state": st},
                        ckpt_path)
            last_save = time.perf_counter()
        if stop:
            bar.close()
            raise _stopped(f"[{tag}] stopped after epoch {epoch}"
                           + (f" (checkpoint {ckpt_path})" if ckpt_path else ""),
                           bool(ckpt_path))
        maybe_fail(f"{tag}/epoch{epoch + 1}")
    bar.close()
    if st["best_state"] is not None:
        model.restore(st["best_state"])
    return {"best_epoch": st["best_epoch"], "epochs_run": st["epoch"],
            "select": st["best_metrics"], "history": st["history"],
            "batch_graph": "+".join(st.get("batch_modes") or ["auto"]),
            "train_s": st["train_s"], "eval_s": st["eval_s"], "lr": lr, "batch_size": bs,
            "resumed_s": resumed_s,
            "epoch_train_s": st["train_s"] / max(len(st["history"]), 1),
            "users_without_negatives": skipped_users}
