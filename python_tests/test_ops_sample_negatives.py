"""graphpro.sample_negatives: uniform draws from each user's item complement (Philox keyed by
(seed, batch position, draw index))."""

from __future__ import annotations

import pytest
import torch
from conftest import cuda_usable
from op_graphs import random_history

import graphpro_ext.ops as ops
import graphpro_ext.reference as ref

M32 = 0xFFFFFFFF


def _philox_bits(seed: int, b: int, j: int) -> int:
    """Python Philox4x32-10 mirroring csrc/common/device_math.h::sample_bits."""
    s = seed % 2**64
    c = [j & M32, (j >> 32) & M32, b & M32, (b >> 32) & M32]
    k0, k1 = s & M32, s >> 32
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        hi0, lo0, hi1, lo1 = p0 >> 32, p0 & M32, p1 >> 32, p1 & M32
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return (c[0] << 32) | c[1]


def _expected_draws(rowptr, items, users, num_items, k, seed):
    out = []
    for b, u in enumerate(users.tolist()):
        hist = items[rowptr[u]:rowptr[u + 1]].tolist()
        comp = sorted(set(range(num_items)) - set(hist))
        out.append([comp[(_philox_bits(seed, b, j) * len(comp)) >> 64] for j in range(k)])
    return torch.tensor(out, dtype=torch.int64).reshape(len(out), k)


def _setup(gen, device, num_users=30, num_items=40, batch=64, idx=torch.int64, uidx=torch.int64):
    rowptr, items = random_history(gen, num_users, num_items, index_dtype=idx)
    users = torch.randint(num_users, (batch,), generator=gen).to(uidx)
    return rowptr.to(device), items.to(device), users.to(device)


def _in_history(rowptr, items, users, out):
    rowptr, items, users, out = rowptr.cpu(), items.cpu(), users.cpu().long(), out.cpu()
    bad = 0
    for b, u in enumerate(users.tolist()):
        hist = set(items[rowptr[u]:rowptr[u + 1]].tolist())
        bad += sum(int(i) in hist for i in out[b].tolist())
    return bad


@pytest.mark.parametrize("uidx", [torch.int32, torch.int64], ids=["u32", "u64"])
@pytest.mark.parametrize("idx", [torch.int32, torch.int64], ids=["i32", "i64"])
def test_never_samples_history(device, gen, seed, idx, uidx):
    rowptr, items, users = _setup(gen, device, idx=idx, uidx=uidx)
    out = ops.sample_negatives(rowptr, items, users, 40, 25, seed)
    assert out.dtype == torch.int64 and out.shape == (64, 25) and out.device.type == device
    assert ((out >= 0) & (out < 40)).all(), seed
    assert _in_history(rowptr, items, users, out) == 0, f"history item sampled (seed={seed})"
    # The reference sampler obeys the same contract (sanity of the oracle itself).
    r = ref.sample_negatives(rowptr, items, users, 40, 5, seed)
    assert _in_history(rowptr, items, users, r) == 0


@pytest.mark.parametrize("s", [0, 12345, -7, 2**40 + 1])
def test_bit_exact_philox_stream(device, gen, seed, s):
    """Output equals an independent Python Philox4x32-10 + rank-to-item mapping, so the CPU and
    CUDA kernels are pinned to the documented stream (and to each other)."""
    rowptr, items, users = _setup(gen, device, batch=12)
    out = ops.sample_negatives(rowptr, items, users, 40, 6, s)
    exp = _expected_draws(rowptr.cpu(), items.cpu(), users.cpu(), 40, 6, s)
    assert torch.equal(out.cpu(), exp), f"seed={seed}"


def _chi2_pvalue(stat: float, dof: int) -> float:
    """P(chi2(dof) >= stat): the regularised upper incomplete gamma Q(dof/2, stat/2). Exact,
    unlike a normal approximation, whose tail is far too thin at small dof (at dof = 1 an
    "8-sigma" cut-off is exceeded with probability 5e-4)."""
    return float(torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64),
                                         torch.tensor(stat / 2.0, dtype=torch.float64)))


# A uniform sampler fails a check with this probability; far below one false alarm per CI run.
P_MIN = 1e-9


@pytest.mark.parametrize("hist_len", [0, 7, 30])
def test_uniform_over_complement(device, hist_len):
    """Chi-square goodness of fit to the uniform law on the complement (fixed seed)."""
    num_items = 41
    g = torch.Generator().manual_seed(100 + hist_len)
    hist = torch.randperm(num_items, generator=g)[:hist_len].sort().values
    rowptr = torch.tensor([0, 0, hist_len], device=device)
    items = hist.to(device)
    users = torch.ones(400, dtype=torch.int64, device=device)
    out = ops.sample_negatives(rowptr, items, users, num_items, 100, 2024).cpu().flatten()
    counts = torch.bincount(out, minlength=num_items).double()
    assert (counts[hist] == 0).all()
    comp = torch.ones(num_items, dtype=torch.bool)
    comp[hist] = False
    m = int(comp.sum())
    expected = out.numel() / m
    chi2 = float(((counts[comp] - expected) ** 2 / expected).sum())
    assert _chi2_pvalue(chi2, m - 1) > P_MIN, (chi2, m)
    # Each draw position and each batch position are uniform too (not just the pooled counts).
    first = torch.bincount(out.view(400, 100)[:, 0], minlength=num_items)[comp].double()
    chi2_first = float(((first - 400 / m) ** 2 / (400 / m)).sum())
    assert _chi2_pvalue(chi2_first, m - 1) > P_MIN, (chi2_first, m)


def test_uniform_many_users_random_seed(gen, seed):
    """Chi-square per user of a random history, fresh seed (exact p-value > P_MIN)."""
    num_items = 30
    rowptr, items = random_history(gen, 6, num_items)
    users = torch.arange(6).repeat_interleave(300)
    out = ops.sample_negatives(rowptr, items, users, num_items, 50, seed).view(6, 300 * 50)
    for u in range(6):
        hist = items[rowptr[u]:rowptr[u + 1]].long()
        counts = torch.bincount(out[u], minlength=num_items).double()
        comp = torch.ones(num_items, dtype=torch.bool)
        comp[hist] = False
        m = int(comp.sum())
        assert (counts[~comp] == 0).all()
        if m > 1:
            e = out.shape[1] / m
            chi2 = float(((counts[comp] - e) ** 2 / e).sum())
            assert _chi2_pvalue(chi2, m - 1) > P_MIN, (u, chi2, m, seed)


def test_seed_determinism(device, gen, seed):
    rowptr, items, users = _setup(gen, device)
    a = ops.sample_negatives(rowptr, items, users, 40, 10, seed)
    b = ops.sample_negatives(rowptr, items, users, 40, 10, seed)
    c = ops.sample_negatives(rowptr, items, users, 40, 10, seed + 1)
    assert torch.equal(a, b)
    assert (a != c).float().mean() > 0.5, seed


def test_keyed_by_position(device, gen, seed):
    """Draw j at batch position b depends only on (seed, b, j) and the user's row: a batch prefix
    or a smaller k gives the same numbers; repeated users get different draws."""
    rowptr, items, users = _setup(gen, device, batch=50)
    full = ops.sample_negatives(rowptr, items, users, 40, 12, seed)
    assert torch.equal(ops.sample_negatives(rowptr, items, users[:20], 40, 12, seed), full[:20])
    assert torch.equal(ops.sample_negatives(rowptr, items, users, 40, 5, seed), full[:, :5])
    # the user with the shortest history (random_history has an empty row): user 0 may have a
    # one-item complement, where every draw is that item
    shortest = int((rowptr[1:] - rowptr[:-1]).argmin())
    same = torch.full_like(users, shortest)
    rep = ops.sample_negatives(rowptr, items, same, 40, 12, seed)
    assert len({tuple(r) for r in rep.tolist()}) > 40, seed


def test_independent_of_thread_count(gen, seed):
    rowptr, items, users = _setup(gen, "cpu", batch=3000)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = ops.sample_negatives(rowptr, items, users, 40, 8, seed)
        torch.set_num_threads(2)
        b = ops.sample_negatives(rowptr, items, users, 40, 8, seed)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(a, b), seed


@pytest.mark.parametrize("missing", [1, 2])
@pytest.mark.parametrize("idx", [torch.int32, torch.int64], ids=["i32", "i64"])
def test_near_full_history(device, gen, seed, missing, idx):
    num_items = 5000
    free = torch.randperm(num_items, generator=gen)[:missing].sort().values
    keep = torch.ones(num_items, dtype=torch.bool)
    keep[free] = False
    hist = torch.arange(num_items)[keep].to(idx)
    rowptr = torch.tensor([0, hist.numel()])
    out = ops.sample_negatives(rowptr.to(device), hist.to(device),
                               torch.zeros(200, dtype=torch.int32, device=device), num_items, 30,
                               seed).cpu()
    assert set(out.flatten().tolist()) == set(free.tolist()), seed


def test_huge_item_space(device, seed):
    """num_items beyond int32 with an int64 history: draws stay in range and skip the history."""
    num_items = 2**40 + 3
    hist = torch.tensor([0, 5, 2**33, 2**40, 2**40 + 2], device=device)
    out = ops.sample_negatives(torch.tensor([0, 5], device=device), hist,
                               torch.zeros(64, dtype=torch.long, device=device), num_items, 8, seed)
    assert ((out >= 0) & (out < num_items)).all()
    assert not torch.isin(out, hist).any()
    assert out.max() > 2**39 and out.unique().numel() > 500, seed


def test_k_larger_than_complement_samples_with_replacement(device):
    rowptr = torch.tensor([0, 3], device=device)
    items = torch.tensor([0, 1, 3], device=device)
    out = ops.sample_negatives(rowptr, items, torch.tensor([0], device=device), 5, 50, 1)
    assert set(out.flatten().tolist()) == {2, 4}


def test_k_zero_and_empty_batch(device):
    rowptr = torch.tensor([0, 2], device=device)
    items = torch.tensor([0, 1], device=device)  # full history: fine when nothing is drawn
    out = ops.sample_negatives(rowptr, items, torch.tensor([0], device=device), 2, 0, 1)
    assert out.shape == (1, 0)
    no_users = torch.empty(0, dtype=torch.long, device=device)
    out = ops.sample_negatives(rowptr, items, no_users, 3, 4, 1)
    assert out.shape == (0, 4) and out.dtype == torch.int64


@pytest.mark.parametrize("big_seed", [2**63, 2**63 + 99, 2**64 - 1])
def test_seed_above_int64_folds(device, gen, big_seed):
    """Issue 9: seeds in [2**63, 2**64) used to fail with an unreadable schema error. Philox is
    keyed by the seed's 64 bits, so seed and seed - 2**64 draw the same stream, the one the
    Python Philox mirror computes for the unsigned seed."""
    rowptr, items, users = _setup(gen, device, batch=6)
    out = ops.sample_negatives(rowptr, items, users, 40, 3, big_seed)
    assert torch.equal(out, ops.sample_negatives(rowptr, items, users, 40, 3, big_seed - 2**64))
    expected = _expected_draws(rowptr.cpu(), items.cpu(), users.cpu(), 40, 3, big_seed)
    assert torch.equal(out.cpu(), expected)


def test_opcheck(device, gen):
    rowptr, items, users = _setup(gen, device, batch=8)
    torch.library.opcheck(torch.ops.graphpro.sample_negatives.default,
                          (rowptr, items, users, 40, 5, 3))
    torch.library.opcheck(torch.ops.graphpro.sample_negatives.default,
                          (rowptr, items.int(), users.int(), 40, 5, 3))


@pytest.mark.skipif(not cuda_usable(), reason="CPU==CUDA parity needs a GPU build")
def test_cpu_cuda_parity(gen, seed):
    rowptr, items, users = _setup(gen, "cpu", batch=5000)
    a = ops.sample_negatives(rowptr, items, users, 40, 16, seed)
    b = ops.sample_negatives(rowptr.cuda(), items.cuda(), users.cuda(), 40, 16, seed)
    assert torch.equal(a, b.cpu()), seed


class TestBadInputs:
    def test_full_history(self, device):
        rowptr = torch.tensor([0, 1, 4], device=device)
        items = torch.tensor([2, 0, 1, 2], device=device)
        with pytest.raises(RuntimeError, match="holds every item, so no negative item can be"):
            ops.sample_negatives(rowptr, items, torch.tensor([0, 1], device=device), 3, 4, 0)

    @pytest.mark.parametrize("row", [[2, 1, 3], [1, 1, 3]], ids=["unsorted", "duplicate"])
    def test_unsorted_or_duplicate_history(self, device, row):
        rowptr = torch.tensor([0, 3], device=device)
        with pytest.raises(RuntimeError, match="history row is not strictly increasing"):
            ops.sample_negatives(rowptr, torch.tensor(row, device=device),
                                 torch.tensor([0], device=device), 10, 4, 0)

    @pytest.mark.parametrize("user", [2, -1, 2**40])
    def test_user_out_of_range(self, device, user):
        rowptr = torch.tensor([0, 1, 2], device=device)
        with pytest.raises(RuntimeError, match="a user index is outside the history's rows"):
            ops.sample_negatives(rowptr, torch.tensor([0, 1], device=device),
                                 torch.tensor([0, user], device=device), 10, 4, 0)

    @pytest.mark.parametrize("item", [10, -1])
    def test_history_item_out_of_range(self, device, item):
        rowptr = torch.tensor([0, 2], device=device)
        items = torch.tensor([item, 11] if item < 0 else [0, item], device=device)
        with pytest.raises(RuntimeError, match=r"a history item is outside \[0, num_items\)"):
            ops.sample_negatives(rowptr, items, torch.tensor([0], device=device), 10, 4, 0)

    def test_bad_types_and_params(self, device):
        rowptr = torch.tensor([0, 1], device=device)
        items = torch.tensor([0], device=device)
        users = torch.tensor([0], device=device)
        with pytest.raises(RuntimeError, match="hist_rowptr must be a 1-D int64 tensor"):
            ops.sample_negatives(rowptr.int(), items, users, 10, 4, 0)
        with pytest.raises(RuntimeError, match="hist_items must be int32 or int64"):
            ops.sample_negatives(rowptr, items.float(), users, 10, 4, 0)
        with pytest.raises(RuntimeError, match="users must be int32 or int64"):
            ops.sample_negatives(rowptr, items, users.float(), 10, 4, 0)
        with pytest.raises(RuntimeError, match="k must be >= 0"):
            ops.sample_negatives(rowptr, items, users, 10, -1, 0)
        with pytest.raises(RuntimeError, match="num_items must be >= 1"):
            ops.sample_negatives(rowptr, items, users, 0, 4, 0)

    @pytest.mark.parametrize("name,value", [("k", 2.5), ("k", True), ("num_items", 10.0),
                                            ("num_items", None)])
    def test_counts_must_be_integers(self, device, name, value):
        """Issue 9: k=2.5 used to be truncated to 2 silently."""
        args = {"hist_rowptr": torch.tensor([0, 1], device=device),
                "hist_items": torch.tensor([0], device=device),
                "users": torch.tensor([0], device=device), "num_items": 10, "k": 4, "seed": 0}
        args[name] = value
        with pytest.raises(TypeError, match=rf"^graphpro\.sample_negatives: {name} must be an "
                                            r"integer, got "):
            ops.sample_negatives(**args)

    @pytest.mark.parametrize("bad_seed,exc", [(2**64, ValueError), (-(2**63) - 1, ValueError),
                                          (1.0, TypeError), (True, TypeError)])
    def test_bad_seed(self, device, bad_seed, exc):
        rowptr, items, users = (torch.tensor(v, device=device) for v in ([0, 1], [0], [0]))
        with pytest.raises(exc, match=r"^graphpro\.sample_negatives: seed must be an integer"):
            ops.sample_negatives(rowptr, items, users, 10, 4, bad_seed)

    def test_bad_rowptr(self, device):
        items = torch.tensor([0, 1, 2], device=device)
        users = torch.tensor([0, 1], device=device)
        with pytest.raises(RuntimeError, match="must start at 0 and end at the number of edges"):
            ops.sample_negatives(torch.tensor([0, 1, 2], device=device), items, users, 10, 4, 0)
        with pytest.raises(RuntimeError, match="rowptr is not non-decreasing"):
            ops.sample_negatives(torch.tensor([0, 3, 1, 3], device=device), items, users, 10, 4, 0)
