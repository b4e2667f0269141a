"""LightGCN / GraphPro embedding models, the BPR objective, and the fine-tuning gates.

A model owns one ego-embedding table ``x`` [U+I, d] over the global id space (users first) and,
for GraphPro fine-tuning, a learnable gate (eq. 11). Propagation is the fused ``lightgcn`` op:
sum of layers 0..L of the temporal-prompt graph operator (time_weight 0 = plain LightGCN).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from graphpro_ext.graph import TemporalGraph

from . import backend

__all__ = ["EmbeddingModel", "CompactGraph", "compact", "xavier_embeddings", "random_gate",
           "bpr_loss",
           "interpolation_weights", "interpolate"]


def xavier_embeddings(num_users: int, num_items: int, dim: int, generator: torch.Generator):
    """Users and items initialised as two xavier-uniform tables (as the reference code does:
    the bound depends on each table's own size)."""
    def table(n):
        bound = (6.0 / (n + dim)) ** 0.5
        return (torch.rand(n, dim, generator=generator) * 2 - 1) * bound
    return torch.cat([table(num_users), table(num_items)])


@dataclass
class CompactGraph:
    """The graph restricted to nodes with at least one edge. Propagation is identical on those
    nodes (isolated ones just keep layer 0), but a fine-tuning snapshot touches ~12% of the
    Amazon id space, so every per-batch pass gets that much cheaper."""

    sub: TemporalGraph  # over compacted ids: active users, then active items
    glob: torch.Tensor  # int64 [Na]: global id of each compacted node
    local: torch.Tensor  # int64 [N]: compacted id of each global node, -1 when isolated


def compact(graph: TemporalGraph) -> CompactGraph:
    """Cached per graph object; columns stay sorted because the id map is monotonic."""
    cached = getattr(graph, "_compact", None)
    if cached is not None:
        return cached
    deg = graph.rowptr[1:] - graph.rowptr[:-1]
    active = deg > 0
    glob = torch.nonzero(active).flatten()
    local = torch.full((graph.num_nodes,), -1, dtype=torch.int64, device=graph.device)
    local[glob] = torch.arange(glob.numel(), device=graph.device)
    rowptr = torch.zeros(glob.numel() + 1, dtype=torch.int64, device=graph.device)
    rowptr[1:] = torch.cumsum(deg[active], 0)
    nu = int(active[:graph.num_users].sum())
    sub = TemporalGraph(rowptr, local[graph.col.long()].to(graph.col.dtype), graph.edge_time,
                        graph.node_norm[active], nu, glob.numel() - nu, dict(graph.stats))
    cg = CompactGraph(sub, glob, local)
    graph._compact = cg
    return cg


class _GatherRows(torch.autograd.Function):
    """``x[idx]`` for each index tensor. The backward adds the rows' gradients straight into
    ``x.grad`` (created once, then zeroed in place by ``zero_grad(set_to_none=False)``) and returns
    no gradient for ``x``: handing autograd a fresh [N, d] tensor per batch costs 15-20 ms of page
    faults and zero fill on Amazon's 61 MB table, as much as the batch's whole propagation."""

    @staticmethod
    def forward(ctx, x, *idx):
        ctx.param = x
        ctx.save_for_backward(*idx)
        return tuple(x[i] for i in idx)

    @staticmethod
    def backward(ctx, *grads):
        p = ctx.param
        with torch.no_grad():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            for i, g in zip(ctx.saved_tensors, grads):
                if g is not None:
                    p.grad.index_add_(0, i, g)
        return (None,) * (1 + len(grads))


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

    def ego(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Layer-0 embeddings (gated when the model has a gate), of ``rows`` or of all nodes."""
        return self.gate(self.x if rows is None else self.x[rows])

    def forward(self, graph: TemporalGraph, keep_prob: float = 1.0, seed: int = 0):
        """Final embeddings of all nodes [N, d]."""
        cg = compact(graph)
        e = self.ego()
        h = backend.lightgcn(cg.sub, e[cg.glob], self.num_layers, self.time_weight, keep_prob,
                             seed)
        return e.index_copy(0, cg.glob, h)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_w is None:
            return x
        return x * torch.sigmoid(x @ self.gate_w + self.gate_b)

    def batch_loss(self, graph: TemporalGraph, users, pos, neg, keep_prob: float, seed: int,
                   weight_decay: float, mode: str = "auto") -> torch.Tensor:
        """BPR loss of a batch. ``mode="subgraph"``: propagate over the graph induced on the
        batch's ``num_layers``-hop neighbourhood (``ops.khop_subgraph``): exact at the batch rows,
        and ~1/4 of Amazon's nodes per batch. ``"full"``: over every node with edges. ``"auto"``:
        the subgraph when it holds less than half of those nodes (on small dense graphs it is
        nearly all of them, and extracting it costs more than it saves). All give the same loss
        and gradients without dropout; with dropout each draws its own edge mask (the
        subgraph's is keyed by its local ids), from the same distribution."""
        if mode not in ("auto", "subgraph", "full"):
            raise ValueError(f"batch graph mode must be auto, subgraph or full, got {mode!r}")
        nu = graph.num_users
        rows = torch.cat([users, nu + pos, nu + neg])
        b = users.numel()
        extracted = None
        if mode == "auto":
            mode, extracted = self._auto_mode(graph, rows)
        if mode == "subgraph":
            sub, nodes = extracted or backend.khop_subgraph(graph, rows, self.num_layers)
            (x_sub,) = _GatherRows.apply(self.x, nodes)
            h = backend.lightgcn(sub, self.gate(x_sub), self.num_layers, self.time_weight,
                                 keep_prob, seed)
            at = torch.searchsorted(nodes, rows)
            e, ego = h[at], x_sub[at]
        else:
            cg = compact(graph)
            x_act, ego = _GatherRows.apply(self.x, cg.glob, rows)
            h = backend.lightgcn(cg.sub, self.gate(x_act), self.num_layers, self.time_weight,
                                 keep_prob, seed)
            loc = cg.local[rows]
            e = torch.where((loc >= 0).unsqueeze(1), h[loc.clamp(min=0)], self.gate(ego))
        return bpr_loss(e[:b], e[b:2 * b], e[2 * b:], ego, weight_decay)

    def _auto_mode(self, graph: TemporalGraph, rows: torch.Tensor):
        """("subgraph" or "full", extracted subgraph or None) for batches of this size on this
        graph, decided once from the first batch's subgraph (cached on the graph, like
        ``compact``); that first subgraph is handed back so it is not extracted twice."""
        decided = graph.__dict__.setdefault("_batch_mode", {})
        key = (rows.numel(), self.num_layers)
        if key in decided:
            return decided[key], None
        extracted = backend.khop_subgraph(graph, rows, self.num_layers)
        small = 2 * extracted[1].numel() <= compact(graph).glob.numel()
        decided[key] = "subgraph" if small else "full"
        return decided[key], extracted


def bpr_loss(u, i, j, ego_rows, weight_decay: float) -> torch.Tensor:
    """``mean -log(1e-10 + sigmoid(u.i - u.j))`` plus ``wd/2 * (|u|^2+|i|^2+|j|^2) / B`` on the
    un-gated ego rows of the batch (the reference's regulariser)."""
    rec = -torch.log(1e-10 + torch.sigmoid((u * i).sum(1) - (u * j).sum(1))).mean()
    return rec + weight_decay * 0.5 * ego_rows.pow(2).sum() / u.shape[0]


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
