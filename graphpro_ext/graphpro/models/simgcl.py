"""SimGCL (Yu et al., SIGIR 2022): LightGCN plus a contrastive loss between two views made by
adding small random noise to every layer's output, no graph augmentation. Each view propagates
layer by layer with the fused ``temporal_propagate`` (``backend.layers``) and adds
``sign(h) * eps * normalize(u)``, u ~ U(0, 1), per layer; the view's readout is the mean of layers
1..L (SimGCL leaves out layer 0). The recommendation loss uses the clean encoder (the fused
``lightgcn`` op, the same readout as LightGCN's, which evaluation ranks with).

Published defaults: eps 0.1, temperature 0.2, weight 0.5 (the SimGCL paper's Yelp2018 setting).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import backend
from ..runtime import derive_seed
from .base import batch_info_nce, bpr_loss, split3
from .lightgcn import EmbeddingModel

__all__ = ["SimGCL", "noisy_view"]


def noisy_view(sub, x0, num_layers: int, time_weight: float, keep_prob: float, seed: int,
               eps: float, view_seed: int) -> torch.Tensor:
    """Mean of layers 1..L with ``sign(h) * eps * normalize(U(0,1))`` added to every layer."""
    gen = torch.Generator(device=x0.device).manual_seed(view_seed)
    h, acc = x0, 0
    for _ in range(num_layers):
        h = backend.layers(sub, h, 1, time_weight, keep_prob, seed)[1]
        noise = torch.rand(h.shape, generator=gen, device=h.device, dtype=h.dtype)
        h = h + torch.sign(h) * F.normalize(noise, dim=1) * eps
        acc = acc + h
    return acc / max(num_layers, 1)


class SimGCL(EmbeddingModel):
    loss_name = "simgcl"
    eps, cl_temp, cl_reg = 0.1, 0.2, 0.5

    unshardable = "the contrastive loss normalises whole rows"

    def batch_loss(self, graph, users, pos, neg, keep_prob: float, seed: int,
                   weight_decay: float, mode: str = "auto") -> torch.Tensor:
        rows = torch.cat([users, graph.num_users + pos, graph.num_users + neg])
        b = users.numel()

        def propagate(sub, x0):
            views = tuple(noisy_view(sub, x0, self.num_layers, self.time_weight, keep_prob, seed,
                                     self.eps, derive_seed(seed, "simgcl-view", v))
                          for v in (1, 2))
            return (backend.lightgcn(sub, x0, self.num_layers, self.time_weight, keep_prob,
                                     seed),) + views

        (e, v1, v2), ego = self.rows_through(graph, rows, mode, propagate,
                                             lambda g: (g, torch.zeros_like(g),
                                                        torch.zeros_like(g)))
        loss = bpr_loss(*split3(e, b), ego, weight_decay)
        return loss + self.cl_reg * batch_info_nce(v1, v2, users, pos, self.cl_temp)
