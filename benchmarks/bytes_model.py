"""Bytes-moved model of every benchmarked op: the DRAM traffic a single fused pass needs.

Achieved bandwidth = model bytes / measured time, judged against the machine's measured copy
bandwidth (``bench_ops.copy_bandwidth``). The model is the *minimum* a one-pass kernel must move,
assuming no reuse of gathered rows (every edge gathers its source row from memory: E*d*s bytes)
and every output row written once (N*d*s). Index/weight streams are counted once per pass.
Kernels that make several passes (e.g. a row-statistics pass before the SpMM) or that materialise
E x d messages (the reference) move more, which shows up as a lower achieved bandwidth.

Notation: N rows (nodes), E edges (directed), d feature width, s bytes per feature (4 for fp32).
rowptr is int64 (8 B/row), col int32 (4 B/edge), times/weights fp32 (4 B/edge).
"""

from __future__ import annotations


def _csr(n: int, e: int, col_bytes: int = 4) -> int:
    return 8 * (n + 1) + col_bytes * e


def spmm(n: int, e: int, d: int, s: int = 4, weighted: bool = True) -> int:
    """y = A x: rowptr + col + weight + gathered x rows (E*d) + written y (N*d)."""
    return _csr(n, e) + (4 * e if weighted else 0) + e * d * s + n * d * s


def spmm_backward(n: int, e: int, d: int, s: int = 4, weighted: bool = True) -> int:
    """grad_x = A^T g over the cached CSC (colptr, row, perm int64): + 8 B/edge for perm and a
    gathered weight (4 B/edge)."""
    return _csr(n, e) + (8 * e + 4 * e if weighted else 0) + e * d * s + n * d * s


def temporal_propagate(n: int, e: int, d: int, s: int = 4) -> int:
    """GraphPro layer (eqs. 5-6), fused: rowptr, col, edge_time (4 B/edge), node_norm of the
    row (4 B/row) and of the neighbour (gathered, 4 B/edge), gathered x rows, written y rows, and
    the per-row log-sum-exp saved for the backward (4 B/row)."""
    return _csr(n, e) + 4 * e + 4 * e + 4 * n + 4 * n + e * d * s + n * d * s


def temporal_propagate_backward(n: int, e: int, d: int, s: int = 4) -> int:
    """grad_x = A^T g through the symmetric rows: as the forward, plus the neighbour's saved
    log-sum-exp gathered per edge (4 B/edge)."""
    return temporal_propagate(n, e, d, s) + 4 * e


def lightgcn(n: int, e: int, d: int, layers: int = 3, s: int = 4) -> int:
    """L fused layers + the running sum (read + write N*d per layer)."""
    return layers * (temporal_propagate(n, e, d, s) + 2 * n * d * s)


def lightgcn_backward(n: int, e: int, d: int, layers: int = 3, s: int = 4) -> int:
    return layers * (temporal_propagate_backward(n, e, d, s) + 2 * n * d * s)


def edge_softmax(n: int, e: int, s: int = 4) -> int:
    """rowptr + scores read + probabilities written."""
    return 8 * (n + 1) + 2 * s * e


def edge_softmax_backward(n: int, e: int, s: int = 4) -> int:
    """rowptr + out + grad read + grad_scores written."""
    return 8 * (n + 1) + 3 * s * e


def sample_negatives(batch: int, k: int, hist_per_user: float) -> int:
    """users (8 B) + their two rowptr entries (16 B) + the history row (4 B/item, read once per
    user; binary searches hit it k times but from cache) + the samples written (8 B each)."""
    return int(batch * (8 + 16 + 4 * hist_per_user) + 8 * batch * k)


def topk_masked(batch: int, num_items: int, d: int, k: int, hist_per_user: float,
                s: int = 4) -> int:
    """user rows + all item rows (read once: the item table is reused across a user block) +
    history rows + the (score, id) results. The op is GEMM-bound: 2*B*I*d flops (see flops)."""
    return int(batch * d * s + num_items * d * s + batch * (16 + 4 * hist_per_user)
               + batch * k * (s + 8))


def topk_masked_flops(batch: int, num_items: int, d: int) -> int:
    return 2 * batch * num_items * d


def simgcl_perturb(n: int, d: int, s: int = 4) -> int:
    """x read and the output written; the uniforms are computed, never stored."""
    return 2 * n * d * s
