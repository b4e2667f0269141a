"""graphpro.spmm / spmm_kernel / sddmm and ops.csr_transpose against graphpro_ext.reference."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close, assert_close_bound, assert_lowp_close, cuda_usable, sum_terms
from op_graphs import random_csr, tiny_csr

import graphpro_ext.ops as ops
import graphpro_ext.reference as ref

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-11)}
INDEX = [torch.int32, torch.int64]


def _inputs(gen, device, dtype, *, index_dtype=torch.int32, big_row=False, d=8, weighted=True):
    g = random_csr(gen, 70, 55, big_row=big_row, index_dtype=index_dtype).to(device)
    w = torch.randn(g.num_edges, generator=gen, dtype=torch.float64).to(dtype).to(device)
    x = torch.randn(g.num_cols, d, generator=gen, dtype=torch.float64).to(dtype).to(device)
    return g, (w if weighted else None), x


@pytest.mark.parametrize("weighted", [True, False], ids=["weight", "noweight"])
@pytest.mark.parametrize("big_row", [False, True], ids=["powerlaw", "bigrow"])
@pytest.mark.parametrize("index_dtype", INDEX, ids=["i32", "i64"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_matches_reference(device, gen, seed, dtype, index_dtype, big_row, weighted):
    g, w, x = _inputs(gen, device, dtype, index_dtype=index_dtype, big_row=big_row,
                      weighted=weighted)
    y = ops.spmm(g.rowptr, g.col, w, x)
    assert y.shape == (g.num_rows, x.shape[1]) and y.dtype == dtype
    expected = ref.spmm(g.rowptr, g.col, None if w is None else w.double(), x.double())
    bound = ref.spmm(g.rowptr, g.col, None if w is None else w.double().abs(), x.double().abs())
    assert_close_bound(y, expected, bound, seed=seed, what="spmm", terms=sum_terms(g.rowptr))
    assert (y[g.degrees() == 0] == 0).all(), f"empty rows must be zero (seed={seed})"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("big_row", [False, True], ids=["powerlaw", "bigrow"])
def test_forward_low_precision(device, gen, seed, dtype, big_row):
    g, w, x = _inputs(gen, device, dtype, big_row=big_row)
    y = ops.spmm(g.rowptr, g.col, w, x)
    assert y.dtype == dtype
    assert_lowp_close(y, ref.spmm(g.rowptr, g.col, w, x),
                      ref.spmm(g.rowptr, g.col, w.double(), x.double()), seed=seed,
                      what=f"spmm {dtype}")


def test_non_contiguous_x(device, gen, seed):
    g, w, x = _inputs(gen, device, torch.float64, d=6)
    xt = torch.randn(6, g.num_cols, generator=gen, dtype=torch.float64).to(device).t()
    assert not xt.is_contiguous()
    assert_close(ops.spmm(g.rowptr, g.col, w, xt), ref.spmm(g.rowptr, g.col, w, xt), seed=seed,
                 what="non-contiguous x")


@pytest.mark.parametrize("explicit_transpose", [False, True], ids=["built", "given"])
@pytest.mark.parametrize("index_dtype", INDEX, ids=["i32", "i64"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_matches_reference(device, gen, seed, dtype, index_dtype, explicit_transpose):
    g, w, x = _inputs(gen, device, dtype, index_dtype=index_dtype, big_row=True)
    go = torch.randn(g.num_rows, x.shape[1], generator=gen, dtype=dtype).to(device)
    t = ops.csr_transpose(g.rowptr, g.col, g.num_cols) if explicit_transpose else None
    w1, x1 = w.clone().requires_grad_(), x.clone().requires_grad_()
    ops.spmm(g.rowptr, g.col, w1, x1, transpose=t).backward(go)
    w2, x2 = w.double().clone().requires_grad_(), x.double().clone().requires_grad_()
    ref.spmm(g.rowptr, g.col, w2, x2).backward(go.double())
    w3, x3 = w.double().abs().requires_grad_(), x.double().abs().requires_grad_()
    ref.spmm(g.rowptr, g.col, w3, x3).backward(go.double().abs())  # magnitude bounds
    col_count = int(torch.bincount(g.col.long().cpu()).max())  # grad x sums down columns
    assert_close_bound(x1.grad, x2.grad, x3.grad, seed=seed, what="grad x", terms=col_count + 1)
    assert_close_bound(w1.grad, w2.grad, w3.grad, seed=seed, what="grad weight")


def test_backward_x_only_unweighted(device, gen, seed):
    g, _, x = _inputs(gen, device, torch.float64, weighted=False)
    x1 = x.clone().requires_grad_()
    go = torch.randn(g.num_rows, x.shape[1], generator=gen, dtype=torch.float64).to(device)
    ops.spmm(g.rowptr, g.col, None, x1).backward(go)
    x2 = x.clone().requires_grad_()
    ref.spmm(g.rowptr, g.col, None, x2).backward(go)
    assert_close(x1.grad, x2.grad, seed=seed, what="grad x (no weight)")


def test_explicit_transpose_is_used(device, gen, seed):
    """The backward really reads the given transpose: a wrong (reversed) perm changes grad x."""
    g, w, x = _inputs(gen, device, torch.float64)
    colptr, trow, perm = ops.csr_transpose(g.rowptr, g.col, g.num_cols)
    x1 = x.clone().requires_grad_()
    ops.spmm(g.rowptr, g.col, w, x1, transpose=(colptr, trow, perm.flip(0))).sum().backward()
    x2 = x.clone().requires_grad_()
    ops.spmm(g.rowptr, g.col, w, x2, transpose=(colptr, trow, perm)).sum().backward()
    assert not torch.allclose(x1.grad, x2.grad), f"transpose argument ignored (seed={seed})"


@pytest.mark.parametrize("index_dtype", INDEX, ids=["i32", "i64"])
def test_csr_transpose(device, gen, seed, index_dtype):
    g = random_csr(gen, 40, 30, index_dtype=index_dtype).to(device)
    colptr, trow, perm = ops.csr_transpose(g.rowptr, g.col, g.num_cols)
    assert colptr.dtype == torch.int64 and colptr.numel() == g.num_cols + 1
    assert int(colptr[-1]) == g.num_edges
    rows = ref.row_index(g.rowptr, g.num_edges)
    # perm maps CSC positions to CSR positions: the transpose lists the same (row, col) pairs.
    assert torch.equal(trow.long(), rows[perm]), seed
    tcols = ref.row_index(colptr, g.num_edges)
    assert torch.equal(tcols, g.col[perm].long()), seed
    dense = torch.zeros(g.num_rows, g.num_cols, dtype=torch.long, device=device)
    dense[rows, g.col.long()] = 1
    denst = torch.zeros(g.num_cols, g.num_rows, dtype=torch.long, device=device)
    denst[tcols, trow.long()] = 1
    assert torch.equal(dense.t(), denst), seed
    # spmm over the transpose with gathered weights == A^T y
    w = torch.randn(g.num_edges, generator=gen, dtype=torch.float64).to(device)
    y = torch.randn(g.num_rows, 3, generator=gen, dtype=torch.float64).to(device)
    wd = torch.zeros(g.num_rows, g.num_cols, dtype=torch.float64, device=device)
    wd[rows, g.col.long()] = w
    assert_close(ops.spmm(colptr, trow, w[perm], y), wd.t() @ y, seed=seed, what="A^T y")
    assert_close(torch.ops.graphpro.spmm_kernel(colptr, trow, w, y, perm), wd.t() @ y, seed=seed,
                 what="spmm_kernel with weight_perm")


@pytest.mark.parametrize("index_dtype", INDEX, ids=["i32", "i64"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sddmm_matches_reference(device, gen, seed, dtype, index_dtype):
    g = random_csr(gen, 60, 45, big_row=True, index_dtype=index_dtype).to(device)
    a = torch.randn(g.num_rows, 7, generator=gen, dtype=dtype).to(device)
    b = torch.randn(g.num_cols, 7, generator=gen, dtype=dtype).to(device)
    out = ops.sddmm(g.rowptr, g.col, a, b)
    assert out.shape == (g.num_edges,) and out.dtype == dtype
    assert_close_bound(out, ref.sddmm(g.rowptr, g.col, a.double(), b.double()),
                       ref.sddmm(g.rowptr, g.col, a.double().abs(), b.double().abs()), seed=seed,
                       what="sddmm")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sddmm_low_precision(device, gen, seed, dtype):
    g = random_csr(gen, 60, 45).to(device)
    a = torch.randn(g.num_rows, 16, generator=gen).to(dtype).to(device)
    b = torch.randn(g.num_cols, 16, generator=gen).to(dtype).to(device)
    assert_lowp_close(ops.sddmm(g.rowptr, g.col, a, b), ref.sddmm(g.rowptr, g.col, a, b),
                      ref.sddmm(g.rowptr, g.col, a.double(), b.double()), seed=seed, what="sddmm")


def test_gradcheck(gen, seed):
    g = tiny_csr(gen, 5, 4)
    w = torch.randn(g.num_edges, generator=gen, dtype=torch.float64).requires_grad_()
    x = torch.randn(4, 3, generator=gen, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda w_, x_: ops.spmm(g.rowptr, g.col, w_, x_), (w, x)), seed
    t = ops.csr_transpose(g.rowptr, g.col, 4)
    assert torch.autograd.gradcheck(
        lambda w_, x_: ops.spmm(g.rowptr, g.col, w_, x_, transpose=t), (w, x)), seed
    assert torch.autograd.gradcheck(lambda x_: ops.spmm(g.rowptr, g.col, None, x_), (x,)), seed


def _opcheck_args(gen, device, requires_grad):
    g = tiny_csr(gen, 6, 5).to(device)
    w = torch.randn(g.num_edges, generator=gen, dtype=torch.float64).to(device)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64).to(device)
    return g, w.requires_grad_(requires_grad), x.requires_grad_(requires_grad)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_spmm(device, gen, requires_grad):
    g, w, x = _opcheck_args(gen, device, requires_grad)
    op = torch.ops.graphpro.spmm.default
    torch.library.opcheck(op, (g.rowptr, g.col, w, x))
    torch.library.opcheck(op, (g.rowptr, g.col, None, x))
    torch.library.opcheck(op, (g.rowptr, g.col, w, x, *ops.csr_transpose(g.rowptr, g.col, 5)))


def test_opcheck_kernels(device, gen):
    g, w, x = _opcheck_args(gen, device, False)
    colptr, trow, perm = ops.csr_transpose(g.rowptr, g.col, 5)
    y = torch.randn(6, 3, generator=gen, dtype=torch.float64).to(device)
    torch.library.opcheck(torch.ops.graphpro.spmm_kernel.default, (g.rowptr, g.col, w, x))
    torch.library.opcheck(torch.ops.graphpro.spmm_kernel.default, (colptr, trow, w, y, perm))
    torch.library.opcheck(torch.ops.graphpro.sddmm.default, (g.rowptr, g.col, y, x))


class TestBadInputs:
    def _g(self, device):
        rowptr = torch.tensor([0, 2, 3], device=device)
        col = torch.tensor([0, 1, 1], dtype=torch.int32, device=device)
        return rowptr, col, torch.ones(2, 4, device=device)

    def test_float_col(self, device):
        rowptr, col, x = self._g(device)
        with pytest.raises(RuntimeError, match="col must be int32 or int64"):
            ops.spmm(rowptr, col.float(), None, x)

    def test_int32_rowptr(self, device):
        rowptr, col, x = self._g(device)
        with pytest.raises(RuntimeError, match="rowptr must be int64"):
            ops.spmm(rowptr.int(), col, None, x)

    def test_column_out_of_range(self, device):
        rowptr, col, x = self._g(device)
        with pytest.raises(RuntimeError, match=r"col holds an index outside \[0, num_nodes\)"):
            ops.spmm(rowptr, torch.tensor([0, 2, 1], dtype=torch.int32, device=device), None, x)
        with pytest.raises(RuntimeError, match="col holds an index outside"):
            ops.spmm(rowptr, torch.tensor([0, -1, 1], device=device), None, x)

    def test_x_too_few_rows_for_columns(self, device):
        rowptr, col, _ = self._g(device)
        with pytest.raises(RuntimeError, match="col holds an index outside"):
            ops.spmm(rowptr, col, None, torch.ones(1, 4, device=device))

    def test_rowptr_not_ending_at_num_edges(self, device):
        _, col, x = self._g(device)
        with pytest.raises(RuntimeError, match="must start at 0 and end at the number of edges"):
            ops.spmm(torch.tensor([0, 2, 5], device=device), col, None, x)

    def test_rowptr_not_monotone(self, device):
        _, col, x = self._g(device)
        with pytest.raises(RuntimeError, match="rowptr is not non-decreasing"):
            ops.spmm(torch.tensor([0, 3, 1, 3], device=device), col, None, x)

    def test_weight_wrong_length(self, device):
        rowptr, col, x = self._g(device)
        with pytest.raises(RuntimeError, match="weight must be 1-D with 3 edge entries"):
            ops.spmm(rowptr, col, torch.ones(4, device=device), x)

    def test_weight_wrong_dtype(self, device):
        rowptr, col, x = self._g(device)
        with pytest.raises(RuntimeError, match="must have the same dtype"):
            ops.spmm(rowptr, col, torch.ones(3, dtype=torch.float64, device=device), x)

    def test_x_not_2d(self, device):
        rowptr, col, _ = self._g(device)
        with pytest.raises(RuntimeError, match=r"x must be 2-D \[num_nodes, dim\]"):
            ops.spmm(rowptr, col, None, torch.ones(2, device=device))

    def test_x_integer(self, device):
        rowptr, col, _ = self._g(device)
        with pytest.raises(RuntimeError, match="x must be a floating-point tensor"):
            ops.spmm(rowptr, col, None, torch.ones(2, 4, dtype=torch.long, device=device))

    def test_partial_transpose(self, device):
        rowptr, col, x = self._g(device)
        with pytest.raises(RuntimeError, match="pass all of t_colptr, t_row, t_perm or none"):
            torch.ops.graphpro.spmm(rowptr, col, None, x, rowptr)

    def test_transpose_wrong_size(self, device):
        rowptr, col, x = self._g(device)
        colptr, trow, perm = ops.csr_transpose(rowptr, col, 2)
        with pytest.raises(RuntimeError, match="t_colptr must have x.size\\(0\\)\\+1 = 3 entries"):
            ops.spmm(rowptr, col, None, x, transpose=(colptr[:-1], trow, perm))
        with pytest.raises(RuntimeError, match="t_row and t_perm must have one entry per edge"):
            ops.spmm(rowptr, col, None, x, transpose=(colptr, trow[:-1], perm))

    def test_sddmm_mismatch(self, device):
        rowptr, col, x = self._g(device)
        with pytest.raises(RuntimeError, match="a must have one row per CSR row"):
            ops.sddmm(rowptr, col, torch.ones(3, 4, device=device), x)
        with pytest.raises(RuntimeError, match="a and b must share dim and dtype"):
            ops.sddmm(rowptr, col, torch.ones(2, 3, device=device), x)
        with pytest.raises(RuntimeError, match="col holds an index outside"):
            ops.sddmm(rowptr, col, x, x[:1])

    @pytest.mark.skipif(not cuda_usable(), reason="wrong-device check needs a GPU build")
    def test_wrong_device(self):
        rowptr, col, x = self._g("cpu")
        with pytest.raises(RuntimeError, match="x is on"):
            ops.spmm(rowptr, col, None, x.cuda())


@pytest.mark.skipif(not cuda_usable(), reason="CPU==CUDA parity needs a GPU build")
@pytest.mark.parametrize("index_dtype", INDEX, ids=["i32", "i64"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_cpu_cuda_parity(gen, seed, dtype, index_dtype):
    g, w, x = _inputs(gen, "cpu", dtype, index_dtype=index_dtype, big_row=True)
    go = torch.randn(g.num_rows, x.shape[1], generator=gen).to(dtype)
    res = []
    for dev in ("cpu", "cuda"):
        gd = g.to(dev)
        wd = w.detach().to(dev).clone().requires_grad_()
        xd = x.detach().to(dev).clone().requires_grad_()
        y = ops.spmm(gd.rowptr, gd.col, wd, xd)
        y.backward(go.to(dev))
        res.append((y.detach().cpu(), wd.grad.cpu(), xd.grad.cpu(),
                    ops.sddmm(gd.rowptr, gd.col, go.to(dev), xd.detach()).cpu()))
    tol = TOL.get(dtype, dict(rtol=2e-2, atol=2e-2))
    for name, a, b in zip(("y", "grad w", "grad x", "sddmm"), res[0], res[1]):
        assert_close(b, a, seed=seed, what=f"cuda {name}", **tol)
