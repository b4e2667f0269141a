"""graphpro.topk_masked (+ mask_history_): chunked full-ranking top-k with history excluded, against
graphpro_ext.reference.topk_masked."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close, cuda_usable
from op_graphs import random_history

import graphpro_ext.ops as ops
import graphpro_ext.reference as ref


def _setup(gen, device, num_users=25, num_items=60, d=6, dtype=torch.float32, idx=torch.int64):
    rowptr, items = random_history(gen, num_users, num_items, index_dtype=idx)
    u = torch.randn(num_users, d, generator=gen, dtype=torch.float64).to(dtype)
    it = torch.randn(num_items, d, generator=gen, dtype=torch.float64).to(dtype)
    return u.to(device), it.to(device), rowptr.to(device), items.to(device)


def _check(vals, ids, evals, eids, seed, what):
    assert vals.shape == evals.shape and ids.dtype == torch.int64
    assert_close(vals, evals, seed=seed, what=f"{what} scores", rtol=1e-5, atol=1e-6)
    assert torch.equal(ids == -1, eids == -1), f"{what}: -1 slots differ (seed={seed})"
    # Ids must agree where the score is distinct from its neighbours (ties may permute).
    v = evals.double().cpu()
    distinct = torch.ones_like(v, dtype=torch.bool)
    gap = (v[:, 1:] - v[:, :-1]).abs() > 1e-6 * v[:, 1:].abs().clamp_min(1)
    distinct[:, 1:] &= gap
    distinct[:, :-1] &= gap
    distinct &= torch.isfinite(v)
    assert torch.equal(ids.cpu()[distinct], eids.cpu()[distinct]), \
        f"{what}: ids differ (seed={seed})"


@pytest.mark.parametrize("chunk", [1, 7, 16, 65536])
@pytest.mark.parametrize("idx", [torch.int32, torch.int64], ids=["i32", "i64"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(device, gen, seed, dtype, idx, chunk):
    u, it, rowptr, items = _setup(gen, device, dtype=dtype, idx=idx)
    k = 10
    vals, ids = ops.topk_masked(u, it, rowptr, items, k, chunk_items=chunk)
    evals, eids = ref.topk_masked(u, it, rowptr, items, k)
    assert vals.dtype == dtype
    _check(vals, ids, evals, eids, seed, f"chunk={chunk}")
    # No history item is ever returned, and scores are the true dot products of the ids.
    for b in range(u.shape[0]):
        hist = set(items[rowptr[b]:rowptr[b + 1]].tolist())
        got = [i for i in ids[b].tolist() if i >= 0]
        assert not hist & set(got), seed
        assert len(set(got)) == len(got), seed
    sel = ids.clamp_min(0)
    dots = (u.unsqueeze(1) * it[sel]).sum(-1)
    fin = ids >= 0
    assert_close(vals[fin], dots[fin], seed=seed, what="score == <u, item>", rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_users_mapping(device, gen, seed, chunk):
    u, it, rowptr, items = _setup(gen, device, num_users=20)
    users = torch.randint(20, (33,), generator=gen).to(device)
    ub = torch.randn(33, u.shape[1], generator=gen).to(device)
    for uu in (users, users.int()):
        vals, ids = ops.topk_masked(ub, it, rowptr, items, 8, chunk_items=chunk, users=uu)
        evals, eids = ref.topk_masked(ub, it, rowptr, items, 8, users=uu)
        _check(vals, ids, evals, eids, seed, "users=")


def test_k_larger_than_unmasked_count(device, gen, seed):
    num_items = 12
    rowptr = torch.tensor([0, 10, 10, 22], device=device)
    items = torch.cat([torch.arange(10), torch.arange(12)]).to(device)  # 2, 12 and 0 left
    u = torch.randn(3, 4, generator=gen).to(device)
    it = torch.randn(num_items, 4, generator=gen).to(device)
    for chunk in (1, 5, 100):
        vals, ids = ops.topk_masked(u, it, rowptr, items, 5, chunk_items=chunk)
        assert ids[0, 2:].eq(-1).all() and torch.isneginf(vals[0, 2:]).all(), seed
        assert set(ids[0, :2].tolist()) == {10, 11}
        assert (ids[1] >= 0).all() and torch.isfinite(vals[1]).all()
        assert ids[2].eq(-1).all() and torch.isneginf(vals[2]).all()
        evals, eids = ref.topk_masked(u, it, rowptr, items, 5)
        _check(vals, ids, evals, eids, seed, f"k > unmasked, chunk={chunk}")


def test_k_equals_num_items_is_a_full_sort(device, gen, seed):
    u, it, rowptr, items = _setup(gen, device, num_users=4, num_items=9)
    vals, ids = ops.topk_masked(u, it, rowptr, items, 9, chunk_items=2)
    evals, eids = ref.topk_masked(u, it, rowptr, items, 9)
    _check(vals, ids, evals, eids, seed, "k = num_items")
    assert (vals[:, :-1] >= vals[:, 1:]).all()


@pytest.mark.parametrize("chunk", [7, 300, 65536])
@pytest.mark.parametrize("k", [1, 20])
def test_skewed_norms_many_tiles(device, gen, seed, k, chunk):
    """Heavy-tailed item and user norms (as trained models have: the CPU kernel visits items by
    decreasing norm and stops early), several user and item tiles, users given twice."""
    num_users, num_items, d = 300, 2500, 16
    rowptr, items = random_history(gen, num_users, num_items, max_len=400)
    it = torch.randn(num_items, d, generator=gen, dtype=torch.float64)
    it *= torch.exp(1.5 * torch.randn(num_items, 1, generator=gen, dtype=torch.float64))
    ub = torch.randn(num_users, d, generator=gen, dtype=torch.float64)
    ub *= torch.exp(torch.randn(num_users, 1, generator=gen, dtype=torch.float64))
    users = torch.cat([torch.arange(num_users), torch.randint(num_users, (50,), generator=gen)])
    for dtype in (torch.float32, torch.float64):
        u, i = ub[users].to(dtype).to(device), it.to(dtype).to(device)
        args = (rowptr.to(device), items.to(device))
        vals, ids = ops.topk_masked(u, i, *args, k, chunk_items=chunk, users=users.to(device))
        evals, eids = ref.topk_masked(u, i, *args, k, users=users.to(device))
        _check(vals, ids, evals, eids, seed, f"skewed {dtype} k={k} chunk={chunk}")


def test_threads_and_tiling_do_not_change_the_result(gen):
    rowptr, items = random_history(gen, 200, 3000, max_len=100)
    u = torch.randn(200, 8, generator=gen) * torch.rand(200, 1, generator=gen) * 3
    it = torch.randn(3000, 8, generator=gen) * torch.rand(3000, 1, generator=gen) * 3
    it[10:20] = it[0]  # ties: broken by item id
    before = torch.get_num_threads()
    try:
        outs = []
        for threads, chunk in ((1, 65536), (2, 65536), (2, 13)):
            torch.set_num_threads(threads)
            outs.append(ops.topk_masked(u, it, rowptr, items, 20, chunk_items=chunk))
    finally:
        torch.set_num_threads(before)
    for vals, ids in outs[1:]:
        assert torch.equal(ids, outs[0][1]) and torch.equal(vals, outs[0][0])


@pytest.mark.parametrize("chunk", [5, 65536])
def test_cpu_ties_broken_by_item_id_whatever_the_batch(gen, chunk):
    """Equal scores from items of different norms: the CPU kernel visits items in norm order
    from 64 users on and in id order below; either way the kept items are the smallest ids."""
    rowptr, items = random_history(gen, 100, 400, max_len=30)
    u = torch.randn(100, 8, generator=gen)
    u[0] = 0.0
    u[0, 0] = 2.0  # scores 2 * it[:, 0]: exact, and tied within each level
    u[1] = 0.0  # every score is 0
    it = torch.randn(400, 8, generator=gen) * torch.rand(400, 1, generator=gen) * 4
    it[:, 0] = torch.randint(0, 3, (400,), generator=gen).float() * 0.5
    k = 20
    want = []
    for b in (0, 1):
        hist = set(items[rowptr[b]:rowptr[b + 1]].tolist())
        score = (u[b].double() @ it.double().t()).tolist()
        cand = sorted((j for j in range(400) if j not in hist), key=lambda j: (-score[j], j))
        want.append(cand[:k])
    _, whole = ops.topk_masked(u, it, rowptr, items, k, chunk_items=chunk)
    _, few = ops.topk_masked(u[:2], it, rowptr, items, k, chunk_items=chunk,
                             users=torch.arange(2))
    for b in (0, 1):
        assert whole[b].tolist() == want[b], (b, chunk)
        assert few[b].tolist() == want[b], (b, chunk)


def test_non_finite_embeddings_rank_like_topk(device, gen):
    """NaN scores rank first, as torch.topk ranks them (the CPU kernel defers to the chunked
    path for such inputs rather than dropping them)."""
    u, it, rowptr, items = _setup(gen, device)
    it[3] = float("nan")
    u[0] = 1e30  # scores overflow to +-inf
    vals, ids = ops.topk_masked(u, it, rowptr, items, 5, chunk_items=7)
    evals, eids = ref.topk_masked(u, it, rowptr, items, 5)
    assert torch.equal(vals.isnan(), evals.isnan())
    free = [b for b in range(u.shape[0]) if 3 not in items[rowptr[b]:rowptr[b + 1]].tolist()]
    assert (ids[free, 0] == 3).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision(device, gen, seed, dtype):
    u, it, rowptr, items = _setup(gen, device, dtype=dtype)
    vals, ids = ops.topk_masked(u, it, rowptr, items, 5, chunk_items=7)
    assert vals.dtype == dtype
    # Ranking by the scores the op itself returns: every returned id is unmasked and the
    # returned scores equal the same-precision reference's top-k values.
    evals, _ = ref.topk_masked(u, it, rowptr, items, 5)
    assert_close(vals, evals, seed=seed, what=f"topk {dtype}", rtol=2e-2, atol=2e-2)


def test_opcheck(device, gen):
    u, it, rowptr, items = _setup(gen, device, num_users=5, num_items=11)
    op = torch.ops.graphpro.topk_masked.default
    torch.library.opcheck(op, (u, it, rowptr, items, None, 4, 3))
    users = torch.tensor([4, 0, 4], device=device)
    torch.library.opcheck(op, (u[:3], it, rowptr, items, users, 4, 5))


def test_mask_history(device, gen, seed):
    _, _, rowptr, items = _setup(gen, device, num_users=10, num_items=30, idx=torch.int32)
    for begin, width in ((0, 30), (0, 11), (11, 8), (25, 5)):
        scores = torch.randn(10, width, generator=gen).to(device)
        orig = scores.clone()
        torch.ops.graphpro.mask_history_(scores, rowptr, items, None, begin)
        expected = orig.clone()
        for b in range(10):
            for i in items[rowptr[b]:rowptr[b + 1]].tolist():
                if begin <= i < begin + width:
                    expected[b, i - begin] = float("-inf")
        assert torch.equal(scores, expected), (begin, width, seed)
    users = torch.tensor([3, 3, 0], device=device)
    scores = torch.zeros(3, 30, device=device)
    torch.ops.graphpro.mask_history_(scores, rowptr, items, users, 0)
    for b, uu in enumerate(users.tolist()):
        hist = items[rowptr[uu]:rowptr[uu + 1]].long()
        assert torch.isneginf(scores[b, hist]).all()
        assert torch.isneginf(scores[b]).sum() == hist.numel()


def test_opcheck_mask_history(device, gen):
    _, _, rowptr, items = _setup(gen, device, num_users=6, num_items=12)
    scores = torch.randn(6, 12, generator=gen).to(device)
    torch.library.opcheck(torch.ops.graphpro.mask_history_.default,
                          (scores, rowptr, items, None, 0))
    torch.library.opcheck(torch.ops.graphpro.mask_history_.default,
                          (scores[:2, 4:].contiguous(), rowptr, items,
                           torch.tensor([5, 1], device=device), 4))


def test_mask_history_unsorted_row_on_later_chunk_stays_in_bounds(device):
    """Called directly on a later chunk (item_begin > 0), an unsorted row is not validated; the
    kernel must still never write outside its own score row (here: into the row before it)."""
    buf = torch.zeros(2, 4, device=device)
    scores = buf[1:]  # contiguous view: row 0 of buf lies just before it in memory
    rowptr = torch.tensor([0, 3], device=device)
    items = torch.tensor([1, 5, 0], device=device)  # unsorted; 0 - item_begin < 0
    try:
        torch.ops.graphpro.mask_history_(scores, rowptr, items, torch.tensor([0], device=device), 3)
    except RuntimeError as e:  # rejecting the unsorted row is fine too
        assert "not strictly increasing" in str(e)
    assert (buf[0] == 0).all(), buf


class TestBadInputs:
    def _args(self, device):
        rowptr = torch.tensor([0, 2, 3], device=device)
        items = torch.tensor([1, 3, 0], device=device)
        return torch.ones(2, 3, device=device), torch.ones(5, 3, device=device), rowptr, items

    @pytest.mark.parametrize("k", [0, -1, 6])
    def test_bad_k(self, device, k):
        u, it, rowptr, items = self._args(device)
        with pytest.raises(RuntimeError, match=r"k must be in \[1, num_items = 5\]"):
            ops.topk_masked(u, it, rowptr, items, k)

    @pytest.mark.parametrize("name,value", [("k", 2.5), ("k", True), ("chunk_items", 7.0),
                                            ("chunk_items", None)])
    def test_counts_must_be_integers(self, device, name, value):
        """Issue 9: k=2.5 used to be truncated to 2 silently."""
        u, it, rowptr, items = self._args(device)
        kw = {"k": 2, "chunk_items": 3, name: value}
        with pytest.raises(TypeError, match=rf"^graphpro\.topk_masked: {name} must be an "
                                            r"integer, got "):
            ops.topk_masked(u, it, rowptr, items, **kw)

    def test_bad_chunk(self, device):
        u, it, rowptr, items = self._args(device)
        with pytest.raises(RuntimeError, match="chunk_items must be >= 1"):
            ops.topk_masked(u, it, rowptr, items, 2, chunk_items=0)

    def test_dim_and_dtype_mismatch(self, device):
        u, it, rowptr, items = self._args(device)
        with pytest.raises(RuntimeError, match="must share d"):
            ops.topk_masked(u, it[:, :2], rowptr, items, 2)
        with pytest.raises(RuntimeError, match="must have the same dtype"):
            ops.topk_masked(u, it.double(), rowptr, items, 2)
        with pytest.raises(RuntimeError, match="user_emb must be a floating-point tensor"):
            ops.topk_masked(u.long(), it.long(), rowptr, items, 2)

    def test_history_rows_mismatch(self, device):
        u, it, rowptr, items = self._args(device)
        with pytest.raises(RuntimeError, match="without users, hist_rowptr must have"):
            ops.topk_masked(u[:1], it, rowptr, items, 2)
        with pytest.raises(RuntimeError, match="users must have one entry per row of user_emb"):
            ops.topk_masked(u, it, rowptr, items, 2, users=torch.tensor([0], device=device))

    def test_users_out_of_range(self, device):
        u, it, rowptr, items = self._args(device)
        with pytest.raises(RuntimeError, match="a user index is outside the history's rows"):
            ops.topk_masked(u, it, rowptr, items, 2, users=torch.tensor([0, 2], device=device))

    def test_unsorted_history(self, device):
        u, it, rowptr, _ = self._args(device)
        with pytest.raises(RuntimeError, match="history row is not strictly increasing"):
            ops.topk_masked(u, it, rowptr, torch.tensor([3, 1, 0], device=device), 2)

    def test_bad_history_csr(self, device):
        u, it, rowptr, items = self._args(device)
        with pytest.raises(RuntimeError, match="rowptr must be int64"):
            ops.topk_masked(u, it, rowptr.int(), items, 2)
        with pytest.raises(RuntimeError, match="col must be int32 or int64"):
            ops.topk_masked(u, it, rowptr, items.float(), 2)
        with pytest.raises(RuntimeError, match="must start at 0 and end at the number of edges"):
            ops.topk_masked(u, it, rowptr, items[:2], 2)

    def test_mask_history_bad_scores(self, device):
        _, _, rowptr, items = self._args(device)
        with pytest.raises(RuntimeError, match="scores must be contiguous"):
            torch.ops.graphpro.mask_history_(torch.zeros(5, 2, device=device).t(), rowptr, items,
                                             None, 0)
        with pytest.raises(RuntimeError, match="fewer history rows than score rows"):
            torch.ops.graphpro.mask_history_(torch.zeros(3, 5, device=device), rowptr, items,
                                             None, 0)


@pytest.mark.skipif(not cuda_usable(), reason="CPU==CUDA parity needs a GPU build")
@pytest.mark.parametrize("chunk", [7, 65536])
def test_cpu_cuda_parity(gen, seed, chunk):
    u, it, rowptr, items = _setup(gen, "cpu", num_users=40, num_items=300, dtype=torch.float64)
    users = torch.randint(40, (50,), generator=gen)
    ub = torch.randn(50, u.shape[1], generator=gen, dtype=torch.float64)
    a = ops.topk_masked(ub, it, rowptr, items, 20, chunk_items=chunk, users=users)
    b = ops.topk_masked(ub.cuda(), it.cuda(), rowptr.cuda(), items.cuda(), 20, chunk_items=chunk,
                        users=users.cuda())
    _check(b[0].cpu(), b[1].cpu(), a[0], a[1], seed, "cuda vs cpu")
    scores = torch.randn(40, 300, generator=gen)
    sc = scores.cuda()
    torch.ops.graphpro.mask_history_(scores, rowptr, items, None, 0)
    torch.ops.graphpro.mask_history_(sc, rowptr.cuda(), items.cuda(), None, 0)
    assert torch.equal(sc.cpu(), scores)


@pytest.mark.parametrize("bad", [7, -1])
def test_history_item_out_of_range_is_an_error(bad):
    hist_rowptr = torch.tensor([0, 2, 3])
    hist_items = torch.tensor([1, bad, 0]) if bad > 0 else torch.tensor([bad, 1, 0])
    with pytest.raises(RuntimeError, match=r"history item is outside \[0, num_items = 5\)"):
        ops.topk_masked(torch.randn(2, 3), torch.randn(5, 3), hist_rowptr, hist_items, 3)
