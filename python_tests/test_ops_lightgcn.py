"""graphpro.lightgcn (+ lightgcn_backward): sum_{l=0..L} A^l x against graphpro_ext.reference."""

from __future__ import annotations

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


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_forward_low_precision(device, gen, seed, dtype):
    g = _graph(gen, device, big_row=True)
    x = _x(gen, g, dtype)
    out = ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, 2, 0.5, 0.8, 1)
    assert out.dtype == dtype
    assert_lowp_close(out, _ref(g, x, 2, 0.5, 0.8, 1), _ref(g, x.double(), 2, 0.5, 0.8, 1),
                      seed=seed, what=f"lightgcn {dtype}")


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


class TestBadInputs:
    def _args(self, device, gen):
        g = tiny_temporal_graph(gen).to(device)
        return g, torch.randn(g.num_nodes, 2, generator=gen).to(device)

    def test_negative_layers(self, device, gen):
        g, x = self._args(device, gen)
        with pytest.raises(ValueError, match="num_layers must be >= 0"):
            ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, -1)
        with pytest.raises(RuntimeError, match="num_layers must be >= 0"):
            torch.ops.graphpro.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, x, -1, 0.5,
                                        1.0, 0)

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
