"""Building and validating the symmetric temporal CSR graph GraphPro propagates over.

Nodes are users 0..U-1 then items U..U+I-1; every interaction (u, i, t) is one undirected edge
stored in both directions of one CSR (int64 rowptr, int32 columns sorted within rows). Repeated
(u, i) pairs are merged keeping the latest time, as the reference implementation does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["TemporalGraph", "time_steps", "build_history", "as_numpy", "pair_keys"]


def pair_keys(users: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
    """One int64 key per (user, item) pair, ``user * num_items + item``: equal keys are equal
    pairs and sorting keys sorts by user, then item. The one place such keys are built (graph
    building, histories, the trainer's splits and metrics)."""
    width = max(int(num_items), 1)
    if users.size and (int(users.max()) + 1) * width >= 2**63:
        raise OverflowError(f"pair keys overflow int64 with {int(users.max()) + 1} users x "
                            f"{width} items")
    return users.astype(np.int64) * width + items


def unique(a: np.ndarray, return_counts: bool = False):
    """Sorted distinct values of a numeric array (and their counts), by sort + neighbour
    comparison: numpy 2.4's ``np.unique`` hashes integers and measured 6-20x slower on the
    trainer's multi-million-entry key arrays."""
    s = np.sort(np.asarray(a).ravel())
    first = np.empty(s.size, dtype=bool)
    if s.size:
        first[0] = True
        np.not_equal(s[1:], s[:-1], out=first[1:])
    out = s[first]
    if not return_counts:
        return out
    starts = np.flatnonzero(first)
    return out, np.diff(np.r_[starts, s.size])


def isin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.isin(a, b)`` for numeric arrays by sorting ``b`` and binary search (numpy 2.4's
    ``np.isin`` goes through its slow hashing ``unique``)."""
    a = np.asarray(a)
    s = np.sort(np.asarray(b).ravel())
    if not s.size:
        return np.zeros(a.shape, dtype=bool)
    at = np.minimum(np.searchsorted(s, a), s.size - 1)
    return s[at] == a


def as_numpy(a, name: str) -> np.ndarray:
    """1-D numpy view of a list / array / tensor, with a clear error for anything else."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def _as_ids(a, name: str, upper: int) -> np.ndarray:
    a = as_numpy(a, name)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)) or np.any(a != np.floor(a)):
            raise ValueError(f"{name} must hold integer ids, got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= upper:
            bad = int(np.flatnonzero((a < 0) | (a >= upper))[0])
            raise ValueError(
                f"{name}[{bad}] = {int(a[bad])} is outside [0, {upper}) "
                f"(num_{name.rstrip('s')}s = {upper})"
            )
    return a


def time_steps(times: np.ndarray, tau_hours: float, t_min: float | None = None) -> np.ndarray:
    """GraphPro's discretised time: ``1 + floor((t - min t) / tau_seconds)`` (int64)."""
    if tau_hours <= 0:
        raise ValueError(f"tau_hours must be > 0, got {tau_hours}")
    t0 = float(times.min()) if t_min is None else float(t_min)
    return 1 + np.floor((times.astype(np.float64) - t0) / (tau_hours * 3600.0)).astype(np.int64)


def build_history(
    users: np.ndarray, items: np.ndarray, num_users: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-user sorted, duplicate-free item rows: (rowptr int64 [U+1], items int32 [nnz])."""
    width = int(items.max(initial=0)) + 1
    key = unique(pair_keys(users, items, width))
    u, i = key // width, key % width
    rowptr = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(u, minlength=num_users), out=rowptr[1:])
    return torch.from_numpy(rowptr), torch.from_numpy(i.astype(np.int32))


@dataclass
class TemporalGraph:
    """Symmetric bipartite CSR with normalised edge times and bi-norm node factors."""

    rowptr: torch.Tensor  # int64 [N+1]
    col: torch.Tensor  # int32 [E] (int64 when N >= 2^31)
    edge_time: torch.Tensor  # float32 [E] in [0, 1], symmetric
    node_norm: torch.Tensor  # float32 [N], deg^-1/2, 0 for isolated nodes
    num_users: int
    num_items: int
    stats: dict = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items

    @property
    def num_edges(self) -> int:
        return int(self.col.numel())

    @property
    def device(self) -> torch.device:
        return self.rowptr.device

    def to(self, device) -> "TemporalGraph":
        d = torch.device(device)
        return TemporalGraph(
            self.rowptr.to(d), self.col.to(d), self.edge_time.to(d), self.node_norm.to(d),
            self.num_users, self.num_items, dict(self.stats),
        )

    def subgraph(self, nodes: torch.Tensor, sub_rowptr: torch.Tensor, sub_col: torch.Tensor,
                 edge_pos: torch.Tensor) -> "TemporalGraph":
        """The graph over ``nodes`` (sorted ids) from ``ops.khop_subgraph``'s outputs: edge times
        gathered at ``edge_pos``, bi-norm factors kept from this graph's degrees (so propagation
        matches the full graph at the seeds)."""
        nu = int(torch.searchsorted(nodes, torch.tensor(self.num_users, device=nodes.device)))
        return TemporalGraph(sub_rowptr, sub_col, self.edge_time[edge_pos], self.node_norm[nodes],
                             nu, nodes.numel() - nu, {})

    def user_history(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The users' rows as a history CSR over item ids: (rowptr [U+1], items [nnz], sorted)."""
        u = self.num_users
        rp = self.rowptr[: u + 1]
        return rp, (self.col[: int(rp[-1])] - u).to(self.col.dtype)

    @classmethod
    def from_interactions(
        cls,
        users,
        items,
        times,
        num_users: int,
        num_items: int,
        tau_hours: float = 1.0,
        t_min: float | None = None,
    ) -> "TemporalGraph":
        """Build the graph from interaction arrays (lists, numpy arrays or tensors).

        ``times`` are Unix seconds (any real numbers); steps use ``tau_hours`` and, when given,
        ``t_min`` as the origin (else the minimum time). Raises ValueError naming the bad entry.
        """
        if num_users < 0 or num_items < 0:
            raise ValueError("num_users and num_items must be >= 0")
        u = _as_ids(users, "users", num_users)
        i = _as_ids(items, "items", num_items)
        t = as_numpy(times, "times")
        if not (u.size == i.size == t.size):
            raise ValueError(
                f"users, items and times must have the same length, got {u.size}, {i.size}, {t.size}"
            )
        if t.size and not np.issubdtype(t.dtype, np.number):
            raise ValueError(f"times must be numeric, got dtype {t.dtype}")
        t = t.astype(np.float64, copy=False)
        if t.size and not np.all(np.isfinite(t)):
            bad = int(np.flatnonzero(~np.isfinite(t))[0])
            raise ValueError(f"times[{bad}] = {t[bad]} is not finite")
        n_in = int(u.size)
        # The step origin is the earliest *input* time: merging duplicates must not move it.
        if t_min is None and t.size:
            t_min = float(t.min())
        # Merge repeated (u, i) pairs keeping the latest time.
        key = pair_keys(u, i, num_items)
        order = np.lexsort((t, key))
        key, t = key[order], t[order]
        last = np.ones(key.size, dtype=bool)
        last[:-1] = key[1:] != key[:-1]
        key, t = key[last], t[last]
        u, i = key // max(num_items, 1), key % max(num_items, 1)
        steps = time_steps(t, tau_hours, t_min) if t.size else np.zeros(0, np.int64)
        lo, hi = (int(steps.min()), int(steps.max())) if steps.size else (0, 0)
        tnorm = ((steps - lo) / (hi - lo) if hi > lo else np.zeros(steps.size)).astype(np.float32)
        g = cls.from_edges(u, i, tnorm, num_users, num_items)
        g.stats = {
            "interactions_in": n_in,
            "interactions": int(u.size),
            "duplicates_merged": n_in - int(u.size),
            "time_steps": (lo, hi),
        }
        return g

    @classmethod
    def from_edges(
        cls, u: np.ndarray, i: np.ndarray, tnorm: np.ndarray, num_users: int, num_items: int
    ) -> "TemporalGraph":
        """Symmetric CSR from unique (u, i) pairs with already-normalised times."""
        n = num_users + num_items
        rows = np.concatenate([u, i + num_users])
        cols = np.concatenate([i + num_users, u])
        tt = np.concatenate([tnorm, tnorm]).astype(np.float32)
        order = np.lexsort((cols, rows))
        rows, cols, tt = rows[order], cols[order], tt[order]
        deg = np.bincount(rows, minlength=n).astype(np.int64)
        rowptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(deg, out=rowptr[1:])
        with np.errstate(divide="ignore"):
            norm = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1)), 0.0).astype(np.float32)
        cdt = np.int32 if n < 2**31 else np.int64
        return cls(
            torch.from_numpy(rowptr), torch.from_numpy(cols.astype(cdt)), torch.from_numpy(tt),
            torch.from_numpy(norm), int(num_users), int(num_items),
        )

    def check_symmetric(self) -> None:
        """Raise ValueError unless every edge (r, c, t) has its reverse (c, r, t): the structural
        property temporal_propagate's backward relies on."""
        rp = self.rowptr.cpu()
        rows = torch.repeat_interleave(torch.arange(self.num_nodes), rp[1:] - rp[:-1])
        c = self.col.cpu().long()
        n = self.num_nodes
        fwd = rows * n + c
        rev = c * n + rows
        o1, o2 = torch.argsort(fwd), torch.argsort(rev)
        if not torch.equal(fwd[o1], rev[o2]):
            raise ValueError("graph is not structurally symmetric")
        if not torch.equal(self.edge_time.cpu()[o1], self.edge_time.cpu()[o2]):
            raise ValueError("edge times are not symmetric")
