"""DGCF, Dynamic Graph Collaborative Filtering (Li et al., ICDM 2020; "DGCN" in GraphPro's
Table 2), at snapshot granularity on the LightGCN pre-training.

DGCF keeps one dynamic embedding per user and item and rewrites both endpoints' embeddings when
an interaction occurs, from three sources: zero-order *inheritance* (the node's own previous
embedding, with the time since its previous interaction), first-order *propagation* (the other
endpoint's previous embedding) and second-order *aggregation* (the previous embeddings of the
other endpoint's neighbours). As the authors' code fuses them (one recurrent cell), the three
terms are summed inside one tanh, with separate weights for users and for items:

    h'_v = tanh(W0 h_v + w_dt dt_v + W1 m1_v + W2 m2_v + b),
    m1 = M h,  m2 = M m1,  M = D^-1 A (the mean over a node's neighbours)

What the paper leaves open at snapshot granularity, decided here:

* a stage's snapshot (its training part) is **one update step**: every node with edges in it is
  updated once, all from the states before the snapshot (no time-ordered chunks), so m1 is the
  mean of the node's snapshot neighbours' previous states (first order, one interaction: exactly
  the other endpoint's) and m2 the mean over those neighbours of their own snapshot neighbours'
  mean (second order; the node itself among them). A node's "previous neighbours" are thus its
  co-interactors of the same snapshot. Nodes without edges in the snapshot keep their state;
* ``dt_v = log(1 + days)`` from the node's last interaction before the snapshot (pre-training
  data and earlier snapshots' training parts) to its first interaction in the snapshot; 0 for a
  node never seen before;
* the previous states ``h`` are the learnable table ``x``: stage 1 starts it from the pre-trained
  LightGCN's output over the pre-training graph (what LightGCN scores with), stage n from stage
  n-1's updated states; training adjusts them with the update weights (the gradient stops at the
  stage boundary, as DGCF's truncates at its t-batch boundaries);
* the loss is the trainer's BPR over the snapshot's pairs with the updated embeddings, and
  Recall/NDCG score snapshot n+1 with them (DGCF's loss predicts the next item's embedding),
  plus DGCF's *temporal smoothness*: the mean squared change of each interacting user's and
  item's state, ``SMOOTHNESS * (mse(u', u) + mse(i', i))`` against the detached previous states
  (the authors' default weight 1 for both). Without it BPR pushes the update into a saturated
  tanh, and states carried from stage to stage lose the ranking (docs/RESULTS.md, "DGCN's
  temporal smoothness"). The updated embeddings are not L2-normalised (DGCF's are), since BPR
  scores raw dot products; no interaction features (the data have none); the update reaches two
  hops whatever ``--layers`` (which sets only the pre-training's layers);
* ``carry()``: every node's updated state (nodes without edges: their state), every node's last
  interaction time and the update weights, all continuing into the next stage.

The update starts as ``tanh`` of the previous state (W0 = I, the rest 0), so stage 1 starts
from the pre-trained model's ranking, as EvolveGCN here starts from the identity; DGCF's cell
starts random, which on the synthetic data threw the pre-training away (average Recall@20 0.044
against 0.084, 400 users, 3 stages). For tanh to keep that ranking, stage 1's states are the
pre-trained output scaled into [-1, 1] by its largest absolute entry (``start_scale``):
unscaled, the snapshot's nodes came out of a saturated tanh while the others kept their full
scale, and the start lost most of the pre-trained ranking (docs/RESULTS.md, "DGCN's start").
Propagation goes through ``backend.layers`` (time weight 0: the LightGCN operator
``D^-1/2 A D^-1/2``, rescaled to the mean), so no E x d tensor is built.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import backend
from ..data import Interactions
from ..models import EmbeddingModel
from ..models.base import bpr_loss, split3
from .base import Method, StageStart, snapshot_start

__all__ = ["DGCF", "DGCFModel", "interval_features", "last_times", "start_scale"]

SECONDS_PER_DAY = 86400.0
HOPS = 2  # first-order propagation + second-order aggregation
SMOOTHNESS = 1.0  # weight of the users' and of the items' state-change penalty
WEIGHTS = ("w_inherit", "w_propagate", "w_aggregate", "w_interval", "bias")


def last_times(inter: Interactions, num_users: int, num_nodes: int,
               before: torch.Tensor | None = None) -> torch.Tensor:
    """float64 [N]: every node's latest interaction time in ``inter`` or ``before`` (NaN: none)."""
    out = (torch.full((num_nodes,), float("nan"), dtype=torch.float64) if before is None
           else before.detach().cpu().double().clone())
    return _reduce(out, inter, num_users, "amax")


def _reduce(out: torch.Tensor, inter: Interactions, num_users: int, how: str) -> torch.Tensor:
    """``out`` combined (NaN-ignoring max or min) with each node's latest or earliest time in
    ``inter``."""
    if len(inter) == 0:
        return out
    t = torch.from_numpy(np.asarray(inter.times, dtype=np.float64))
    nodes = torch.cat([torch.from_numpy(np.asarray(inter.users, dtype=np.int64)),
                       num_users + torch.from_numpy(np.asarray(inter.items, dtype=np.int64))])
    fresh = torch.full_like(out, float("nan")).scatter_reduce(0, nodes, torch.cat([t, t]), how,
                                                             include_self=False)
    return (torch.fmax if how == "amax" else torch.fmin)(out, fresh)


def interval_features(inter: Interactions, last: torch.Tensor, num_users: int) -> torch.Tensor:
    """float64 [N]: ``log(1 + days)`` from each node's last interaction ``last`` (NaN: never) to
    its first interaction in ``inter``; 0 for nodes never seen before or absent from ``inter``."""
    n = last.numel()
    first = _reduce(torch.full((n,), float("nan"), dtype=torch.float64), inter, num_users,
                    "amin")
    days = ((first - last.cpu().double()).clamp(min=0) / SECONDS_PER_DAY).nan_to_num(0.0)
    return torch.log1p(days)


def start_scale(states: torch.Tensor) -> torch.Tensor:
    """``states`` brought into [-1, 1] by their largest absolute entry (kept as they are when
    already inside): one factor for every node, so every dot-product ranking is unchanged, and
    the update's tanh stays near the identity on them."""
    top = states.abs().max()
    return states / top if top > 1 else states


class DGCFModel(EmbeddingModel):
    """The previous states ``x`` [N, d] (learnable) updated once over a snapshot's graph; the
    final embeddings are the updated states (nodes without edges: their previous state)."""

    unshardable = "the dynamic baselines run in one process"

    def __init__(self, x: torch.Tensor, interval: torch.Tensor,
                 last_time: torch.Tensor, weights: dict | None = None, **kwargs):
        super().__init__(x, HOPS, 0.0, **kwargs)
        d = x.shape[1]
        self.register_buffer("interval", interval.to(x))  # [N] dt feature of this snapshot
        # [N] every node's last interaction time after it; files hold no NaN, so "never" is a mask
        self.register_buffer("seen", ~torch.isnan(last_time))
        self.register_buffer("last_time", last_time.double().nan_to_num(0.0))
        shapes = {"w_inherit": (2, d, d), "w_propagate": (2, d, d), "w_aggregate": (2, d, d),
                  "w_interval": (2, d), "bias": (2, d)}  # [0]: users, [1]: items
        for name in WEIGHTS:
            if weights is not None:
                value = weights[name].to(x).clone()
            elif name == "w_inherit":  # the update starts as tanh of the previous state
                value = torch.eye(d, dtype=x.dtype).expand(2, d, d).to(x).clone()
            else:
                value = torch.zeros(shapes[name], dtype=x.dtype, device=x.device)
            setattr(self, name, nn.Parameter(value))

    def mean(self, sub, h: torch.Tensor, keep_prob: float, seed: int) -> torch.Tensor:
        """D^-1 A h through the LightGCN operator: ``n * (D^-1/2 A D^-1/2)(h / n)``, n = deg^-1/2
        (rows without edges: 0)."""
        n = sub.node_norm.to(h.dtype).unsqueeze(1)
        inv = torch.where(n > 0, 1.0 / n.clamp(min=1e-30), torch.zeros_like(n))
        return n * backend.layers(sub, h * inv, 1, 0.0, keep_prob, seed)[1]

    def updated(self, sub, h: torch.Tensor, nodes: torch.Tensor, keep_prob: float = 1.0,
                seed: int = 0) -> torch.Tensor:
        """The states ``h`` of ``nodes`` (global ids, users first, as ``sub``'s rows) after one
        DGCF update over ``sub``; rows without edges keep theirs."""
        m1 = self.mean(sub, h, keep_prob, seed)  # first-order propagation
        m2 = self.mean(sub, m1, keep_prob, seed)  # second-order aggregation
        dt = self.interval[nodes].unsqueeze(1)
        k = sub.num_users
        out = []
        for t, rows in ((0, slice(0, k)), (1, slice(k, None))):
            # DGCF: inheritance (own state + time interval) + propagation + aggregation, fused
            z = (h[rows] @ self.w_inherit[t] + dt[rows] * self.w_interval[t]
                 + m1[rows] @ self.w_propagate[t] + m2[rows] @ self.w_aggregate[t]
                 + self.bias[t])
            out.append(torch.tanh(z))
        has_edges = (sub.rowptr[1:] > sub.rowptr[:-1]).unsqueeze(1)
        return torch.where(has_edges, torch.cat(out), h)

    def forward(self, graph, keep_prob: float = 1.0, seed: int = 0):
        cg = self.planner.compact(graph)
        e = self.ego()
        return e.index_copy(0, cg.glob, self.updated(cg.sub, e[cg.glob], cg.glob, keep_prob,
                                                     seed))

    def batch_loss(self, graph, users, pos, neg, keep_prob: float, seed: int,
                   weight_decay: float, mode: str = "auto") -> torch.Tensor:
        rows = torch.cat([users, graph.num_users + pos, graph.num_users + neg])
        (e,), ego = self.rows_through(
            graph, rows, mode,
            lambda sub, x0: (self.updated(sub, x0, self.scope_nodes, keep_prob, seed),),
            lambda ego0: (ego0,))
        b = users.numel()
        u, i, j = split3(e, b)
        u0, i0 = self.x.detach()[rows[:2 * b]].view(2, b, -1).unbind(0)
        # DGCF's temporal smoothness on the interacting pair (not the sampled negative)
        smooth = SMOOTHNESS * ((u - u0).pow(2).mean() + (i - i0).pow(2).mean())
        return bpr_loss(u, i, j, ego, weight_decay) + smooth

    def carry(self, graph) -> dict:
        """Every node's state after the snapshot (nodes without edges: theirs), every node's last
        interaction time and the update weights."""
        with torch.no_grad():
            states = self.forward(graph).detach().clone()
        return {"states": states, "last_time": self.last_time.clone(), "seen": self.seen.clone(),
                "weights": {k: getattr(self, k).detach().clone() for k in WEIGHTS}}


class DGCF(Method):
    def start(self, runner, name, spec, n, pretrained, gen) -> StageStart:
        cfg, dev = runner.cfg, runner.dev
        prev = runner.load_stage_state(name, n - 1) if n > 1 else None
        num_nodes = runner.nu + runner.ni
        if prev is None:  # the pre-trained LightGCN's output, last times of the pre-training
            x_pre = pretrained[spec.pretrain]["x"].to(dev)
            gp = runner.graph(runner.data.pretrain, cfg.tau_pretrain)
            with torch.no_grad():
                states = start_scale(backend.lightgcn(gp, x_pre, cfg.layers, 0.0))
            last = last_times(runner.data.pretrain, runner.nu, num_nodes)
        else:
            states = prev["states"]
            last = torch.where(prev["seen"], prev["last_time"], float("nan")).cpu()
        g, neg_hist = snapshot_start(runner, n)
        train = runner.split(n)[0]
        interval = interval_features(train, last, runner.nu)
        model = DGCFModel(states, interval.to(dev),
                          last_times(train, runner.nu, num_nodes, last).to(dev),
                          None if prev is None else prev["weights"], shard=runner.shard)
        return StageStart(model.to(dev), g, neg_hist, cfg.stage_train, train)

    def tables_kept(self, spec, cfg) -> int:
        return 1
