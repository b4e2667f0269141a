"""graphpro.edge_softmax (+ edge_softmax_backward) against graphpro_ext.reference.edge_softmax."""

from __future__ import annotations

import pytest
import torch
from conftest import (
    assert_close,
    assert_close_bound,
    assert_lowp_close,
    bound_rel,
    cuda_usable,
    sum_terms,
)
from op_graphs import random_csr, tiny_csr

import graphpro_ext.ops as ops
import graphpro_ext.reference as ref

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-13)}


def _scores(gen, n, dtype, spread=5.0):
    return (torch.randn(n, generator=gen, dtype=torch.float64) * spread).to(dtype)


@pytest.mark.parametrize("big_row", [False, True], ids=["powerlaw", "bigrow"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(device, gen, seed, dtype, big_row):
    g = random_csr(gen, 80, 60, big_row=big_row).to(device)
    s = _scores(gen, g.num_edges, dtype).to(device)
    out = ops.edge_softmax(g.rowptr, s)
    assert out.shape == s.shape and out.dtype == dtype
    expected = ref.edge_softmax(g.rowptr, s.double())
    assert_close(out, expected, seed=seed, what="edge_softmax", **TOL[dtype])
    # Every non-empty row sums to one, up to the rounding of a sum as long as the longest row (the
    # 4100-edge row's fp32 normaliser drifts by ~sqrt(n) u: 1.03e-5 at seed 267545068, over the
    # fixed 1e-5 this used to allow).
    rows = ref.row_index(g.rowptr, g.num_edges)
    sums = torch.zeros(g.num_rows, dtype=torch.float64, device=device)
    sums = sums.index_add(0, rows, out.double())
    nonempty = g.degrees() > 0
    assert_close(sums[nonempty], torch.ones_like(sums[nonempty]), seed=seed, what="row sums",
                 rtol=0, atol=max(1e-5, bound_rel(dtype, sum_terms(g.rowptr))))


def test_all_equal_and_large_scores(device, gen, seed):
    """Equal scores give 1/deg; huge scores (1e4) must not overflow (max subtraction)."""
    g = random_csr(gen, 50, 40).to(device)
    deg = g.degrees()
    rows = ref.row_index(g.rowptr, g.num_edges)
    out = ops.edge_softmax(g.rowptr, torch.full((g.num_edges,), 3.0, device=device))
    assert_close(out, (1.0 / deg[rows].double()), seed=seed, what="equal scores")
    s = _scores(gen, g.num_edges, torch.float32).to(device) + 1e4
    out = ops.edge_softmax(g.rowptr, s)
    assert torch.isfinite(out).all()
    assert_close(out, ref.edge_softmax(g.rowptr, s.double()), seed=seed, what="shifted",
                 rtol=1e-3, atol=1e-5)


def test_all_masked_row_gives_zeros(device):
    """A row whose scores are all -inf has no softmax: the kernel documents zeros (not NaN)."""
    rowptr = torch.tensor([0, 2, 3], device=device)
    s = torch.tensor([float("-inf"), float("-inf"), 1.0], device=device)
    out = ops.edge_softmax(rowptr, s)
    assert torch.equal(out.cpu(), torch.tensor([0.0, 0.0, 1.0]))


NAN, INF = float("nan"), float("inf")
SPECIAL_ROWS = [  # (scores of one row, what the reference gives)
    [NAN, 1.0, 2.0],  # one NaN: the whole row is NaN (torch.softmax and the reference agree)
    [NAN, NAN],  # all NaN
    [NAN, -INF, -INF],  # NaN among -inf: NaN, not the all -inf zeros
    [-INF, 1.0, -INF, 2.0],  # -inf entries get 0, the rest a softmax
    [-INF, -INF],  # all -inf: the reference gives NaN, the op documents zeros
    [INF, 1.0],  # +inf: NaN (inf - inf), as the reference
    [1.0, 2.0, 3.0],
    [],
    [-INF],
    [NAN],
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_nan_and_inf_rows_match_reference(device, dtype):
    """Issue 9: NaN propagates like the reference (a row holding a NaN is all NaN, including an
    all-NaN row, which used to come out as zeros); -inf entries get 0; an all -inf row gives zeros
    where the reference gives NaN (documented). A heavy row (> 1024 edges: the CUDA slot path)
    with a NaN or -infs far from its head checks the same across the split."""
    heavy_nan = [0.1 * (i % 7) for i in range(3000)]
    heavy_nan[2500] = NAN
    heavy_masked = [-INF] * 3000
    heavy_masked[2900] = 0.5
    rows = SPECIAL_ROWS + [heavy_nan, heavy_masked, [NAN] + [-INF] * 2999]
    rowptr = torch.tensor([0] + [len(r) for r in rows]).cumsum(0).to(device)
    s = torch.tensor([v for r in rows for v in r], dtype=torch.float64)
    out = ops.edge_softmax(rowptr, s.to(dtype).to(device)).cpu()
    expected = ref.edge_softmax(rowptr.cpu(), s.to(dtype).double())
    all_neg_inf = torch.tensor([len(r) > 0 and all(v == -INF for v in r) for r in rows])
    masked = all_neg_inf[ref.row_index(rowptr.cpu(), s.numel())]
    assert torch.equal(out[masked], torch.zeros(int(masked.sum()), dtype=dtype))
    torch.testing.assert_close(out[~masked], expected[~masked].to(dtype), equal_nan=True,
                               rtol=1e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-6)
    nan_rows = torch.isnan(out)
    # exactly the rows holding a NaN or +inf
    assert int(nan_rows.sum()) == 3 + 2 + 3 + 2 + 1 + 3000 + 3000


def test_nan_row_gradient_matches_reference(device, gen):
    """The backward follows the forward: NaN rows give NaN gradients (as the reference), others
    the usual softmax gradient."""
    # all -inf rows differ by design (zeros)
    rows = [r for r in SPECIAL_ROWS if not (r and all(v == -INF for v in r))]
    rowptr = torch.tensor([0] + [len(r) for r in rows]).cumsum(0)
    s = torch.tensor([v for r in rows for v in r], dtype=torch.float64)
    go = torch.randn(s.numel(), generator=gen, dtype=torch.float64)
    s1 = s.clone().to(device).requires_grad_()
    ops.edge_softmax(rowptr.to(device), s1).backward(go.to(device))
    s2 = s.clone().requires_grad_()
    ref.edge_softmax(rowptr, s2).backward(go)
    torch.testing.assert_close(s1.grad.cpu(), s2.grad, equal_nan=True, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision(device, gen, seed, dtype):
    g = random_csr(gen, 80, 60).to(device)
    s = _scores(gen, g.num_edges, dtype, spread=2.0).to(device)
    out = ops.edge_softmax(g.rowptr, s)
    assert out.dtype == dtype
    assert_lowp_close(out, ref.edge_softmax(g.rowptr, s), ref.edge_softmax(g.rowptr, s.double()),
                      seed=seed, what=f"edge_softmax {dtype}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_matches_reference(device, gen, seed, dtype):
    g = random_csr(gen, 70, 50, big_row=True).to(device)
    s = _scores(gen, g.num_edges, dtype).to(device)
    go = torch.randn(g.num_edges, generator=gen, dtype=dtype).to(device)
    s1 = s.clone().requires_grad_()
    ops.edge_softmax(g.rowptr, s1).backward(go)
    s2 = s.double().clone().requires_grad_()
    out = ref.edge_softmax(g.rowptr, s2)
    out.backward(go.double())
    # grad = out * (g - sum_row(out * g)): bound its rounding error by the magnitudes.
    o, ag = out.detach(), go.double().abs()
    rows = ref.row_index(g.rowptr, g.num_edges)
    row_sum = torch.zeros(g.num_rows, dtype=torch.float64, device=device).index_add(0, rows, o * ag)
    # fp32: the saved softmax output itself carries ~|s - max| ulps of relative error (exp of a
    # rounded argument), so allow 1e-4 of the bound there; fp64 stays tight.
    rel = 1e-4 if dtype == torch.float32 else None
    assert_close_bound(s1.grad, s2.grad, o * (ag + row_sum[rows]), seed=seed, what="grad scores",
                       rel=rel, rtol=0)
    # The backward kernel alone, given the op's own output, is accurate to a few ulps.
    o1 = ops.edge_softmax(g.rowptr, s).double()
    dot = torch.zeros(g.num_rows, dtype=torch.float64, device=device).index_add(0, rows, o1 * go)
    gk = torch.ops.graphpro.edge_softmax_backward(g.rowptr, o1.to(dtype), go)
    row_abs = torch.zeros(g.num_rows, dtype=torch.float64, device=device).index_add(
        0, rows, (o1 * go).abs())
    assert_close_bound(gk, o1 * (go.double() - dot[rows]), o1.abs() * (ag + row_abs[rows]),
                       seed=seed, what="edge_softmax_backward kernel")


def test_gradcheck(gen, seed):
    g = tiny_csr(gen, 5, 4)
    s = torch.randn(g.num_edges, generator=gen, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ops.edge_softmax(g.rowptr, t), (s,)), seed


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(device, gen, requires_grad):
    g = tiny_csr(gen, 6, 5).to(device)
    s = torch.randn(g.num_edges, generator=gen, dtype=torch.float64).to(device)
    s.requires_grad_(requires_grad)
    torch.library.opcheck(torch.ops.graphpro.edge_softmax.default, (g.rowptr, s))
    out = ops.edge_softmax(g.rowptr, s.detach())
    go = torch.randn_like(out)
    torch.library.opcheck(torch.ops.graphpro.edge_softmax_backward.default, (g.rowptr, out, go))


def test_empty_graph(device):
    rowptr = torch.zeros(4, dtype=torch.int64, device=device)
    out = ops.edge_softmax(rowptr, torch.empty(0, device=device))
    assert out.shape == (0,)


class TestBadInputs:
    def test_int32_rowptr(self, device):
        with pytest.raises(RuntimeError, match="rowptr must be a 1-D int64"):
            ops.edge_softmax(torch.tensor([0, 2], dtype=torch.int32, device=device),
                             torch.ones(2, device=device))

    def test_integer_scores(self, device):
        with pytest.raises(RuntimeError, match="scores must be a floating-point tensor"):
            ops.edge_softmax(torch.tensor([0, 2], device=device), torch.ones(2, dtype=torch.long,
                                                                              device=device))

    def test_2d_scores(self, device):
        with pytest.raises(RuntimeError, match=r"scores must be 1-D \[E\]"):
            ops.edge_softmax(torch.tensor([0, 2], device=device), torch.ones(2, 1, device=device))

    def test_rowptr_not_ending_at_num_edges(self, device):
        with pytest.raises(RuntimeError, match="must start at 0 and end at the number of edges"):
            ops.edge_softmax(torch.tensor([0, 2, 3], device=device), torch.ones(4, device=device))

    def test_rowptr_not_starting_at_zero(self, device):
        with pytest.raises(RuntimeError, match="rowptr must start at 0"):
            ops.edge_softmax(torch.tensor([1, 2, 3], device=device), torch.ones(3, device=device))

    def test_rowptr_not_monotone(self, device):
        with pytest.raises(RuntimeError, match="rowptr is not non-decreasing"):
            ops.edge_softmax(torch.tensor([0, 3, 1, 4], device=device),
                             torch.ones(4, device=device))

    def test_backward_mismatch(self, device):
        rowptr = torch.tensor([0, 2], device=device)
        with pytest.raises(RuntimeError, match="out and grad_out must match"):
            torch.ops.graphpro.edge_softmax_backward(
                rowptr, torch.ones(2, device=device),
                torch.ones(2, dtype=torch.float64, device=device))

    @pytest.mark.skipif(not cuda_usable(), reason="wrong-device check needs a GPU build")
    def test_wrong_device(self):
        with pytest.raises(RuntimeError, match="is on"):
            ops.edge_softmax(torch.tensor([0, 2]), torch.ones(2, device="cuda"))


@pytest.mark.skipif(not cuda_usable(), reason="CPU==CUDA parity needs a GPU build")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_cuda_parity(gen, seed, dtype):
    g = random_csr(gen, 80, 60, big_row=True)
    s = _scores(gen, g.num_edges, dtype).requires_grad_()
    go = torch.randn(g.num_edges, generator=gen, dtype=dtype)
    out = ops.edge_softmax(g.rowptr, s)
    out.backward(go)
    sc = s.detach().cuda().requires_grad_()
    outc = ops.edge_softmax(g.rowptr.cuda(), sc)
    outc.backward(go.cuda())
    assert_close(outc, out.detach(), seed=seed, what="cuda forward", **TOL[dtype])
    assert_close(sc.grad, s.grad, seed=seed, what="cuda backward", **TOL[dtype])
