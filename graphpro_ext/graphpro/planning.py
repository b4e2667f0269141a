"""Batch planning: what each training batch propagates over, with its caches.

Two decisions per graph, both cached here (keyed by the graph object's identity, dropped when the
graph is freed) instead of on the graph itself:

* ``compact(graph)``: the graph restricted to nodes with at least one edge, which full-graph
  batches and evaluation propagate over;
* ``mode(graph, rows, num_layers, "auto")``: the L-hop subgraph of the batch or the compact
  graph, decided once per (batch size, layers, share) from the first batch's subgraph: the
  subgraph while it reaches at most ``share`` of the nodes with edges (``auto_mode(share)``;
  bare ``"auto"`` means ``AUTO_SHARE``).

Models take a planner (``DEFAULT`` unless given one), so that several models over one graph
share its plans and no model writes attributes onto graphs.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch

from graphpro_ext.graph import TemporalGraph

from . import backend

__all__ = ["CompactGraph", "BatchPlanner", "DEFAULT", "compact", "BATCH_MODES", "AUTO_SHARE",
           "auto_mode"]

BATCH_MODES = ("auto", "subgraph", "full")
# The subgraph was the faster mode on every Amazon graph measured (docs/TRAINER.md); graphs a
# batch reaches nearly whole still want full-graph batches.
AUTO_SHARE = 0.8


def auto_mode(share: float) -> str:
    """The ``mode`` string of ``auto`` with its own share threshold (``"auto:0.5"``)."""
    return f"auto:{float(share)!r}"


def _parse(requested: str) -> tuple[str, float | None]:
    kind, _, share = requested.partition(":")
    if kind not in BATCH_MODES or (share and kind != "auto"):
        raise ValueError(f"batch graph mode must be auto, subgraph or full, got {requested!r}")
    if kind != "auto":
        return kind, None
    try:
        value = float(share) if share else AUTO_SHARE
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise ValueError(f"auto's share must be in (0, 1], got {requested!r}")
    return kind, value


@dataclass
class CompactGraph:
    """The graph restricted to nodes with at least one edge. Propagation is identical on those
    nodes (isolated ones just keep layer 0), but a fine-tuning snapshot touches ~12% of the
    Amazon id space, so every per-batch pass gets that much cheaper."""

    sub: TemporalGraph  # over compacted ids: active users, then active items
    glob: torch.Tensor  # int64 [Na]: global id of each compacted node
    local: torch.Tensor  # int64 [N]: compacted id of each global node, -1 when isolated


def _compact(graph: TemporalGraph) -> CompactGraph:
    """Columns stay sorted because the id map is monotonic."""
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
    return CompactGraph(sub, glob, local)


@dataclass
class _Plans:
    ref: weakref.ref  # the graph these plans are for
    compact: CompactGraph | None = None
    # (rows per batch, layers, share) -> "subgraph" | "full"
    modes: dict = field(default_factory=dict)


class BatchPlanner:
    """Per-graph caches of the batch plans (see the module docstring)."""

    def __init__(self):
        self._plans: dict[int, _Plans] = {}

    def _for(self, graph: TemporalGraph) -> _Plans:
        key = id(graph)
        plans = self._plans.get(key)
        if plans is not None and plans.ref() is graph:
            return plans
        own = weakref.ref(self)

        def forget(ref, key=key):
            planner = own()
            if planner is not None and key in planner._plans and planner._plans[key].ref is ref:
                del planner._plans[key]

        plans = self._plans[key] = _Plans(weakref.ref(graph, forget))
        return plans

    def compact(self, graph: TemporalGraph) -> CompactGraph:
        plans = self._for(graph)
        if plans.compact is None:
            plans.compact = _compact(graph)
        return plans.compact

    def mode(self, graph: TemporalGraph, rows: torch.Tensor, num_layers: int,
             requested: str = "auto"):
        """("subgraph" or "full", the extracted subgraph or None) for this batch. ``auto``
        (``auto:SHARE``): the subgraph when the first batch of this size on this graph reaches
        at most SHARE of its nodes with edges (decided once; that first subgraph is handed back
        so it is not extracted twice)."""
        kind, share = _parse(requested)
        if kind != "auto":
            return kind, None
        decided = self._for(graph).modes
        key = (rows.numel(), num_layers, share)
        if key in decided:
            return decided[key], None
        extracted = backend.khop_subgraph(graph, rows, num_layers)
        small = extracted[1].numel() <= share * self.compact(graph).glob.numel()
        decided[key] = "subgraph" if small else "full"
        return decided[key], extracted

    def decided(self, graph: TemporalGraph) -> dict:
        """The ``auto`` decisions taken so far for ``graph``: (rows per batch, layers, share)
        -> mode."""
        return dict(self._for(graph).modes)


DEFAULT = BatchPlanner()


def compact(graph: TemporalGraph) -> CompactGraph:
    """``DEFAULT.compact(graph)``."""
    return DEFAULT.compact(graph)
