"""graphpro.temporal_propagate (+ temporal_row_stats, temporal_spmm) against
graphpro_ext.reference.temporal_propagate, on symmetric temporal graphs from TemporalGraph."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close, assert_close_bound, assert_lowp_close, cuda_usable, sum_terms
from op_graphs import random_temporal_graph, tiny_temporal_graph
from test_ops_lightgcn import square_csr

import graphpro_ext.ops as ops
import graphpro_ext.reference as ref

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-11)}


def _graph(gen, device, *, index_dtype=torch.int32, big_row=False, equal_times=False,
           time_scale=1.0):
    g = random_temporal_graph(gen, 40, 50, big_row=big_row, equal_times=equal_times,
                              index_dtype=index_dtype).to(device)
    g.edge_time = g.edge_time * time_scale  # still symmetric; sharper softmax
    return g


def _x(gen, g, dtype, d=8):
    return torch.randn(g.num_nodes, d, generator=gen, dtype=torch.float64).to(dtype).to(g.device)


def _ref(g, x, tw, kp, s):
    return ref.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, x, tw, kp, s)


CASES = [  # (index dtype, big row, equal times, time scale)
    pytest.param(torch.int32, False, False, 1.0, id="i32"),
    pytest.param(torch.int64, False, False, 8.0, id="i64-sharp"),
    pytest.param(torch.int32, True, False, 1.0, id="i32-bigrow"),
    pytest.param(torch.int64, False, True, 1.0, id="i64-equaltimes"),
]


@pytest.mark.parametrize("keep_prob", [1.0, 0.6])
@pytest.mark.parametrize("time_weight", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("index_dtype,big_row,equal_times,time_scale", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_matches_reference(device, gen, seed, dtype, index_dtype, big_row, equal_times,
                                   time_scale, time_weight, keep_prob):
    g = _graph(gen, device, index_dtype=index_dtype, big_row=big_row, equal_times=equal_times,
               time_scale=time_scale)
    x = _x(gen, g, dtype)
    s = seed % 1000
    y = ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, x, time_weight,
                               keep_prob, s)
    assert y.shape == x.shape and y.dtype == dtype
    expected = _ref(g, x.double(), time_weight, keep_prob, s)
    bound = _ref(g, x.double().abs(), time_weight, keep_prob, s)  # weights are >= 0
    assert_close_bound(y, expected, bound, seed=seed, what="temporal_propagate",
                       terms=sum_terms(g.rowptr))
    isolated = g.rowptr[1:] == g.rowptr[:-1]
    assert isolated.any() and (y[isolated] == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("keep_prob", [1.0, 0.7])
def test_forward_low_precision(device, gen, seed, dtype, keep_prob):
    g = _graph(gen, device, big_row=True)
    x = _x(gen, g, dtype)
    y = ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, x, 0.5, keep_prob, 3)
    assert y.dtype == dtype
    assert_lowp_close(y, _ref(g, x, 0.5, keep_prob, 3), _ref(g, x.double(), 0.5, keep_prob, 3),
                      seed=seed, what=f"temporal_propagate {dtype}")


@pytest.mark.parametrize("keep_prob", [1.0, 0.6])
@pytest.mark.parametrize("big_row", [False, True], ids=["powerlaw", "bigrow"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_matches_reference(device, gen, seed, dtype, big_row, keep_prob):
    g = _graph(gen, device, big_row=big_row, time_scale=4.0)
    x = _x(gen, g, dtype)
    go = torch.randn(x.shape, generator=gen, dtype=dtype).to(device)
    x1 = x.clone().requires_grad_()
    ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, x1, 0.4, keep_prob, 11
                           ).backward(go)
    x2 = x.double().clone().requires_grad_()
    _ref(g, x2, 0.4, keep_prob, 11).backward(go.double())
    x3 = x.double().clone().requires_grad_()
    _ref(g, x3, 0.4, keep_prob, 11).backward(go.double().abs())
    assert_close_bound(x1.grad, x2.grad, x3.grad, seed=seed, what="grad x",
                       terms=sum_terms(g.rowptr))


@pytest.mark.parametrize("s", [0, 1, -5, 2**40 + 3, -(2**62)])
def test_dropout_mask_follows_hash(device, gen, seed, s):
    """The kernel drops exactly the interactions reference.edge_keep_mask drops, for any seed
    (negative and > 32-bit seeds included), and dropping is symmetric."""
    g = _graph(gen, device)
    x = _x(gen, g, torch.float64)
    y = ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, x, 0.5, 0.5, s)
    assert_close(y, _ref(g, x, 0.5, 0.5, s), seed=seed, what=f"dropout seed {s}")
    rows = ref.row_index(g.rowptr, g.num_edges)
    keep = ref.edge_keep_mask(rows, g.col, s, 0.5)
    assert 0 < int(keep.sum()) < g.num_edges
    assert torch.equal(keep, ref.edge_keep_mask(g.col, rows, s, 0.5))


def test_dropout_depends_on_seed_and_is_deterministic(device, gen, seed):
    g = _graph(gen, device)
    x = _x(gen, g, torch.float32)
    args = (g.rowptr, g.col, g.edge_time, g.node_norm, x, 0.5, 0.5)
    a, b, c = (ops.temporal_propagate(*args, s) for s in (7, 7, 8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c), seed


def test_tiny_keep_prob_drops_everything(device, gen, seed):
    g = _graph(gen, device)
    x = _x(gen, g, torch.float64)
    y = ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, x, 0.5, 1e-12, 0)
    assert_close(y, torch.zeros_like(y), seed=seed, what="keep_prob ~ 0")


def test_independent_of_thread_count(gen, seed):
    g = _graph(gen, "cpu", big_row=True)
    x = _x(gen, g, torch.float32)
    go = torch.randn(x.shape, generator=gen)
    res = []
    old = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            xi = x.clone().requires_grad_()
            y = ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, xi, 0.5, 0.7, 1)
            y.backward(go)
            res.append((y.detach(), xi.grad))
    finally:
        torch.set_num_threads(old)
    assert torch.equal(res[0][0], res[1][0]) and torch.equal(res[0][1], res[1][1]), seed


@pytest.mark.parametrize("keep_prob", [1.0, 0.5])
@pytest.mark.parametrize("time_weight", [0.0, 0.6, 1.0])
def test_gradcheck(gen, seed, time_weight, keep_prob):
    g = tiny_temporal_graph(gen)
    g.edge_time = g.edge_time * 3
    x = torch.randn(g.num_nodes, 2, generator=gen, dtype=torch.float64).requires_grad_()
    fn = lambda x_: ops.temporal_propagate(  # noqa: E731
        g.rowptr, g.col, g.edge_time, g.node_norm, x_, time_weight, keep_prob, 2)
    assert torch.autograd.gradcheck(fn, (x,)), seed


def test_row_stats_are_logsumexp(device, gen, seed):
    g = _graph(gen, device, time_scale=5.0)
    et = g.edge_time.double()
    lse = torch.ops.graphpro.temporal_row_stats(g.rowptr, g.col, et, 0.7, 4)
    rows = ref.row_index(g.rowptr, g.num_edges)
    keep = ref.edge_keep_mask(rows, g.col, 4, 0.7)
    t = et.masked_fill(~keep, float("-inf"))
    m = torch.full((g.num_nodes,), float("-inf"), dtype=torch.float64, device=device)
    m = m.scatter_reduce(0, rows, t, "amax")
    expected = torch.zeros(g.num_nodes, dtype=torch.float64, device=device).index_add(
        0, rows, torch.exp(t - m[rows]).nan_to_num(0.0)).log() + m
    ok = torch.isfinite(m)  # rows with a kept edge; the others are documented as 0
    assert_close(lse[ok], expected[ok], seed=seed, what="row lse")
    assert (lse[~ok] == 0).all()


def _raw_args(gen, device, dtype=torch.float64, rg=False):
    g = tiny_temporal_graph(gen).to(device)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    x = torch.randn(g.num_nodes, 3, generator=gen, dtype=dtype).to(device).requires_grad_(rg)
    return g, g.edge_time.to(acc), g.node_norm.to(acc), x


@pytest.mark.parametrize("keep_prob", [1.0, 0.5])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_temporal_propagate(device, gen, requires_grad, keep_prob):
    g, et, nn, x = _raw_args(gen, device, rg=requires_grad)
    op = torch.ops.graphpro.temporal_propagate.default
    torch.library.opcheck(op, (g.rowptr, g.col, et, nn, x, 0.5, keep_prob, 3))
    torch.library.opcheck(op, (g.rowptr, g.col, None, nn, x, 0.0, keep_prob, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_row_stats_and_spmm(device, gen, dtype):
    g, et, nn, x = _raw_args(gen, device, dtype)
    torch.library.opcheck(torch.ops.graphpro.temporal_row_stats.default,
                          (g.rowptr, g.col, et, 0.5, 3))
    lse = torch.ops.graphpro.temporal_row_stats(g.rowptr, g.col, et, 0.5, 3)
    for transpose in (False, True):
        torch.library.opcheck(torch.ops.graphpro.temporal_spmm.default,
                              (g.rowptr, g.col, et, nn, lse, x, 0.5, 0.5, 3, transpose))


def test_transpose_spmm_is_adjoint(device, gen, seed):
    """<A x, y> == <x, A^T y> for temporal_spmm(transpose=False/True) with dropout."""
    g = _graph(gen, device, time_scale=3.0)
    et, nn = g.edge_time.double(), g.node_norm.double()
    lse = torch.ops.graphpro.temporal_row_stats(g.rowptr, g.col, et, 0.8, 9)
    x = _x(gen, g, torch.float64, 4)
    y = _x(gen, g, torch.float64, 4)
    ax = torch.ops.graphpro.temporal_spmm(g.rowptr, g.col, et, nn, lse, x, 0.3, 0.8, 9, False)
    aty = torch.ops.graphpro.temporal_spmm(g.rowptr, g.col, et, nn, lse, y, 0.3, 0.8, 9, True)
    lhs, rhs = float((ax * y).sum()), float((x * aty).sum())
    assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs)), (lhs, rhs, seed)
    assert not torch.allclose(ax, torch.ops.graphpro.temporal_spmm(
        g.rowptr, g.col, et, nn, lse, x, 0.3, 0.8, 9, True)), "A is symmetric? (seed=%d)" % seed


@pytest.mark.parametrize("keep_prob", [1.0, 0.6])
@pytest.mark.parametrize("time_weight", [0.0, 0.5])
def test_general_csr_gradient_raises(device, gen, seed, time_weight, keep_prob):
    """Issue 9: the forward is right on any CSR, the backward (rows of A walked as A^T's) only on
    a symmetric one: a general CSR raises one clear line instead of a wrong gradient."""
    rowptr, col, et = (t.to(device) for t in square_csr(gen, 9, symmetric=False))
    nn = (torch.rand(9, generator=gen, dtype=torch.float64) + 0.1).to(device)
    x = torch.randn(9, 3, generator=gen, dtype=torch.float64).to(device)
    out = ops.temporal_propagate(rowptr, col, et, nn, x.requires_grad_(), time_weight,
                                 keep_prob, 3)
    expected = ref.temporal_propagate(rowptr, col, et, nn, x.detach(), time_weight, keep_prob, 3)
    assert_close(out, expected, seed=seed, what="forward on a general CSR", **TOL[torch.float64])
    with pytest.raises(RuntimeError, match=r"^graphpro\.temporal_propagate: the gradient needs a "
                                           r"structurally symmetric graph[^\n]*$"):
        out.sum().backward()


def test_asymmetric_times_gradient_raises(device, gen):
    rowptr, col, et = (t.to(device) for t in square_csr(gen, 8, symmetric=True))
    rows = ref.row_index(rowptr, col.numel())
    et[int(torch.nonzero(rows != col)[0])] += 0.25
    nn = torch.ones(8, dtype=torch.float64, device=device)
    x = torch.randn(8, 2, dtype=torch.float64, device=device, requires_grad=True)
    out = ops.temporal_propagate(rowptr, col, et, nn, x, 0.5)
    with pytest.raises(RuntimeError, match="the gradient needs symmetric edge times"):
        out.sum().backward()


@pytest.mark.parametrize("op", ["temporal_propagate", "lightgcn"])
def test_a_checked_graph_changed_behind_torch_is_checked_again(gen, op):
    """The CPU backward remembers graphs that passed its symmetry check by their content, so a
    passed graph whose column or time is then changed in place, even through numpy (which no
    version counter sees), raises on its next backward instead of a wrong gradient; the same
    content in a fresh tensor passes."""
    rowptr, col, et = square_csr(gen, 8, symmetric=True)
    nn = torch.ones(8, dtype=torch.float64)
    x = torch.randn(8, 2, dtype=torch.float64, generator=gen, requires_grad=True)

    def backward(c, t):
        if op == "lightgcn":
            ops.lightgcn(rowptr, c, t, nn, x, 2, 0.5).sum().backward()
        else:
            ops.temporal_propagate(rowptr, c, t, nn, x, 0.5).sum().backward()

    backward(col, et)
    backward(col, et)  # remembered: passes again
    backward(col.clone(), et.clone())
    rows = ref.row_index(rowptr, col.numel())
    j = int(torch.nonzero(rows != col)[0])
    t_np = et.numpy()  # shares memory: no version bump
    t_old = t_np[j].copy()  # restored exactly: (t + 0.25) - 0.25 may round away from t
    t_np[j] += 0.25
    with pytest.raises(RuntimeError, match="symmetric edge times"):
        backward(col, et)
    t_np[j] = t_old
    backward(col, et)
    c_np = col.numpy()
    old = int(c_np[j])
    c_np[j] = (old + 1) % 8 if (old + 1) % 8 != int(rows[j]) else (old + 2) % 8
    with pytest.raises(RuntimeError, match="symmetric"):
        backward(col, et)


class TestBadInputs:
    def _args(self, device, gen):
        g = tiny_temporal_graph(gen).to(device)
        x = torch.randn(g.num_nodes, 2, generator=gen).to(device)
        return g, x

    def test_nan_edge_time(self, device, gen):
        g, x = self._args(device, gen)
        for bad in (float("nan"), float("inf")):
            et = g.edge_time.clone()
            et[0] = bad
            with pytest.raises(RuntimeError, match="edge_time holds a NaN or infinite value"):
                ops.temporal_propagate(g.rowptr, g.col, et, g.node_norm, x, 0.5)
            with pytest.raises(RuntimeError, match="edge_time holds a NaN or infinite value"):
                ops.temporal_propagate(g.rowptr, g.col, et, g.node_norm, x, 0.5, keep_prob=0.5)

    def test_edge_time_wrong_size(self, device, gen):
        g, x = self._args(device, gen)
        with pytest.raises(RuntimeError, match=r"edge_time must be 1-D with \d+ edge entries"):
            ops.temporal_propagate(g.rowptr, g.col, g.edge_time[:-1], g.node_norm, x, 0.5)

    def test_edge_time_missing(self, device, gen):
        g, x = self._args(device, gen)
        with pytest.raises(RuntimeError, match="edge_time is required when time_weight > 0"):
            ops.temporal_propagate(g.rowptr, g.col, None, g.node_norm, x, 0.5)

    def test_node_norm_wrong_size(self, device, gen):
        g, x = self._args(device, gen)
        with pytest.raises(RuntimeError, match=r"node_norm must be 1-D with \d+ node entries"):
            ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm[1:], x, 0.5)

    def test_x_wrong_rows(self, device, gen):
        g, x = self._args(device, gen)
        with pytest.raises(RuntimeError, match=r"the graph is square over \d+ nodes but x has"):
            ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, x[1:], 0.5)

    def test_raw_op_wrong_acc_dtype(self, device, gen):
        g, x = self._args(device, gen)
        with pytest.raises(RuntimeError, match="node_norm must be Double"):
            torch.ops.graphpro.temporal_propagate(g.rowptr, g.col, g.edge_time.double(),
                                                  g.node_norm, x.double(), 0.5, 1.0, 0)

    def test_params_out_of_range(self, device, gen):
        g, x = self._args(device, gen)
        args = (g.rowptr, g.col, g.edge_time, g.node_norm, x)
        with pytest.raises(ValueError, match=r"time_weight must be in \[0, 1\]"):
            ops.temporal_propagate(*args, 1.5)
        with pytest.raises(ValueError, match=r"keep_prob must be in \(0, 1\]"):
            ops.temporal_propagate(*args, 0.5, 0.0)
        with pytest.raises(RuntimeError, match=r"keep_prob must be in \(0, 1\]"):
            torch.ops.graphpro.temporal_propagate(*args, 0.5, 1.5, 0)
        with pytest.raises(RuntimeError, match=r"time_weight must be in \[0, 1\]"):
            torch.ops.graphpro.temporal_propagate(*args, -0.1, 1.0, 0)

    @pytest.mark.parametrize("big_seed", [2**63, 2**64 - 1])
    def test_seed_above_int64_folds(self, device, gen, big_seed):
        """Issue 9: a seed in [2**63, 2**64) is the same 64 bits as seed - 2**64 (and matches the
        reference's dropout mask, which works modulo 2**64)."""
        g, x = self._args(device, gen)
        x = x.double()
        args = (g.rowptr, g.col, g.edge_time, g.node_norm, x, 0.5, 0.5)
        a = ops.temporal_propagate(*args, big_seed)
        assert torch.equal(a, ops.temporal_propagate(*args, big_seed - 2**64))
        assert_close(a, _ref(g, x, 0.5, 0.5, big_seed), seed=0, what="folded seed",
                     **TOL[torch.float64])

    @pytest.mark.parametrize("bad_seed,exc", [(2**64, ValueError), (-(2**63) - 1, ValueError),
                                          (0.5, TypeError), (False, TypeError)])
    def test_bad_seed(self, device, gen, bad_seed, exc):
        g, x = self._args(device, gen)
        with pytest.raises(exc, match=r"^graphpro\.temporal_propagate: seed must be an integer"):
            ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, x, 0.5, 0.5, bad_seed)

    def test_grad_wrt_edge_time_rejected(self, device, gen):
        g, x = self._args(device, gen)
        with pytest.raises(ValueError, match="gradients with respect to edge_time are not"):
            ops.temporal_propagate(g.rowptr, g.col, g.edge_time.requires_grad_(), g.node_norm, x)

    def test_column_out_of_range(self, device, gen):
        g, x = self._args(device, gen)
        col = g.col.clone()
        col[0] = g.num_nodes
        with pytest.raises(RuntimeError, match="col holds an index outside"):
            ops.temporal_propagate(g.rowptr, col, g.edge_time, g.node_norm, x, 0.5)
        with pytest.raises(RuntimeError, match="col holds an index outside"):
            ops.temporal_propagate(g.rowptr, col, g.edge_time, g.node_norm, x, 0.0)

    def test_bad_rowptr(self, device, gen):
        g, x = self._args(device, gen)
        rp = g.rowptr.clone()
        rp[-1] += 1
        with pytest.raises(RuntimeError, match="must start at 0 and end at the number of edges"):
            ops.temporal_propagate(rp, g.col, g.edge_time, g.node_norm, x, 0.5)
        rp = g.rowptr.clone()
        rp[1] = g.num_edges
        with pytest.raises(RuntimeError, match="rowptr is not non-decreasing"):
            ops.temporal_propagate(rp, g.col, g.edge_time, g.node_norm, x, 0.5)
        with pytest.raises(RuntimeError, match="rowptr must be int64"):
            ops.temporal_propagate(g.rowptr.int(), g.col, g.edge_time, g.node_norm, x, 0.5)
        with pytest.raises(RuntimeError, match="col must be int32 or int64"):
            ops.temporal_propagate(g.rowptr, g.col.float(), g.edge_time, g.node_norm, x, 0.5)


@pytest.mark.skipif(not cuda_usable(), reason="CPU==CUDA parity needs a GPU build")
@pytest.mark.parametrize("keep_prob", [1.0, 0.6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_cuda_parity(gen, seed, dtype, keep_prob):
    g = _graph(gen, "cpu", big_row=True, time_scale=3.0)
    x = _x(gen, g, dtype)
    go = torch.randn(x.shape, generator=gen, dtype=dtype)
    res = []
    for dev in ("cpu", "cuda"):
        gd = g.to(dev)
        xd = x.detach().to(dev).clone().requires_grad_()
        y = ops.temporal_propagate(gd.rowptr, gd.col, gd.edge_time, gd.node_norm, xd, 0.5,
                                   keep_prob, 5)
        y.backward(go.to(dev))
        res.append((y.detach().cpu(), xd.grad.cpu()))
    assert_close(res[1][0], res[0][0], seed=seed, what="cuda forward", **TOL[dtype])
    assert_close(res[1][1], res[0][1], seed=seed, what="cuda backward", **TOL[dtype])
