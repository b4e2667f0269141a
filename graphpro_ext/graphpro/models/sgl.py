"""SGL-ED (Wu et al., SIGIR 2021): LightGCN plus a contrastive loss between two edge-dropout
views of the graph. The views are the model's ``propagate`` (the fused ``lightgcn`` op) with its
keyed edge dropout (two seeds derived from the batch's), so no view is ever materialised as an
edge list; InfoNCE runs on the batch's distinct users and distinct positive items, with in-batch
negatives.

Published defaults (the SGL code's): view edge-drop ratio 0.1, temperature 0.2, weight 0.1. One
difference: SGL draws the two views once per epoch, here once per batch (the ops key the dropout
by a seed, and a batch seed is what the trainer hands a model).
"""

from __future__ import annotations

import torch

from ..runtime import derive_seed
from .base import batch_info_nce, bpr_loss, split3
from .lightgcn import EmbeddingModel

__all__ = ["SGL"]


class SGL(EmbeddingModel):
    loss_name = "sgl"
    ssl_ratio, ssl_temp, ssl_reg = 0.1, 0.2, 0.1

    unshardable = "the contrastive loss normalises whole rows"

    def batch_loss(self, graph, users, pos, neg, keep_prob: float, seed: int,
                   weight_decay: float, mode: str = "auto") -> torch.Tensor:
        rows = torch.cat([users, graph.num_users + pos, graph.num_users + neg])
        b, keep_view = users.numel(), 1.0 - self.ssl_ratio
        seeds = [derive_seed(seed, "sgl-view", v) for v in (1, 2)]

        def propagate(sub, x0):
            return tuple(self.readout(self.propagate(sub, x0, kp, s))
                         for kp, s in ((keep_prob, seed), (keep_view, seeds[0]),
                                       (keep_view, seeds[1])))

        (e, v1, v2), ego = self.rows_through(graph, rows, mode, propagate,
                                             lambda g: (self.readout(g),) * 3)
        loss = bpr_loss(*split3(e, b), ego, weight_decay)
        return loss + self.ssl_reg * batch_info_nce(v1, v2, users, pos, self.ssl_temp)
