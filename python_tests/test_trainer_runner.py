"""The GraphPro protocol at the Runner level, against values computed independently in the test.

Every expected value here is rebuilt from the data and the seeds with plain numpy / dense float64
torch (no trainer helper): the prompt graph (eq. 8) and its propagation (eqs. 5-6, 10), the random
gate (eq. 9), the learnable gate (eq. 11), the interpolative update (eq. 14) over the saved
``x_<n>.pt`` tables, the validation / test EvalSets, the negatives' exclusion set and the
tuned/cold split of the metrics. ``scripts/mutation_check.py`` plants known bugs in the trainer
one at a time and checks that this file (with test_trainer_method.py) catches each of them.

The stage tests run stages 1..3 of ``graphpro`` with window 2 (so the interpolative update runs at
stage 3), observing what each stage hands to ``fit`` (start table, training graph, negatives'
history, selection set) through a pass-through wrapper. Prompt sampling at a fractional rate is
recomputed from the documented seed keys (``derive_seed(seed, "prompt-stage", n)``, then
``derive_seed(that, "prompt", k)`` per earlier snapshot k, exact count without replacement): a
change of those keys changes every run's results and must update the test too.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from graphpro_ext.graphpro import backend, stages
from graphpro_ext.graphpro.data import Interactions, synthetic
from graphpro_ext.graphpro.metrics import evaluate, make_eval_set
from graphpro_ext.graphpro.methods.graphpro import random_gate
from graphpro_ext.graphpro.models import EmbeddingModel
from graphpro_ext.graphpro.stages import RunConfig, Runner
from graphpro_ext.graphpro.train import TrainConfig, derive_seed

DIM, LAYERS, TW = 8, 2, 0.5
TAU_PRE, TAU_FT = 24.0, 6.0  # distinct, so a prompt graph built with the wrong tau shows
SEED = 11


# ---------------------------------------------------------------------------------------------
# Independent references (dense float64, written from the paper / docs/TRAINER.md)
# ---------------------------------------------------------------------------------------------
def merged_pairs(users, items, times=None) -> dict:
    """{(u, i): latest time} (repeated pairs merged, latest time kept)."""
    out: dict = {}
    times = np.zeros(len(users)) if times is None else times
    for u, i, t in zip(np.asarray(users).tolist(), np.asarray(items).tolist(),
                       np.asarray(times).tolist()):
        if (u, i) not in out or t > out[(u, i)]:
            out[(u, i)] = t
    return out


def pair_set(inter: Interactions) -> set:
    return set(zip(inter.users.tolist(), inter.items.tolist()))


def cat(parts: list[Interactions]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.concatenate([p.users for p in parts]), np.concatenate([p.items for p in parts]),
            np.concatenate([p.times for p in parts]))


def dense_operator(users, items, times, nu, ni, tau_hours, tw) -> torch.Tensor:
    """GraphPro's layer operator as a dense [N, N] float64 matrix:
    ``tw * softmax_row(edge time) + (1 - tw) / sqrt(d_r d_c)`` over the symmetric user-item graph,
    edge time = ``1 + floor((t - min t) / tau)`` min-max normalised over the graph's edges (the
    origin is the earliest input time, before repeated pairs are merged)."""
    n = nu + ni
    t0 = float(np.min(times)) if len(times) else 0.0
    pairs = merged_pairs(users, items, times)
    steps = {p: 1 + math.floor((t - t0) / (tau_hours * 3600.0)) for p, t in pairs.items()}
    lo, hi = (min(steps.values()), max(steps.values())) if steps else (0, 0)
    adj = torch.zeros(n, n, dtype=torch.float64)
    tm = torch.full((n, n), float("-inf"), dtype=torch.float64)
    for (u, i), s in steps.items():
        tn = float(np.float32((s - lo) / (hi - lo))) if hi > lo else 0.0  # stored as float32
        adj[u, nu + i] = adj[nu + i, u] = 1.0
        tm[u, nu + i] = tm[nu + i, u] = tn
    deg = adj.sum(1)
    norm = torch.where(deg > 0, deg.clamp(min=1).rsqrt(), torch.zeros_like(deg))
    soft = torch.nan_to_num(torch.softmax(tm, dim=1), nan=0.0)  # rows without edges: 0
    return tw * soft + (1 - tw) * norm[:, None] * adj * norm[None, :]


def dense_propagate(op: torch.Tensor, x: torch.Tensor, layers: int) -> torch.Tensor:
    """sum_{l=0..L} A^l x in float64."""
    cur = out = x.double()
    for _ in range(layers):
        cur = op @ cur
        out = out + cur
    return out


def gate_eq9(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Eq. (9) by hand: W [d, d] then b [1, d] drawn N(0, 1) from a generator seeded ``seed``,
    each row scaled to unit L2 norm; ``x * sigmoid(x W + b)``."""
    d = x.shape[1]
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, d, generator=g).double()
    b = torch.randn(1, d, generator=g).double()
    w = w / w.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    xd = x.double()
    return xd * torch.sigmoid(xd @ w + b)


def eq8_sample(snaps: list[Interactions], phi: float, seed: int) -> list[Interactions]:
    """Eq. (8) by hand: rates 1, 1-|phi|, 1-2|phi|, ... (clipped at 0) from the oldest snapshot
    when phi > 0, from the newest when phi < 0; exact count round(rate * len) without
    replacement, drawn with the documented seed keys."""
    m = len(snaps)
    out = []
    for k, s in enumerate(snaps):
        steps_from_kept_end = k if phi >= 0 else m - 1 - k
        rate = max(0.0, 1.0 - abs(phi) * steps_from_kept_end)
        take = round(rate * len(s))
        if take in (0, len(s)):  # no draw needed: all or nothing
            out.append(s.subset(np.arange(take)))
            continue
        rng = np.random.default_rng(derive_seed(seed, "prompt", k))
        out.append(s.subset(np.sort(rng.choice(len(s), take, replace=False))))
    return out


def expected_x0(data, n: int, start: torch.Tensor, phi: float, seed: int) -> torch.Tensor:
    """X0 of stage n: eq. (9) gate of ``start`` propagated (eq. 10, temporal prompt, no dropout)
    over the pre-training graph plus snapshots 1..n-1 sampled by eq. (8), tau of pre-training."""
    prev = eq8_sample(data.snapshots[:n - 1], phi, derive_seed(seed, "prompt-stage", n))
    u, i, t = cat([data.pretrain, *prev])
    op = dense_operator(u, i, t, data.num_users, data.num_items, TAU_PRE, TW)
    return dense_propagate(op, gate_eq9(start, derive_seed(seed, "random-gate", n)), LAYERS)


def assert_table_close(got: torch.Tensor, want: torch.Tensor, what: str, atol=2e-5):
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    err = (got - want).abs().max().item()
    assert err <= atol + 1e-5 * want.abs().max().item(), f"{what}: max abs error {err:.3g}"


def tiny_data():
    # 120 users, 80 items, 2 pre-training weeks + 4 weekly snapshots = 3 stages; many repeated
    # pairs inside snapshots (merged when graphs are built)
    return synthetic(120, 80, num_topics=4, pretrain_weeks=2, num_snapshots=4, seed=3)


def runner(out, **kw) -> Runner:
    base = {"out": str(out), "methods": ["graphpro"], "dim": DIM, "layers": LAYERS,
            "time_weight": TW, "tau_pretrain": TAU_PRE, "tau_finetune": TAU_FT, "window": 2,
            "sample_decay": -0.5, "val_frac": 0.2, "seed": SEED,
            "stage_train": TrainConfig(epochs=1, batch_size=256, keep_prob=0.8, eval_batch=64,
                                       seed=SEED)}
    base.update(kw)
    return Runner(tiny_data(), RunConfig(**base))


# ---------------------------------------------------------------------------------------------
# The reference itself, checked once against the graph builder + fused op
# ---------------------------------------------------------------------------------------------
def test_dense_reference_matches_graph_and_op():
    from graphpro_ext.graph import TemporalGraph

    d = tiny_data()
    u, i, t = cat([d.pretrain, d.snapshots[0]])
    x = torch.randn(d.num_users + d.num_items, DIM, generator=torch.Generator().manual_seed(1))
    g = TemporalGraph.from_interactions(u, i, t, d.num_users, d.num_items, tau_hours=TAU_PRE)
    got = backend.lightgcn(g, x, LAYERS, TW, 1.0, 0)
    want = dense_propagate(dense_operator(u, i, t, d.num_users, d.num_items, TAU_PRE, TW), x,
                           LAYERS)
    assert_table_close(got, want, "lightgcn vs dense reference")


# ---------------------------------------------------------------------------------------------
# Gates
# ---------------------------------------------------------------------------------------------
def test_random_gate_is_eq9_with_unit_rows():
    """Kills: random gate without row normalisation (W or b)."""
    x = torch.randn(9, 6, generator=torch.Generator().manual_seed(4)) * 3  # large: saturation shows
    for s in (0, 5, 2023):
        got = random_gate(x, torch.Generator().manual_seed(s))
        assert_table_close(got, gate_eq9(x, s), f"random_gate seed {s}", atol=1e-6)


@pytest.mark.parametrize("sharded", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_in_place_gate_equals_the_plain_expression(sharded, grad, seed):
    """``sigmoid_gate`` gives ``x * sigmoid(full W + b)`` bit for bit, forward and gradients,
    with and without autograd; ``sharded``: x holds some columns of ``full`` and W's columns
    match them (a column shard's gate)."""
    from graphpro_ext.graphpro.models.base import sigmoid_gate

    gen = torch.Generator().manual_seed(seed)
    full = torch.randn(50, 8, generator=gen) * 3
    w, b = torch.randn(8, 8, generator=gen), torch.randn(1, 8, generator=gen)
    cols = slice(2, 5) if sharded else slice(0, 8)
    x, w, b = full[:, cols].clone(), w[:, cols].clone(), b[:, cols].clone()
    ins = [t.clone().requires_grad_(grad) for t in (x, w, b)]
    ref = [t.clone().requires_grad_(grad) for t in (x, w, b)]
    with torch.set_grad_enabled(grad):
        got = sigmoid_gate(*ins, full if sharded else None)
        want = ref[0] * torch.sigmoid((full if sharded else ref[0]) @ ref[1] + ref[2])
    assert torch.equal(got, want)
    if grad:
        g = torch.randn(got.shape, generator=gen)
        (got * g).sum().backward()
        (want * g).sum().backward()
        for a, r in zip(ins, ref):
            assert torch.equal(a.grad, r.grad)


def test_learnable_gate_is_eq11():
    """X0 * sigmoid(X0 W + b) with W, b xavier-uniform, and the forward propagates the gated
    table over the graph."""
    d = tiny_data()
    nu, ni = d.num_users, d.num_items
    x = torch.randn(nu + ni, DIM, generator=torch.Generator().manual_seed(2))
    m = EmbeddingModel(x, LAYERS, TW, gate=True, generator=torch.Generator().manual_seed(3))
    w, b = m.gate_w.detach().double(), m.gate_b.detach().double()
    assert w.shape == (DIM, DIM) and b.shape == (1, DIM)
    assert w.abs().max() <= math.sqrt(6 / (2 * DIM)) and b.abs().max() <= math.sqrt(6 / (1 + DIM))
    assert w.std() > 0.2 * math.sqrt(6 / (2 * DIM)) / math.sqrt(3)  # not degenerate
    ego = x.double() * torch.sigmoid(x.double() @ w + b)
    assert_table_close(m.ego(), ego, "learnable gate", atol=1e-6)
    s = d.snapshots[0]
    from graphpro_ext.graph import TemporalGraph

    g = TemporalGraph.from_interactions(s.users, s.items, s.times, nu, ni, tau_hours=TAU_FT)
    x0 = m.x.detach().clone()
    with torch.no_grad():
        got = m(g)  # writes the propagated rows into the gate's fresh table, in place
    want = dense_propagate(dense_operator(s.users, s.items, s.times, nu, ni, TAU_FT, TW), ego,
                           LAYERS)
    assert_table_close(got, want, "gated forward")
    assert torch.equal(m.x.detach(), x0)
    assert torch.equal(m(g).detach(), got)  # with autograd: the out-of-place path
    ungated = EmbeddingModel(x.clone(), LAYERS, TW)
    with torch.no_grad():
        ungated(g)
    assert torch.equal(ungated.x.detach(), x)  # no gate: the table itself is never written


# ---------------------------------------------------------------------------------------------
# Prompt graph (eq. 8) without training: rates 0 / 1 need no random draw
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("phi,kept", [(-1.0, [2]), (1.0, [1]), (0.0, [1, 2])])
def test_prompt_embeddings_keep_the_right_snapshots(tmp_path, phi, kept):
    """Stage 3's prompt graph is the pre-training graph plus snapshots 1..2 sampled by eq. (8):
    phi = -1 keeps only the newest (2), +1 only the oldest (1), 0 both; never snapshot 3 itself.
    Kills: prompt graph including snapshot n, decay sign flipped, missing gate normalisation."""
    r = runner(tmp_path, sample_decay=phi)
    d = r.data
    start = torch.randn(r.nu + r.ni, DIM, generator=torch.Generator().manual_seed(6))
    got = r.prompt_embeddings(3, start)
    u, i, t = cat([d.pretrain, *[d.snapshots[k - 1] for k in kept]])
    op = dense_operator(u, i, t, r.nu, r.ni, TAU_PRE, TW)
    want = dense_propagate(op, gate_eq9(start, derive_seed(SEED, "random-gate", 3)), LAYERS)
    assert_table_close(got, want, f"X0 of stage 3 with phi={phi}")
    # stage 1: the pre-training graph alone
    got1 = r.prompt_embeddings(1, start)
    op1 = dense_operator(d.pretrain.users, d.pretrain.items, d.pretrain.times, r.nu, r.ni,
                         TAU_PRE, TW)
    want1 = dense_propagate(op1, gate_eq9(start, derive_seed(SEED, "random-gate", 1)), LAYERS)
    assert_table_close(got1, want1, "X0 of stage 1")


# ---------------------------------------------------------------------------------------------
# Stages 1..3 with window 2, observed at the hand-over to fit()
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    out = tmp_path_factory.mktemp("stages")
    r = runner(out)
    pre = torch.randn(r.nu + r.ni, DIM, generator=torch.Generator().manual_seed(8)) * 0.3
    pretrained = {"graphpro": {"x": pre}}
    fits, negs = [], []
    real_fit, real_neg = stages.fit, backend.sample_negatives

    def spy_fit(model, graph, neg_hist, select, *a, **k):
        fits.append({"x": model.x.detach().clone(),
                     "gated": getattr(model, "gate_w", None) is not None, "graph": graph,
                     "neg_hist": (neg_hist[0].clone(), neg_hist[1].clone()), "select": select})
        return real_fit(model, graph, neg_hist, select, *a, **k)

    def spy_neg(hist_rowptr, hist_items, users, num_items, k, seed):
        res = real_neg(hist_rowptr, hist_items, users, num_items, k, seed)
        negs.append((len(fits), users.clone(), res.clone()))
        return res

    xdir = os.path.join(r.ckpt, "graphpro")
    saved, starts, results = {}, {}, {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stages, "fit", spy_fit)
        mp.setattr(backend, "sample_negatives", spy_neg)
        for n in (1, 2, 3):
            starts[n] = r.start_embeddings("graphpro", n, pre)
            for k in range(1, n):  # the tables eq. (14) may read, as they are on disk now
                p = os.path.join(xdir, f"x_{k}.pt")
                if os.path.exists(p):
                    saved[k] = torch.load(p, weights_only=True)["x"]
            results[n] = r.stage("graphpro", n, pretrained)
    assert len(fits) == 3, "Runner.stage no longer calls stages.fit: update the spy"
    assert negs, "fit no longer calls backend.sample_negatives: update the spy"
    return {"r": r, "pre": pre, "fits": fits, "negs": negs, "saved": saved, "starts": starts,
            "results": results, "files": sorted(os.listdir(xdir))}


def test_interpolative_update_newest_first(staged):
    """Window 2: stages 1 and 2 start from the pre-trained table; stage 3 from
    normalize(0.5 X_pre + 0.5 (2/3 x_2 + 1/3 x_1)), x_n read from the saved files (reference
    order: the newest stage weighs most). Kills: oldest-first order, interpolation one stage
    late."""
    pre, starts, saved = staged["pre"], staged["starts"], staged["saved"]
    assert torch.equal(starts[1], pre) and torch.equal(starts[2], pre)
    assert set(saved) == {1, 2}, f"x_1.pt / x_2.pt missing before stage 3: {sorted(saved)}"
    x1, x2 = saved[1].double(), saved[2].double()
    assert not torch.allclose(x1, x2)  # the two stages trained different tables
    mix = 0.5 * pre.double() + 0.5 * (2 / 3 * x2 + 1 / 3 * x1)
    want = mix / mix.norm(dim=1, keepdim=True)
    assert_table_close(starts[3], want, "start of stage 3", atol=1e-6)
    # the window keeps the last 2 tables on disk
    tables = [f for f in staged["files"] if f.startswith("x_")]
    assert tables == ["x_2.pt", "x_3.pt"], staged["files"]


def test_stage_x0_is_gated_prompt_propagation(staged):
    """The table each stage trains starts at X0_n: eq. (9) gate of its start embeddings (the
    pre-trained table, or eq. (14) from the saved tables at stage 3) propagated over the
    pre-training graph plus snapshots 1..n-1 sampled by eq. (8) with phi = -0.5 (stage 3: half
    of snapshot 1, all of snapshot 2). Kills: every bug in the start / prompt / gate chain."""
    r, pre, saved = staged["r"], staged["pre"], staged["saved"]
    mix = 0.5 * pre.double() + 0.5 * (2 / 3 * saved[2].double() + 1 / 3 * saved[1].double())
    hand_start = {1: pre, 2: pre, 3: (mix / mix.norm(dim=1, keepdim=True)).float()}
    for n in (1, 2, 3):
        rec = staged["fits"][n - 1]
        want = expected_x0(r.data, n, hand_start[n], -0.5, SEED)
        assert_table_close(rec["x"], want, f"X0 of stage {n}")
        # and the learnable gate (eq. 11) sits on top of it while fine-tuning
        assert rec["gated"]


def test_stage_trains_on_the_training_part_only(staged):
    """Stage n's training graph holds exactly snapshot n's non-held-out pairs; the split is a
    partition of the snapshot's distinct pairs with round(val_frac * pairs) held out."""
    r = staged["r"]
    for n in (1, 2, 3):
        snap = r.data.snapshots[n - 1]
        train, val = r.split(n)
        allp = pair_set(snap)
        assert len(train) + len(val) == len(snap)
        assert pair_set(train) | pair_set(val) == allp and not pair_set(train) & pair_set(val)
        assert len(pair_set(val)) == round(0.2 * len(allp))
        g = staged["fits"][n - 1]["graph"]
        rp, cols = g.user_history()
        got = {(u, int(c)) for u in range(r.nu) for c in cols[rp[u]:rp[u + 1]].tolist()}
        assert got == pair_set(train), f"stage {n} training graph"


def hist_rows(rowptr, items, nu) -> set:
    rp, it = rowptr.cpu().numpy(), items.cpu().numpy()
    return {(u, int(c)) for u in range(nu) for c in it[rp[u]:rp[u + 1]]}


def eval_rows(es) -> set:
    return {(int(u), int(c)) for k, u in enumerate(es.users)
            for c in es.test_items[es.test_rowptr[k]:es.test_rowptr[k + 1]]}


def test_validation_set_masks_history_but_not_heldout(staged):
    """Selection (--select-on val) ranks the held-out pairs of snapshot n with the history up to
    snapshot n-1 plus the training part of n masked: the held-out pairs are the test rows and are
    not masked (unless they already occurred before snapshot n). Kills: a validation mask that
    hides the held-out items (selection stuck at epoch 0)."""
    r = staged["r"]
    d = r.data
    for n in (1, 2, 3):
        train, val = r.split(n)
        before = set().union(pair_set(d.pretrain), *[pair_set(s) for s in d.snapshots[:n - 1]])
        for es in (staged["fits"][n - 1]["select"], r.select_set(n, r.test_set(n))):
            assert eval_rows(es) == pair_set(val)
            masked = hist_rows(es.hist_rowptr, es.hist_items, r.nu)
            assert masked == before | pair_set(train), f"stage {n} validation mask"
            new_val = pair_set(val) - before
            assert new_val and not masked & new_val
    # and selection can pick any epoch: it scored the held-out pairs above zero somewhere
    assert any(res["select"]["recall@20"] > 0 for res in staged["results"].values())


def test_test_set_masks_everything_up_to_snapshot_n(staged):
    r = staged["r"]
    d = r.data
    for n in (1, 2, 3):
        es = r.test_set(n)
        assert eval_rows(es) == pair_set(d.snapshots[n])
        hist = set().union(pair_set(d.pretrain), *[pair_set(s) for s in d.snapshots[:n]])
        assert hist_rows(es.hist_rowptr, es.hist_items, r.nu) == hist
        train_users = set(r.split(n)[0].users.tolist())
        assert es.tuned.tolist() == [int(u) in train_users for u in es.users]


def test_stage_negatives_avoid_heldout_items(staged):
    """Negatives at stage n avoid all of the user's snapshot-n items, held-out ones included (a
    held-out item drawn as a negative is pushed down, then ranked in validation). Checked on the
    history handed to fit, on every negative fit drew, and on 64 fresh draws per held-out pair
    over that history. Kills: negatives allowed to be held-out validation items."""
    r = staged["r"]
    for n in (1, 2, 3):
        train, val = r.split(n)
        rp, items = staged["fits"][n - 1]["neg_hist"]
        avoid = hist_rows(rp, items, r.nu)
        assert avoid == pair_set(train) | pair_set(val), f"stage {n} negatives' history"
        drawn = [(u, j) for s, us, out in staged["negs"] if s == n
                 for u, row in zip(us.tolist(), out.tolist()) for j in row]
        assert drawn and not set(drawn) & (pair_set(train) | pair_set(val))
        vu = torch.as_tensor(val.users, dtype=torch.int64)
        fresh = backend.sample_negatives(rp, items, vu, r.ni, 64, 99 + n)
        hits = {(u, j) for u, row in zip(vu.tolist(), fresh.tolist()) for j in row}
        assert not hits & pair_set(val), f"stage {n}: held-out items drawn as negatives"


def test_stage_reports_tuned_and_cold_users(staged):
    """The stage's tuned group is the test users with training data in snapshot n."""
    r = staged["r"]
    for n, res in staged["results"].items():
        test_users = set(r.data.snapshots[n].users.tolist())
        tuned = test_users & set(r.split(n)[0].users.tolist())
        assert res["users"] == len(test_users)
        assert res["tuned"]["users"] == len(tuned) and res["cold"]["users"] == len(
            test_users - tuned)
        assert 0 < len(tuned) != len(test_users - tuned), "equal groups: a swap would not show"


# ---------------------------------------------------------------------------------------------
# Tuned / cold metrics on a hand-built case
# ---------------------------------------------------------------------------------------------
def test_evaluate_tuned_and_cold_by_construction():
    """5 users (3 tuned, 2 cold), 6 items with one-hot embeddings, so a user's scores are its
    own embedding; k = 2. Expected recall/NDCG per user worked out by hand.
    Kills: tuned and cold groups swapped."""
    nu, ni, k = 5, 6, 2
    scores = torch.tensor([
        [9., 8., 1., 2., 3., 4.],  # u0 tuned, test {0, 1}: top 0, 1 -> recall 1, ndcg 1
        [1., 2., 9., 3., 4., 5.],  # u1 tuned, test {2}: top 2, 5 -> recall 1, ndcg 1
        [1., 2., 3., 9., 4., 8.],  # u2 tuned, test {3, 4}: top 3, 5 -> recall .5, ndcg d1/(d1+d2)
        [1., 2., 3., 4., 9., 8.],  # u3 cold, test {0}: top 4, 5 -> 0
        [7., 8., 1., 2., 3., 9.],  # u4 cold, test {1, 2}, 5 masked: top 1, 0 -> .5, d1/(d1+d2)
    ], dtype=torch.float32)
    emb = torch.cat([scores, torch.eye(ni)])
    test_u = np.array([0, 0, 1, 2, 2, 3, 4, 4])
    test_i = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    es = make_eval_set(test_u, test_i, np.array([4]), np.array([5]), nu, tuned_users=[0, 1, 2])
    got = evaluate(emb, nu, es, k, batch_users=2)
    half = 1.0 / (1.0 + 1.0 / math.log2(3))
    assert got["recall@2"] == pytest.approx((1 + 1 + .5 + 0 + .5) / 5)
    assert got["tuned"]["users"] == 3 and got["cold"]["users"] == 2
    assert got["tuned"]["recall@2"] == pytest.approx(2.5 / 3)
    assert got["tuned"]["ndcg@2"] == pytest.approx((1 + 1 + half) / 3)
    assert got["cold"]["recall@2"] == pytest.approx(0.25)
    assert got["cold"]["ndcg@2"] == pytest.approx(half / 2)
    # a group with no users reports None, not a number
    solo = make_eval_set(test_u, test_i, np.array([4]), np.array([5]), nu, tuned_users=[])
    out = evaluate(emb, nu, solo, k)
    assert out["tuned"]["users"] == 0 and out["tuned"]["recall@2"] is None
    assert out["cold"]["recall@2"] == pytest.approx(got["recall@2"])
