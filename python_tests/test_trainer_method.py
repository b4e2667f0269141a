"""GraphPro's pieces: prompt-graph sampling rates, gating (shapes, no-grad boundaries),
interpolation weights, and the metrics against hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from graphpro_ext.graphpro.data import Interactions, synthetic
from graphpro_ext.graphpro.metrics import evaluate, make_eval_set, rank_metrics
from graphpro_ext.graphpro.methods.graphpro import (interpolate, interpolation_weights,
                                                    random_gate)
from graphpro_ext.graphpro.models import EmbeddingModel
from graphpro_ext.graphpro.stages import RunConfig, Runner, prompt_rates, sample_prompt
from graphpro_ext.graphpro.train import TrainConfig, derive_seed


def test_prompt_rates():
    assert prompt_rates(0, 0.1) == []
    assert prompt_rates(3, 0.1) == pytest.approx([1.0, 0.9, 0.8])  # oldest kept whole
    assert prompt_rates(3, -0.1) == pytest.approx([0.8, 0.9, 1.0])  # newest kept whole
    assert prompt_rates(4, 0.0) == [1.0] * 4
    assert prompt_rates(4, -0.5) == pytest.approx([0.0, 0.0, 0.5, 1.0])  # clipped at 0


def test_sample_prompt_counts_and_determinism():
    snaps = [Interactions(np.arange(n), np.arange(n), np.arange(n, dtype=float))
             for n in (1000, 500, 200)]
    out = sample_prompt(snaps, -0.1, seed=5)
    assert [len(s) for s in out] == [800, 450, 200]
    again = sample_prompt(snaps, -0.1, seed=5)
    assert all(np.array_equal(a.users, b.users) for a, b in zip(out, again))
    assert len(np.unique(out[0].users)) == 800  # without replacement


def test_interpolation_weights():
    ref = interpolation_weights(4, "reference")
    assert ref.tolist() == pytest.approx([0.4, 0.3, 0.2, 0.1])  # newest first, heaviest
    assert interpolation_weights(4, "paper").tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert interpolation_weights(1).tolist() == [1.0]
    with pytest.raises(ValueError):
        interpolation_weights(2, "other")


def test_interpolate_matches_eq14():
    g = torch.Generator().manual_seed(0)
    pre = torch.randn(5, 3, generator=g)
    recent = [torch.randn(5, 3, generator=g) for _ in range(2)]
    got = interpolate(pre, recent, "reference")
    mix = 0.5 * pre + 0.5 * (2 / 3 * recent[0] + 1 / 3 * recent[1])
    assert torch.allclose(got, mix / mix.norm(dim=1, keepdim=True), atol=1e-6)
    assert torch.allclose(got.norm(dim=1), torch.ones(5), atol=1e-6)


def test_random_gate_fixed_by_generator():
    x = torch.randn(7, 8)
    a = random_gate(x, torch.Generator().manual_seed(1))
    b = random_gate(x, torch.Generator().manual_seed(1))
    c = random_gate(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.all(a.abs() <= x.abs() + 1e-7)  # a sigmoid gate only shrinks


def test_learnable_gate_shapes():
    m = EmbeddingModel(torch.randn(10, 4), 2, 0.5, gate=True,
                       generator=torch.Generator().manual_seed(0))
    assert m.gate_w.shape == (4, 4) and m.gate_b.shape == (1, 4)
    assert m.ego().shape == (10, 4)
    plain = EmbeddingModel(torch.randn(10, 4), 2, 0.5)
    assert plain.gate_w is None and plain.ego() is plain.x


@pytest.fixture(scope="module")
def tiny_runner(tmp_path_factory):
    d = synthetic(120, 80, num_topics=4, pretrain_weeks=2, num_snapshots=3, seed=2)
    cfg = RunConfig(out=str(tmp_path_factory.mktemp("run")), dim=8, layers=2, window=1,
                    sample_decay=-0.1, tau_pretrain=24, tau_finetune=24,
                    stage_train=TrainConfig(epochs=1, batch_size=256, keep_prob=0.8))
    return Runner(d, cfg)


def test_prompt_embeddings_no_grad_boundary(tiny_runner):
    """X0_n comes from a no-grad pass: training stage n never reaches the pre-trained table."""
    r = tiny_runner
    pre = torch.randn(r.nu + r.ni, 8, requires_grad=True)
    x0 = r.prompt_embeddings(2, pre)
    assert x0.shape == pre.shape and x0.grad_fn is None and not x0.requires_grad
    before = pre.detach().clone()
    train, _ = r.split(2)
    g = r.graph(train, 24)
    model = EmbeddingModel(x0, 2, 0.5, gate=True, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    rp, cols = g.user_history()
    users = torch.repeat_interleave(torch.arange(r.nu), rp[1:] - rp[:-1])[:64]
    pos = cols[:64].long()
    neg = (pos + 1) % r.ni
    loss = model.batch_loss(g, users, pos, neg, 0.8, 3, 1e-4)
    loss.backward()
    assert pre.grad is None
    assert model.x.grad is not None and model.gate_w.grad is not None
    assert model.gate_w.grad.abs().sum() > 0
    opt.step()
    assert torch.equal(pre.detach(), before)
    assert not torch.equal(model.x.detach(), x0)  # the stage's own copy moved


def test_split_and_eval_sets(tiny_runner):
    r = tiny_runner
    train, val = r.split(1)
    snap = r.data.snapshots[0]
    assert len(train) + len(val) == len(snap)
    key = lambda s: set(zip(s.users.tolist(), s.items.tolist()))  # noqa: E731
    assert not key(train) & key(val)  # held-out pairs never in the training part
    test = r.test_set(1)
    assert test.tuned is not None and test.tuned.any()
    # the mask holds everything up to and including snapshot 1
    h = key(r.history(1))
    for row, u in enumerate(test.users[:20]):
        rp, it = test.hist_rowptr, test.hist_items
        assert {(int(u), int(i)) for i in it[rp[u]:rp[u + 1]]} == {p for p in h if p[0] == u}


def test_rank_metrics_hand_computed():
    # user 0: test {3, 7}; ranked 7, 1, 3 -> hits at ranks 1 and 3
    # user 1: test {5}; ranked 2, 4, -1 -> no hit
    # user 2: test {1, 2, 4, 6} (more than k=3) ranked 6, 9, 2 -> hits at 1 and 3
    ids = np.array([[7, 1, 3], [2, 4, -1], [6, 9, 2]])
    rowptr = np.array([0, 2, 3, 7])
    items = np.array([3, 7, 5, 1, 2, 4, 6])
    recall, ndcg = rank_metrics(ids, rowptr, items, 3)
    assert recall.tolist() == pytest.approx([1.0, 0.0, 0.5])
    d = [1 / math.log2(r + 2) for r in range(3)]
    assert ndcg.tolist() == pytest.approx([(d[0] + d[2]) / (d[0] + d[1]), 0.0,
                                           (d[0] + d[2]) / sum(d)])


def test_evaluate_masks_history_against_brute_force():
    torch.manual_seed(0)
    nu, ni, k = 6, 30, 5
    emb = torch.randn(nu + ni, 4)
    hist_u, hist_i = np.array([0, 0, 0, 2, 3]), np.array([1, 2, 3, 4, 5])
    test_u, test_i = np.array([0, 0, 2, 3, 3, 5]), np.array([4, 9, 7, 5, 11, 0])
    es = make_eval_set(test_u, test_i, hist_u, hist_i, nu, tuned_users=[0, 3])
    got = evaluate(emb, nu, es, k, batch_users=2)
    scores = emb[:nu] @ emb[nu:].T
    for u, i in zip(hist_u, hist_i):
        scores[u, i] = -float("inf")
    recalls, ndcgs = [], []
    for u in (0, 2, 3, 5):
        top = scores[u].topk(k).indices.tolist()
        t = set(test_i[test_u == u].tolist())
        hits = [1.0 if i in t else 0.0 for i in top]
        recalls.append(sum(hits) / len(t))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        ndcgs.append(dcg / sum(1 / math.log2(r + 2) for r in range(min(k, len(t)))))
    assert got["recall@5"] == pytest.approx(np.mean(recalls))
    assert got["ndcg@5"] == pytest.approx(np.mean(ndcgs))
    assert got["tuned"]["users"] == 2 and got["cold"]["users"] == 2
    assert es.seen_share == pytest.approx(1 / 6)  # (3, 5) is in the history
    dropped = make_eval_set(test_u, test_i, hist_u, hist_i, nu, drop_seen=True)
    assert len(dropped.test_items) == 5


def test_derive_seed_stable():
    assert derive_seed(1, "a", 2) == derive_seed(1, "a", 2)
    assert derive_seed(1, "a", 2) != derive_seed(1, "b", 2)
    assert 0 <= derive_seed(123, "x") < 2**63


@pytest.mark.parametrize("mode", ["subgraph", "full", "auto"])
def test_batch_propagation_matches_full_graph(tiny_runner, mode):
    """Propagating over the batch's L-hop subgraph (or the active nodes only) gives the loss and
    gradients of the naive full-graph loss (keep_prob 1: the dropout hash is keyed by node ids,
    which both renumber). The batch mixes nodes with and without edges in the stage's graph."""
    from graphpro_ext.graphpro import backend

    r = tiny_runner
    g = r.graph(r.split(1)[0], 24)
    deg = g.rowptr[1:] - g.rowptr[:-1]
    isolated_items = torch.nonzero(deg[r.nu:] == 0).flatten()
    assert isolated_items.numel() > 0
    torch.manual_seed(0)
    m = EmbeddingModel(torch.randn(r.nu + r.ni, 8, dtype=torch.float64), 2, 0.5, gate=True,
                       generator=torch.Generator().manual_seed(1)).double()
    users, pos = torch.tensor([0, 3, 5, 3]), torch.tensor([1, r.ni - 1, 2, 6])
    neg = torch.tensor([4, 0, int(isolated_items[0]), 7])
    loss = m.batch_loss(g, users, pos, neg, 1.0, 11, 1e-3, mode=mode)
    loss.backward()
    gx, gw = m.x.grad.clone(), m.gate_w.grad.clone()
    m.x.grad = m.gate_w.grad = None
    # the same loss written naively over the full graph
    out = backend.lightgcn(g, m.ego(), 2, 0.5, 1.0, 11)
    u, i, j = out[users], out[r.nu + pos], out[r.nu + neg]
    ref = -torch.log(1e-10 + torch.sigmoid((u * i).sum(1) - (u * j).sum(1))).mean()
    ref = ref + 1e-3 * 0.5 * (m.x[users].pow(2).sum() + m.x[r.nu + pos].pow(2).sum()
                              + m.x[r.nu + neg].pow(2).sum()) / 4
    ref.backward()
    assert torch.allclose(loss, ref, rtol=1e-12)
    assert torch.allclose(gx, m.x.grad, atol=1e-10) and gx.abs().sum() > 0
    assert torch.allclose(gw, m.gate_w.grad, atol=1e-10)
    assert torch.allclose(m(g, 1.0, 11), out, atol=1e-10)


def test_auto_mode_decides_once_and_reuses_the_first_subgraph(monkeypatch):
    """On a graph of many small components a batch's neighbourhood is tiny, so ``auto`` picks
    the subgraph; the deciding batch reuses the subgraph it extracted (one extraction, not two)
    and every call gives the explicit subgraph mode's loss."""
    from graphpro_ext.graph import TemporalGraph
    from graphpro_ext.graphpro import backend

    n = 40  # users 2k and 2k+1 share item 2k and nothing else: 20 three-node components
    users = torch.arange(n)
    items = torch.where(users % 2 == 0, users, users - 1)
    g = TemporalGraph.from_interactions(users, items, torch.arange(n, dtype=torch.float64) * 3600,
                                        n, n)
    m = EmbeddingModel(torch.randn(2 * n, 8, dtype=torch.float64), 2, 0.5).double()
    calls = []
    real = backend.khop_subgraph
    monkeypatch.setattr(backend, "khop_subgraph", lambda *a: calls.append(1) or real(*a))
    u, i, j = torch.tensor([0, 5]), torch.tensor([0, 4]), torch.tensor([10, 12])
    first = m.batch_loss(g, u, i, j, 1.0, 3, 1e-3, mode="auto")
    assert m.planner.decided(g) == {(6, 2, 0.8): "subgraph"} and len(calls) == 1
    assert not {"_batch_mode", "_compact"} & set(vars(g))  # plans live in the planner
    second = m.batch_loss(g, u, i, j, 1.0, 3, 1e-3, mode="auto")
    assert len(calls) == 2  # decided: one extraction per batch from now on
    explicit = m.batch_loss(g, u, i, j, 1.0, 3, 1e-3, mode="subgraph")
    full = m.batch_loss(g, u, i, j, 1.0, 3, 1e-3, mode="full")
    assert first.item() == second.item() == explicit.item()
    assert torch.allclose(first, full, rtol=1e-12)


def test_auto_share_threshold_decides_per_share():
    """A batch whose 2-hop subgraph reaches 65% of the nodes with edges: ``auto`` (share 0.8)
    takes the subgraph, ``auto:0.5`` (how runs before --auto-share decided) the whole graph,
    each decision cached under its own share; malformed modes are refused."""
    from graphpro_ext.graph import TemporalGraph
    from graphpro_ext.graphpro.planning import auto_mode

    n = 40  # 20 components: users 2k and 2k+1 and item 2k
    users = torch.arange(n)
    items = torch.where(users % 2 == 0, users, users - 1)
    g = TemporalGraph.from_interactions(users, items, torch.arange(n, dtype=torch.float64) * 3600,
                                        n, n)
    m = EmbeddingModel(torch.randn(2 * n, 8, dtype=torch.float64), 2, 0.5).double()
    comp = torch.arange(13) * 2  # 13 of the 20 components: 39 of 60 nodes with edges
    u, i, j = comp, comp, comp
    losses = {mode: m.batch_loss(g, u, i, j, 1.0, 3, 1e-3, mode=mode)
              for mode in ("auto", auto_mode(0.5), "subgraph", "full")}
    assert m.planner.decided(g) == {(39, 2, 0.8): "subgraph", (39, 2, 0.5): "full"}
    assert losses["auto"].item() == losses["subgraph"].item()
    assert losses[auto_mode(0.5)].item() == losses["full"].item()
    for bad in ("auto:0", "auto:1.5", "auto:x", "full:0.5", "sub"):
        with pytest.raises(ValueError):
            m.batch_loss(g, u, i, j, 1.0, 3, 1e-3, mode=bad)


@pytest.mark.parametrize("mode", ["subgraph", "full"])
def test_batch_gradient_accumulates_like_autograd(tiny_runner, mode):
    """The embedding gradient is added into x.grad in place: a second backward accumulates, and
    zero_grad(set_to_none=False) followed by backward gives a fresh gradient."""
    r = tiny_runner
    g = r.graph(r.split(1)[0], 24)
    m = EmbeddingModel(torch.randn(r.nu + r.ni, 8, dtype=torch.float64), 2, 0.5).double()
    users, pos, neg = torch.tensor([0, 3]), torch.tensor([1, 2]), torch.tensor([4, 0])

    def step():
        m.batch_loss(g, users, pos, neg, 0.7, 5, 1e-3, mode=mode).backward()

    step()
    once = m.x.grad.clone()
    step()
    assert torch.allclose(m.x.grad, 2 * once)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    opt.zero_grad(set_to_none=False)
    step()
    assert torch.allclose(m.x.grad, once)
    with pytest.raises(ValueError, match="batch graph mode must be"):
        m.batch_loss(g, users, pos, neg, 0.7, 5, 1e-3, mode="khop")


