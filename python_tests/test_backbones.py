"""The SGL, SimGCL and MixGCF backbones (models/): their losses against independent plain-PyTorch
formulations, gradients through the fused ops equal to the reference ops', the two batch scopes
agreeing, determinism for a seed, and a tiny end-to-end run with each as GraphPro's pre-training
backbone and as `graphpro train --model`."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphpro_ext.graph import TemporalGraph
from graphpro_ext.graphpro import backend, models
from graphpro_ext.graphpro.cli import main
from graphpro_ext.graphpro.models.base import first_of_each, info_nce, positions_in
from graphpro_ext.graphpro.planning import BatchPlanner
from graphpro_ext.graphpro.runtime import derive_seed

BACKBONES = ["sgl", "simgcl", "mixgcf"]


def _graph(seed, nu=40, ni=30, n=300):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, nu, n), rng.integers(0, ni, n)
    t = 1.6e9 + rng.uniform(0, 30 * 86400, n)
    return TemporalGraph.from_interactions(u, i, t, nu, ni, tau_hours=24.0)


def _batch(g, seed, b=16, m=1):
    rng = np.random.default_rng(seed + 1)
    rp, cols = g.user_history()
    pu = np.repeat(np.arange(g.num_users), np.diff(rp.numpy()))
    pick = rng.choice(pu.size, b, replace=False)
    users, pos = torch.from_numpy(pu[pick]), cols.long()[pick]
    neg = backend.sample_negatives(rp, cols, users, g.num_items, m, seed)
    return users, pos, neg[:, 0] if m == 1 else neg


def _model(name, g, seed, tw=0.5):
    gen = torch.Generator().manual_seed(seed)
    x = models.model_class(name).init_table(g.num_users, g.num_items, 8, gen).double()
    return models.build(name, x, 2, tw, planner=BatchPlanner())


def test_info_nce_and_first_of_each_by_hand(seed):
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    want = 0.0
    for i in range(5):
        sims = [float(F.cosine_similarity(a[i], b[j], dim=0)) / 0.3 for j in range(5)]
        want += -sims[i] + np.log(np.sum(np.exp(sims)))
    assert abs(float(info_nce(a, b, 0.3)) - want / 5) < 1e-5
    ids = torch.tensor([7, 3, 7, 1, 3, 9])
    assert first_of_each(ids).tolist() == [3, 1, 0, 5]


def test_positions_in_equals_searchsorted(seed):
    """The scatter-map lookup of the batch rows in a scope's nodes gives searchsorted's answer,
    with repeated ids, ids at both ends of the id range and a scope of one node."""
    gen = torch.Generator().manual_seed(seed)
    for size, n, r in [(50, 20, 60), (1000, 999, 5), (7, 1, 4), (300, 300, 900)]:
        nodes = torch.randperm(size, generator=gen)[:n].sort().values
        ids = nodes[torch.randint(0, n, (r,), generator=gen)]
        ids[0] = nodes[-1]
        want = torch.searchsorted(nodes, ids)
        assert torch.equal(positions_in(nodes, ids, size), want)
        assert torch.equal(nodes[positions_in(nodes, ids, size)], ids)


def test_simgcl_noise_is_the_keyed_op_layer_by_layer(seed):
    """``eps_noise`` perturbs layer k of a view with ``simgcl_perturb`` keyed by
    ``derive_seed(view_seed, "layer", k)``: ``h + sign(h) * eps * normalize(u)`` (the reference
    op's values), the gradient passing through unchanged; zero entries of h stay unperturbed."""
    from graphpro_ext import reference
    from graphpro_ext.graphpro.models.simgcl import eps_noise

    gen = torch.Generator().manual_seed(seed)
    hs = [torch.randn(30, 8, generator=gen) for _ in range(3)]
    hs[1][::4] = 0.0
    perturb = eps_noise(0.1, seed)
    for k, h in enumerate(hs):
        a = h.clone().requires_grad_()
        got = perturb(a)
        assert k != 1 or not got[::4].any()
        want = reference.simgcl_perturb(h, 0.1, derive_seed(seed, "layer", k))
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
        g = torch.randn(h.shape, generator=gen)
        (got * g).sum().backward()
        assert torch.equal(a.grad, g)


@pytest.mark.parametrize("n,d,t", [(1, 4, 0.2), (7, 3, 0.2), (64, 16, 0.05), (300, 8, 1.0)])
def test_info_nce_matches_the_plain_expression(seed, n, d, t):
    """The one-buffer InfoNCE equals ``mean(logsumexp(a b^T / t) - diag / t)`` on normalised
    rows in value and in both gradients (also with one side frozen, and a second backward)."""
    gen = torch.Generator().manual_seed(seed)
    a0 = torch.randn(n, d, generator=gen, dtype=torch.float64)
    b0 = torch.randn(n, d, generator=gen, dtype=torch.float64)
    b0[: n // 2] = a0[: n // 2] * 3  # aligned rows: large logits
    if n > 2:
        a0[-1] = 0.0  # a zero row: normalize's floor

    def plain(a, b):
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        logits = a @ b.T / t
        return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()

    for frozen in (None, "a", "b"):
        a1, b1 = a0.clone().requires_grad_(frozen != "a"), b0.clone().requires_grad_(frozen != "b")
        a2, b2 = a0.clone().requires_grad_(frozen != "a"), b0.clone().requires_grad_(frozen != "b")
        got, want = info_nce(a1, b1, t), plain(a2, b2)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        got.backward(retain_graph=True)
        want.backward()
        for x, y in ((a1, a2), (b1, b2)):
            if x.requires_grad:
                torch.testing.assert_close(x.grad, y.grad, rtol=1e-10, atol=1e-12)
        first = [x.grad.clone() for x in (a1, b1) if x.requires_grad]
        got.backward()  # the saved buffer is read, never overwritten, by the backward
        for x, g in zip([x for x in (a1, b1) if x.requires_grad], first):
            torch.testing.assert_close(x.grad, 2 * g)
    torch.autograd.gradcheck(lambda x, y: info_nce(x, y, 0.3),
                             (a0[:6].clone().requires_grad_(), b0[:6].clone().requires_grad_()))


@pytest.mark.parametrize("name", BACKBONES)
def test_fused_loss_and_gradients_match_the_reference_ops(name, seed):
    g = _graph(seed)
    m = models.model_class(name).negatives
    users, pos, neg = _batch(g, seed, m=min(m, 8))
    out = {}
    for ops in ("fused", "reference"):
        backend.use(ops)
        try:
            model = _model(name, g, seed)
            loss = model.batch_loss(g, users, pos, neg, 0.8, seed, 1e-4, mode="full")
            loss.backward()
            out[ops] = (loss.detach(), model.x.grad.clone())
        finally:
            backend.use("fused")
    torch.testing.assert_close(out["fused"][0], out["reference"][0], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(out["fused"][1], out["reference"][1], rtol=1e-7, atol=1e-10)
    assert out["fused"][1].abs().sum() > 0 and torch.isfinite(out["fused"][0])


@pytest.mark.parametrize("name", BACKBONES)
def test_subgraph_and_full_scopes_agree_without_dropout(name, seed):
    g = _graph(seed)
    users, pos, neg = _batch(g, seed, m=min(models.model_class(name).negatives, 8))
    res = []
    for mode in ("subgraph", "full"):
        model = _model(name, g, seed)
        loss = model.batch_loss(g, users, pos, neg, 1.0, seed, 1e-4, mode=mode)
        loss.backward()
        res.append((loss.detach(), model.x.grad.clone()))
    if name == "sgl":
        # SGL's views drop edges by design; keyed by subgraph-local ids they differ per scope,
        # so only its keep_prob=1 main branch is compared: set the view ratio to 0
        res = []
        for mode in ("subgraph", "full"):
            model = _model(name, g, seed)
            model.ssl_ratio = 0.0
            loss = model.batch_loss(g, users, pos, neg, 1.0, seed, 1e-4, mode=mode)
            loss.backward()
            res.append((loss.detach(), model.x.grad.clone()))
    torch.testing.assert_close(res[0][0], res[1][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(res[0][1], res[1][1], rtol=1e-7, atol=1e-12)


def test_sgl_loss_by_hand(seed):
    g = _graph(seed)
    users, pos, neg = _batch(g, seed)
    model = _model("sgl", g, seed)
    loss = model.batch_loss(g, users, pos, neg, 1.0, seed, 1e-4, mode="full")
    x = model.x.detach()
    full = backend.lightgcn(g, x, 2, 0.5, 1.0, seed)
    # full mode propagates over the nodes with edges, so the views' edge masks are keyed by
    # that compact numbering; nodes without edges keep their ego rows
    cg = model.planner.compact(g)
    views = [x.index_copy(0, cg.glob, backend.lightgcn(cg.sub, x[cg.glob], 2, 0.5, 0.9,
                                                       derive_seed(seed, "sgl-view", v)))
             for v in (1, 2)]
    want = _sgl_by_hand(full, views, x, users, pos, neg, g.num_users)
    torch.testing.assert_close(loss.detach(), want, rtol=1e-9, atol=1e-12)


def _sgl_by_hand(final, views, x, users, pos, neg, nu):
    """SGL's loss from the final embeddings, the two views and the ego table (wd 1e-4, the
    published temperature 0.2 and weight 0.1)."""
    u, i, j = final[users], final[nu + pos], final[nu + neg]
    bpr = -torch.log(1e-10 + torch.sigmoid((u * i).sum(1) - (u * j).sum(1))).mean()
    ego = torch.cat([x[users], x[nu + pos], x[nu + neg]])
    l2 = 1e-4 * 0.5 * ego.pow(2).sum() / users.numel()
    uu, ii = torch.unique(users), nu + torch.unique(pos)
    ssl = info_nce(views[0][uu], views[1][uu], 0.2) + info_nce(views[0][ii], views[1][ii], 0.2)
    return bpr + l2 + 0.1 * ssl


def test_simgcl_views_add_eps_noise_per_layer(seed):
    from graphpro_ext.graphpro.models.simgcl import noisy_view

    g = _graph(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(g.num_nodes, 8, dtype=torch.float64, generator=gen)
    clean = backend.layers(g, x, 2, 0.5)
    one = noisy_view(g, x, 1, 0.5, 1.0, 0, 0.1, 5)
    diff = (one - clean[1]).norm(dim=1)
    nz = clean[1].abs().sum(1) > 0  # sign(0) = 0: rows without edges get no noise
    torch.testing.assert_close(diff[nz], torch.full_like(diff[nz], 0.1), rtol=1e-9, atol=1e-12)
    # same direction signs: the noise never flips a coordinate's sign
    assert ((one * clean[1]) >= 0).all()
    two = noisy_view(g, x, 2, 0.5, 1.0, 0, 0.1, 5)
    assert not torch.allclose(two, (clean[1] + clean[2]) / 2)
    torch.testing.assert_close(noisy_view(g, x, 2, 0.5, 1.0, 0, 0.1, 5), two)  # seeded


def test_mixgcf_synthesis_by_hand(seed):
    g = _graph(seed)
    users, pos, cand = _batch(g, seed, b=3, m=4)
    model = _model("mixgcf", g, seed, tw=0.0)
    loss = model.batch_loss(g, users, pos, cand, 1.0, seed, 0.0, mode="full")
    x = model.x.detach()
    hs = backend.layers(g, x, 2, 0.0)
    nu, L1 = g.num_users, 3
    gen = torch.Generator().manual_seed(derive_seed(seed, "mixgcf-alpha"))
    alpha = torch.rand(3, 1, L1, 1, generator=gen, dtype=torch.float64)
    want = 0.0
    for b in range(3):
        eu = [hs[layer][users[b]] for layer in range(L1)]
        ep = [hs[layer][nu + pos[b]] for layer in range(L1)]
        en = []
        for layer in range(L1):
            a = float(alpha[b, 0, layer, 0])
            mixed = [a * ep[layer] + (1 - a) * hs[layer][nu + c] for c in cand[b]]
            scores = [float(eu[layer] @ mv) for mv in mixed]
            en.append(mixed[int(np.argmax(scores))])
        u, p, n = (torch.stack(v).mean(0) for v in (eu, ep, en))
        want += -torch.log(1e-10 + torch.sigmoid(u @ p - u @ n))
    torch.testing.assert_close(loss.detach(), want / 3, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("scope", ["full", "subgraph"])
@pytest.mark.parametrize("isolated", [False, True])
def test_mixgcf_loss_and_gradients_equal_the_materialised_mixing(scope, isolated, seed):
    """The model finds the hardest mixed candidate from scores, never building the [B, M, L+1, d]
    mixed tensor; loss and gradients equal that tensor's formulation (MixGCF's own), weight decay
    on; ``isolated``: a quarter of the items have no edges, so candidates without edges take
    their own layer-0 row and zeros after. No dropout: its masks follow the scope's node
    numbering, which differs from the whole graph's when a node has no edges (benchmarks/
    bench_mixgcf.py compares the two formulations with dropout, in the same scope)."""
    g = _graph(seed)
    if isolated:
        rng = np.random.default_rng(seed + 7)
        u, i = rng.integers(0, 40, 300), rng.integers(0, 30, 300)
        g = TemporalGraph.from_interactions(u, i, 1.6e9 + rng.uniform(0, 9e5, 300), 40, 40,
                                            tau_hours=24.0)
    users, pos, cand = _batch(g, seed, b=12, m=6)
    assert not isolated or bool((cand >= 30).any())
    model = _model("mixgcf", g, seed)
    loss = model.batch_loss(g, users, pos, cand, 1.0, seed, 1e-2, mode=scope)
    loss.backward()
    x = model.x.detach().clone().requires_grad_()
    hs = torch.stack(backend.layers(g, x, 2, 0.5), dim=1)  # [N, L+1, d]
    b, m, nu = 12, 6, g.num_users
    e_u, e_p, e_c = hs[users], hs[nu + pos], hs[nu + cand.reshape(-1)].view(b, m, 3, -1)
    gen = torch.Generator().manual_seed(derive_seed(seed, "mixgcf-alpha"))
    alpha = torch.rand(b, 1, 3, 1, generator=gen, dtype=torch.float64)
    mixed = alpha * e_p.unsqueeze(1) + (1 - alpha) * e_c  # [B, M, L+1, d]
    best = (e_u.unsqueeze(1) * mixed).sum(-1).argmax(dim=1)  # [B, L+1]
    e_n = mixed.gather(1, best[:, None, :, None].expand(b, 1, 3, x.shape[1])).squeeze(1)
    u, p_, n = e_u.mean(1), e_p.mean(1), e_n.mean(1)
    reg = x[users].pow(2).sum() + x[nu + pos].pow(2).sum() + e_n[:, 0].pow(2).sum()
    want = -torch.log(1e-10 + torch.sigmoid((u * p_).sum(1) - (u * n).sum(1))).mean() \
        + 1e-2 * 0.5 * reg / b
    want.backward()
    torch.testing.assert_close(loss.detach(), want.detach(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(model.x.grad, x.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("share_alone", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scope_dots_equal_the_picked_rows_scores(share_alone, dtype, seed):
    """``BatchScope.dots`` (one sddmm per part, what MixGCF ranks candidates with) equals
    scoring the rows ``pick`` gathers, when none, half or all of the rows lack edges; a fill
    given as None (an isolated row's zero layer) reads as zeros in both."""
    from graphpro_ext.graphpro.models.lightgcn import BatchScope

    gen = torch.Generator().manual_seed(seed)
    n_rows, g, m, d = 60, 7, 5, 6
    outs = [torch.randn(20, d, generator=gen, dtype=dtype) for _ in range(3)]
    lonely = torch.rand(n_rows, generator=gen) < share_alone
    loc = torch.randint(0, 20, (n_rows,), generator=gen).masked_fill(lonely, -1)
    fill = [torch.randn(9, d, generator=gen, dtype=dtype), None,
            torch.randn(9, d, generator=gen, dtype=dtype)]
    in_alone = torch.randint(0, 9, (n_rows,), generator=gen)
    scope = (BatchScope(outs, loc, fill, in_alone) if share_alone else BatchScope(outs, loc))
    at = torch.randint(0, n_rows, (g, m), generator=gen)
    v = torch.randn(g, d, generator=gen, dtype=dtype)
    for k in range(3):
        want = (scope.pick(k, at.reshape(-1)).view(g, m, d) * v[:, None]).sum(-1)
        torch.testing.assert_close(scope.dots(k, at, v), want)
    if share_alone:
        assert not scope.pick(1)[lonely].any() and torch.equal(scope.pick(1)[~lonely],
                                                                outs[1][loc[~lonely]])


@pytest.mark.parametrize("name", BACKBONES)
def test_same_seed_same_loss(name, seed):
    g = _graph(seed)
    users, pos, neg = _batch(g, seed, m=min(models.model_class(name).negatives, 8))
    a = _model(name, g, seed).batch_loss(g, users, pos, neg, 0.8, seed, 1e-4)
    b = _model(name, g, seed).batch_loss(g, users, pos, neg, 0.8, seed, 1e-4)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_end_to_end_and_deterministic(name, tmp_path):
    args = ["--methods", "graphpro,finetune", "--backbone", name, "--synthetic-users", "120",
            "--synthetic-items", "80", "--synthetic-snapshots", "3", "--dim", "8",
            "--epochs", "2", "--stage-epochs", "1", "--threads", "1"]
    res = []
    for k in range(2):
        out = tmp_path / f"r{k}"
        assert main(["run", "--out", str(out), *args]) == 0
        res.append(json.loads((out / "results.json").read_text()))
    for m in ("graphpro", "finetune"):  # everything but the timings
        a, b = res[0]["methods"][m], res[1]["methods"][m]
        assert a["average"] == b["average"]
        assert [(s["recall@20"], s["ndcg@20"], s["best_epoch"]) for s in a["stages"]] == \
            [(s["recall@20"], s["ndcg@20"], s["best_epoch"]) for s in b["stages"]]
    assert res[0]["pretrain"]["graphpro"]["history"][-1]["loss"] == \
        res[1]["pretrain"]["graphpro"]["history"][-1]["loss"]
    cfg = json.loads((tmp_path / "r0" / "ckpt" / "config.json").read_text())
    assert cfg["backbone"] == name


def _spy_on_builds(monkeypatch) -> list[str]:
    """The names ``models.build`` is called with, in order."""
    built = []
    real = models.build

    def spy(name, *a, **kw):
        built.append(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(models, "build", spy)
    return built


def test_full_retraining_trains_the_backbone(tmp_path, monkeypatch):
    """Full retraining is pre-training repeated: under --backbone it retrains that backbone
    (its Table 2 column), and results.json records the backbone."""
    built = _spy_on_builds(monkeypatch)
    out = tmp_path / "full"
    assert main(["run", "--out", str(out), "--methods", "full", "--backbone", "simgcl",
                 "--synthetic-users", "100", "--synthetic-items", "60", "--synthetic-snapshots",
                 "3", "--dim", "8", "--epochs", "1", "--threads", "1"]) == 0
    assert built and set(built) == {"simgcl"}
    res = json.loads((out / "results.json").read_text())
    assert res["hyperparameters"]["backbone"] == "simgcl"
    assert len(res["methods"]["full"]["stages"]) == 2


def test_train_with_each_model(tmp_path):
    from graphpro_ext.graphpro.data import synthetic

    d = synthetic(80, 50, num_snapshots=2, seed=1)
    for part, f in ((d.pretrain, "train.txt"), (d.snapshots[0], "test.txt")):
        with open(tmp_path / f, "w") as fh:
            for u in np.unique(part.users):
                fh.write(" ".join(map(str, [u, *part.items[part.users == u]])) + "\n")
    for name in BACKBONES:
        out = tmp_path / name
        assert main(["train", "--train", str(tmp_path / "train.txt"), "--test",
                     str(tmp_path / "test.txt"), "--out", str(out), "--model", name, "--dim", "8",
                     "--epochs", "2", "--threads", "1"]) == 0
        r = json.loads((out / "results.json").read_text())
        assert 0 <= r["test"]["recall@20"] <= 1
        assert r["hyperparameters"]["model"] == name


@pytest.mark.parametrize("name", BACKBONES)
def test_unshardable_backbones_refuse_column_shards(name):
    from graphpro_ext.graphpro.distributed import Shard

    g = _graph(0)
    x = torch.zeros(g.num_nodes, 8)
    with pytest.raises(ValueError, match="column-sharded training is not supported"):
        models.build(name, x, 2, 0.0, shard=Shard(rank=0, world=2, group=None))


_TINY = ["--synthetic-users", "100", "--synthetic-items", "60", "--synthetic-snapshots", "3",
         "--dim", "8", "--epochs", "1", "--stage-epochs", "1", "--threads", "1"]


@pytest.mark.parametrize("stage_loss", ["backbone", "bpr"])
def test_stage_loss_decides_what_the_stages_train(stage_loss, tmp_path, monkeypatch):
    """Under --stage-loss backbone the stages train the backbone's loss (the reference's
    plug-in), GPF's included, under bpr LightGCN's; DGCF trains BPR either way; results.json
    records each method's stage loss and the option."""
    built = _spy_on_builds(monkeypatch)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--methods", "graphpro,finetune,gpf,dgcn",
                 "--backbone", "mixgcf", "--stage-loss", stage_loss, *_TINY]) == 0
    res = json.loads((out / "results.json").read_text())
    want = "mixgcf" if stage_loss == "backbone" else "bpr"
    assert res["hyperparameters"]["stage_loss"] == stage_loss
    assert res["methods"]["graphpro"]["loss"] == want
    assert res["methods"]["finetune"]["loss"] == want
    assert res["methods"]["gpf"]["loss"] == want
    assert res["methods"]["dgcn"]["loss"] == "bpr"
    assert all(s["loss"] == want for s in res["methods"]["graphpro"]["stages"])
    assert main(["report", "--out", str(out)]) == 0  # rebuilt from the checkpoints: the same
    rebuilt = json.loads((out / "results.json").read_text())["methods"]
    assert {m: v["loss"] for m, v in rebuilt.items()} == \
        {m: v["loss"] for m, v in res["methods"].items()}
    # method by method: its pre-training (the backbone), then its 2 stages
    st = "mixgcf" if stage_loss == "backbone" else "lightgcn"
    assert built == ["mixgcf", st, st, "mixgcf", st, st]


def test_resume_refuses_another_stage_loss(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "--out", str(out), "--methods", "finetune", "--backbone", "sgl", *_TINY]
    assert main([*args, "--stage-loss", "bpr"]) == 0
    assert main([*args, "--resume"]) == 2  # the default is backbone
    assert "stage_loss" in capsys.readouterr().err
    assert main([*args, "--stage-loss", "bpr", "--resume"]) == 0


def test_stage_loss_of_runs_before_the_option():
    """Checkpoints and saved models from before --stage-loss trained their stages with BPR;
    with the LightGCN backbone the option changes nothing, so it is not compared."""
    from graphpro_ext.graphpro.stages import _result_relevant

    old = {"backbone": "sgl", "seed": 1}
    assert _result_relevant(old) == _result_relevant({**old, "stage_loss": "bpr"})
    assert _result_relevant(old) != _result_relevant({**old, "stage_loss": "backbone"})
    lg = {"backbone": "lightgcn", "seed": 1}
    assert _result_relevant(lg) == _result_relevant({**lg, "stage_loss": "backbone"})


def test_update_of_a_model_saved_before_the_option_keeps_bpr(tmp_path):
    """`graphpro update` continues a saved model's stages as they ran: a model file written
    before --stage-loss existed trained them with BPR."""
    from dataclasses import asdict

    from graphpro_ext.graphpro.stages import RunConfig
    from graphpro_ext.graphpro.update import _run_config

    proto = asdict(RunConfig(out="x", backbone="sgl"))
    for k in ("out", "device", "stage_loss"):
        proto.pop(k)
    cfg = _run_config({"config": proto, "method": "graphpro"}, str(tmp_path), "finetune", 0.0)
    assert (cfg.backbone, cfg.stage_loss) == ("sgl", "bpr")
    proto["stage_loss"] = "backbone"
    cfg = _run_config({"config": proto, "method": "graphpro"}, str(tmp_path), "finetune", 0.0)
    assert cfg.stage_loss == "backbone"


# -- baselines trained with a backbone's loss (--stage-loss backbone) --------------------------

def _plain_layerwise():
    """A layer-by-layer LightGCN through the dynamic baselines' machinery (each layer's update
    is the identity): with any backbone's loss it must equal that backbone on the same table."""
    from graphpro_ext.graphpro.methods.evolving import _LayerwiseModel

    class PlainLayerwise(_LayerwiseModel):
        def update(self, layer, m, nodes):
            return m
    return PlainLayerwise


def _baseline(kind, g, seed, name, tw):
    from graphpro_ext.graphpro.methods.prompt import PromptModel

    gen = torch.Generator().manual_seed(seed)
    x = models.model_class(name).init_table(g.num_users, g.num_items, 8, gen).double()
    if kind == "layerwise":
        return models.with_loss(_plain_layerwise(), name)(x, 2, planner=BatchPlanner())
    return models.with_loss(PromptModel, name)(x, 2, tw, kind, planner=BatchPlanner())


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("kind", ["layerwise", "feature", "readout"])
@pytest.mark.parametrize("mode", ["full", "subgraph"])
def test_a_neutral_baseline_with_a_backbone_loss_is_the_backbone(name, kind, mode, seed):
    """Through the baselines' propagation hooks a backbone's loss is unchanged: identity layer
    updates (the ROLAND/EvolveGCN path, no time weight) and the prompts at their starting values
    (GPF's 0, GraphPrompt's 1) give the plain backbone's loss and table gradient."""
    g = _graph(seed)
    users, pos, neg = _batch(g, seed, m=min(models.model_class(name).negatives, 8))
    tw = 0.0 if kind == "layerwise" else 0.5
    out = []
    for model in (_model(name, g, seed, tw=tw), _baseline(kind, g, seed, name, tw)):
        model.x.requires_grad_(True)
        model.ssl_ratio = 0.0  # SGL's views: no dropout, so the two scopes' masks cannot differ
        loss = model.batch_loss(g, users, pos, neg, 1.0, seed, 1e-4, mode=mode)
        loss.backward()
        out.append((loss.detach(), model.x.grad.clone()))
    assert type(_baseline(kind, g, seed, name, tw)).loss_name == name
    torch.testing.assert_close(out[1][0], out[0][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(out[1][1], out[0][1], rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("name", BACKBONES)
def test_graphprompt_readout_reaches_the_backbone_loss(name, seed):
    """GraphPrompt's readout weights enter every embedding a backbone's loss scores: with a
    non-trivial prompt the loss differs from the plain backbone's and its gradient reaches the
    prompt; SGL with views equal to the main branch is checked by hand."""
    g = _graph(seed)
    users, pos, neg = _batch(g, seed, m=min(models.model_class(name).negatives, 8))
    model = _baseline("readout", g, seed, name, 0.5)
    with torch.no_grad():
        model.prompt.copy_(torch.linspace(-0.5, 0.5, 8, dtype=torch.float64))
    model.ssl_ratio = 0.0
    loss = model.batch_loss(g, users, pos, neg, 1.0, seed, 1e-4, mode="full")
    loss.backward()
    assert model.prompt.grad is not None and model.prompt.grad.abs().sum() > 0
    plain = _model(name, g, seed)
    plain.ssl_ratio = 0.0
    assert not torch.allclose(loss.detach(), plain.batch_loss(g, users, pos, neg, 1.0, seed,
                                                              1e-4, mode="full").detach())
    if name != "sgl":
        return
    x, p = model.x.detach(), model.readout_weights().detach()
    e = backend.lightgcn(g, x, 2, 0.5, 1.0, seed) * p
    want = _sgl_by_hand(e, (e, e), x, users, pos, neg, g.num_users)
    torch.testing.assert_close(loss.detach(), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("variant", ["roland", "evolvegcn-h"])
def test_dynamic_baselines_train_their_weights_under_a_backbone_loss(name, variant, seed):
    from graphpro_ext.graphpro.methods.evolving import EvolveGCNModel, RolandModel

    g = _graph(seed)
    users, pos, neg = _batch(g, seed, m=min(models.model_class(name).negatives, 8))
    gen = torch.Generator().manual_seed(seed)
    x = models.xavier_embeddings(g.num_users, g.num_items, 8, gen).double()
    if variant == "roland":
        states = torch.randn(2, g.num_nodes, 8, generator=gen).double()
        model = models.with_loss(RolandModel, name)(x, 2, states, None, gen,
                                                    planner=BatchPlanner())
        weights = list(model.cells.parameters())
    else:
        eye = torch.eye(8, dtype=torch.float64).expand(2, 8, 8)
        model = models.with_loss(EvolveGCNModel, name)(x, 2, "h", eye, None, None, gen,
                                                       planner=BatchPlanner())
        weights = list(model.grus.parameters()) + [model.score]
    loss = model.batch_loss(g, users, pos, neg, 0.8, seed, 1e-4, mode="auto")
    loss.backward()
    assert torch.isfinite(loss) and model.loss_name == name
    assert all(w.grad is not None for w in weights)
    assert sum(float(w.grad.abs().sum()) for w in weights) > 0
