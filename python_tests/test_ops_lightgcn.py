"""graphpro.lightgcn (+ lightgcn_backward): sum_{l=0..L} A^l x against graphpro_ext.reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import (assert_close, assert_close_bound, assert_lowp_close, bound_rel, cuda_usable,
                      sum_terms)
from op_graphs import random_temporal_graph, tiny_temporal_graph

import graphpro_ext.ops as ops
import graphpro_ext.reference as ref

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-11)}


def _graph(gen, device, **kw):
    return random_temporal_graph(gen, 40, 50, **kw).to(device)


def _x(gen, g, dtype, d=8):
    return torch.randn(g.num_nodes, d, generator=gen, dtype=torch.float64).to(dtype).to(g.device)


def _ref(g, x, L, tw, kp, s):
    return ref.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, L, tw, kp, s)


CASES = [
    pytest.param(torch.int32, False, False, id="i32"),
    pytest.param(torch.int64, False, False, id="i64"),
    pytest.param(torch.int32, True, False, id="i32-bigrow"),
    pytest.param(torch.int64, False, True, id="i64-equaltimes"),
]


@pytest.mark.parametrize("keep_prob", [1.0, 0.7])
@pytest.mark.parametrize("time_weight", [0.0, 0.5])
@pytest.mark.parametrize("num_layers", [0, 1, 3])
@pytest.mark.parametrize("index_dtype,big_row,equal_times", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_matches_reference(device, gen, seed, dtype, index_dtype, big_row, equal_times,
                                   num_layers, time_weight, keep_prob):
    g = _graph(gen, device, index_dtype=index_dtype, big_row=big_row, equal_times=equal_times)
    x = _x(gen, g, dtype)
    out = ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, num_layers, time_weight,
                       keep_prob, 5)
    assert out.shape == x.shape and out.dtype == dtype
    expected = _ref(g, x.double(), num_layers, time_weight, keep_prob, 5)
    bound = _ref(g, x.double().abs(), num_layers, time_weight, keep_prob, 5)  # weights >= 0
    assert_close_bound(out, expected, bound, seed=seed, what="lightgcn",
                       terms=sum_terms(g.rowptr, num_layers))


def test_equals_repeated_temporal_propagate(device, gen, seed):
    g = _graph(gen, device)
    x = _x(gen, g, torch.float64)
    out = ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, 3, 0.3, 0.8, 2)
    cur, acc = x, x
    for _ in range(3):
        cur = ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, cur, 0.3, 0.8, 2)
        acc = acc + cur
    assert_close(out, acc, seed=seed, what="lightgcn vs 3 x temporal_propagate")


def test_input_not_modified(device, gen, seed):
    g = _graph(gen, device)
    x = _x(gen, g, torch.float64)
    x0 = x.clone()
    ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, 3, 0.5)
    assert torch.equal(x, x0), seed


@pytest.mark.parametrize("layers,time_weight", [(2, 0.5), (3, 0.0), (3, 0.5)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_forward_low_precision(device, gen, seed, dtype, layers, time_weight):
    """The conventions' low-precision rule at 2 and 3 layers, with and without time weights."""
    g = _graph(gen, device, big_row=True)
    x = _x(gen, g, dtype)
    args = (layers, time_weight, 0.8, 1)
    out = ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, *args)
    assert out.dtype == dtype
    assert_lowp_close(out, _ref(g, x, *args), _ref(g, x.double(), *args),
                      seed=seed, what=f"lightgcn {dtype}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_backward_low_precision(device, gen, seed, dtype):
    g = _graph(gen, device, big_row=True)
    x = _x(gen, g, dtype)
    go = torch.randn(x.shape, generator=gen).to(dtype).to(device)
    grads = []
    for xx in (x, x, x.double()):
        xx = xx.clone().requires_grad_()
        f = ops.lightgcn if not grads else _ref
        out = f(g.rowptr, g.col, g.edge_time, g.node_norm, xx, 3, 0.5, 0.8, 4) if not grads \
            else f(g, xx, 3, 0.5, 0.8, 4)
        out.backward(go.to(xx.dtype))
        grads.append(xx.grad)
    assert grads[0].dtype == dtype
    assert_lowp_close(grads[0], grads[1], grads[2], seed=seed, what=f"lightgcn grad {dtype}")


@pytest.mark.parametrize("keep_prob", [1.0, 0.6])
@pytest.mark.parametrize("time_weight", [0.0, 0.5])
@pytest.mark.parametrize("big_row", [False, True], ids=["powerlaw", "bigrow"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_matches_reference(device, gen, seed, dtype, big_row, time_weight, keep_prob):
    g = _graph(gen, device, big_row=big_row)
    g.edge_time = g.edge_time * 4
    x = _x(gen, g, dtype)
    go = torch.randn(x.shape, generator=gen, dtype=dtype).to(device)
    x1 = x.clone().requires_grad_()
    ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x1, 3, time_weight, keep_prob, 8
                 ).backward(go)
    x2 = x.double().clone().requires_grad_()
    _ref(g, x2, 3, time_weight, keep_prob, 8).backward(go.double())
    x3 = x.double().clone().requires_grad_()
    _ref(g, x3, 3, time_weight, keep_prob, 8).backward(go.double().abs())
    assert_close_bound(x1.grad, x2.grad, x3.grad, seed=seed, what="grad x",
                       terms=sum_terms(g.rowptr, 3))


def test_tolerance_still_sees_one_missing_hub_term(gen, seed):
    """The fp32 allowance widened for long sums (sum_terms) must still reject an output that
    lacks one typical term of the 4100-edge hub row."""
    g = _graph(gen, "cpu", big_row=True)
    x = _x(gen, g, torch.float64)
    expected = _ref(g, x, 3, 0.0, 1.0, 0)
    bound = _ref(g, x.abs(), 3, 0.0, 1.0, 0)
    deg = g.rowptr[1:] - g.rowptr[:-1]
    hub = int(deg.argmax())
    nbrs = g.col[g.rowptr[hub]:g.rowptr[hub + 1]].long()
    c = int(nbrs[x[nbrs].abs().amax(1).argsort()[len(nbrs) // 2]])  # median-size neighbour
    actual = expected.clone()
    actual[hub] -= g.node_norm[hub].double() * g.node_norm[c].double() * x[c]  # its layer-1 term
    terms = sum_terms(g.rowptr, 3)
    assert_close_bound(expected.float(), expected, bound, seed=seed, terms=terms)
    with pytest.raises(AssertionError, match="elements off"):
        assert_close_bound(actual.float(), expected, bound, seed=seed, terms=terms)


@pytest.mark.parametrize("keep_prob", [1.0, 0.5])
@pytest.mark.parametrize("time_weight", [0.0, 0.7])
def test_gradcheck(gen, seed, time_weight, keep_prob):
    g = tiny_temporal_graph(gen)
    g.edge_time = g.edge_time * 3
    x = torch.randn(g.num_nodes, 2, generator=gen, dtype=torch.float64).requires_grad_()
    fn = lambda x_: ops.lightgcn(  # noqa: E731
        g.rowptr, g.col, g.edge_time, g.node_norm, x_, 3, time_weight, keep_prob, 4)
    assert torch.autograd.gradcheck(fn, (x,)), seed


@pytest.mark.parametrize("keep_prob", [1.0, 0.5])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(device, gen, requires_grad, keep_prob):
    g = tiny_temporal_graph(gen).to(device)
    et, nn = g.edge_time.double(), g.node_norm.double()
    x = torch.randn(g.num_nodes, 3, generator=gen, dtype=torch.float64).to(device)
    x.requires_grad_(requires_grad)
    op = torch.ops.graphpro.lightgcn.default
    torch.library.opcheck(op, (g.rowptr, g.col, et, nn, x, 2, 0.5, keep_prob, 1))
    torch.library.opcheck(op, (g.rowptr, g.col, None, nn, x, 2, 0.0, keep_prob, 1))
    _, lse = op(g.rowptr, g.col, et, nn, x.detach(), 2, 0.5, keep_prob, 1)
    torch.library.opcheck(torch.ops.graphpro.lightgcn_backward.default,
                          (g.rowptr, g.col, et, nn, lse, x.detach(), 2, 0.5, keep_prob, 1))


def test_thread_count_independent(gen, seed):
    g = _graph(gen, "cpu", big_row=True)
    x = _x(gen, g, torch.float32)
    old = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            outs.append(ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, 3, 0.5, 0.7, 3))
    finally:
        torch.set_num_threads(old)
    assert torch.equal(outs[0], outs[1]), seed


def square_csr(gen, n, *, symmetric, dup=False, density=0.35):
    """(rowptr, col int64, edge_time f64) of a random n x n CSR with sorted rows. symmetric=False
    guarantees an edge (0, 1) without (1, 0); symmetric=True gives symmetric structure and times
    (dup: every undirected pair of the upper triangle stored twice in both directions)."""
    a = torch.rand(n, n, generator=gen) < density
    t = torch.rand(n, n, generator=gen, dtype=torch.float64) * 3
    if symmetric:
        a = a | a.T
        t = torch.triu(t) + torch.triu(t, 1).T  # t[r, c] == t[c, r]
    else:
        a[0, 1], a[1, 0] = True, False
    rows, cols = a.nonzero(as_tuple=True)
    times = t[rows, cols]
    if dup:
        twice = (rows - cols).abs() % 2 == 1  # a symmetric choice of pairs, both directions
        rows, cols, times = (torch.cat([v, v[twice]]) for v in (rows, cols, times))
        order = torch.argsort(rows * n + cols, stable=True)
        rows, cols, times = rows[order], cols[order], times[order]
    rowptr = torch.zeros(n + 1, dtype=torch.int64)
    rowptr[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return rowptr, cols, times


def _norm(gen, n):
    return torch.rand(n, generator=gen, dtype=torch.float64) + 0.1


@pytest.mark.parametrize("keep_prob", [1.0, 0.6])
@pytest.mark.parametrize("time_weight", [0.0, 0.5])
def test_general_csr_gradient_raises(device, gen, seed, time_weight, keep_prob):
    """Issue 9: on a CSR that is not structurally symmetric the forward is right but the
    no-transpose backward is not; it must raise one clear line instead of a wrong gradient."""
    rowptr, col, et = (t.to(device) for t in square_csr(gen, 9, symmetric=False))
    nn = _norm(gen, 9).to(device)
    x = torch.randn(9, 3, generator=gen, dtype=torch.float64).to(device)
    with torch.no_grad():  # the forward is valid for any CSR
        out = ops.lightgcn(rowptr, col, et, nn, x, 2, time_weight, keep_prob, 3)
    expected = ref.lightgcn(rowptr, col, et, nn, x, 2, time_weight, keep_prob, 3)
    assert_close(out, expected, seed=seed, what="forward on a general CSR", **TOL[torch.float64])
    xg = x.clone().requires_grad_()
    out = ops.lightgcn(rowptr, col, et, nn, xg, 2, time_weight, keep_prob, 3)
    with pytest.raises(RuntimeError, match=r"^graphpro\.lightgcn: the gradient needs a "
                                           r"structurally symmetric graph[^\n]*$"):
        out.sum().backward()
    # The raw backward op checks too (for callers that bypass the autograd wrapper).
    lse = torch.zeros(9, dtype=torch.float64, device=device)
    with pytest.raises(RuntimeError, match="structurally symmetric"):
        torch.ops.graphpro.lightgcn_backward(rowptr, col, et, nn, lse, x, 2, time_weight,
                                             keep_prob, 3)


@pytest.mark.parametrize("time_weight", [0.0, 0.5])
def test_symmetric_multigraph_gradcheck(gen, seed, time_weight):
    """The check accepts what the backward handles: a symmetric graph with repeated edges (each
    repeat in both directions, same time); gradients then equal the reference's."""
    rowptr, col, et = square_csr(gen, 7, symmetric=True, dup=True)
    nn = _norm(gen, 7)
    x = torch.randn(7, 2, generator=gen, dtype=torch.float64).requires_grad_()
    def fn(x_):
        return ops.lightgcn(rowptr, col, et, nn, x_, 2, time_weight, 0.7, 5)

    assert torch.autograd.gradcheck(fn, (x,)), seed
    (g1,) = torch.autograd.grad(fn(x).pow(2).sum(), x)
    (g2,) = torch.autograd.grad(
        ref.lightgcn(rowptr, col, et, nn, x, 2, time_weight, 0.7, 5).pow(2).sum(), x)
    assert_close(g1, g2, seed=seed, what="multigraph grad", **TOL[torch.float64])


class TestGradientNeedsSymmetricGraph:
    """Each way a CSR can break the backward's A^T == rows-of-A assumption gets its own message."""

    def _graph(self, gen, device):
        rowptr, col, et = square_csr(gen, 8, symmetric=True)
        return rowptr.to(device), col.to(device), et.to(device), _norm(gen, 8).to(device)

    def _backward(self, rowptr, col, et, nn, time_weight=0.5):
        x = torch.randn(rowptr.numel() - 1, 2, dtype=torch.float64, device=rowptr.device)
        ops.lightgcn(rowptr, col, et, nn, x.requires_grad_(), 2, time_weight).sum().backward()
        return x.grad

    def _off_diagonal_edge(self, rowptr, col):
        rows = ref.row_index(rowptr, col.numel())
        j = int(torch.nonzero(rows != col)[0])
        return j, int(rows[j])

    def test_symmetric_graph_passes(self, device, gen):
        assert torch.isfinite(self._backward(*self._graph(gen, device))).all()

    def test_asymmetric_times(self, device, gen):
        rowptr, col, et, nn = self._graph(gen, device)
        j, _ = self._off_diagonal_edge(rowptr, col)
        et = et.clone()
        et[j] += 0.5  # the reverse of edge j keeps its time
        with pytest.raises(RuntimeError, match=r"graphpro\.lightgcn: the gradient needs symmetric "
                                               r"edge times"):
            self._backward(rowptr, col, et, nn)
        # Without the time term the times are never read: structure is all that matters.
        assert torch.isfinite(self._backward(rowptr, col, et, nn, time_weight=0.0)).all()

    def test_unsorted_row(self, device, gen):
        rowptr, col, et, nn = self._graph(gen, device)
        deg = (rowptr[1:] - rowptr[:-1]).cpu()
        r = int(torch.nonzero(deg >= 2)[0])
        b = int(rowptr[r])
        col, et = col.clone(), et.clone()
        col[b], col[b + 1] = col[b + 1].clone(), col[b].clone()
        et[b], et[b + 1] = et[b + 1].clone(), et[b].clone()
        with pytest.raises(RuntimeError, match="the gradient needs columns sorted within each row"):
            self._backward(rowptr, col, et, nn)

    @pytest.mark.parametrize("threads", [1, 2])
    def test_one_bad_edge_in_a_large_graph(self, device, gen, seed, threads):
        """A 4100-edge hub and many rows (the CPU check splits the columns between threads): one
        edge time changed, or one edge dropped from its row, is found."""
        g = _graph(gen, device, big_row=True)
        rows = ref.row_index(g.rowptr, g.num_edges)
        j = int(torch.randint(g.num_edges, (1,), generator=gen))
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            self._backward(g.rowptr, g.col, g.edge_time.double(), g.node_norm)  # symmetric: fine
            et = g.edge_time.double().clone()
            et[j] += 1e-9
            with pytest.raises(RuntimeError, match="symmetric edge times"):
                self._backward(g.rowptr, g.col, et, g.node_norm)
            keep = torch.arange(g.num_edges, device=device) != j
            rowptr = g.rowptr.clone()
            rowptr[int(rows[j]) + 1:] -= 1
            with pytest.raises(RuntimeError, match="structurally symmetric"):
                self._backward(rowptr, g.col[keep], et[keep], g.node_norm, time_weight=0.0)
        finally:
            torch.set_num_threads(old)

    def test_unmatched_repeated_edge(self, device, gen):
        rowptr, col, et, nn = self._graph(gen, device)
        # Repeat edge j = (r, c) in row r only: every pair still has a reverse, the counts differ.
        j, r = self._off_diagonal_edge(rowptr, col)
        col = torch.cat([col[:j + 1], col[j:]])
        et = torch.cat([et[:j + 1], et[j:]])
        rowptr = rowptr.clone()
        rowptr[r + 1:] += 1
        with pytest.raises(RuntimeError, match="structurally symmetric"):
            self._backward(rowptr, col, et, nn)


class TestBadInputs:
    def _args(self, device, gen):
        g = tiny_temporal_graph(gen).to(device)
        return g, torch.randn(g.num_nodes, 2, generator=gen).to(device)

    @pytest.mark.parametrize("layers", [-1, 65, 10**9])
    def test_layers_out_of_range(self, device, gen, layers):
        """Issue 9: num_layers is bounded (1e9 layers used to run for minutes, deaf to Ctrl-C)."""
        g, x = self._args(device, gen)
        with pytest.raises(ValueError, match=r"^graphpro\.lightgcn: num_layers must be an "
                                             r"integer in \[0, 64\], got -?\d+$"):
            ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, layers)
        with pytest.raises(RuntimeError, match=r"graphpro\.lightgcn: num_layers must be in "
                                               r"\[0, 64\]"):
            torch.ops.graphpro.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, layers,
                                        0.5, 1.0, 0)
        with pytest.raises(RuntimeError, match=r"graphpro\.lightgcn_backward: num_layers must be "
                                               r"in \[0, 64\]"):
            torch.ops.graphpro.lightgcn_backward(g.rowptr, g.col, g.edge_time, g.node_norm,
                                                 g.node_norm, x, layers, 0.5, 1.0, 0)

    @pytest.mark.parametrize("layers", [2.7, 2.0, True, "2", None])
    def test_layers_not_an_integer(self, device, gen, layers):
        """Issue 9: 2.7 used to be truncated to 2 silently; bool is not an integer either."""
        g, x = self._args(device, gen)
        with pytest.raises(TypeError, match=r"^graphpro\.lightgcn: num_layers must be an "
                                            r"integer, got "):
            ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, layers)

    def test_layers_accepts_integer_likes(self, device, gen):
        g, x = self._args(device, gen)
        a = ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, 3)
        for layers in (np.int64(3), torch.tensor(3)):
            assert torch.equal(ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, layers),
                               a)
        assert ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, 64).shape == x.shape

    @pytest.mark.parametrize("big_seed", [2**63, 2**63 + 12345, 2**64 - 1])
    def test_seed_above_int64_folds(self, device, gen, big_seed):
        """Issue 9: seeds in [2**63, 2**64) used to fail with an unreadable schema error; they now
        name the same 64 bits as seed - 2**64 (the dropout hash reads the seed as uint64), and the
        reference, which works modulo 2**64, agrees."""
        g, x = self._args(device, gen)
        x = x.double()
        args = (g.rowptr, g.col, g.edge_time, g.node_norm, x, 2, 0.5, 0.5)
        a = ops.lightgcn(*args, big_seed)
        b = ops.lightgcn(*args, big_seed - 2**64)
        assert torch.equal(a, b)
        assert_close(a, _ref(g, x, 2, 0.5, 0.5, big_seed), seed=0, what="folded seed",
                     **TOL[torch.float64])

    @pytest.mark.parametrize("bad_seed,exc", [(2**64, ValueError), (-(2**63) - 1, ValueError),
                                          (1.5, TypeError), (True, TypeError), ("3", TypeError)])
    def test_bad_seed(self, device, gen, bad_seed, exc):
        g, x = self._args(device, gen)
        with pytest.raises(exc, match=r"^graphpro\.lightgcn: seed must be an integer"):
            ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, 2, 0.5, 0.5, bad_seed)

    def test_nan_edge_time(self, device, gen):
        g, x = self._args(device, gen)
        et = g.edge_time.clone()
        et[-1] = float("nan")
        with pytest.raises(RuntimeError, match="edge_time holds a NaN or infinite value"):
            ops.lightgcn(g.rowptr, g.col, et, g.node_norm, x, 2, 0.5)

    def test_mismatched_lengths(self, device, gen):
        g, x = self._args(device, gen)
        with pytest.raises(RuntimeError, match=r"edge_time must be 1-D with \d+ edge entries"):
            ops.lightgcn(g.rowptr, g.col, g.edge_time[1:], g.node_norm, x, 2, 0.5)
        with pytest.raises(RuntimeError, match=r"the graph is square over \d+ nodes but x has"):
            ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x[:-1], 2, 0.5)
        with pytest.raises(RuntimeError, match=r"node_norm must be 1-D with \d+ node entries"):
            ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm[:-1], x, 2, 0.0)

    def test_bad_csr(self, device, gen):
        g, x = self._args(device, gen)
        col = g.col.clone()
        col[-1] = -1
        with pytest.raises(RuntimeError, match="col holds an index outside"):
            ops.lightgcn(g.rowptr, col, g.edge_time, g.node_norm, x, 2, 0.5)
        rp = g.rowptr.clone()
        rp[-1] -= 1
        with pytest.raises(RuntimeError, match="must start at 0 and end at the number of edges"):
            ops.lightgcn(rp, g.col, g.edge_time, g.node_norm, x, 2, 0.5)
        rp = g.rowptr.clone()
        rp[2] = rp[-1] + 0
        rp[1] = rp[-1]
        rp[3] = 0
        with pytest.raises(RuntimeError, match="rowptr is not non-decreasing"):
            ops.lightgcn(rp, g.col, g.edge_time, g.node_norm, x, 2, 0.5)

    def test_keep_prob_out_of_range(self, device, gen):
        g, x = self._args(device, gen)
        with pytest.raises(ValueError, match=r"keep_prob must be in \(0, 1\]"):
            ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, 2, 0.5, 1.2)


@pytest.mark.skipif(not cuda_usable(), reason="CPU==CUDA parity needs a GPU build")
@pytest.mark.parametrize("time_weight,keep_prob", [(0.0, 1.0), (0.5, 0.7)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_cuda_parity(gen, seed, dtype, time_weight, keep_prob):
    g = _graph(gen, "cpu", big_row=True)
    x = _x(gen, g, dtype)
    go = torch.randn(x.shape, generator=gen, dtype=dtype)
    res = []
    for dev in ("cpu", "cuda"):
        gd = g.to(dev)
        xd = x.detach().to(dev).clone().requires_grad_()
        out = ops.lightgcn(gd.rowptr, gd.col, gd.edge_time, gd.node_norm, xd, 3, time_weight,
                           keep_prob, 6)
        out.backward(go.to(dev))
        res.append((out.detach().cpu(), xd.grad.cpu()))
    # the backends sum in different orders (CPU: Horner form; CUDA: running sum of the layers),
    # so each is held to the sum-length allowance against the other, twice the single allowance
    rel = 2 * bound_rel(dtype, sum_terms(g.rowptr, 3))
    xb = x.double().abs().requires_grad_()  # the op is linear: |x| and |go| bound every term
    bound_fwd = _ref(g, xb, 3, time_weight, keep_prob, 6)
    bound_fwd.backward(go.double().abs())
    assert_close_bound(res[1][0], res[0][0].double(), bound_fwd.detach(), seed=seed, rel=rel,
                       what="cuda forward")
    assert_close_bound(res[1][1], res[0][1].double(), xb.grad, seed=seed, rel=rel,
                       what="cuda backward")
