"""Typed Python wrappers over ``torch.ops.graphpro.*``, plus their fake kernels and autograd.

Importing this module loads the compiled library (schemas live in ``csrc/registration.cpp``), so
any recommender can ``import graphpro_ext.ops`` and call the ops, or ``torch.ops.graphpro.*``.
All ops work under ``torch.compile(fullgraph=True)``.

Graph convention: a CSR with ``rowptr`` int64 [R+1] and ``col`` int32/int64 [E], columns sorted
within each row. The *gradients* of ``temporal_propagate`` and ``lightgcn`` additionally need a
*structurally symmetric* graph whose edge times are symmetric (t[r->c] == t[c->r]), as built by
``graphpro_ext.graph.TemporalGraph``: their backward rebuilds A^T from the rows of A. Their forward
is right for any CSR; their backward checks the graph (O(E) index reads on CPU, a binary search
per edge on CUDA) and raises a one-line error on any other, instead of returning a wrong
gradient.

Integer arguments (``num_layers``, ``num_hops``, ``k``, ``num_items``, ``chunk_items``, ``seed``)
must be integers (Python or numpy ints, 0-dim integer tensors; not bool, not float): anything else
raises a TypeError naming the argument. ``seed`` may be any integer in [-2**63, 2**64): the ops
use its 64 bits, so ``seed`` and ``seed - 2**64`` are the same seed (folded into the int64 the
schemas take).
"""

from __future__ import annotations

import operator

import torch

from . import _C
from . import reference as _reference

__all__ = [
    "edge_softmax",
    "spmm",
    "sddmm",
    "csr_transpose",
    "temporal_propagate",
    "lightgcn",
    "khop_subgraph",
    "sample_negatives",
    "topk_masked",
    "simgcl_perturb",
]

_ops = torch.ops.graphpro
# A plain bool read once, so the wrappers stay traceable by torch.compile (no pybind call inside).
_WITH_CUDA = bool(_C.with_cuda())


def _check_backend(*tensors: torch.Tensor | None) -> None:
    """A clear error for CUDA inputs on a CPU-only build (instead of a dispatcher message)."""
    if _WITH_CUDA:
        return
    for t in tensors:
        if t is not None and t.device.type == "cuda":
            raise RuntimeError(
                "graphpro_ext was built without CUDA kernels (CPU-only torch or no nvcc at build "
                "time); move the inputs to the CPU or rebuild on a CUDA machine with "
                "`pip install --no-build-isolation --no-deps -e .`"
            )


# Bound of lightgcn's num_layers (csrc/common/checks.h kMaxLayers): every layer is a full pass the
# kernels cannot interrupt, so a typo like 1e9 would otherwise hang the process for minutes.
MAX_LAYERS = 64
_I64_MIN, _U64_END = -(1 << 63), 1 << 64


def _int_arg(value, name: str, op: str):
    """``value`` as an int, or a TypeError naming the argument (the schemas' int64 would otherwise
    truncate 2.7 to 2 silently, and take True as 1). Integer-likes with ``__index__`` pass."""
    if type(value) is int or isinstance(value, torch.SymInt):
        return value
    if not isinstance(value, bool) and not (
        isinstance(value, torch.Tensor) and value.dtype == torch.bool
    ):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise TypeError(f"graphpro.{op}: {name} must be an integer, got {type(value).__name__} "
                    f"{value!r}")


def _num_layers_arg(num_layers, op: str):
    n = _int_arg(num_layers, "num_layers", op)
    if not isinstance(n, torch.SymInt) and not 0 <= n <= MAX_LAYERS:
        raise ValueError(f"graphpro.{op}: num_layers must be an integer in [0, {MAX_LAYERS}], "
                         f"got {n}")
    return n


def _seed_arg(seed, op: str):
    """Any integer in [-2**63, 2**64) as the int64 with the same low 64 bits (what the kernels'
    hash and Philox key read), so 2**63 and -2**63 are the same seed."""
    s = _int_arg(seed, "seed", op)
    if isinstance(s, torch.SymInt):
        return s
    if not _I64_MIN <= s < _U64_END:
        raise ValueError(f"graphpro.{op}: seed must be an integer in [-2**63, 2**64), got {s}")
    return s - _U64_END if s >= 1 << 63 else s


def _opmath(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _no_grad_input(t: torch.Tensor | None, name: str, op: str) -> None:
    if t is not None and t.requires_grad:
        raise ValueError(f"graphpro.{op}: gradients with respect to {name} are not supported")


# ----------------------------------------------------------------------------------------------
# edge_softmax
# ----------------------------------------------------------------------------------------------
def edge_softmax(rowptr: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Softmax of ``scores`` [E] over the edges of each CSR row; differentiable w.r.t. scores.

    Non-finite scores follow ``torch.softmax`` (and ``reference.edge_softmax``): a row holding a
    NaN or +inf comes out all NaN, and -inf entries get 0. One exception: a row whose scores are
    all -inf (fully masked) gives zeros (and zero gradients), where torch.softmax gives NaN."""
    _check_backend(rowptr, scores)
    return _ops.edge_softmax(rowptr, scores)


@torch.library.register_fake("graphpro::edge_softmax")
def _(rowptr, scores):
    return torch.empty_like(scores)


@torch.library.register_fake("graphpro::edge_softmax_backward")
def _(rowptr, out, grad_out):
    return torch.empty_like(out)


def _edge_softmax_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], output)


def _edge_softmax_backward(ctx, grad):
    rowptr, out = ctx.saved_tensors
    return None, _ops.edge_softmax_backward(rowptr, out, grad.contiguous())


torch.library.register_autograd(
    "graphpro::edge_softmax", _edge_softmax_backward, setup_context=_edge_softmax_setup
)


# ----------------------------------------------------------------------------------------------
# spmm / sddmm / transpose
# ----------------------------------------------------------------------------------------------
def csr_transpose(
    rowptr: torch.Tensor, col: torch.Tensor, num_cols: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CSC view of a CSR: (colptr int64 [C+1], row [E], perm int64 [E]) with perm[j] the CSR
    position of the j-th CSC entry. Rows stay sorted within each column (stable sort)."""
    num_rows = rowptr.numel() - 1
    counts = rowptr[1:] - rowptr[:-1]
    row_of_edge = torch.repeat_interleave(
        torch.arange(num_rows, device=rowptr.device, dtype=col.dtype), counts,
        output_size=col.numel(),
    )
    perm = torch.sort(col, stable=True).indices
    colptr = torch.zeros(num_cols + 1, dtype=torch.int64, device=rowptr.device)
    colptr[1:] = torch.cumsum(torch.bincount(col.long(), minlength=num_cols), 0)
    return colptr, row_of_edge[perm], perm


def spmm(
    rowptr: torch.Tensor,
    col: torch.Tensor,
    weight: torch.Tensor | None,
    x: torch.Tensor,
    transpose: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``y[r] = sum_{e in row r} weight[e] * x[col[e]]`` for any CSR (``weight=None``: ones).

    Differentiable w.r.t. ``x`` (transposed SpMM without atomics, over ``transpose`` =
    ``csr_transpose(rowptr, col, x.size(0))`` when given, else built in the backward) and
    ``weight`` (SDDMM).
    """
    _check_backend(rowptr, col, weight, x)
    if transpose is None:
        return _ops.spmm(rowptr, col, weight, x)
    return _ops.spmm(rowptr, col, weight, x, *transpose)


def sddmm(rowptr: torch.Tensor, col: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``out[e] = <a[row(e)], b[col[e]]>`` for every CSR edge (not differentiable)."""
    _check_backend(rowptr, col, a, b)
    return _ops.sddmm(rowptr, col, a, b)


@torch.library.register_fake("graphpro::spmm_kernel")
def _(rowptr, col, weight, x, weight_perm=None):
    return x.new_empty((rowptr.shape[0] - 1, x.shape[1]))


@torch.library.register_fake("graphpro::spmm")
def _(rowptr, col, weight, x, t_colptr=None, t_row=None, t_perm=None):
    return x.new_empty((rowptr.shape[0] - 1, x.shape[1]))


@torch.library.register_fake("graphpro::sddmm")
def _(rowptr, col, a, b):
    return a.new_empty((col.shape[0],))


def _spmm_setup(ctx, inputs, output):
    rowptr, col, weight, x, t_colptr, t_row, t_perm = inputs
    ctx.has_weight = weight is not None
    ctx.num_cols = x.shape[0]
    ctx.has_t = t_colptr is not None
    ctx.save_for_backward(rowptr, col, weight, x, t_colptr, t_row, t_perm)


def _spmm_backward(ctx, grad):
    rowptr, col, weight, x, t_colptr, t_row, t_perm = ctx.saved_tensors
    grad = grad.contiguous()
    grad_w = grad_x = None
    if ctx.needs_input_grad[3]:
        if not ctx.has_t:
            t_colptr, t_row, t_perm = csr_transpose(rowptr, col, ctx.num_cols)
        grad_x = _ops.spmm_kernel(t_colptr, t_row, weight, grad, t_perm)
    if ctx.has_weight and ctx.needs_input_grad[2]:
        grad_w = _ops.sddmm(rowptr, col, grad, x).to(weight.dtype)
    return None, None, grad_w, grad_x, None, None, None


torch.library.register_autograd("graphpro::spmm", _spmm_backward, setup_context=_spmm_setup)


# ----------------------------------------------------------------------------------------------
# temporal_propagate / lightgcn
# ----------------------------------------------------------------------------------------------
def _temporal_args(edge_time, node_norm, x, time_weight, keep_prob, op):
    if not 0.0 <= time_weight <= 1.0:
        raise ValueError(f"graphpro.{op}: time_weight must be in [0, 1], got {time_weight}")
    if not 0.0 < keep_prob <= 1.0:
        raise ValueError(f"graphpro.{op}: keep_prob must be in (0, 1], got {keep_prob}")
    _no_grad_input(edge_time, "edge_time", op)
    _no_grad_input(node_norm, "node_norm", op)
    dt = _opmath(x)
    if edge_time is not None and edge_time.dtype != dt and edge_time.is_floating_point():
        edge_time = edge_time.to(dt)
    if node_norm.dtype != dt and node_norm.is_floating_point():
        node_norm = node_norm.to(dt)
    if time_weight == 0.0:
        edge_time = None  # plain LightGCN: the time term is never read
    return edge_time, node_norm


def temporal_propagate(
    rowptr: torch.Tensor,
    col: torch.Tensor,
    edge_time: torch.Tensor | None,
    node_norm: torch.Tensor,
    x: torch.Tensor,
    time_weight: float = 0.5,
    keep_prob: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """One GraphPro layer (eqs. 5-6) on a symmetric temporal graph:

    ``y_r = sum_{c in N(r), kept} (tw * softmax_r(edge_time)_c + (1 - tw) * norm_r * norm_c) x_c``

    where the softmax runs over row r's kept edges and ``norm = deg^-1/2`` of the full graph.
    ``keep_prob < 1`` drops interactions (both directions) by a hash of ``(seed, min, max)``;
    ``seed`` is any integer in [-2**63, 2**64), used modulo 2**64.
    No per-edge weight tensor is materialised; the backward saves O(N) row statistics only.
    Differentiable w.r.t. ``x``; the backward walks row c of A as column c of A^T, so it needs a
    structurally symmetric graph with symmetric edge times and sorted rows (checked: anything else
    raises a RuntimeError; use :func:`spmm` with explicit weights for a general CSR).
    """
    _check_backend(rowptr, col, edge_time, node_norm, x)
    edge_time, node_norm = _temporal_args(
        edge_time, node_norm, x, time_weight, keep_prob, "temporal_propagate"
    )
    seed = _seed_arg(seed, "temporal_propagate")
    y, _ = _ops.temporal_propagate(
        rowptr, col, edge_time, node_norm, x, float(time_weight), float(keep_prob), seed
    )
    return y


def lightgcn(
    rowptr: torch.Tensor,
    col: torch.Tensor,
    edge_time: torch.Tensor | None,
    node_norm: torch.Tensor,
    x: torch.Tensor,
    num_layers: int = 3,
    time_weight: float = 0.5,
    keep_prob: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """``sum_{l=0..L} A^l x`` with A the GraphPro layer of :func:`temporal_propagate`
    (``time_weight=0``: plain LightGCN); ``num_layers`` is an integer in [0, 64] (``MAX_LAYERS``).
    The backward computes ``sum_l (A^T)^l g`` and saves no layer activations (A does not depend
    on x). Like :func:`temporal_propagate`'s, it needs a structurally symmetric graph with
    symmetric edge times and sorted rows, checked once per backward call (a RuntimeError
    otherwise); the forward is right for any CSR."""
    _check_backend(rowptr, col, edge_time, node_norm, x)
    num_layers = _num_layers_arg(num_layers, "lightgcn")
    edge_time, node_norm = _temporal_args(
        edge_time, node_norm, x, time_weight, keep_prob, "lightgcn"
    )
    seed = _seed_arg(seed, "lightgcn")
    out, _ = _ops.lightgcn(
        rowptr, col, edge_time, node_norm, x, num_layers, float(time_weight), float(keep_prob),
        seed,
    )
    return out


@torch.library.register_fake("graphpro::temporal_row_stats")
def _(rowptr, col, edge_time, keep_prob, seed):
    dt = edge_time.dtype if edge_time is not None else torch.float32
    return rowptr.new_empty((rowptr.shape[0] - 1,), dtype=dt)


@torch.library.register_fake("graphpro::temporal_spmm")
def _(rowptr, col, edge_time, node_norm, row_lse, x, time_weight, keep_prob, seed, transpose):
    return x.new_empty((rowptr.shape[0] - 1, x.shape[1]))


def _lse_fake(rowptr, x):
    return rowptr.new_empty((rowptr.shape[0] - 1,), dtype=_opmath(x))


@torch.library.register_fake("graphpro::temporal_propagate")
def _(rowptr, col, edge_time, node_norm, x, time_weight, keep_prob, seed):
    return x.new_empty((rowptr.shape[0] - 1, x.shape[1])), _lse_fake(rowptr, x)


@torch.library.register_fake("graphpro::lightgcn")
def _(rowptr, col, edge_time, node_norm, x, num_layers, time_weight, keep_prob, seed):
    return torch.empty_like(x), _lse_fake(rowptr, x)


@torch.library.register_fake("graphpro::lightgcn_backward")
def _(rowptr, col, edge_time, node_norm, row_lse, grad, num_layers, time_weight, keep_prob, seed):
    return torch.empty_like(grad)


def _temporal_setup(ctx, inputs, output):
    rowptr, col, edge_time, node_norm, x = inputs[:5]
    ctx.params = inputs[5:]
    ctx.save_for_backward(rowptr, col, edge_time, node_norm, output[1])


def _temporal_propagate_backward(ctx, grad_y, grad_lse):
    rowptr, col, edge_time, node_norm, lse = ctx.saved_tensors
    time_weight, keep_prob, seed = ctx.params
    grad_x = _ops.temporal_spmm(
        rowptr, col, edge_time, node_norm, lse, grad_y.contiguous(), time_weight, keep_prob, seed,
        True,
    )
    return None, None, None, None, grad_x, None, None, None


def _lightgcn_backward(ctx, grad_out, grad_lse):
    rowptr, col, edge_time, node_norm, lse = ctx.saved_tensors
    num_layers, time_weight, keep_prob, seed = ctx.params
    grad_x = _ops.lightgcn_backward(
        rowptr, col, edge_time, node_norm, lse, grad_out.contiguous(), num_layers, time_weight,
        keep_prob, seed,
    )
    return None, None, None, None, grad_x, None, None, None, None


torch.library.register_autograd(
    "graphpro::temporal_propagate", _temporal_propagate_backward, setup_context=_temporal_setup
)
torch.library.register_autograd(
    "graphpro::lightgcn", _lightgcn_backward, setup_context=_temporal_setup
)


# ----------------------------------------------------------------------------------------------
# khop_subgraph
# ----------------------------------------------------------------------------------------------
def khop_subgraph(
    rowptr: torch.Tensor, col: torch.Tensor, seeds: torch.Tensor, num_hops: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The subgraph induced on every node within ``num_hops`` hops of ``seeds`` (duplicates
    allowed): ``(nodes, sub_rowptr, sub_col, edge_pos)`` with ``nodes`` int64 sorted by id, a CSR
    over positions in ``nodes`` (col's dtype, within-row order kept) and ``edge_pos`` int64, the
    position in ``col`` of each kept edge (gather ``edge_time[edge_pos]``).

    On a structurally symmetric graph, ``lightgcn`` / ``temporal_propagate`` with ``num_layers <=
    num_hops`` over this subgraph (``node_norm[nodes]``, ``edge_time[edge_pos]``) gives exactly the
    full-graph outputs at the seeds, and the same gradient for every input row: a mini-batch then
    costs its neighbourhood, not the graph. Dropout masks are keyed by the subgraph's node ids, so
    with ``keep_prob < 1`` the dropped edges differ from a full-graph call with the same seed (same
    distribution). ``num_hops`` is an integer >= 0; hops past the graph's diameter cost nothing
    (the search stops when no new node is reached). CPU: C++ kernel; CUDA: the torch
    implementation in ``reference``."""
    return _ops.khop_subgraph(rowptr, col, seeds, _int_arg(num_hops, "num_hops", "khop_subgraph"))


@torch.library.register_fake("graphpro::khop_subgraph")
def _(rowptr, col, seeds, num_hops):
    ctx = torch.library.get_ctx()
    m, e = ctx.new_dynamic_size(), ctx.new_dynamic_size()
    return (rowptr.new_empty((m,)), rowptr.new_empty((m + 1,)), col.new_empty((e,)),
            rowptr.new_empty((e,)))


# Data-dependent output sizes and a few thousand seeds: the device-generic torch version is the CUDA
# kernel (no C++ CUDA kernel of its own).
torch.library.register_kernel("graphpro::khop_subgraph", "cuda", _reference.khop_subgraph)


# ----------------------------------------------------------------------------------------------
# sampling and ranking
# ----------------------------------------------------------------------------------------------
def sample_negatives(
    hist_rowptr: torch.Tensor,
    hist_items: torch.Tensor,
    users: torch.Tensor,
    num_items: int,
    k: int,
    seed: int,
) -> torch.Tensor:
    """int64 [B, k]: for each ``users[b]``, k items drawn uniformly (with replacement) from
    ``[0, num_items)`` minus the user's history row ``hist_items[hist_rowptr[u]:hist_rowptr[u+1]]``
    (strictly increasing). Draw j of position b uses Philox keyed by ``seed`` at counter (b, j),
    so CPU and CUDA agree and results do not depend on thread count. ``seed`` is any integer in
    [-2**63, 2**64), used modulo 2**64 (the Philox key is its 64 bits)."""
    _check_backend(hist_rowptr, hist_items, users)
    op = "sample_negatives"
    return _ops.sample_negatives(hist_rowptr, hist_items, users,
                                 _int_arg(num_items, "num_items", op), _int_arg(k, "k", op),
                                 _seed_arg(seed, op))


@torch.library.register_fake("graphpro::sample_negatives")
def _(hist_rowptr, hist_items, users, num_items, k, seed):
    return users.new_empty((users.shape[0], k), dtype=torch.int64)


@torch.library.register_fake("graphpro::mask_history_")
def _(scores, hist_rowptr, hist_items, users, item_begin):
    return None


def topk_masked(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    hist_rowptr: torch.Tensor,
    hist_items: torch.Tensor,
    k: int,
    chunk_items: int = 65536,
    users: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [B, k], item ids int64 [B, k]) of the k best items per user by dot product, with the
    user's history items excluded, sorted descending. Row b's history is hist row ``users[b]``
    (or row b when ``users`` is None). Work is chunked over ``chunk_items`` items (and over users)
    so memory stays bounded. Slots beyond a user's unmasked items get score -inf and id -1."""
    _check_backend(user_emb, item_emb, hist_rowptr, hist_items, users)
    return _ops.topk_masked(
        user_emb, item_emb, hist_rowptr, hist_items, users, _int_arg(k, "k", "topk_masked"),
        _int_arg(chunk_items, "chunk_items", "topk_masked"),
    )


@torch.library.register_fake("graphpro::topk_masked")
def _(user_emb, item_emb, hist_rowptr, hist_items, users, k, chunk_items):
    b = user_emb.shape[0]
    return user_emb.new_empty((b, k)), user_emb.new_empty((b, k), dtype=torch.int64)


# ----------------------------------------------------------------------------------------------
# contrastive views
# ----------------------------------------------------------------------------------------------
def simgcl_perturb(x: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """SimGCL's perturbation of a layer's output [n, d]: ``x + sign(x) * eps * u / |u|`` per row,
    u uniform in [0, 1)^d with 24-bit resolution, drawn by a counter-based hash of (``seed``, row,
    column), so the noise is the same on CPU and CUDA and for any thread count. One pass over x,
    without the [n, d] noise tensor. Differentiable in x: the gradient is the identity (sign's
    derivative is zero). ``eps`` >= 0, finite; ``seed`` as for the other ops."""
    _check_backend(x)
    eps = float(eps)
    if not (eps >= 0.0 and eps != float("inf")):
        raise ValueError(f"graphpro.simgcl_perturb: eps must be finite and >= 0, got {eps}")
    return _ops.simgcl_perturb(x, eps, _seed_arg(seed, "simgcl_perturb"))


@torch.library.register_fake("graphpro::simgcl_perturb")
def _(x, eps, seed):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _simgcl_perturb_backward(ctx, grad):
    return grad, None, None


torch.library.register_autograd("graphpro::simgcl_perturb", _simgcl_perturb_backward)
