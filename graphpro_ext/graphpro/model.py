"""LightGCN / GraphPro embedding models, the BPR objective, and the fine-tuning gates.

A model owns one ego-embedding table ``x`` [U+I, d] over the global id space (users first) and,
for GraphPro fine-tuning, a learnable gate (eq. 11). Propagation is the fused ``lightgcn`` op:
sum of layers 0..L of the temporal-prompt graph operator (time_weight 0 = plain LightGCN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import backend

__all__ = ["EmbeddingModel", "xavier_embeddings", "random_gate", "bpr_loss",
           "interpolation_weights", "interpolate"]


def xavier_embeddings(num_users: int, num_items: int, dim: int, generator: torch.Generator):
    """Users and items initialised as two xavier-uniform tables (as the reference code does:
    the bound depends on each table's own size)."""
    def table(n):
        bound = (6.0 / (n + dim)) ** 0.5
        return (torch.rand(n, dim, generator=generator) * 2 - 1) * bound
    return torch.cat([table(num_users), table(num_items)])


class EmbeddingModel(nn.Module):
    """Ego embeddings (+ optional learnable gate) propagated over a graph."""

    def __init__(self, x: torch.Tensor, num_layers: int, time_weight: float,
                 gate: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        self.x = nn.Parameter(x.clone())
        self.num_layers, self.time_weight = num_layers, time_weight
        if gate:  # eq. (11): X0 * sigmoid(X0 W + b), W and b xavier-initialised
            d = x.shape[1]
            self.gate_w = nn.Parameter((torch.rand(d, d, generator=generator) * 2 - 1)
                                       * (6.0 / (2 * d)) ** 0.5)
            self.gate_b = nn.Parameter((torch.rand(1, d, generator=generator) * 2 - 1)
                                       * (6.0 / (1 + d)) ** 0.5)
        else:
            self.gate_w = self.gate_b = None

    def ego(self) -> torch.Tensor:
        if self.gate_w is None:
            return self.x
        return self.x * torch.sigmoid(self.x @ self.gate_w + self.gate_b)

    def forward(self, graph, keep_prob: float = 1.0, seed: int = 0) -> torch.Tensor:
        return backend.lightgcn(graph, self.ego(), self.num_layers, self.time_weight,
                                keep_prob, seed)


def bpr_loss(model: EmbeddingModel, out: torch.Tensor, num_users: int, users, pos, neg,
             weight_decay: float) -> torch.Tensor:
    """``mean -log(1e-10 + sigmoid(pos - neg))`` plus ``wd/2 * (|u|^2+|i|^2+|j|^2) / B`` on the
    un-gated ego rows (the reference's regulariser)."""
    u, i, j = out[users], out[num_users + pos], out[num_users + neg]
    rec = -torch.log(1e-10 + torch.sigmoid((u * i).sum(1) - (u * j).sum(1))).mean()
    x = model.x
    reg = 0.5 * (x[users].pow(2).sum() + x[num_users + pos].pow(2).sum()
                 + x[num_users + neg].pow(2).sum()) / users.numel()
    return rec + weight_decay * reg


def random_gate(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Eq. (9): ``x * sigmoid(x W + b)`` with fixed Gaussian W [d, d] and b [1, d], each row
    L2-normalised, drawn once per stage from ``generator``."""
    d = x.shape[1]
    w = F.normalize(torch.randn(d, d, generator=generator), dim=1).to(x)
    b = F.normalize(torch.randn(1, d, generator=generator), dim=1).to(x)
    return x * torch.sigmoid(x @ w + b)


def interpolation_weights(window: int, order: str = "reference") -> torch.Tensor:
    """Weights of the last ``window`` fine-tuned stages, newest first, summing to 1.

    ``reference``: w proportional to window, ..., 1 (the newest stage weighs most), as the
    reference code computes it; ``paper``: the reverse, as eq. (14)'s text reads."""
    w = torch.arange(window, 0, -1, dtype=torch.float64)
    if order == "paper":
        w = w.flip(0)
    elif order != "reference":
        raise ValueError(f"interpolation order must be 'reference' or 'paper', got {order!r}")
    return (w / w.sum()).float()


def interpolate(pretrained: torch.Tensor, recent: list[torch.Tensor], order: str) -> torch.Tensor:
    """Eq. (14): ``normalize(0.5 X_pre + 0.5 sum_i w_i X_{n-i})`` row-wise; ``recent`` newest
    first."""
    w = interpolation_weights(len(recent), order)
    mix = sum(wi * xi for wi, xi in zip(w.tolist(), recent))
    return F.normalize(0.5 * pretrained + 0.5 * mix, dim=1)
