"""Deterministic synthetic temporal bipartite graphs of any size, for benchmarks and tests.

The generator writes the symmetric CSR of :class:`graphpro_ext.graph.TemporalGraph` directly
(users ``0..U-1`` then items ``U..U+I-1``; int64 ``rowptr``, int32 ``col`` sorted within rows,
float32 symmetric ``edge_time`` in [0, 1], float32 ``node_norm = deg^-1/2``) without Python lists
and without a global sort:

1. **User activity.** ``num_interactions`` user draws from a Zipf-like law (rank ``r`` drawn with
   density ``~ r^-user_exponent`` by inverse CDF, ranks scattered over ids by a random
   permutation), counted with ``np.bincount`` chunk by chunk -> the user row lengths. (``degree=
   "uniform"``: every user gets ``num_interactions // U`` or one more.)
2. **User rows.** Users are cut into groups of about ``chunk_size`` interactions; each group draws
   its items from a Zipf-like item law (``item_exponent``), sorts and de-duplicates the local
   keys ``(user - first_user) * I + item`` and re-draws the missing slots (up to ``max_rounds``
   rounds) so that the rows keep their degrees: **repeated (u, i) pairs are merged**, never stored.
   Any deficit left after ``max_rounds`` is dropped (``stats["dropped_draws"]``). Times are drawn
   per unique pair, uniform over ``time_span_days`` and discretised with ``tau_hours`` like
   ``graph.time_steps``, then normalised to [0, 1].
3. **Item rows** by a stable counting sort of the user-side edges on the item id
   (``np.bincount`` + ``cumsum`` for the row starts, a per-chunk local sort for the rank inside
   each item, a running cursor per item for the scatter): because the user side is processed in
   user order, the users inside each item row come out sorted, and each reverse edge gets the
   same time (symmetric by construction).

Determinism: every chunk uses its own ``np.random.Generator(PCG64(SeedSequence(seed,
spawn_key=(stage, chunk))))``, so the graph is a pure function of ``(arguments, seed,
chunk_size)`` (it does change with ``chunk_size``).

Memory, for E directed edges (E/2 unique interactions) and N nodes: the result is
8 B/edge (``col`` 4 + ``edge_time`` 4) + 12 B/node (``rowptr`` 8 + ``node_norm`` 4); the build
adds 8 B/node for the id permutations and counters, and O(``chunk_size``) scratch (about
60 B per interaction of the chunk: 2^24 -> ~1 GB). Peak is therefore about
``8 E + 20 N + 60 * chunk_size`` bytes: 1e9 directed edges with 75M nodes needs ~11 GB.
"""

from __future__ import annotations

import numpy as np
import torch

from .graph import TemporalGraph

__all__ = [
    "power_law_graph",
    "synthetic_graph",
    "hub_graph",
    "uniform_graph",
    "gowalla_like",
    "amazon_like",
    "estimate_bytes",
]

_STAGE_USERS, _STAGE_ROWS, _STAGE_PERM = 0, 1, 2


def _rng(seed: int, stage: int, chunk: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stage, chunk))))


def _zipf_ranks(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    """int64 ranks in [0, n) with P(rank ~ r) ~ (r + 1)^-exponent (continuous inverse CDF on
    [1, n + 1), floored): O(1) per draw, no CDF table."""
    u = rng.random(size)
    if exponent == 0.0:
        x = u * n
    elif abs(exponent - 1.0) < 1e-12:
        x = np.exp(u * np.log(n + 1.0)) - 1.0
    else:
        s = 1.0 - exponent
        x = np.power(1.0 + u * ((n + 1.0) ** s - 1.0), 1.0 / s) - 1.0
    r = x.astype(np.int64)
    np.minimum(r, n - 1, out=r)
    return r


def estimate_bytes(num_directed_edges: int, num_nodes: int, chunk_size: int = 1 << 24) -> int:
    """Peak host bytes of :func:`power_law_graph` (see the module docstring)."""
    return 8 * num_directed_edges + 20 * num_nodes + 60 * chunk_size


def power_law_graph(
    num_users: int,
    num_items: int,
    num_interactions: int,
    user_exponent: float = 0.8,
    item_exponent: float = 0.8,
    seed: int = 0,
    hub_fraction: float = 0.0,
    degree: str = "powerlaw",
    time_span_days: float = 120.0,
    tau_hours: float = 24.0,
    chunk_size: int = 1 << 24,
    max_rounds: int = 4,
) -> TemporalGraph:
    """A symmetric temporal bipartite graph with about ``2 * num_interactions`` directed edges.

    ``user_exponent`` / ``item_exponent``: Zipf exponents of user activity and item popularity
    (0 = uniform). ``degree="uniform"``: all users get the same number of interactions and items
    are drawn uniformly (the control for the power-law robustness benchmark).
    ``hub_fraction`` in [0, 0.5): user 0 gets ``round(hub_fraction * 2 * num_interactions)``
    distinct items, i.e. that share of all directed edges in one row; the other users share the
    rest. Duplicates are merged (see the module docstring); ``g.stats`` reports the draws.
    """
    if num_users <= 0 or num_items <= 0 or num_interactions < 0:
        raise ValueError("num_users and num_items must be > 0 and num_interactions >= 0")
    if degree not in ("powerlaw", "uniform"):
        raise ValueError(f"degree must be 'powerlaw' or 'uniform', got {degree!r}")
    if not 0.0 <= hub_fraction < 0.5:
        raise ValueError(f"hub_fraction must be in [0, 0.5), got {hub_fraction}")
    if chunk_size <= 0:
        raise ValueError("chunk_size must be > 0")
    U, I = int(num_users), int(num_items)
    item_exp = 0.0 if degree == "uniform" else float(item_exponent)

    # --- 1. user degrees (draw counts) ---------------------------------------------------------
    hub_deg = int(round(hub_fraction * 2 * num_interactions))
    if hub_deg > I:
        raise ValueError(f"hub row of {hub_deg} edges needs num_items >= {hub_deg}, got {I}")
    rest = int(num_interactions) - hub_deg
    first = 1 if hub_deg > 0 else 0  # user 0 is the hub when there is one
    n_rest_users = U - first
    if rest > 0 and n_rest_users <= 0:
        raise ValueError("a hub graph needs at least 2 users")
    deg = np.zeros(U, dtype=np.int64)
    if n_rest_users > 0 and rest > 0:
        if degree == "uniform":
            deg[first:] = rest // n_rest_users
            deg[first : first + rest % n_rest_users] += 1
        else:
            by_rank = np.zeros(n_rest_users, dtype=np.int64)
            for c, lo in enumerate(range(0, rest, chunk_size)):
                m = min(chunk_size, rest - lo)
                by_rank += np.bincount(
                    _zipf_ranks(_rng(seed, _STAGE_USERS, c), n_rest_users, m, float(user_exponent)),
                    minlength=n_rest_users,
                )
            perm_u = _rng(seed, _STAGE_PERM, 0).permutation(n_rest_users)
            deg[first + perm_u] = by_rank
    deg[0] += hub_deg
    draws = int(deg.sum())
    np.minimum(deg, I, out=deg)  # a user cannot hold more distinct items than exist
    perm_i = _rng(seed, _STAGE_PERM, 1).permutation(I).astype(np.int32)

    # --- 2. user rows, group by group ------------------------------------------------------------
    nnz_max = int(deg.sum())
    ucol = np.empty(nnz_max, dtype=np.int32)  # item ids (0-based) of the user side
    utime = np.empty(nnz_max, dtype=np.float32)
    udeg = np.zeros(U, dtype=np.int64)  # degrees after merging
    cum = np.concatenate([[0], np.cumsum(deg)])
    # group boundaries: users whose cumulative degree crosses a multiple of chunk_size
    cuts = np.unique(np.searchsorted(cum, np.arange(0, nnz_max, chunk_size), side="right") - 1)
    bounds = np.unique(np.concatenate([cuts, [U]]))
    bounds = bounds[(bounds >= 0) & (bounds <= U)]
    if bounds[0] != 0:
        bounds = np.concatenate([[0], bounds])
    num_steps = max(1, int(np.floor(time_span_days * 24.0 / tau_hours)) + 1)
    write = 0
    for g, (u0, u1) in enumerate(zip(bounds[:-1], bounds[1:])):
        u0, u1 = int(u0), int(u1)
        want = deg[u0:u1]
        if int(want.sum()) == 0:
            continue
        rng = _rng(seed, _STAGE_ROWS, g)
        n_loc = u1 - u0
        keys = np.empty(0, dtype=np.int64)
        need = want.copy()
        for rnd in range(max_rounds):
            total = int(need.sum())
            if total == 0:
                break
            local_u = np.repeat(np.arange(n_loc, dtype=np.int64), need)
            if u0 == 0 and hub_deg > 0 and rnd == 0:
                # hub row: distinct items without replacement (no re-draws needed)
                hub_items = rng.choice(I, size=int(need[0]), replace=False).astype(np.int64)
                others = perm_i[_zipf_ranks(rng, I, total - int(need[0]), item_exp)].astype(np.int64)
                items = np.concatenate([hub_items, others])
            else:
                items = perm_i[_zipf_ranks(rng, I, total, item_exp)].astype(np.int64)
            new = local_u * I + items
            del local_u, items
            keys = np.unique(np.concatenate([keys, new]))
            del new
            have = np.bincount(keys // I, minlength=n_loc)
            need = want - have
        m = keys.size
        ucol[write : write + m] = (keys % I).astype(np.int32)
        udeg[u0:u1] = np.bincount(keys // I, minlength=n_loc)
        steps = rng.integers(0, num_steps, size=m)
        utime[write : write + m] = steps.astype(np.float32) / np.float32(max(num_steps - 1, 1))
        write += m
        del keys, steps
    nnz = write
    ucol = ucol[:nnz]
    utime = utime[:nnz]

    # --- 3. item rows by a stable counting sort on the item id ---------------------------------
    ideg = np.zeros(I, dtype=np.int64)
    for lo in range(0, nnz, chunk_size):
        ideg += np.bincount(ucol[lo : lo + chunk_size], minlength=I)
    N = U + I
    E = 2 * nnz
    rowptr = np.empty(N + 1, dtype=np.int64)
    rowptr[0] = 0
    np.cumsum(udeg, out=rowptr[1 : U + 1])
    np.cumsum(ideg, out=rowptr[U + 1 :])
    rowptr[U + 1 :] += nnz
    cdt = np.int32 if N < 2**31 else np.int64
    col = np.empty(E, dtype=cdt)
    etime = np.empty(E, dtype=np.float32)
    col[:nnz] = ucol
    col[:nnz] += U  # items live at U..U+I-1
    etime[:nnz] = utime
    cursor = rowptr[U:N].copy()  # next free slot of each item row
    urowptr = rowptr[: U + 1]
    for lo in range(0, nnz, chunk_size):
        hi = min(lo + chunk_size, nnz)
        it = ucol[lo:hi].astype(np.int64)
        n = hi - lo
        # owner user of each edge of the chunk
        uid = np.searchsorted(urowptr, np.arange(lo, hi, dtype=np.int64), side="right") - 1
        # stable local order by item: sort (item, position) packed in one int64
        order = np.sort(it * n + np.arange(n, dtype=np.int64)) % n
        its = it[order]
        starts = np.flatnonzero(np.concatenate([[True], its[1:] != its[:-1]]))
        counts = np.diff(np.concatenate([starts, [n]]))
        rank = np.arange(n, dtype=np.int64) - np.repeat(starts, counts)
        pos = cursor[its] + rank
        col[pos] = uid[order]
        etime[pos] = utime[lo:hi][order]
        cursor[its[starts]] += counts
        del it, uid, order, its, starts, counts, rank, pos
    del ucol, utime, cursor

    degs = np.diff(rowptr)
    with np.errstate(divide="ignore"):
        norm = np.where(degs > 0, 1.0 / np.sqrt(np.maximum(degs, 1)), 0.0).astype(np.float32)
    g = TemporalGraph(
        torch.from_numpy(rowptr), torch.from_numpy(col), torch.from_numpy(etime),
        torch.from_numpy(norm), U, I,
    )
    g.stats = {
        "generator": "power_law_graph",
        "seed": int(seed),
        "draws": draws,
        "interactions": int(nnz),
        "dropped_draws": draws - int(nnz),
        "hub_degree": int(udeg[0]) if hub_deg > 0 else 0,
        "max_user_degree": int(udeg.max(initial=0)),
        "max_item_degree": int(ideg.max(initial=0)),
        "time_steps": (0, num_steps - 1),
        "degree": degree,
        "user_exponent": float(user_exponent),
        "item_exponent": item_exp,
    }
    return g


def synthetic_graph(num_directed_edges: int, seed: int = 0, **kw) -> TemporalGraph:
    """About ``num_directed_edges`` directed edges (E/2 interactions) with U = E/20 users and
    I = E/40 items (mean user degree 10, item degree 20), power-law activity and popularity."""
    inter = int(num_directed_edges) // 2
    kw.setdefault("num_users", max(2, inter // 10))
    kw.setdefault("num_items", max(2, inter // 20))
    return power_law_graph(num_interactions=inter, seed=seed, **kw)


def uniform_graph(
    num_directed_edges: int, seed: int = 0, match_hub_fraction: float = 0.05, **kw
) -> TemporalGraph:
    """Same sizes as ``hub_graph(num_directed_edges, match_hub_fraction)`` (users, items, edges)
    but uniform degrees (no hub): the control of the power-law robustness benchmark."""
    inter = int(num_directed_edges) // 2
    kw.setdefault("num_users", max(2, inter // 10))
    kw.setdefault("num_items", max(2, inter // 10,
                                   2 * int(match_hub_fraction * num_directed_edges)))
    return power_law_graph(num_interactions=inter, seed=seed, degree="uniform", **kw)


def hub_graph(num_directed_edges: int, hub_fraction: float = 0.05, seed: int = 0, **kw) -> TemporalGraph:
    """Uniform degrees except user 0, whose row holds ``hub_fraction`` of all directed edges.
    Same default sizes as :func:`uniform_graph`; the item set is widened to at least twice the
    hub row, so the hub user still has unseen items (negative sampling stays well defined)."""
    inter = int(num_directed_edges) // 2
    kw.setdefault("num_users", max(2, inter // 10))
    kw.setdefault("num_items", max(2, inter // 10, 2 * int(hub_fraction * num_directed_edges)))
    return power_law_graph(
        num_interactions=inter, seed=seed, degree="uniform", hub_fraction=hub_fraction, **kw
    )


def gowalla_like(seed: int = 0, **kw) -> TemporalGraph:
    """Gowalla-sized (LightGCN split): 29,858 users, 40,981 items, ~810k interactions."""
    kw.setdefault("user_exponent", 0.6)
    kw.setdefault("item_exponent", 0.8)
    return power_law_graph(29858, 40981, 810128, seed=seed, **kw)


def amazon_like(seed: int = 0, **kw) -> TemporalGraph:
    """Amazon-sized: 131,707 users, 107,028 items, ~700k interactions (~1.4M directed edges),
    power-law item popularity."""
    kw.setdefault("user_exponent", 0.8)
    kw.setdefault("item_exponent", 0.9)
    return power_law_graph(131707, 107028, 700000, seed=seed, **kw)
