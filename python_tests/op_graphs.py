"""Random graph generators for the operator tests.

Every generator takes a ``torch.Generator`` so a failing case is reproduced from the seed the test
prints. The graphs deliberately hold the awkward cases the kernels must survive: power-law degrees,
empty rows, isolated nodes, single-edge rows, optionally one row of degree > 4096, and (temporal
graphs) repeated interactions and all-equal times.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from graphpro_ext.graph import TemporalGraph

BIG_DEGREE = 4100  # > 4096: one row longer than any fixed per-row tile / block


@dataclass
class CSR:
    rowptr: torch.Tensor  # int64 [R+1]
    col: torch.Tensor  # int32 or int64 [E], sorted within rows
    num_rows: int
    num_cols: int

    @property
    def num_edges(self) -> int:
        return int(self.col.numel())

    def degrees(self) -> torch.Tensor:
        return self.rowptr[1:] - self.rowptr[:-1]

    def to(self, device) -> "CSR":
        return CSR(self.rowptr.to(device), self.col.to(device), self.num_rows, self.num_cols)


def powerlaw_degrees(n: int, max_deg: int, gen: torch.Generator, alpha: float = 1.6
                     ) -> torch.Tensor:
    """int64 [n] Pareto degrees in [0, max_deg] with forced empty, single-edge and hub rows."""
    u = torch.rand(n, generator=gen, dtype=torch.float64).clamp_min(1e-12)
    deg = torch.floor(u.pow(-1.0 / alpha)).long() - 1  # Pareto(alpha) - 1: many 0s and 1s
    deg = deg.clamp(0, max_deg)
    if n >= 4:
        perm = torch.randperm(n, generator=gen)
        deg[perm[0]] = 0  # an empty row
        deg[perm[1]] = 1  # a single-edge row
        deg[perm[2]] = min(max_deg, max(int(deg.max()), 3))  # a hub
    return deg


def _mask_from_degrees(deg: torch.Tensor, num_cols: int, gen: torch.Generator,
                       col_weight: torch.Tensor | None = None) -> torch.Tensor:
    """bool [R, C] with deg[r] distinct columns in row r, columns drawn without replacement with
    probability proportional to ``col_weight`` (Efraimidis-Spirakis keys); weight 0 => never."""
    r = deg.numel()
    keys = torch.rand(r, num_cols, generator=gen, dtype=torch.float64).clamp_min(1e-300)
    if col_weight is not None:
        w = col_weight.to(torch.float64)
        keys = torch.where(w > 0, keys.log() / w.clamp_min(1e-300),
                           torch.full_like(keys, -torch.inf))
    else:
        keys = keys.log()
    # Largest keys win; columns with weight 0 have key -inf and are chosen only if nothing else is.
    avail = (keys > -torch.inf).sum(1)
    d = torch.minimum(deg, avail)
    ranks = keys.argsort(1, descending=True).argsort(1)
    return ranks < d.unsqueeze(1)


def random_csr(
    gen: torch.Generator,
    num_rows: int = 60,
    num_cols: int = 50,
    *,
    max_deg: int | None = None,
    big_row: bool = False,
    index_dtype: torch.dtype = torch.int32,
) -> CSR:
    """A general (not symmetric) CSR with power-law row degrees, power-law column popularity
    (so some columns are never referenced), an empty row and a single-edge row; ``big_row`` makes
    one row of degree > 4096 (``num_cols`` is raised to allow it)."""
    if big_row:
        num_cols = max(num_cols, BIG_DEGREE + 7)
    max_deg = num_cols if max_deg is None else min(max_deg, num_cols)
    deg = powerlaw_degrees(num_rows, min(max_deg, 40), gen)
    if big_row:
        deg[int(torch.randint(num_rows, (1,), generator=gen))] = BIG_DEGREE
    popularity = torch.rand(num_cols, generator=gen, dtype=torch.float64).pow(3) + 1e-3
    popularity[torch.randperm(num_cols, generator=gen)[: max(1, min(num_cols // 10, 5))]] = 0.0
    mask = _mask_from_degrees(deg, num_cols, gen, popularity)
    rows, cols = mask.nonzero(as_tuple=True)  # row-major: columns sorted within each row
    rowptr = torch.zeros(num_rows + 1, dtype=torch.int64)
    rowptr[1:] = torch.cumsum(torch.bincount(rows, minlength=num_rows), 0)
    return CSR(rowptr, cols.to(index_dtype), num_rows, num_cols)


def tiny_csr(gen: torch.Generator, num_rows: int = 5, num_cols: int = 4,
             index_dtype: torch.dtype = torch.int64) -> CSR:
    """A few-edge CSR for gradcheck, always with an empty row and a single-edge row."""
    deg = torch.randint(0, num_cols + 1, (num_rows,), generator=gen)
    deg[0] = 0
    deg[1] = 1
    mask = _mask_from_degrees(deg, num_cols, gen)
    rows, cols = mask.nonzero(as_tuple=True)
    rowptr = torch.zeros(num_rows + 1, dtype=torch.int64)
    rowptr[1:] = torch.cumsum(torch.bincount(rows, minlength=num_rows), 0)
    return CSR(rowptr, cols.to(index_dtype), num_rows, num_cols)


@dataclass
class Interactions:
    users: torch.Tensor
    items: torch.Tensor
    times: torch.Tensor
    num_users: int
    num_items: int


def random_interactions(
    gen: torch.Generator,
    num_users: int = 40,
    num_items: int = 50,
    *,
    big_row: bool = False,
    equal_times: bool = False,
    duplicates: bool = True,
    hours: float = 200.0,
) -> Interactions:
    """Power-law bipartite interactions with isolated users (degree 0), isolated items (never
    chosen), a single-interaction user, repeated (u, i) pairs at different times, and optionally
    one user with > 4096 items or all times equal."""
    if big_row:
        num_items = max(num_items, BIG_DEGREE + 11)
    deg = powerlaw_degrees(num_users, min(num_items, 30), gen, alpha=1.3)
    if big_row:
        deg[int(torch.randint(num_users, (1,), generator=gen))] = BIG_DEGREE
    popularity = torch.rand(num_items, generator=gen, dtype=torch.float64).pow(3) + 1e-3
    popularity[torch.randperm(num_items, generator=gen)[: max(1, min(num_items // 10, 5))]] = 0.0
    mask = _mask_from_degrees(deg, num_items, gen, popularity)
    u, i = mask.nonzero(as_tuple=True)
    n = u.numel()
    if equal_times:
        t = torch.full((n,), 1.7e9, dtype=torch.float64)
    else:
        t = 1.7e9 + torch.rand(n, generator=gen, dtype=torch.float64) * hours * 3600.0
    if duplicates and n > 0:
        dup = torch.randint(n, (max(1, n // 5),), generator=gen)
        u = torch.cat([u, u[dup]])
        i = torch.cat([i, i[dup]])
        if equal_times:
            t = torch.cat([t, t[dup]])
        else:
            t = torch.cat([t, t[dup] + (torch.rand(dup.numel(), generator=gen, dtype=torch.float64)
                                         - 0.5) * hours * 3600.0])
        perm = torch.randperm(u.numel(), generator=gen)
        u, i, t = u[perm], i[perm], t[perm]
    return Interactions(u, i, t, num_users, num_items)


def random_temporal_graph(gen: torch.Generator, num_users: int = 40, num_items: int = 50, *,
                          big_row: bool = False, equal_times: bool = False,
                          index_dtype: torch.dtype = torch.int32, tau_hours: float = 1.0,
                          ) -> TemporalGraph:
    """A symmetric temporal graph built by TemporalGraph.from_interactions (the production path)."""
    it = random_interactions(gen, num_users, num_items, big_row=big_row, equal_times=equal_times)
    g = TemporalGraph.from_interactions(it.users, it.items, it.times, it.num_users, it.num_items,
                                        tau_hours=tau_hours)
    if index_dtype != g.col.dtype:
        g.col = g.col.to(index_dtype)
    return g


def tiny_temporal_graph(gen: torch.Generator, num_users: int = 4, num_items: int = 4,
                        index_dtype: torch.dtype = torch.int64) -> TemporalGraph:
    """A handful of interactions (plus an isolated user and item) for gradcheck."""
    it = random_interactions(gen, num_users, num_items, duplicates=False, hours=5.0)
    g = TemporalGraph.from_interactions(it.users, it.items, it.times, it.num_users + 1,
                                        it.num_items + 1, tau_hours=0.1)
    g.col = g.col.to(index_dtype)
    return g


def random_history(gen: torch.Generator, num_users: int, num_items: int, *,
                   max_len: int | None = None, index_dtype: torch.dtype = torch.int64,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """A sorted, duplicate-free history CSR (rowptr int64 [U+1], items [nnz]) with power-law row
    lengths and an empty row; lengths stay below num_items (every complement is non-empty)."""
    cap = num_items - 1 if max_len is None else min(max_len, num_items - 1)
    deg = powerlaw_degrees(num_users, cap, gen, alpha=1.2)
    mask = _mask_from_degrees(deg, num_items, gen)
    rows, items = mask.nonzero(as_tuple=True)
    rowptr = torch.zeros(num_users + 1, dtype=torch.int64)
    rowptr[1:] = torch.cumsum(torch.bincount(rows, minlength=num_users), 0)
    return rowptr, items.to(index_dtype)
