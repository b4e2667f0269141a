"""Full-ranking Recall@K / NDCG@K with the user's history masked.

Only users with at least one test item are evaluated; per-user scores are averaged. NDCG's ideal
DCG counts min(K, |test items|) hits, so a user with 3 test items all ranked on top scores 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from graphpro_ext.graph import build_history, isin, unique

from . import backend
from .data import pair_keys

__all__ = ["EvalSet", "make_eval_set", "rank_metrics", "evaluate"]


@dataclass
class EvalSet:
    users: np.ndarray  # int64 [B] users with >= 1 test item, ascending
    test_rowptr: np.ndarray  # int64 [B+1] into test_items, rows follow `users`
    test_items: np.ndarray  # int64, sorted within each row
    hist_rowptr: torch.Tensor  # int64 [U+1] history (masked items) of every user
    hist_items: torch.Tensor  # int32
    tuned: np.ndarray | None = None  # bool [B]: user has training data in this stage
    seen_share: float = 0.0  # share of test pairs already in the history (never hittable)

    def __len__(self) -> int:
        return int(self.users.size)


def make_eval_set(test_users, test_items, hist_users, hist_items, num_users: int,
                  tuned_users=None, drop_seen: bool = False, max_users: int | None = None,
                  seed: int = 0) -> EvalSet:
    """Unique test pairs grouped by user; ``drop_seen`` removes pairs already in the history
    (the quirk of snapshot files repeating earlier events). ``max_users`` evaluates a seeded
    random subset of users (used for cheap validation during pre-training)."""
    hist_rowptr, hist_cols = build_history(np.asarray(hist_users, np.int64),
                                           np.asarray(hist_items, np.int64), num_users)
    width = int(max(np.max(test_items, initial=0), np.max(hist_items, initial=0))) + 1
    key = unique(pair_keys(np.asarray(test_users, np.int64),
                              np.asarray(test_items, np.int64), width))
    hrp = hist_rowptr.numpy()
    hist_key = pair_keys(np.repeat(np.arange(num_users, dtype=np.int64), np.diff(hrp)),
                         hist_cols.numpy().astype(np.int64), width)
    seen = isin(key, hist_key)
    seen_share = float(seen.mean()) if key.size else 0.0
    if drop_seen:
        key = key[~seen]
    u, i = key // width, key % width
    users, counts = unique(u, return_counts=True)
    if max_users is not None and users.size > max_users:
        pick = np.sort(np.random.default_rng(seed).choice(users.size, max_users, replace=False))
        keep = isin(u, users[pick])
        u, i, users, counts = u[keep], i[keep], users[pick], counts[pick]
    rowptr = np.zeros(users.size + 1, np.int64)
    np.cumsum(counts, out=rowptr[1:])
    tuned = None
    if tuned_users is not None:
        tuned = isin(users, np.asarray(tuned_users, np.int64))
    return EvalSet(users, rowptr, i, hist_rowptr, hist_cols, tuned, seen_share)


def rank_metrics(topk_ids: np.ndarray, test_rowptr: np.ndarray, test_items: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (recall@k, ndcg@k) for ranked ids [B, >=k] (-1 = empty slot) against the
    per-user test rows (sorted items)."""
    ids = np.asarray(topk_ids)[:, :k].astype(np.int64)
    b = ids.shape[0]
    n_test = np.diff(test_rowptr)
    width = int(max(ids.max(initial=0), test_items.max(initial=0))) + 2
    test_key = pair_keys(np.repeat(np.arange(b, dtype=np.int64), n_test), test_items, width)
    q = pair_keys(np.arange(b, dtype=np.int64)[:, None], np.where(ids < 0, width - 1, ids), width)
    pos = np.minimum(np.searchsorted(test_key, q), max(test_key.size - 1, 0))
    hits = (test_key[pos] == q) if test_key.size else np.zeros(q.shape, bool)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    recall = hits.sum(1) / np.maximum(n_test, 1)
    ideal = np.cumsum(discount)[np.minimum(n_test, k) - 1]
    ndcg = (hits * discount).sum(1) / ideal
    return recall, ndcg


@torch.no_grad()
def evaluate(emb: torch.Tensor, num_users: int, es: EvalSet, k: int = 20,
             batch_users: int = 2048) -> dict:
    """Recall@k / NDCG@k of the final node embeddings ``emb`` [U+I, d] on ``es``; with
    ``es.tuned`` also split into users fine-tuned at this stage and cold ones."""
    if not len(es):
        return {f"recall@{k}": 0.0, f"ndcg@{k}": 0.0, "users": 0}
    user_emb, item_emb = emb[:num_users], emb[num_users:].contiguous()
    dev = emb.device
    hist_rp, hist_it = es.hist_rowptr.to(dev), es.hist_items.to(dev)
    recall, ndcg = np.empty(len(es)), np.empty(len(es))
    for a in range(0, len(es), batch_users):
        b = min(a + batch_users, len(es))
        users = torch.from_numpy(es.users[a:b]).to(dev)
        _, ids = backend.topk_masked(user_emb[users].contiguous(), item_emb, hist_rp, hist_it,
                                     min(k, item_emb.shape[0]), users=users)
        ids = ids.cpu().numpy()
        if ids.shape[1] < k:  # fewer items than k: the empty ranks count as misses
            ids = np.pad(ids, ((0, 0), (0, k - ids.shape[1])), constant_values=-1)
        rp = es.test_rowptr[a:b + 1]
        recall[a:b], ndcg[a:b] = rank_metrics(ids, rp - rp[0],
                                              es.test_items[rp[0]:rp[-1]], k)
    out = {f"recall@{k}": float(recall.mean()), f"ndcg@{k}": float(ndcg.mean()),
           "users": int(len(es))}
    if es.tuned is not None:
        for name, m in (("tuned", es.tuned), ("cold", ~es.tuned)):
            out[name] = {f"recall@{k}": float(recall[m].mean()) if m.any() else None,
                         f"ndcg@{k}": float(ndcg[m].mean()) if m.any() else None,
                         "users": int(m.sum())}
    return out
