"""Dynamic-GNN baselines that carry something learned from stage to stage, on the LightGCN
backbone (no time weights), built from their papers' descriptions:

* ROLAND (You et al., KDD 2022), GRU variant: hierarchical node states. Layer l's output is
  ``GRU_l(A h_{l-1}, H_prev^l)``, with H_prev^l every node's layer-l state left by the previous
  stage (stage 1: the pre-trained model's layers ``A^l x``); the table and the GRUs continue
  from the previous stage (live update). Nodes without edges in a snapshot keep their states.
* EvolveGCN (Pareja et al., AAAI 2020): layer l is ``(A h_{l-1}) W^l`` with the weights evolved
  once per stage by a matrix GRU (as the authors' code builds both variants): -O feeds the
  previous weights to it (``W_n = GRU(W_{n-1}, W_{n-1})``), -H a summary of the node table (the
  d top-scoring rows under a learnable score vector, scaled by tanh of their scores). The
  weights the GRU evolves start from the identity (LightGCN's layers), and stage 1 already
  evolves them once, through the GRU's random initial weights, as the authors' first step
  does, so its untrained model is not LightGCN; the table and the GRU continue from stage to
  stage.

What a stage leaves for the next is ``carry()`` (saved beside its table in ``x_<n>.pt``).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import backend
from ..models import EmbeddingModel
from .base import Method, StageStart, snapshot_start, stage_class

__all__ = ["Evolving", "RolandModel", "EvolveGCNModel", "MatGRU"]


def _uniform(shape, bound, gen, like):
    return ((torch.rand(*shape, generator=gen) * 2 - 1) * bound).to(like)


class MatGRU(nn.Module):
    """The matrix GRU of EvolveGCN: input X and hidden H are [d, d] matrices."""

    def __init__(self, d: int, gen: torch.Generator, like: torch.Tensor):
        super().__init__()
        b = (6.0 / (2 * d)) ** 0.5
        for g in ("update", "reset", "cand"):
            setattr(self, f"w_{g}", nn.Parameter(_uniform((d, d), b, gen, like)))
            setattr(self, f"u_{g}", nn.Parameter(_uniform((d, d), b, gen, like)))
            setattr(self, f"b_{g}", nn.Parameter(torch.zeros(d, d, dtype=like.dtype)))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        z = torch.sigmoid(self.w_update @ x + self.u_update @ h + self.b_update)
        r = torch.sigmoid(self.w_reset @ x + self.u_reset @ h + self.b_reset)
        cand = torch.tanh(self.w_cand @ x + self.u_cand @ (r * h) + self.b_cand)
        return (1 - z) * h + z * cand


class _LayerwiseModel(EmbeddingModel):
    """LightGCN whose every layer is followed by ``self.update(l, messages, nodes)``."""

    unshardable = "the dynamic baselines run in one process"

    def __init__(self, x, num_layers, **kwargs):
        super().__init__(x, num_layers, 0.0, **kwargs)

    def prepare(self):
        """Per-batch work before the layers (EvolveGCN evolves its weights here)."""

    def update(self, layer: int, m: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _layers(self, sub, x0, keep_prob, seed, nodes, perturb=None):
        """[x0, h_1, ..., h_L] over ``sub`` (rows: global ids ``nodes``). Rows without edges in
        ``sub`` (a subgraph batch's edge-less rows; the compact graph has none) get zero layers,
        so their output is their ego row, as in full mode and evaluation, which leave them out
        of the graph: ROLAND's GRUs would otherwise update them from zero messages.
        ``perturb`` (a backbone's, e.g. SimGCL's noise) replaces each layer's output."""
        self.prepare()
        has_edges = (sub.rowptr[1:] > sub.rowptr[:-1]).unsqueeze(1)  # no host sync
        h, outs = x0, [x0]
        for layer in range(self.num_layers):
            m = backend.layers(sub, h, 1, 0.0, keep_prob, seed)[1]
            h = self.update(layer, m, nodes)
            h = torch.where(has_edges, h, torch.zeros_like(h))
            if perturb is not None:
                h = perturb(h)
            outs.append(h)
        return outs

    # the loss hooks (``EmbeddingModel``): every loss propagates through the evolving layers
    def layer_outputs(self, sub, x0, keep_prob, seed, perturb=None):
        return self._layers(sub, x0, keep_prob, seed, self.scope_nodes, perturb)

    def propagate(self, sub, x0, keep_prob, seed):
        return sum(self.layer_outputs(sub, x0, keep_prob, seed))

    def forward(self, graph, keep_prob: float = 1.0, seed: int = 0):
        cg = self.planner.compact(graph)
        e = self.ego()
        h = sum(self._layers(cg.sub, e.index_select(0, cg.glob), keep_prob, seed, cg.glob))
        return e.index_copy(0, cg.glob, h)


class RolandModel(_LayerwiseModel):
    def __init__(self, x, num_layers, states: torch.Tensor, cells: dict | None,
                 gen: torch.Generator, **kwargs):
        super().__init__(x, num_layers, **kwargs)
        d = x.shape[1]
        self.register_buffer("states", states.clone())  # [L, N, d], no gradient
        self.cells = nn.ModuleList(nn.GRUCell(d, d).to(x) for _ in range(num_layers))
        bound = d ** -0.5
        with torch.no_grad():
            for layer, cell in enumerate(self.cells):
                for name, p in cell.named_parameters():
                    src = None if cells is None else cells.get(f"cell{layer}.{name}")
                    p.copy_(src if src is not None else _uniform(p.shape, bound, gen, p))

    def update(self, layer, m, nodes):
        return self.cells[layer](m, self.states[layer].index_select(0, nodes))

    def carry(self, graph) -> dict:
        """Every node's layer states over ``graph`` (nodes without edges keep theirs) and the
        GRUs' weights."""
        cg = self.planner.compact(graph)
        with torch.no_grad():
            outs = self._layers(cg.sub, self.ego().index_select(0, cg.glob), 1.0, 0, cg.glob)
            states = self.states.clone()
            for layer in range(self.num_layers):
                states[layer].index_copy_(0, cg.glob, outs[layer + 1])
        cells = {f"cell{layer}.{k}": v.detach().clone()
                 for layer, c in enumerate(self.cells) for k, v in c.named_parameters()}
        return {"states": states, "cells": cells}


class EvolveGCNModel(_LayerwiseModel):
    def __init__(self, x, num_layers, variant: str, weights: torch.Tensor, cell: dict | None,
                 score: torch.Tensor | None, gen: torch.Generator, **kwargs):
        super().__init__(x, num_layers, **kwargs)
        d = x.shape[1]
        self.variant = variant
        self.register_buffer("prev_weights", weights.clone())  # [L, d, d]
        self.grus = nn.ModuleList(MatGRU(d, gen, x) for _ in range(num_layers))
        if cell is not None:
            self.grus.load_state_dict(cell)
        self.score = nn.Parameter(score.clone() if score is not None
                                  else _uniform((d,), d ** -0.5, gen, x))
        if variant == "o":
            self.score.requires_grad_(False)
        self._w = None

    def summary(self) -> torch.Tensor:
        """EvolveGCN-H's input: the d rows of the table scoring highest under ``score``, scaled
        by tanh of their scores, as a [d, d] matrix (one node per column)."""
        s = self.x @ self.score / self.score.norm()
        top = torch.topk(s, self.x.shape[1]).indices
        return (self.x[top] * torch.tanh(s[top]).unsqueeze(1)).T

    def evolved(self) -> torch.Tensor:
        inp = None if self.variant == "o" else self.summary()
        return torch.stack([gru(self.prev_weights[layer] if inp is None else inp,
                                self.prev_weights[layer])
                            for layer, gru in enumerate(self.grus)])

    def prepare(self):
        self._w = self.evolved()

    def update(self, layer, m, nodes):
        return m @ self._w[layer]

    def carry(self, graph) -> dict:
        with torch.no_grad():
            w = self.evolved().detach().clone()
        return {"weights": w, "cell": {k: v.detach().clone()
                                       for k, v in self.grus.state_dict().items()},
                "score": self.score.detach().clone()}


class Evolving(Method):
    def start(self, runner, name, spec, n, pretrained, gen) -> StageStart:
        cfg, dev = runner.cfg, runner.dev
        x_pre = pretrained[spec.pretrain]["x"].to(dev)
        prev = runner.load_stage_state(name, n - 1) if n > 1 else None
        x0 = prev["x"] if prev is not None else x_pre
        g, neg_hist = snapshot_start(runner, n)
        if spec.variant == "roland":
            if prev is None:  # the pre-trained model's layers over the pre-training graph
                gp = runner.graph(runner.data.pretrain, cfg.tau_pretrain)
                with torch.no_grad():
                    states = torch.stack(backend.layers(gp, x_pre, cfg.layers, 0.0)[1:])
            else:
                states = prev["states"]
            model = stage_class(RolandModel, cfg)(
                x0, cfg.layers, states, None if prev is None else prev["cells"], gen,
                shard=runner.shard)
        else:
            d = x0.shape[1]
            w = (prev["weights"] if prev is not None else
                 torch.eye(d, dtype=x0.dtype).expand(cfg.layers, d, d).to(dev))
            model = stage_class(EvolveGCNModel, cfg)(
                x0, cfg.layers, spec.variant[-1], w, None if prev is None else prev["cell"],
                None if prev is None else prev["score"], gen, shard=runner.shard)
        return StageStart(model.to(dev), g, neg_hist, cfg.stage_train, runner.split(n)[0])

    def tables_kept(self, spec, cfg) -> int:
        return 1
