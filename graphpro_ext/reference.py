"""Plain-PyTorch versions of every op: the oracle for tests and the baseline for benchmarks.

They follow the GraphPro reference code's formulation: per-edge gather -> scale -> scatter_add,
and the temporal softmax via scatter max / scatter sum. They materialise E x d tensors on purpose
(that is what the reference does); use graphpro_ext.ops for real work.
"""

from __future__ import annotations

import torch

_M64 = 1 << 64


def _i64(c: int) -> int:
    """An unsigned 64-bit constant as the signed int64 with the same bits."""
    c %= _M64
    return c - _M64 if c >= (1 << 63) else c


def _srl(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's >> is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    z = (z ^ _srl(z, 30)) * _i64(0xBF58476D1CE4E5B9)
    z = (z ^ _srl(z, 27)) * _i64(0x94D049BB133111EB)
    return z ^ _srl(z, 31)


def _mix64_int(z: int) -> int:
    z %= _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % _M64
    return z ^ (z >> 31)


def row_index(rowptr: torch.Tensor, num_edges: int | None = None) -> torch.Tensor:
    """int64 [E]: the row of every CSR edge."""
    n = rowptr.numel() - 1
    counts = rowptr[1:] - rowptr[:-1]
    return torch.repeat_interleave(
        torch.arange(n, device=rowptr.device), counts,
        output_size=int(rowptr[-1]) if num_edges is None else num_edges,
    )


def edge_keep_mask(
    rows: torch.Tensor, cols: torch.Tensor, seed: int, keep_prob: float
) -> torch.Tensor:
    """bool [E]: the dropout decision of csrc/common/device_math.h::edge_kept for each edge."""
    if keep_prob >= 1.0:
        return torch.ones(rows.shape, dtype=torch.bool, device=rows.device)
    r, c = rows.long(), cols.long()
    lo, hi = torch.minimum(r, c), torch.maximum(r, c)
    key = _i64(_mix64_int(seed + 0x632BE59BD9B4E019))
    h = _mix64(key ^ _mix64(lo * _i64(0x9E3779B97F4A7C15) + hi))
    threshold = int(keep_prob * 4294967296.0)
    return _srl(h, 32) < threshold


def simgcl_noise(n: int, d: int, seed: int, device=None) -> torch.Tensor:
    """float32 [n, d]: the uniforms of csrc/common/device_math.h::noise_pair_bits (SplitMix64
    output r * pairs + p + 1 for pair p = c // 2 of row r; top 24 bits for even c, bits 8..31
    for odd c)."""
    pairs = (d + 1) // 2
    key = _mix64_int(seed + 0x632BE59BD9B4E019)
    i = torch.arange(n * pairs, dtype=torch.int64, device=device) + 1
    bits = _mix64(_i64(key) + i * _i64(0x9E3779B97F4A7C15))
    hi = _srl(bits, 40).to(torch.float32) * 2.0 ** -24
    lo = (_srl(bits, 8) & 0xFFFFFF).to(torch.float32) * 2.0 ** -24
    return torch.stack([hi, lo], dim=1).reshape(n, 2 * pairs)[:, :d]


def simgcl_perturb(x: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """SimGCL's ``x + sign(x) * eps * normalize(u)`` with the op's keyed uniforms u."""
    u = simgcl_noise(x.shape[0], x.shape[1], seed, x.device).to(_acc(x.dtype))
    u = torch.nn.functional.normalize(u, dim=1)
    return (x + torch.sign(x.detach()) * eps * u).to(x.dtype)


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def edge_softmax(rowptr: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Per-row softmax via scatter max / exp / scatter sum (the reference code's way)."""
    rows = row_index(rowptr, scores.numel())
    n = rowptr.numel() - 1
    rmax = torch.full((n,), float("-inf"), dtype=scores.dtype, device=scores.device)
    rmax = rmax.scatter_reduce(0, rows, scores, reduce="amax", include_self=True)
    e = torch.exp(scores - rmax[rows])
    denom = torch.zeros(n, dtype=scores.dtype, device=scores.device).index_add(0, rows, e)
    return e / denom[rows]


def spmm(
    rowptr: torch.Tensor, col: torch.Tensor, weight: torch.Tensor | None, x: torch.Tensor
) -> torch.Tensor:
    """gather -> scale -> scatter_add."""
    rows = row_index(rowptr, col.numel())
    msg = x[col.long()]
    if weight is not None:
        msg = msg * weight.to(x.dtype).unsqueeze(1)
    out = torch.zeros(rowptr.numel() - 1, x.shape[1], dtype=x.dtype, device=x.device)
    return out.index_add(0, rows, msg)


def sddmm(rowptr: torch.Tensor, col: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    rows = row_index(rowptr, col.numel())
    return (a[rows] * b[col.long()]).sum(1)


def temporal_edge_weights(
    rowptr: torch.Tensor,
    col: torch.Tensor,
    edge_time: torch.Tensor | None,
    node_norm: torch.Tensor,
    time_weight: float = 0.5,
    keep_prob: float = 1.0,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """[E] GraphPro edge weights (eqs. 5-6): tw * softmax over the row's kept edges of the edge
    times + (1 - tw) * norm_r * norm_c; dropped edges get 0."""
    dtype = dtype or node_norm.dtype
    rows = row_index(rowptr, col.numel())
    c = col.long()
    keep = edge_keep_mask(rows, c, seed, keep_prob)
    w = (1.0 - time_weight) * node_norm.to(dtype)[rows] * node_norm.to(dtype)[c]
    if time_weight != 0.0 and edge_time is not None:
        t = edge_time.to(dtype).masked_fill(~keep, float("-inf"))
        alpha = edge_softmax(rowptr, t)
        w = w + time_weight * torch.nan_to_num(alpha, nan=0.0)
    return w * keep.to(dtype)


def temporal_propagate(
    rowptr, col, edge_time, node_norm, x, time_weight=0.5, keep_prob=1.0, seed=0
) -> torch.Tensor:
    w = temporal_edge_weights(rowptr, col, edge_time, node_norm, time_weight, keep_prob, seed,
                              dtype=x.dtype)
    return spmm(rowptr, col, w, x)


def lightgcn(
    rowptr, col, edge_time, node_norm, x, num_layers=3, time_weight=0.5, keep_prob=1.0, seed=0
) -> torch.Tensor:
    """sum_{l=0..L} A^l x, recomputing the weights once (as the reference does per forward)."""
    w = temporal_edge_weights(rowptr, col, edge_time, node_norm, time_weight, keep_prob, seed,
                              dtype=x.dtype)
    out, cur = x, x
    for _ in range(num_layers):
        cur = spmm(rowptr, col, w, cur)
        out = out + cur
    return out


def _row_edges(rowptr: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge positions of ``rows``' CSR rows concatenated, the index into ``rows`` of each)."""
    starts, counts = rowptr[rows], rowptr[rows + 1] - rowptr[rows]
    owner = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), counts)
    first = torch.cumsum(counts, 0) - counts
    pos = torch.arange(owner.numel(), device=rows.device) - first[owner] + starts[owner]
    return pos, owner


def khop_subgraph(
    rowptr: torch.Tensor, col: torch.Tensor, seeds: torch.Tensor, num_hops: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The subgraph induced on all nodes within ``num_hops`` of ``seeds``, with torch ops only
    (device-generic): ``(nodes, sub_rowptr, sub_col, edge_pos)``, nodes sorted by id, columns
    relabelled to positions in ``nodes``, ``edge_pos`` the position of each kept edge in ``col``."""
    if num_hops < 0:
        raise ValueError(f"graphpro.khop_subgraph: num_hops must be >= 0, got {num_hops}")
    n, dev = rowptr.numel() - 1, rowptr.device
    if int(rowptr[0]) != 0 or int(rowptr[-1]) != col.numel():
        raise RuntimeError("graphpro.khop_subgraph: rowptr must start at 0 and end at the number "
                           "of edges")
    if n > 0 and bool((rowptr[1:] < rowptr[:-1]).any()):
        raise RuntimeError("graphpro.khop_subgraph: rowptr is not non-decreasing")
    if col.numel() and (int(col.min()) < 0 or int(col.max()) >= n):
        raise RuntimeError("graphpro.khop_subgraph: col holds an index outside [0, num_nodes)")
    s = seeds.long()
    if s.numel() and (int(s.min()) < 0 or int(s.max()) >= n):
        raise RuntimeError("graphpro.khop_subgraph: seeds holds a node index outside "
                           "[0, num_nodes)")
    mark = torch.zeros(n, dtype=torch.bool, device=dev)
    mark[s] = True
    frontier = torch.unique(s)
    for _ in range(num_hops):
        if frontier.numel() == 0:  # nothing new within reach: more hops change nothing
            break
        pos, _ = _row_edges(rowptr, frontier)
        nb = col[pos].long()
        frontier = torch.unique(nb[~mark[nb]])
        mark[frontier] = True
    nodes = torch.nonzero(mark).flatten()
    local = torch.full((n,), -1, dtype=torch.int64, device=dev)
    local[nodes] = torch.arange(nodes.numel(), device=dev)
    pos, owner = _row_edges(rowptr, nodes)
    c = col[pos].long()
    keep = mark[c]
    counts = torch.bincount(owner[keep], minlength=nodes.numel())
    sub_rowptr = torch.zeros(nodes.numel() + 1, dtype=torch.int64, device=dev)
    sub_rowptr[1:] = torch.cumsum(counts, 0)
    return nodes, sub_rowptr, local[c[keep]].to(col.dtype), pos[keep]


def sample_negatives(
    hist_rowptr: torch.Tensor,
    hist_items: torch.Tensor,
    users: torch.Tensor,
    num_items: int,
    k: int,
    seed: int,
) -> torch.Tensor:
    """Rejection sampling as the reference trainer does it (a Python-level baseline: uniform over
    each user's complement, but not bit-identical to the kernel's Philox stream)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    out = torch.empty(users.numel(), k, dtype=torch.int64)
    rp = hist_rowptr.cpu()
    items = hist_items.cpu()
    for b, u in enumerate(users.cpu().tolist()):
        hist = set(items[rp[u]:rp[u + 1]].tolist())
        if len(hist) >= num_items:
            raise ValueError(f"user {u} has interacted with every item")
        for j in range(k):
            while True:
                i = int(torch.randint(num_items, (1,), generator=g))
                if i not in hist:
                    out[b, j] = i
                    break
    return out.to(users.device)


def topk_masked(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    hist_rowptr: torch.Tensor,
    hist_items: torch.Tensor,
    k: int,
    users: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense scores, history set to -inf, topk (the usual evaluation code)."""
    scores = user_emb @ item_emb.t()
    b = scores.shape[0]
    urows = users.long() if users is not None else torch.arange(b, device=scores.device)
    counts = hist_rowptr[urows + 1] - hist_rowptr[urows]
    starts = hist_rowptr[urows]
    pos_rows = torch.repeat_interleave(torch.arange(b, device=scores.device), counts)
    offs = torch.arange(int(counts.sum()), device=scores.device) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    idx = hist_items[(torch.repeat_interleave(starts, counts) + offs)].long()
    scores[pos_rows, idx] = float("-inf")
    vals, ids = scores.topk(k, dim=1)
    ids = ids.masked_fill(vals == float("-inf"), -1)
    return vals, ids
