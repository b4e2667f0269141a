"""The ops the trainer calls: the fused ``graphpro_ext.ops`` when the compiled extension loads,
else the plain-PyTorch ``graphpro_ext.reference`` (same math, much slower), so the trainer can be
developed and tested before the extension is built (python_tests/test_fallback.py runs it with the
compiled module blocked). ``FUSED`` says which one is in use, ``FUSED_ERROR`` why the fused ops
did not load; ``use()`` (``graphpro --ops reference``) switches to the reference ops on purpose,
to time the reference formulation inside the same trainer.

Every op the trainer calls goes through this module, and each name it forwards to ``_ops`` exists
in both ``graphpro_ext.ops`` and ``graphpro_ext.reference`` (checked by test_fallback.py)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from graphpro_ext import reference as _reference

try:  # the compiled library registers torch.ops.graphpro.*; any failure means "not built"
    from graphpro_ext import ops as _fused

    FUSED_ERROR: str | None = None
except Exception as e:  # noqa: BLE001 - ImportError, OSError or a missing schema all mean the same
    _fused, FUSED_ERROR = None, f"{type(e).__name__}: {e}"
    logging.getLogger("graphpro").warning(
        "graphpro_ext: compiled ops not loaded, the trainer uses graphpro_ext.reference (plain "
        "PyTorch, much slower): %s", FUSED_ERROR)

_ops = _fused or _reference
FUSED = _fused is not None

__all__ = ["FUSED", "FUSED_ERROR", "use", "lightgcn", "layers", "khop_subgraph", "simgcl_perturb",
           "sample_negatives",
           "topk_masked", "group_dots", "backend_name"]


def use(kind: str) -> None:
    """Switch the ops every later call uses: ``"fused"`` or ``"reference"``."""
    global _ops, FUSED
    if kind == "reference":
        _ops, FUSED = _reference, False
    elif kind == "fused":
        if _fused is None:
            raise RuntimeError(f"the compiled graphpro_ext ops did not load ({FUSED_ERROR})")
        _ops, FUSED = _fused, True
    else:
        raise ValueError(f"ops must be 'fused' or 'reference', got {kind!r}")


def backend_name() -> str:
    """The ops in use, for the first log line and results.json."""
    if FUSED:
        return "graphpro_ext.ops (fused)"
    if _fused is None:
        return "graphpro_ext.reference (plain PyTorch; compiled ops not built)"
    return "graphpro_ext.reference (plain PyTorch)"


def lightgcn(graph, x: torch.Tensor, num_layers: int, time_weight: float, keep_prob: float = 1.0,
             seed: int = 0) -> torch.Tensor:
    """sum_{l=0..L} A^l x over a TemporalGraph (time_weight=0: plain LightGCN)."""
    return _ops.lightgcn(graph.rowptr, graph.col, graph.edge_time, graph.node_norm, x,
                         num_layers=num_layers, time_weight=time_weight, keep_prob=keep_prob,
                         seed=seed)


def layers(graph, x: torch.Tensor, num_layers: int, time_weight: float, keep_prob: float = 1.0,
           seed: int = 0) -> list[torch.Tensor]:
    """[A^0 x, A^1 x, ..., A^L x]: one fused ``temporal_propagate`` per layer, each layer with the
    same edge mask (``lightgcn`` is their sum), for backbones that need the layers apart."""
    out = [x]
    for _ in range(num_layers):
        out.append(_ops.temporal_propagate(graph.rowptr, graph.col, graph.edge_time,
                                           graph.node_norm, out[-1], time_weight=time_weight,
                                           keep_prob=keep_prob, seed=seed))
    return out


def khop_subgraph(graph, seeds: torch.Tensor, num_hops: int):
    """(subgraph, nodes): the graph induced on the nodes within ``num_hops`` of ``seeds``;
    propagation with up to ``num_hops`` layers over it is exact at the seeds."""
    nodes, rp, col, pos = _ops.khop_subgraph(graph.rowptr, graph.col, seeds, num_hops)
    return graph.subgraph(nodes, rp, col, pos), nodes


def simgcl_perturb(x: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """SimGCL's ``x + sign(x) * eps * u / |u|`` per row, u keyed by (seed, row, column)."""
    return _ops.simgcl_perturb(x, eps, seed)


def group_dots(table: torch.Tensor, idx: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """``<table[idx[g, j]], v[g]>`` for every (g, j) of ``idx`` [G, M] (where ``mask`` holds, in
    row-major order, when given): one ``sddmm`` over a CSR whose row g lists its columns, never
    the [G * M, d] gathered rows. Not differentiable."""
    counts = (torch.full((idx.shape[0],), idx.shape[1], device=idx.device, dtype=torch.int64)
              if mask is None else mask.sum(1))
    rowptr = torch.zeros(idx.shape[0] + 1, device=idx.device, dtype=torch.int64)
    torch.cumsum(counts, 0, out=rowptr[1:])
    col = idx.reshape(-1) if mask is None else idx[mask]
    return _ops.sddmm(rowptr, col, v.detach().contiguous(), table.detach().contiguous())


def sample_negatives(hist_rowptr, hist_items, users, num_items: int, k: int, seed: int):
    """int64 [B, k] uniform negatives outside each user's history row."""
    if FUSED:
        return _ops.sample_negatives(hist_rowptr, hist_items, users, num_items, k, seed)
    return _numpy_negatives(hist_rowptr, hist_items, users, num_items, k, seed)


def _numpy_negatives(hist_rowptr, hist_items, users, num_items, k, seed):
    # Vectorised rejection sampling; reference.sample_negatives loops in Python per user, which
    # would dominate an epoch.
    rp = hist_rowptr.cpu().numpy()
    items = hist_items.cpu().numpy().astype(np.int64)
    row_of = np.repeat(np.arange(rp.size - 1, dtype=np.int64), np.diff(rp))
    keys = row_of * num_items + items  # sorted: rows ascending, items ascending within a row
    u = np.repeat(users.cpu().numpy().astype(np.int64), k)
    full = np.flatnonzero(np.diff(rp)[u] >= num_items) if u.size else []
    if len(full):  # rejection sampling would never end: no item lies outside this history
        raise ValueError(f"sample_negatives: user {int(u[full[0]])} has every one of the "
                         f"{num_items} items in its history; no negative exists")
    rng = np.random.default_rng(seed)
    out = rng.integers(0, num_items, u.size)
    bad = np.ones(u.size, dtype=bool)
    while True:
        q = u[bad] * num_items + out[bad]
        pos = np.minimum(np.searchsorted(keys, q), max(keys.size - 1, 0))
        hit = keys[pos] == q if keys.size else np.zeros(q.size, dtype=bool)
        idx = np.flatnonzero(bad)
        bad[:] = False
        bad[idx[hit]] = True
        if not bad.any():
            break
        out[bad] = rng.integers(0, num_items, int(bad.sum()))
    return torch.from_numpy(out.reshape(-1, k)).to(users.device)


def topk_masked(user_emb, item_emb, hist_rowptr, hist_items, k: int, users=None):
    """(scores, ids) of the k best items per row with the user's history masked (ids -1 past
    the unmasked items)."""
    return _ops.topk_masked(user_emb, item_emb, hist_rowptr, hist_items, k, users=users)
