"""LightGCN / GraphPro embedding model.

One ego-embedding table ``x`` [U+I, d] over the global id space (users first) and, for GraphPro
fine-tuning, a learnable gate (eq. 11). Propagation is the fused ``lightgcn`` op: sum of layers
0..L of the temporal-prompt graph operator (time_weight 0 = plain LightGCN).
"""

from __future__ import annotations

import torch
from torch import nn

from graphpro_ext.graph import TemporalGraph

from .. import backend
from .. import distributed as dist_cols
from ..planning import DEFAULT, BatchPlanner
from .base import EgoRows, Model, bpr_loss, positions_in, sigmoid_gate, split3

__all__ = ["EmbeddingModel", "BatchScope", "perturbed_layers"]


def perturbed_layers(sub: TemporalGraph, x0: torch.Tensor, num_layers: int, time_weight: float,
                     keep_prob: float, seed: int, perturb=None) -> list[torch.Tensor]:
    """``[x0, h_1, ..., h_L]`` of the temporal operator over ``sub`` (the fused op in one call
    without ``perturb``; with it, one layer at a time, ``perturb(h)`` feeding the next)."""
    if perturb is None:
        return list(backend.layers(sub, x0, num_layers, time_weight, keep_prob, seed))
    h, outs = x0, [x0]
    for _ in range(num_layers):
        h = perturb(backend.layers(sub, h, 1, time_weight, keep_prob, seed)[1])
        outs.append(h)
    return outs


class _GatherRows(torch.autograd.Function):
    """``x[idx]`` for each 1-D index tensor. The backward adds the rows' gradients straight into
    ``x.grad`` (created once, then zeroed in place by ``zero_grad(set_to_none=False)``) and returns
    no gradient for ``x``: handing autograd a fresh [N, d] tensor per batch costs 15-20 ms of page
    faults and zero fill on Amazon's 61 MB table, as much as the batch's whole propagation. The
    rows are gathered with ``index_select`` (a row copy per index), several times faster on CPU
    than ``x[i]``'s generic indexing kernel at MixGCF's scope sizes (docs/TRAINER.md)."""

    @staticmethod
    def forward(ctx, x, *idx):
        ctx.param = x
        ctx.save_for_backward(*idx)
        return tuple(torch.index_select(x, 0, i) for i in idx)

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


class BatchScope:
    """One propagation over a batch's scope, read at the batch rows: ``pick(k, at)`` gives
    output k at ``rows[at]`` (all rows when None), with gradient; ``dots(k, at, v)`` only the
    scores of output k at ``rows[at]`` [G, M] against ``v`` [G, d], without gathering the rows.
    In full mode the rows without edges (``loc`` < 0) read ``fill`` (``isolated``'s outputs) at
    ``in_alone`` instead; a ``fill`` entry None says that output is zero there (an isolated
    node's propagated layers), read without a table of zeros or a product with one."""

    def __init__(self, outs, loc, fill=None, in_alone=None):
        self.outs, self.loc, self.fill, self.in_alone = outs, loc, fill, in_alone

    def __len__(self) -> int:
        return len(self.outs)

    def pick(self, k: int, at: torch.Tensor | None = None) -> torch.Tensor:
        lo = self.loc if at is None else self.loc[at]
        if self.fill is None:
            return self.outs[k].index_select(0, lo)
        # picked row by row (appending the lonely rows to the outputs would copy them whole)
        out = self.outs[k].index_select(0, lo.clamp_min(0))
        idx = (lo < 0).nonzero().squeeze(1)
        if idx.numel() and self.fill[k] is None:
            out.index_fill_(0, idx, 0)
        elif idx.numel():
            li = self.in_alone.index_select(0, idx if at is None else at.index_select(0, idx))
            out.index_copy_(0, idx, self.fill[k].index_select(0, li))
        return out

    def dots(self, k: int, at: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        lo = self.loc[at]
        if self.fill is None:
            return backend.group_dots(self.outs[k], lo, v).view(at.shape)
        mine = lo >= 0
        out = v.new_zeros(at.shape)
        out[mine] = backend.group_dots(self.outs[k], lo, v, mine)
        if self.fill[k] is not None:
            out[~mine] = backend.group_dots(self.fill[k], self.in_alone[at], v, ~mine)
        return out


class EmbeddingModel(Model):
    """Ego embeddings (+ optional learnable gate) propagated over a graph.

    With a sharded ``shard`` (``distributed``) the model holds only its rank's columns of the
    table and of the gate's W and b (all drawn in full first, so every P draws the same values);
    propagation is column-local, the gate gathers the full rows it mixes, the BPR scores are
    all-reduced, and ``forward``/``table`` return full gathered tensors."""

    # why a subclass cannot train on column shards (None: it can)
    unshardable: str | None = None

    def __init__(self, x: torch.Tensor, num_layers: int, time_weight: float,
                 gate: bool = False, generator: torch.Generator | None = None,
                 planner: BatchPlanner | None = None, shard: dist_cols.Shard | None = None):
        super().__init__()
        self.shard = shard or dist_cols.Shard.single()
        if self.shard.sharded and self.unshardable:
            raise ValueError(f"{type(self).__name__}: column-sharded training is not supported "
                             f"({self.unshardable})")
        self.dim = x.shape[1]
        self.x = nn.Parameter(self.shard.local(x) if self.shard.sharded else x.clone())
        self.num_layers, self.time_weight = num_layers, time_weight
        self.planner = planner or DEFAULT
        if gate:  # eq. (11): X0 * sigmoid(X0 W + b), W and b xavier-initialised
            d = self.dim
            w = (torch.rand(d, d, generator=generator) * 2 - 1) * (6.0 / (2 * d)) ** 0.5
            b = (torch.rand(1, d, generator=generator) * 2 - 1) * (6.0 / (1 + d)) ** 0.5
            if self.shard.sharded:  # this rank's output columns of X0 W + b
                w, b = self.shard.local(w), self.shard.local(b)
            self.gate_w, self.gate_b = nn.Parameter(w.to(x)), nn.Parameter(b.to(x))
        else:
            self.gate_w = self.gate_b = None

    def ego(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Layer-0 embeddings (gated when the model has a gate), of ``rows`` or of all nodes."""
        return self.gate(self.x if rows is None else self.x[rows])

    def table(self) -> torch.Tensor:
        """The full ego table (gathered from every rank when sharded)."""
        with torch.no_grad():
            return dist_cols.all_gather_columns(self.x.detach(), self.shard, self.dim).clone()

    def forward(self, graph: TemporalGraph, keep_prob: float = 1.0, seed: int = 0):
        """Final embeddings of all nodes [N, d]."""
        cg = self.planner.compact(graph)
        e = self.ego()
        h = backend.lightgcn(cg.sub, e.index_select(0, cg.glob), self.num_layers,
                             self.time_weight, keep_prob, seed)
        if e is not self.x and not torch.is_grad_enabled():
            out = e.index_copy_(0, cg.glob, h)  # the gate's fresh table: no second [N, d] one
        else:
            out = e.index_copy(0, cg.glob, h)
        return dist_cols.all_gather_columns(out, self.shard, self.dim)

    def input_transform(self) -> dict | None:
        """The learnable gate's full W [d, d] and b [1, d] (gathered when sharded)."""
        if self.gate_w is None:
            return None
        with torch.no_grad():
            return {k: dist_cols.all_gather_columns(p.detach(), self.shard, self.dim).clone()
                    for k, p in (("w", self.gate_w), ("b", self.gate_b))}

    def load_input_transform(self, state: dict | None) -> None:
        """Set the gate from ``input_transform()``'s output (this rank's columns of it)."""
        if state is None or self.gate_w is None:
            if state is not None or self.gate_w is not None:
                raise ValueError("the gate of a saved model and of this model differ in presence")
            return
        with torch.no_grad():
            for p, v in ((self.gate_w, state["w"]), (self.gate_b, state["b"])):
                p.copy_(self.shard.local(v.to(p)) if self.shard.sharded else v.to(p))

    # The propagation hooks every loss goes through (BPR here, the backbones' losses in their
    # modules): a baseline that computes its layers differently overrides these, and then
    # trains any backbone's loss unchanged (``models.with_loss``).
    def propagate(self, sub: TemporalGraph, x0: torch.Tensor, keep_prob: float,
                  seed: int) -> torch.Tensor:
        """Final embeddings (sum of layers 0..L) of ``sub``'s rows from ``x0``."""
        return backend.lightgcn(sub, x0, self.num_layers, self.time_weight, keep_prob, seed)

    def layer_outputs(self, sub: TemporalGraph, x0: torch.Tensor, keep_prob: float, seed: int,
                      perturb=None) -> list[torch.Tensor]:
        """``[x0, h_1, ..., h_L]`` over ``sub``; ``perturb(h)`` (SimGCL's noise), when given,
        replaces every layer's output before the next layer reads it."""
        return perturbed_layers(sub, x0, self.num_layers, self.time_weight, keep_prob, seed,
                                perturb)

    def readout(self, e: torch.Tensor) -> torch.Tensor:
        """The last transform of final (or per-layer) embeddings before they score a pair."""
        return e

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_w is None:
            return x
        full = dist_cols.all_gather_columns(x, self.shard, self.dim)  # X0 W mixes columns
        return sigmoid_gate(x, self.gate_w, self.gate_b, full)

    def rows_through(self, graph: TemporalGraph, rows: torch.Tensor, mode: str, propagate,
                     isolated) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Run ``propagate(graph, x0) -> tuple of [n, d]`` over the batch's scope (``mode``, see
        ``batch_loss``) from the gated ego rows, and pick ``rows`` out of every output (the
        scope's global node ids are ``self.scope_nodes`` while it runs); in full mode a row
        without edges takes ``isolated(gated ego rows)``'s entries (None: zeros, see
        ``BatchScope``). Returns (outputs at ``rows``, the un-gated ego rows of ``rows``, for
        the L2 term). The gather's backward writes ``x.grad`` in place (``_GatherRows``)."""
        scope, ego = self.scope_through(graph, rows, mode, propagate, isolated)
        return tuple(scope.pick(k) for k in range(len(scope))), ego

    def scope_through(self, graph: TemporalGraph, rows: torch.Tensor, mode: str, propagate,
                      isolated) -> tuple[BatchScope, EgoRows]:
        """``rows_through`` with the reading left to the loss: (the ``BatchScope``, the ego
        rows), for a loss that reads only some of ``rows`` with gradient."""
        mode, extracted = self.planner.mode(graph, rows, self.num_layers, mode)
        ego = EgoRows(self.x, rows, _GatherRows.apply)
        if mode == "subgraph":
            sub, nodes = extracted or backend.khop_subgraph(graph, rows, self.num_layers)
            (x_sub,) = _GatherRows.apply(self.x, nodes)
            self.scope_nodes = nodes
            outs = propagate(sub, self.gate(x_sub))
            return BatchScope(outs, positions_in(nodes, rows, self.x.shape[0])), ego
        cg = self.planner.compact(graph)
        (x_act,) = _GatherRows.apply(self.x, cg.glob)
        self.scope_nodes = cg.glob
        outs = propagate(cg.sub, self.gate(x_act))
        loc = cg.local[rows]
        lonely = loc < 0
        if not bool(lonely.any()):
            return BatchScope(outs, loc), ego
        alone, inv = torch.unique(rows[lonely], return_inverse=True)
        (x_alone,) = _GatherRows.apply(self.x, alone)
        fill = isolated(self.gate(x_alone))
        # meaningful at the lonely rows only (0, a valid index, elsewhere)
        in_alone = torch.zeros_like(rows).masked_scatter_(lonely, inv)
        return BatchScope(outs, loc, fill, in_alone), ego

    def batch_rows(self, graph: TemporalGraph, users, pos, neg, keep_prob: float, seed: int,
                   mode: str = "auto"):
        """(final embeddings of the batch's users, positives and negatives [3B, d] after the
        readout, their ego rows for the L2 term): one ``propagate`` over the batch's scope."""
        rows = torch.cat([users, graph.num_users + pos, graph.num_users + neg])
        (e,), ego = self.rows_through(
            graph, rows, mode, lambda sub, x0: (self.propagate(sub, x0, keep_prob, seed),),
            lambda ego0: (ego0,))
        return self.readout(e), ego

    def batch_loss(self, graph: TemporalGraph, users, pos, neg, keep_prob: float, seed: int,
                   weight_decay: float, mode: str = "auto") -> torch.Tensor:
        """BPR loss of a batch. ``mode="subgraph"``: propagate over the graph induced on the
        batch's ``num_layers``-hop neighbourhood (``ops.khop_subgraph``): exact at the batch rows,
        and ~1/4 of Amazon's nodes per batch. ``"full"``: over every node with edges. ``"auto"``:
        the subgraph when it holds less than half of those nodes (on small dense graphs it is
        nearly all of them, and extracting it costs more than it saves; ``planning``). All give
        the same loss and gradients without dropout; with dropout each draws its own edge mask
        (the subgraph's is keyed by its local ids), from the same distribution."""
        e, ego = self.batch_rows(graph, users, pos, neg, keep_prob, seed, mode)
        b = users.numel()
        if self.shard.sharded:  # partial scores and L2 term all-reduced over the ranks
            return dist_cols.bpr_loss(*split3(e, b), ego, weight_decay, self.shard)
        return bpr_loss(*split3(e, b), ego, weight_decay)
