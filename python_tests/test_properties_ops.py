"""Property-based tests (hypothesis) of the ops against graphpro_ext.reference and brute force.

Hypothesis draws the graph *structures* (row lengths, which columns, empty rows, never-referenced
columns, an optional hub row, int32/int64 indices, repeated interactions) and shrinks a failure to
a minimal one; the float values come from a drawn seed (``vseed``) through torch.Generator, which
is much faster than drawing thousands of floats one by one. A failure prints the falsifying
example (every drawn argument, ``vseed`` included) and a ``@reproduce_failure`` blob; replay a run
with ``pytest --hypothesis-seed=N``. No example database is written (``database=None``);
``GRAPHPRO_HYPOTHESIS_EXAMPLES`` sets the number of examples per test (default 40).

fp32 results are judged as in the op tests (conftest.assert_close_bound): against an fp64
reference, allowing a multiple of the magnitude bound of each sum, widened for long sums.
"""

from __future__ import annotations

import os

import pytest
import torch
from conftest import DEVICES, assert_close, assert_close_bound, sum_terms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphpro_ext.ops as ops
import graphpro_ext.reference as ref
from graphpro_ext.graph import TemporalGraph

# 40 examples per test keep this file among the quick ones; GRAPHPRO_HYPOTHESIS_EXAMPLES=500
# searches deeper.
PROPS = settings(max_examples=int(os.environ.get("GRAPHPRO_HYPOTHESIS_EXAMPLES", "40")),
                 deadline=None, database=None, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FLOATS = st.sampled_from([torch.float32, torch.float64])
INDEX = st.sampled_from([torch.int32, torch.int64])
VSEED = st.integers(0, 2**31 - 1)


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------
@st.composite
def csr_graphs(draw, max_rows: int = 10, max_cols: int = 12, hub_cols: int = 300):
    """(rowptr int64 [R+1], col [E] sorted and duplicate-free within rows, num_cols). Rows may be
    empty (R = 0 too); with a hub, one row references every one of up to ``hub_cols`` columns."""
    num_rows = draw(st.integers(0, max_rows))
    hub = num_rows > 0 and draw(st.booleans())
    num_cols = draw(st.integers(1, hub_cols if hub else max_cols))
    rows = [sorted(draw(st.lists(st.integers(0, num_cols - 1), unique=True,
                                 max_size=min(num_cols, 8)))) for _ in range(num_rows)]
    if hub:
        rows[draw(st.integers(0, num_rows - 1))] = list(range(num_cols))
    rowptr = torch.zeros(num_rows + 1, dtype=torch.int64)
    rowptr[1:] = torch.cumsum(torch.tensor([len(r) for r in rows], dtype=torch.int64), 0)
    col = torch.tensor([c for r in rows for c in r], dtype=draw(INDEX))
    return rowptr, col, num_cols


@st.composite
def temporal_graphs(draw):
    """A symmetric TemporalGraph from drawn interactions: repeated (user, item) pairs (merged),
    isolated users and items, optionally a hub user linked to every item, equal or spread times."""
    num_users = draw(st.integers(1, 8))
    hub = draw(st.booleans())
    num_items = draw(st.integers(1, 150 if hub else 10))
    pairs = draw(st.lists(st.tuples(st.integers(0, num_users - 1),
                                    st.integers(0, num_items - 1)), max_size=25))
    if hub:
        h = draw(st.integers(0, num_users - 1))
        pairs += [(h, i) for i in range(num_items)]
    gen = torch.Generator().manual_seed(draw(VSEED))
    spread_h = draw(st.sampled_from([0.0, 5.0, 500.0]))  # 0: all times equal
    times = 1.7e9 + torch.rand(len(pairs), generator=gen, dtype=torch.float64) * spread_h * 3600
    g = TemporalGraph.from_interactions([p[0] for p in pairs], [p[1] for p in pairs],
                                        times.numpy(), num_users, num_items,
                                        tau_hours=draw(st.sampled_from([0.1, 1.0, 24.0])))
    g.col = g.col.to(draw(INDEX))
    g.edge_time = g.edge_time * draw(st.sampled_from([1.0, 8.0]))  # 8: sharper softmax
    return g


@st.composite
def histories(draw, max_users: int = 8, max_items: int = 40, allow_full: bool = False):
    """(hist_rowptr, hist_items, num_items): strictly increasing rows, some empty; a near-full row
    (one item missing) is likely; a full row only with ``allow_full``."""
    num_items = draw(st.integers(1, max_items))
    num_users = draw(st.integers(1, max_users))
    cap = num_items if allow_full else num_items - 1
    rows = [sorted(draw(st.lists(st.integers(0, num_items - 1), unique=True,
                                 max_size=min(cap, 12)))) for _ in range(num_users)]
    if draw(st.booleans()):
        missing = draw(st.integers(0, num_items - 1))
        full = allow_full and draw(st.booleans())
        rows[draw(st.integers(0, num_users - 1))] = [i for i in range(num_items)
                                                     if full or i != missing]
    rowptr = torch.zeros(num_users + 1, dtype=torch.int64)
    rowptr[1:] = torch.cumsum(torch.tensor([len(r) for r in rows], dtype=torch.int64), 0)
    items = torch.tensor([i for r in rows for i in r], dtype=draw(INDEX))
    return rowptr, items, num_items


def _rows(rowptr, items):
    rp, it = rowptr.cpu().tolist(), items.cpu().tolist()
    return [it[rp[u]:rp[u + 1]] for u in range(len(rp) - 1)]


# ---------------------------------------------------------------------------------------------
# edge_softmax
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@PROPS
@given(g=csr_graphs(), dtype=FLOATS, vseed=VSEED, scale=st.sampled_from([0.01, 1.0, 30.0]),
       masked=st.sampled_from([0.0, 0.3, 1.0]))
def test_edge_softmax(device, g, dtype, vseed, scale, masked):
    rowptr, col, _ = g
    gen = torch.Generator().manual_seed(vseed)
    e = col.numel()
    s = torch.randn(e, generator=gen, dtype=torch.float64) * scale
    s[torch.rand(e, generator=gen) < masked] = float("-inf")  # masked edges, maybe whole rows
    out = ops.edge_softmax(rowptr.to(device), s.to(dtype).to(device)).cpu()
    assert out.shape == (e,) and out.dtype == dtype and torch.isfinite(out).all()
    expected = torch.nan_to_num(ref.edge_softmax(rowptr, s.to(dtype).double()), nan=0.0)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {}
    assert_close(out, expected, seed=vseed, what="edge_softmax", **tol)
    assert (out[s == float("-inf")] == 0).all() and (out >= 0).all() and (out <= 1).all()
    rows = ref.row_index(rowptr, e)
    live = torch.zeros(rowptr.numel() - 1, dtype=torch.bool).index_put_(
        (rows[torch.isfinite(s)],), torch.tensor(True))
    sums = torch.zeros(rowptr.numel() - 1, dtype=torch.float64).index_add(0, rows, out.double())
    assert_close(sums[live], torch.ones_like(sums[live]), seed=vseed, what="row sums",
                 rtol=0, atol=1e-5)
    assert (sums[~live] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@PROPS
@given(g=csr_graphs(hub_cols=40), vseed=VSEED)
def test_edge_softmax_grad(device, g, vseed):
    rowptr, _, _ = g
    gen = torch.Generator().manual_seed(vseed)
    e = int(rowptr[-1])
    s = torch.randn(e, generator=gen, dtype=torch.float64) * 3
    go = torch.randn(e, generator=gen, dtype=torch.float64)
    s1 = s.clone().to(device).requires_grad_()
    ops.edge_softmax(rowptr.to(device), s1).backward(go.to(device))
    s2 = s.clone().requires_grad_()
    ref.edge_softmax(rowptr, s2).backward(go)
    if e:
        assert_close(s1.grad, s2.grad, seed=vseed, what="edge_softmax grad")


# ---------------------------------------------------------------------------------------------
# spmm
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@PROPS
@given(g=csr_graphs(), dtype=FLOATS, vseed=VSEED, d=st.integers(1, 9), weighted=st.booleans())
def test_spmm(device, g, dtype, vseed, d, weighted):
    rowptr, col, num_cols = g
    gen = torch.Generator().manual_seed(vseed)
    w = torch.randn(col.numel(), generator=gen, dtype=torch.float64).to(dtype) if weighted else None
    x = torch.randn(num_cols, d, generator=gen, dtype=torch.float64).to(dtype)
    y = ops.spmm(rowptr.to(device), col.to(device), None if w is None else w.to(device),
                 x.to(device))
    assert y.shape == (rowptr.numel() - 1, d) and y.dtype == dtype
    w64 = None if w is None else w.double()
    expected = ref.spmm(rowptr, col, w64, x.double())
    bound = ref.spmm(rowptr, col, None if w is None else w64.abs(), x.double().abs())
    assert_close_bound(y, expected, bound, seed=vseed, what="spmm", terms=sum_terms(rowptr))
    empty = rowptr[1:] == rowptr[:-1]
    assert (y.cpu()[empty] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@PROPS
@given(g=csr_graphs(hub_cols=60), vseed=VSEED, d=st.integers(1, 5))
def test_spmm_grad(device, g, vseed, d):
    """fp64 gradients with respect to x (transposed SpMM) and weight (SDDMM)."""
    rowptr, col, num_cols = g
    gen = torch.Generator().manual_seed(vseed)
    w = torch.randn(col.numel(), generator=gen, dtype=torch.float64)
    x = torch.randn(num_cols, d, generator=gen, dtype=torch.float64)
    go = torch.randn(rowptr.numel() - 1, d, generator=gen, dtype=torch.float64)
    w1, x1 = w.clone().to(device).requires_grad_(), x.clone().to(device).requires_grad_()
    ops.spmm(rowptr.to(device), col.to(device), w1, x1).backward(go.to(device))
    w2, x2 = w.clone().requires_grad_(), x.clone().requires_grad_()
    ref.spmm(rowptr, col, w2, x2).backward(go)
    assert_close(x1.grad, x2.grad, seed=vseed, what="spmm grad x")
    assert_close(w1.grad, w2.grad, seed=vseed, what="spmm grad weight")


# ---------------------------------------------------------------------------------------------
# temporal_propagate and lightgcn (symmetric temporal graphs)
# ---------------------------------------------------------------------------------------------
TW = st.sampled_from([0.0, 0.5, 1.0])
KEEP = st.sampled_from([1.0, 0.5])
DROP_SEED = st.integers(0, 2**40)


def _temporal_ref(fn, g, x, *args):
    return fn(g.rowptr, g.col, g.edge_time, g.node_norm, x, *args)


@pytest.mark.parametrize("device", DEVICES)
@PROPS
@given(g=temporal_graphs(), dtype=FLOATS, vseed=VSEED, d=st.integers(1, 9), tw=TW, keep=KEEP,
       seed=DROP_SEED)
def test_temporal_propagate(device, g, dtype, vseed, d, tw, keep, seed):
    gen = torch.Generator().manual_seed(vseed)
    x = torch.randn(g.num_nodes, d, generator=gen, dtype=torch.float64).to(dtype)
    y = ops.temporal_propagate(g.rowptr.to(device), g.col.to(device), g.edge_time.to(device),
                               g.node_norm.to(device), x.to(device), tw, keep, seed)
    assert y.shape == x.shape and y.dtype == dtype
    expected = _temporal_ref(ref.temporal_propagate, g, x.double(), tw, keep, seed)
    bound = _temporal_ref(ref.temporal_propagate, g, x.double().abs(), tw, keep, seed)
    assert_close_bound(y, expected, bound, seed=vseed, what="temporal_propagate",
                       terms=sum_terms(g.rowptr))
    isolated = g.rowptr[1:] == g.rowptr[:-1]
    assert (y.cpu()[isolated] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@PROPS
@given(g=temporal_graphs(), dtype=FLOATS, vseed=VSEED, d=st.integers(1, 9),
       layers=st.integers(0, 3), tw=TW, keep=KEEP, seed=DROP_SEED)
def test_lightgcn(device, g, dtype, vseed, d, layers, tw, keep, seed):
    gen = torch.Generator().manual_seed(vseed)
    x = torch.randn(g.num_nodes, d, generator=gen, dtype=torch.float64).to(dtype)
    out = ops.lightgcn(g.rowptr.to(device), g.col.to(device), g.edge_time.to(device),
                       g.node_norm.to(device), x.to(device), layers, tw, keep, seed)
    assert out.shape == x.shape and out.dtype == dtype
    expected = _temporal_ref(ref.lightgcn, g, x.double(), layers, tw, keep, seed)
    bound = _temporal_ref(ref.lightgcn, g, x.double().abs(), layers, tw, keep, seed)
    assert_close_bound(out, expected, bound, seed=vseed, what="lightgcn",
                       terms=sum_terms(g.rowptr, layers))
    isolated = g.rowptr[1:] == g.rowptr[:-1]
    assert torch.equal(out.cpu()[isolated], x[isolated])  # only layer 0 reaches them


@pytest.mark.parametrize("device", DEVICES)
@PROPS
@given(g=temporal_graphs(), vseed=VSEED, d=st.integers(1, 4), layers=st.integers(1, 3), tw=TW,
       keep=KEEP, seed=DROP_SEED)
def test_lightgcn_grad(device, g, vseed, d, layers, tw, keep, seed):
    """fp64 x-gradient (the backward walks rows of A for A^T: needs the symmetric graph)."""
    gen = torch.Generator().manual_seed(vseed)
    x = torch.randn(g.num_nodes, d, generator=gen, dtype=torch.float64)
    go = torch.randn(g.num_nodes, d, generator=gen, dtype=torch.float64)
    x1 = x.clone().to(device).requires_grad_()
    ops.lightgcn(g.rowptr.to(device), g.col.to(device), g.edge_time.to(device),
                 g.node_norm.to(device), x1, layers, tw, keep, seed).backward(go.to(device))
    x2 = x.clone().requires_grad_()
    _temporal_ref(ref.lightgcn, g, x2, layers, tw, keep, seed).backward(go)
    x3 = x.abs().requires_grad_()
    _temporal_ref(ref.lightgcn, g, x3, layers, tw, keep, seed).backward(go.abs())
    assert_close_bound(x1.grad, x2.grad, x3.grad, seed=vseed, what="lightgcn grad x",
                       terms=sum_terms(g.rowptr, layers))


# ---------------------------------------------------------------------------------------------
# sample_negatives
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@PROPS
@given(h=histories(), data=st.data(), k=st.integers(0, 5), seed=st.integers(-2**63, 2**63 - 1),
       user_dtype=INDEX)
def test_sample_negatives(device, h, data, k, seed, user_dtype):
    rowptr, items, num_items = h
    num_users = rowptr.numel() - 1
    users = torch.tensor(data.draw(st.lists(st.integers(0, num_users - 1), max_size=12)),
                         dtype=user_dtype)
    args = (rowptr.to(device), items.to(device))
    out = ops.sample_negatives(*args, users.to(device), num_items, k, seed).cpu()
    assert out.shape == (users.numel(), k) and out.dtype == torch.int64
    rows = _rows(rowptr, items)
    for b, u in enumerate(users.tolist()):
        drawn = set(out[b].tolist())
        assert drawn <= set(range(num_items)) - set(rows[u]), (u, rows[u], out[b].tolist())
    # Deterministic per seed; draw j of position b depends only on (seed, b, j, users[b]'s row),
    # so a prefix of the batch or of the draws is a prefix of the output.
    again = ops.sample_negatives(*args, users.to(device), num_items, k, seed).cpu()
    assert torch.equal(out, again)
    m, kk = users.numel() // 2, k // 2
    prefix = ops.sample_negatives(*args, users[:m].to(device), num_items, kk, seed).cpu()
    assert torch.equal(prefix, out[:m, :kk])
    # Index dtypes do not change the draws.
    other = ops.sample_negatives(rowptr.to(device), items.long().to(device),
                                 users.long().to(device), num_items, k, seed).cpu()
    assert torch.equal(out, other)


@pytest.mark.parametrize("device", DEVICES)
@PROPS
@given(h=histories(allow_full=True), data=st.data(), k=st.integers(1, 3), seed=VSEED)
def test_sample_negatives_full_history_raises(device, h, data, k, seed):
    rowptr, items, num_items = h
    rows = _rows(rowptr, items)
    users = data.draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=8))

    def call():
        return ops.sample_negatives(rowptr.to(device), items.to(device),
                                    torch.tensor(users).to(device), num_items, k, seed)

    if any(len(rows[u]) == num_items for u in users):
        with pytest.raises(RuntimeError, match="holds every item"):
            call()
    else:
        call()


# ---------------------------------------------------------------------------------------------
# topk_masked
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@PROPS
@given(h=histories(max_users=6, max_items=30, allow_full=True), data=st.data(), dtype=FLOATS,
       vseed=VSEED, d=st.integers(1, 5), integer=st.booleans(), mapped=st.booleans())
def test_topk_masked_brute_force(device, h, data, dtype, vseed, d, integer, mapped):
    """Against brute force over every unmasked item; tie-robust: the k values must be the k best
    unmasked scores, each id a distinct unmasked item scoring its value, -1/-inf padding exactly
    where a user has fewer than k unmasked items. Integer-valued embeddings make every score
    exact in fp32 and produce many ties."""
    rowptr, items, num_items = h
    rows = _rows(rowptr, items)
    k = data.draw(st.integers(1, num_items), label="k")
    chunk = data.draw(st.integers(1, num_items + 2), label="chunk_items")
    gen = torch.Generator().manual_seed(vseed)
    if mapped:
        users = torch.tensor(data.draw(st.lists(st.integers(0, len(rows) - 1), max_size=8),
                                       label="users"), dtype=data.draw(INDEX, label="users dtype"))
        b_rows = users.tolist()
    else:
        users, b_rows = None, list(range(len(rows)))
    shape_u, shape_i = (len(b_rows), d), (num_items, d)
    if integer:
        ue = torch.randint(-3, 4, shape_u, generator=gen).to(dtype)
        ie = torch.randint(-3, 4, shape_i, generator=gen).to(dtype)
    else:
        ue = torch.randn(shape_u, generator=gen, dtype=torch.float64).to(dtype)
        ie = torch.randn(shape_i, generator=gen, dtype=torch.float64).to(dtype)
    vals, ids = ops.topk_masked(ue.to(device), ie.to(device), rowptr.to(device), items.to(device),
                                k, chunk_items=chunk,
                                users=None if users is None else users.to(device))
    vals, ids = vals.cpu(), ids.cpu()
    assert vals.shape == ids.shape == (len(b_rows), k)
    assert vals.dtype == dtype and ids.dtype == torch.int64
    scores = ue.double() @ ie.double().t()
    tol = 0.0 if integer else (1e-5 if dtype == torch.float32 else 1e-12)
    for b, u in enumerate(b_rows):
        free = sorted(set(range(num_items)) - set(rows[u]))
        n = min(k, len(free))
        best = sorted((scores[b, i].item() for i in free), reverse=True)[:n]
        got_ids = ids[b, :n].tolist()
        assert len(set(got_ids)) == n and set(got_ids) <= set(free), (b, got_ids, free)
        assert (ids[b, n:] == -1).all() and (vals[b, n:] == float("-inf")).all()
        got = vals[b, :n].double()
        atol = tol * (1 + max((abs(v) for v in best), default=0.0))
        assert torch.allclose(got, torch.tensor(best, dtype=torch.float64), rtol=0, atol=atol), \
            (b, got, best)
        assert torch.allclose(got, scores[b, got_ids], rtol=0, atol=atol), (b, got_ids)
        assert (got[1:] <= got[:-1]).all(), "scores not sorted descending"
