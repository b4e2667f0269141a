"""SimGCL (Yu et al., SIGIR 2022): LightGCN plus a contrastive loss between two views made by
adding small random noise to every layer's output, no graph augmentation. Each view propagates
layer by layer (the model's ``layer_outputs``: the fused ``temporal_propagate``) and adds
``sign(h) * eps * normalize(u)``, u ~ U(0, 1), per layer; the view's readout is the mean of layers
1..L (SimGCL leaves out layer 0). The recommendation loss uses the clean encoder (``propagate``:
the fused ``lightgcn`` op, the same readout as LightGCN's, which evaluation ranks with).

Published defaults: eps 0.1, temperature 0.2, weight 0.5 (the SimGCL paper's Yelp2018 setting).
"""

from __future__ import annotations

import itertools

import torch

from .. import backend
from ..runtime import derive_seed
from .base import batch_info_nce, bpr_loss, split3
from .lightgcn import EmbeddingModel, perturbed_layers

__all__ = ["SimGCL", "noisy_view", "eps_noise"]


def eps_noise(eps: float, view_seed: int):
    """SimGCL's perturbation of a layer's output: ``h + sign(h) * eps * normalize(U(0,1))``,
    the k-th layer of the view keyed by ``derive_seed(view_seed, "layer", k)`` (the fused
    ``simgcl_perturb``: one pass, no noise tensor, noise keyed by the row's scope position)."""
    layer = itertools.count()

    def perturb(h: torch.Tensor) -> torch.Tensor:
        return backend.simgcl_perturb(h, eps, derive_seed(view_seed, "layer", next(layer)))
    return perturb


def noisy_view(sub, x0, num_layers: int, time_weight: float, keep_prob: float, seed: int,
               eps: float, view_seed: int) -> torch.Tensor:
    """Mean of layers 1..L with ``sign(h) * eps * normalize(U(0,1))`` added to every layer (the
    view of a plain LightGCN; ``SimGCL`` builds it through the model's ``layer_outputs``)."""
    outs = perturbed_layers(sub, x0, num_layers, time_weight, keep_prob, seed,
                            eps_noise(eps, view_seed))
    return sum(outs[1:]) / max(num_layers, 1)


class SimGCL(EmbeddingModel):
    loss_name = "simgcl"
    eps, cl_temp, cl_reg = 0.1, 0.2, 0.5

    unshardable = "the contrastive loss normalises whole rows"

    def batch_loss(self, graph, users, pos, neg, keep_prob: float, seed: int,
                   weight_decay: float, mode: str = "auto") -> torch.Tensor:
        rows = torch.cat([users, graph.num_users + pos, graph.num_users + neg])
        b = users.numel()

        def view(sub, x0, v):
            outs = self.layer_outputs(sub, x0, keep_prob, seed, eps_noise(
                self.eps, derive_seed(seed, "simgcl-view", v)))
            return self.readout(sum(outs[1:]) / max(self.num_layers, 1))

        def propagate(sub, x0):
            return (self.readout(self.propagate(sub, x0, keep_prob, seed)), view(sub, x0, 1),
                    view(sub, x0, 2))

        (e, v1, v2), ego = self.rows_through(graph, rows, mode, propagate,
                                             lambda g: (self.readout(g), None, None))
        loss = bpr_loss(*split3(e, b), ego, weight_decay)
        return loss + self.cl_reg * batch_info_nce(v1, v2, users, pos, self.cl_temp)
