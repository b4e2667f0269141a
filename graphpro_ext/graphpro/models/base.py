"""The interface every recommendation backbone implements, and the BPR objective they share.

What the trainer needs of a model, and nothing more:

* ``ego(rows)``: layer-0 embeddings (after any learned input transform, e.g. GraphPro's gate);
* ``forward(graph, keep_prob, seed)``: final embeddings of every node over ``graph`` [N, d]
  (what evaluation ranks with);
* ``batch_loss(graph, users, pos, neg, keep_prob, seed, weight_decay, mode)``: the training loss
  of a batch (how it propagates is the model's business, with ``self.planner``'s help); ``neg``
  is [B], or [B, k] for a backbone whose ``negatives`` is k > 1 (a candidate pool);
* ``table()``: the ego-embedding table a later stage starts from (``x_<n>.pt``);
* ``checkpoint_state()`` / ``restore(state)``: everything needed to resume mid-phase or to go
  back to the best epoch (the default is the module's ``state_dict``);
* ``input_transform()`` / ``load_input_transform(state)``: the full (gathered) parameters of
  the learned input transform, for saved models (None: the backbone has none);
* ``carry(graph)``: tensors besides the table that the next stage starts from (evolving
  states or weights of the dynamic baselines; none by default).

A model is built by name from ``graphpro_ext.graphpro.models.MODELS`` with its starting table
``x`` [U+I, d] (users first) and ``init_table`` draws a fresh one.
"""

from __future__ import annotations

import torch
from torch import nn

from graphpro_ext.graph import TemporalGraph

__all__ = ["Model", "EgoRows", "square_sum", "split3", "bpr_loss", "info_nce", "batch_info_nce",
           "first_of_each", "xavier_embeddings", "sigmoid_gate"]


def xavier_embeddings(num_users: int, num_items: int, dim: int, generator: torch.Generator):
    """Users and items initialised as two xavier-uniform tables (as the reference code does:
    the bound depends on each table's own size)."""
    def table(n):
        bound = (6.0 / (n + dim)) ** 0.5
        return (torch.rand(n, dim, generator=generator) * 2 - 1) * bound
    return torch.cat([table(num_users), table(num_items)])


class EgoRows:
    """The un-gated ego rows of a batch, for the L2 term, kept as (table, row ids): their sum of
    squares is taken over the distinct rows weighted by how often each occurs, so a large batch
    (3B rows, mostly repeats) costs O(distinct rows) instead of three passes over [3B, d]."""

    def __init__(self, table: torch.Tensor, rows: torch.Tensor, gather):
        self.table, self.rows, self._gather = table, rows, gather

    def square_sum(self) -> torch.Tensor:
        counts = torch.bincount(self.rows, minlength=self.table.shape[0])
        distinct = counts.nonzero().squeeze(1)
        (x,) = self._gather(self.table, distinct)
        return (counts[distinct].to(x.dtype) * x.pow(2).sum(1)).sum()


def square_sum(ego_rows) -> torch.Tensor:
    return ego_rows.square_sum() if isinstance(ego_rows, EgoRows) else ego_rows.pow(2).sum()


def split3(e: torch.Tensor, b: int):
    """(users, positives, negatives) rows of a [3B, d] batch output; unbinding a view keeps the
    backward to one [3B, d] write (three slices would each fill a zero [3B, d] gradient)."""
    return e.view(3, b, e.shape[1]).unbind(0)


def bpr_loss(u, i, j, ego_rows, weight_decay: float) -> torch.Tensor:
    """``mean -log(1e-10 + sigmoid(u.(i - j)))`` plus ``wd/2 * (|u|^2+|i|^2+|j|^2) / B`` on the
    un-gated ego rows of the batch (the reference's regulariser; ``ego_rows`` a tensor or
    ``EgoRows``)."""
    rec = -torch.log(1e-10 + torch.sigmoid((u * (i - j)).sum(1))).mean()
    return rec + weight_decay * 0.5 * square_sum(ego_rows) / u.shape[0]


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean InfoNCE between two views of the same rows (cosine similarity, in-batch negatives):
    ``-log(exp(a_i.b_i / t) / sum_j exp(a_i.b_j / t))`` on L2-normalised rows."""
    a, b = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)
    return _DiagonalCrossEntropy.apply(a * (1.0 / temperature), b)


class _DiagonalCrossEntropy(torch.autograd.Function):
    """``mean_i(logsumexp_j(a_i.b_j) - a_i.b_i)`` with one [n, n] buffer and no [n, n] pass in
    the backward: the plain expression (matmul, logsumexp, diagonal) makes about four [n, n]
    tensors and passes over them twice as often. The backward uses
    ``d/da = (E @ b) / z - b`` and ``d/db = E^T @ (a / z) - a`` (times the upstream gradient
    / n), where ``E = exp(a b^T - rowmax)`` is kept from the forward and ``z`` its row sums."""

    @staticmethod
    def forward(ctx, a, b):
        e = a @ b.T
        diag = e.diagonal().sum()
        m = e.amax(dim=1, keepdim=True)
        z = e.sub_(m).exp_().sum(dim=1, keepdim=True)
        ctx.save_for_backward(a, b, e, z)
        return ((m + z.log()).sum() - diag) / a.shape[0]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        a, b, e, z = ctx.saved_tensors
        c = grad / a.shape[0]
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = (e @ b).div_(z).sub_(b).mul_(c)
        if ctx.needs_input_grad[1]:
            gb = (e.T @ (a / z)).sub_(a).mul_(c)
        return ga, gb


def batch_info_nce(v1: torch.Tensor, v2: torch.Tensor, users: torch.Tensor, pos: torch.Tensor,
                   temperature: float) -> torch.Tensor:
    """InfoNCE of two views [3B, d] of a batch's rows (users, positives, negatives) over its
    distinct users plus over its distinct positive items (what SGL and SimGCL contrast)."""
    u, i = first_of_each(users), users.numel() + first_of_each(pos)
    return info_nce(v1[u], v2[u], temperature) + info_nce(v1[i], v2[i], temperature)


def first_of_each(ids: torch.Tensor) -> torch.Tensor:
    """Positions of the first occurrence of every distinct value of ``ids`` (sorted by value)."""
    uniq, inv = torch.unique(ids, return_inverse=True)
    pos = torch.arange(ids.numel(), device=ids.device)
    return torch.full((uniq.numel(),), ids.numel(), device=ids.device,
                      dtype=pos.dtype).scatter_reduce(0, inv, pos, "amin")


def positions_in(nodes: torch.Tensor, ids: torch.Tensor, size: int) -> torch.Tensor:
    """Position in ``nodes`` (distinct ids < ``size``) of each of ``ids``, all of which must be
    in ``nodes``: one scatter into an uninitialised [size] map and one gather, where
    ``searchsorted`` does a cache-missing binary search per id (several times slower at batch
    scale)."""
    where = torch.empty(size, dtype=torch.long, device=nodes.device)
    where[nodes] = torch.arange(nodes.numel(), device=nodes.device)
    return where[ids]


def sigmoid_gate(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                 full: torch.Tensor | None = None) -> torch.Tensor:
    """``x * sigmoid(full W + b)`` (``full``: x itself, or all columns of a column shard of x;
    GraphPro's gates, eqs. 9 and 11), bit for bit, but computed in place: one fresh [n, d]
    tensor instead of four without autograd (at table size each is a page-faulted, zero-filled
    allocation, most of the gate's time), two with it."""
    s = (x if full is None else full) @ w
    s.add_(b).sigmoid_()
    if torch.is_grad_enabled() and (x.requires_grad or s.requires_grad):
        return x * s  # mul's backward reads s: it must stay unchanged
    return s.mul_(x)


class Model(nn.Module):
    """Base class of the backbones: see the module docstring for the contract."""

    negatives: int = 1  # negatives drawn per positive; batch_loss gets neg [B] or [B, k]
    loss_name: str = "bpr"  # what batch_loss trains (recorded per stage in results.json)

    @staticmethod
    def init_table(num_users: int, num_items: int, dim: int,
                   generator: torch.Generator) -> torch.Tensor:
        """A fresh starting table [U+I, d] (xavier-uniform unless a backbone says otherwise)."""
        return xavier_embeddings(num_users, num_items, dim, generator)

    def ego(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, graph: TemporalGraph, keep_prob: float = 1.0, seed: int = 0):
        raise NotImplementedError

    def batch_loss(self, graph: TemporalGraph, users, pos, neg, keep_prob: float, seed: int,
                   weight_decay: float, mode: str = "auto") -> torch.Tensor:
        raise NotImplementedError

    def table(self) -> torch.Tensor:
        raise NotImplementedError

    def checkpoint_state(self) -> dict:
        return self.state_dict()

    def input_transform(self) -> dict | None:
        return None

    def carry(self, graph) -> dict:
        """Tensors besides the table that the next stage of the same method starts from (saved
        in ``x_<n>.pt``; none by default)."""
        return {}

    def load_input_transform(self, state: dict | None) -> None:
        if state is not None:
            raise ValueError(f"{type(self).__name__} has no input transform to load")

    def restore(self, state: dict) -> None:
        self.load_state_dict(state)
