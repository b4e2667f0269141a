"""The baselines added for Table 2 (methods/): each stage's starting point recomputed
independently with the dense float64 references of test_trainer_runner, plus what each may and
may not train."""

import math

import numpy as np
import pytest
import torch

from graphpro_ext.graphpro.methods.dgcf import SMOOTHNESS, WEIGHTS, DGCFModel
from graphpro_ext.graphpro.methods.evolving import EvolveGCNModel, RolandModel
from graphpro_ext.graphpro.runtime import derive_seed
from test_trainer_runner import (DIM, LAYERS, SEED, TAU_FT, TAU_PRE, assert_table_close, cat,
                                 dense_operator, dense_propagate, eq8_sample, runner)


def _capture(r):
    """Record every stage's model as it starts (``Runner.adapt_start``) and after training."""
    starts, models = {}, {}
    orig = r.adapt_start

    def hook(st, method, n):
        starts[(method, n)] = {k: v.detach().clone() for k, v in st.model.state_dict().items()}
        models[(method, n)] = st.model
        return orig(st, method, n)

    r.adapt_start = hook
    return starts, models


def _pretrained(r, kind="lightgcn"):
    return {kind: r.pretrain(kind)}


def test_finetune_eq7_starts_from_the_propagated_previous_model(tmp_path):
    r = runner(tmp_path / "r", methods=["finetune-eq7"])
    starts, _ = _capture(r)
    pre = _pretrained(r)
    d = r.data
    r.stage("finetune-eq7", 1, pre)
    x1 = r.load_table("finetune-eq7", 1)  # removed once stage 2 has its own
    r.stage("finetune-eq7", 2, pre)
    # stage 1: the pre-trained table over the pre-training graph (LightGCN: no time weight)
    p = d.pretrain
    op = dense_operator(p.users, p.items, p.times, d.num_users, d.num_items, TAU_PRE, 0.0)
    want1 = dense_propagate(op, pre["lightgcn"]["x"], LAYERS)
    assert_table_close(starts[("finetune-eq7", 1)]["x"], want1, "stage 1 start")
    # stage 2: stage 1's table over stage 1's training graph (its held-out pairs excluded)
    t1 = r.split(1)[0]
    op = dense_operator(t1.users, t1.items, t1.times, d.num_users, d.num_items, TAU_FT, 0.0)
    assert_table_close(starts[("finetune-eq7", 2)]["x"], dense_propagate(op, x1, LAYERS),
                       "stage 2 start")


def test_lightgcn_variant_prompt_without_gates_or_time(tmp_path):
    r = runner(tmp_path / "r", methods=["lightgcn-variant"])
    starts, models = _capture(r)
    pre = _pretrained(r)
    d = r.data
    for n in (1, 2, 3):
        r.stage("lightgcn-variant", n, pre)
    for n in (1, 3):  # always from the pre-trained table (no interpolative update)
        prev = eq8_sample(d.snapshots[:n - 1], r.cfg.sample_decay,
                          derive_seed(SEED, "prompt-stage", n))
        u, i, t = cat([d.pretrain, *prev])
        op = dense_operator(u, i, t, d.num_users, d.num_items, TAU_PRE, 0.0)
        want = dense_propagate(op, pre["lightgcn"]["x"], LAYERS)  # no random gate
        assert_table_close(starts[("lightgcn-variant", n)]["x"], want, f"stage {n} start")
        m = models[("lightgcn-variant", n)]
        assert m.gate_w is None and m.time_weight == 0.0


def test_prompt_baselines_train_only_their_prompt(tmp_path):
    r = runner(tmp_path / "r", methods=["gpf", "graphprompt"])
    starts, models = _capture(r)
    pre = _pretrained(r)
    for name in ("gpf", "graphprompt"):
        r.stage(name, 1, pre)
        r.stage(name, 2, pre)
        for n in (1, 2):
            s, m = starts[(name, n)], models[(name, n)]
            torch.testing.assert_close(s["x"], pre["lightgcn"]["x"])  # every stage: pre-trained
            assert torch.all(s["prompt"] == 0)  # the pre-trained model itself
            torch.testing.assert_close(m.x.detach(), pre["lightgcn"]["x"])  # frozen
            assert not torch.all(m.prompt.detach() == 0)  # the prompt did train
            assert [k for k, v in m.named_parameters() if v.requires_grad] == ["prompt"]
    for n in (1, 2):
        # GraphPrompt's readout weights keep mean 1 and train their shape: under BPR a free p
        # grew as a uniform scale (spread/mean ~1e-5 per epoch), which changes no ranking
        p = models[("graphprompt", n)].readout_weights().detach()
        assert abs(p.mean().item() - 1.0) < 1e-6
        assert (p.std() / p.mean()).item() > 1e-3
    g = r.graph(r.split(1)[0], TAU_FT)
    gp_model, gpr_model = models[("gpf", 1)], models[("graphprompt", 1)]
    with torch.no_grad():
        x = gp_model.x
        d = r.data
        t1 = r.split(1)[0]
        op = dense_operator(t1.users, t1.items, t1.times, d.num_users, d.num_items, TAU_FT, 0.0)
        want = dense_propagate(op, x + gp_model.prompt, LAYERS)
        assert_table_close(gp_model(g), want, "gpf forward = propagation of x + p")
        want = dense_propagate(op, gpr_model.x, LAYERS) * gpr_model.readout_weights().double()
        assert_table_close(gpr_model(g), want, "graphprompt forward = p * propagation")


def test_new_methods_run_end_to_end(tmp_path):
    from graphpro_ext.graphpro.cli import main

    out = tmp_path / "all"
    assert main(["run", "--out", str(out), "--methods", "finetune-eq7,lightgcn-variant,gpf,"
                 "graphprompt", "--synthetic-users", "120", "--synthetic-items", "80",
                 "--synthetic-snapshots", "3", "--dim", "8", "--epochs", "2", "--stage-epochs",
                 "1", "--threads", "1"]) == 0
    import json

    res = json.loads((out / "results.json").read_text())
    assert set(res["methods"]) == {"finetune-eq7", "lightgcn-variant", "gpf", "graphprompt"}
    assert all(np.isfinite(v["average"]["recall@20"]) for v in res["methods"].values())


def _dense_graph(r, n):
    d = r.data
    t = r.split(n)[0]
    return dense_operator(t.users, t.items, t.times, d.num_users, d.num_items, TAU_FT, 0.0)


def _gru_cell(cell, x, h):
    """torch.nn.GRUCell by its documented equations, in float64."""
    wi, wh = cell.weight_ih.double(), cell.weight_hh.double()
    bi, bh = cell.bias_ih.double(), cell.bias_hh.double()
    gi, gh = x @ wi.T + bi, h @ wh.T + bh
    d = h.shape[1]
    r = torch.sigmoid(gi[:, :d] + gh[:, :d])
    z = torch.sigmoid(gi[:, d:2 * d] + gh[:, d:2 * d])
    n = torch.tanh(gi[:, 2 * d:] + r * gh[:, 2 * d:])
    return (1 - z) * n + z * h


def test_roland_layers_states_and_live_update(tmp_path):
    r = runner(tmp_path / "r", methods=["roland"])
    starts, models = _capture(r)
    pre = _pretrained(r)
    d = r.data
    r.stage("roland", 1, pre)
    carried = r.load_stage_state("roland", 1)
    r.stage("roland", 2, pre)
    # stage 1 states: the pre-trained layers A^l x over the pre-training graph
    p = d.pretrain
    op = dense_operator(p.users, p.items, p.times, d.num_users, d.num_items, TAU_PRE, 0.0)
    h = pre["lightgcn"]["x"].double()
    for layer in range(LAYERS):
        h = op @ h
        assert_table_close(starts[("roland", 1)]["states"][layer], h, f"state {layer + 1}")
    # the trained stage-1 model's forward, by hand: h_l = GRU_l(A h_{l-1}, state_l)
    m = models[("roland", 1)]
    op1 = _dense_graph(r, 1)
    with torch.no_grad():
        x = m.x.double()
        has_edges = op1.abs().sum(1) > 0
        h, out = x, x.clone()
        for layer in range(LAYERS):
            h = _gru_cell(m.cells[layer], op1 @ h, m.states[layer].double())
            out = out + torch.where(has_edges[:, None], h, torch.zeros_like(h))
        want = torch.where(has_edges[:, None], out, x)
        assert_table_close(m(r.graph(r.split(1)[0], TAU_FT)), want, "roland forward")
    # stage 2 starts from stage 1's carried table, GRUs and states (nodes without edges kept)
    s2 = starts[("roland", 2)]
    torch.testing.assert_close(s2["x"], carried["x"])
    torch.testing.assert_close(s2["states"], carried["states"])
    torch.testing.assert_close(s2["cells.0.weight_hh"], carried["cells"]["cell0.weight_hh"])
    no_edges = ~has_edges
    assert no_edges.any()
    torch.testing.assert_close(carried["states"][:, no_edges],
                               starts[("roland", 1)]["states"][:, no_edges])


def test_evolvegcn_weights_evolve_by_the_matrix_gru(tmp_path):
    for variant in ("evolvegcn-o", "evolvegcn-h"):
        r = runner(tmp_path / variant, methods=[variant])
        starts, models = _capture(r)
        pre = _pretrained(r)
        r.stage(variant, 1, pre)
        carried = r.load_stage_state(variant, 1)
        r.stage(variant, 2, pre)
        eye = torch.eye(pre["lightgcn"]["x"].shape[1]).expand(LAYERS, -1, -1)
        torch.testing.assert_close(starts[(variant, 1)]["prev_weights"], eye)
        m = models[(variant, 1)]
        with torch.no_grad():
            def gru(g, x, h):
                z = torch.sigmoid(g.w_update @ x + g.u_update @ h + g.b_update)
                rr = torch.sigmoid(g.w_reset @ x + g.u_reset @ h + g.b_reset)
                c = torch.tanh(g.w_cand @ x + g.u_cand @ (rr * h) + g.b_cand)
                return (1 - z) * h + z * c

            if variant == "evolvegcn-h":
                s = m.x @ m.score / m.score.norm()
                top = torch.argsort(s, descending=True)[:m.x.shape[1]]
                inp = [(m.x[top] * torch.tanh(s[top])[:, None]).T] * LAYERS
            else:
                inp = list(m.prev_weights)
            w = [gru(m.grus[k], inp[k], m.prev_weights[k]) for k in range(LAYERS)]
            torch.testing.assert_close(carried["weights"], torch.stack(w), rtol=1e-5, atol=1e-6)
            op1 = _dense_graph(r, 1)
            h, out = m.x.double(), m.x.double()
            has_edges = op1.abs().sum(1) > 0
            for k in range(LAYERS):
                h = (op1 @ h) @ w[k].double()
                out = out + h
            want = torch.where(has_edges[:, None], out, m.x.double())
            assert_table_close(m(r.graph(r.split(1)[0], TAU_FT)), want, f"{variant} forward",
                               atol=5e-5)
        torch.testing.assert_close(starts[(variant, 2)]["prev_weights"], carried["weights"])
        torch.testing.assert_close(starts[(variant, 2)]["x"], carried["x"])


def _layerwise_model(method, x, gen):
    """A float64 ``method`` model over table ``x`` with random states (ROLAND) or random previous
    weights (EvolveGCN), so that no term starts at zero or at the identity."""
    if method == "roland":
        states = torch.randn(LAYERS, *x.shape, generator=gen, dtype=torch.float64)
        return RolandModel(x, LAYERS, states, None, gen)
    w = (torch.eye(DIM, dtype=torch.float64)
         + 0.3 * torch.randn(LAYERS, DIM, DIM, generator=gen, dtype=torch.float64))
    return EvolveGCNModel(x, LAYERS, method[-1], w, None, None, gen)


@pytest.mark.parametrize("method", ["roland", "evolvegcn-o", "evolvegcn-h"])
def test_layerwise_batch_modes_agree_on_nodes_without_edges(tmp_path, method):
    """Subgraph batches, full batches and the evaluation forward give one loss and the same
    gradients, also for a batch holding a negative item and a user without edges in the
    snapshot: such nodes keep their own embedding (ROLAND's GRUs must not update them from zero
    messages in the subgraph, which holds them as batch rows)."""
    r = runner(tmp_path / "r", methods=[method])
    part = r.split(1)[0]
    g = r.graph(part, TAU_FT)
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(r.nu + r.ni, DIM, generator=gen, dtype=torch.float64)
    m = _layerwise_model(method, x, gen)
    users, pos, neg = _dgcf_batch(r, 1, SEED)  # neg[0]: an item without edges
    lonely_users = sorted(set(range(r.nu)) - set(part.users.tolist()))
    assert lonely_users, "the tiny data should leave some user out of the snapshot"
    users[1] = lonely_users[0]
    nu = r.nu
    degree = g.rowptr[1:] - g.rowptr[:-1]
    assert degree[nu + neg[0]] == 0 and degree[users[1]] == 0
    wd = 0.1
    with torch.no_grad():  # the loss over the evaluation embeddings
        e = m(g)
        eu, ei, ej = e[users], e[nu + pos], e[nu + neg]
        ego = m.x[torch.cat([users, nu + pos, nu + neg])]
        want = (-torch.log(1e-10 + torch.sigmoid((eu * (ei - ej)).sum(1))).mean()
                + wd * 0.5 * ego.pow(2).sum() / users.numel())
    grads = {}
    for mode in ("full", "subgraph"):
        m.zero_grad(set_to_none=True)
        loss = m.batch_loss(g, users, pos, neg, 1.0, 0, wd, mode)
        torch.testing.assert_close(loss, want, rtol=1e-10, atol=1e-10, msg=f"{mode}: loss")
        loss.backward()
        grads[mode] = {k: p.grad.clone() for k, p in m.named_parameters() if p.requires_grad}
    trained = {"x"} | {k for k in grads["full"] if k.startswith(("cells.", "grus."))}
    assert len(trained) > 1
    if method == "evolvegcn-h":
        trained.add("score")
    assert set(grads["full"]) == trained
    for k, g_full in grads["full"].items():
        assert g_full.abs().sum() > 0, f"no gradient to {k}"
        torch.testing.assert_close(grads["subgraph"][k], g_full, rtol=1e-10, atol=1e-10,
                                   msg=f"grad {k}: subgraph vs full")


# ---------------------------------------------------------------------------------------------
# DGCF ("dgcn"): one update per snapshot, recomputed densely in float64
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dgcn_stages(tmp_path_factory):
    """Stages 1 and 2 of ``dgcn`` on the tiny data: (runner, starts, models, pre-trained, what
    stage 1 carried)."""
    r = runner(tmp_path_factory.mktemp("dgcn"), methods=["dgcn"])
    starts, models = _capture(r)
    pre = _pretrained(r)
    r.stage("dgcn", 1, pre)
    carried = r.load_stage_state("dgcn", 1)  # removed once stage 2 has its own
    r.stage("dgcn", 2, pre)
    return r, starts, models, pre, carried


def _dgcf_times(before, part, n, nu):
    """By plain Python: (dt, last time after ``part``, seen) per node; dt = log(1 + days) from
    the node's last interaction in ``before`` to its first in ``part`` (0: never seen before)."""
    def walk(parts):
        for p in parts:
            for u, i, t in zip(p.users, p.items, p.times):
                yield int(u), float(t)
                yield nu + int(i), float(t)

    last, first = {}, {}
    for v, t in walk(before):
        last[v] = max(last.get(v, t), t)
    for v, t in walk([part]):
        first[v] = min(first.get(v, t), t)
    dt = torch.zeros(n, dtype=torch.float64)
    for v, t in first.items():
        if v in last:
            dt[v] = math.log1p(max(t - last[v], 0.0) / 86400.0)
    after = dict(last)
    for v, t in walk([part]):
        after[v] = max(after.get(v, t), t)
    lt, seen = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.bool)
    for v, t in after.items():
        lt[v], seen[v] = t, True
    return dt, lt, seen


def _dgcf_dense(x, weights, interval, part, nu, ni):
    """DGCF's update over ``part``'s graph by its equations, on a dense float64 adjacency:
    ``tanh(h W0 + dt w + (M h) W1 + (M M h) W2 + b)``, M = D^-1 A, weights [0] for users and [1]
    for items; nodes without edges keep h."""
    n = nu + ni
    adj = torch.zeros(n, n, dtype=torch.float64)
    for u, i in zip(part.users, part.items):
        adj[int(u), nu + int(i)] = adj[nu + int(i), int(u)] = 1.0
    deg = adj.sum(1, keepdim=True)
    mean = adj / deg.clamp(min=1)
    h = x.double()
    m1 = mean @ h
    m2 = mean @ m1
    dt = interval.double().unsqueeze(1)
    w = {k: v.double() for k, v in weights.items()}
    out = []
    for t, rows in ((0, slice(0, nu)), (1, slice(nu, n))):
        out.append(torch.tanh(h[rows] @ w["w_inherit"][t] + dt[rows] * w["w_interval"][t]
                              + m1[rows] @ w["w_propagate"][t] + m2[rows] @ w["w_aggregate"][t]
                              + w["bias"][t]))
    return torch.where(deg > 0, torch.cat(out), h)


def _dgcf_random(m, seed):
    """A copy of model ``m`` with random update weights (its trained ones are still close to
    the identity / zero start, which would hide a swapped or missing term)."""
    gen = torch.Generator().manual_seed(seed)
    weights = {k: torch.randn(getattr(m, k).shape, generator=gen) * 0.3 for k in WEIGHTS}
    last = torch.where(m.seen, m.last_time, float("nan"))
    return DGCFModel(m.x.detach(), m.interval, last, weights)


def _dgcf_batch(r, n, seed):
    """(users, positives, negatives) of snapshot n's training part, the first negative an item
    without edges in it."""
    part = r.split(n)[0]
    gen = torch.Generator().manual_seed(seed)
    take = torch.randperm(len(part), generator=gen)[:24]
    users, pos = torch.from_numpy(part.users)[take], torch.from_numpy(part.items)[take]
    lonely = sorted(set(range(r.ni)) - set(part.items.tolist()))
    assert lonely, "the tiny data should leave some item out of the snapshot"
    neg = torch.randint(0, r.ni, (take.numel(),), generator=gen)
    neg[0] = lonely[0]
    return users, pos, neg


def test_dgcn_update_loss_and_gradients_match_dense_reference(dgcn_stages):
    r, starts, models, pre, _ = dgcn_stages
    d, nu, ni = r.data, r.nu, r.ni
    s1 = starts[("dgcn", 1)]
    # stage 1 starts from the pre-trained LightGCN's output over the pre-training graph (inside
    # [-1, 1] on these data, so not rescaled; the ranking test below covers a larger one)
    p = d.pretrain
    op = dense_operator(p.users, p.items, p.times, nu, ni, TAU_PRE, 0.0)
    want = dense_propagate(op, pre["lightgcn"]["x"], LAYERS)
    assert want.abs().max() <= 1
    assert_table_close(s1["x"], want, "start")
    assert torch.equal(s1["w_inherit"], torch.eye(DIM).expand(2, DIM, DIM))
    assert all(not s1[k].any() for k in WEIGHTS if k != "w_inherit")
    # the time feature: log(1 + days) since the last pre-training interaction
    t1 = r.split(1)[0]
    dt, lt, seen = _dgcf_times([p], t1, nu + ni, nu)
    assert (dt > 0).any() and (dt == 0).any()
    torch.testing.assert_close(s1["interval"], dt.float())
    torch.testing.assert_close(s1["last_time"], lt)
    assert torch.equal(s1["seen"], seen)
    # the update, with random weights
    m = _dgcf_random(models[("dgcn", 1)], SEED)
    g = r.graph(t1, TAU_FT)
    weights = {k: getattr(m, k).detach() for k in WEIGHTS}
    with torch.no_grad():
        got = m(g)
    assert got.shape == (nu + ni, DIM)
    want = _dgcf_dense(m.x.detach(), weights, m.interval, t1, nu, ni)
    assert_table_close(got, want, "dgcn forward")
    # the BPR loss and its gradients, both batch modes, against float64 autograd
    users, pos, neg = _dgcf_batch(r, 1, SEED)
    x64 = m.x.detach().double().requires_grad_()
    w64 = {k: v.double().requires_grad_() for k, v in weights.items()}
    e = _dgcf_dense(x64, w64, m.interval, t1, nu, ni)
    eu, ei, ej = e[users], e[nu + pos], e[nu + neg]
    ego = x64[torch.cat([users, nu + pos, nu + neg])]
    wd = 0.1
    # BPR + L2 + DGCF's temporal smoothness: the interacting user's and item's mean squared
    # change from their (detached) previous states
    change = ((eu - x64.detach()[users]).pow(2).mean()
              + (ei - x64.detach()[nu + pos]).pow(2).mean())
    want_loss = (-torch.log(1e-10 + torch.sigmoid((eu * (ei - ej)).sum(1))).mean()
                 + wd * 0.5 * ego.pow(2).sum() / users.numel() + SMOOTHNESS * change)
    assert change > 0.01 * want_loss  # large enough for the comparison to see it
    want_loss.backward()
    for mode in ("subgraph", "full"):
        m.zero_grad(set_to_none=True)
        loss = m.batch_loss(g, users, pos, neg, 1.0, 0, wd, mode)
        torch.testing.assert_close(loss.double(), want_loss.detach(), rtol=1e-5, atol=1e-6)
        loss.backward()
        assert_table_close(m.x.grad, x64.grad, f"{mode}: grad x", atol=1e-6)
        for k in WEIGHTS:
            grad = getattr(m, k).grad
            assert all(grad[t].abs().sum() > 0 for t in (0, 1)), f"{mode}: no gradient to {k}"
            assert_table_close(grad, w64[k].grad, f"{mode}: grad {k}", atol=1e-6)


def _top_items(emb, nu, k):
    scores = emb[:nu].double() @ emb[nu:].double().T
    return scores.topk(k, dim=1).indices


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_dgcn_untrained_update_keeps_the_pretrained_ranking(dgcn_stages, scale):
    """Before training, stage 1 ranks items for every user nearly as the pre-trained output
    does, whatever that output's scale: a saturated tanh on the snapshot's nodes beside
    unsaturated other nodes would rank by which nodes the snapshot touched."""
    from graphpro_ext.graphpro.methods import METHODS, kind_of

    r, _, _, pre, _ = dgcn_stages
    nu, k = r.nu, 10
    big = {"lightgcn": {**pre["lightgcn"], "x": pre["lightgcn"]["x"] * scale}}
    gen = torch.Generator().manual_seed(SEED)
    st = kind_of(METHODS["dgcn"]).start(r, "dgcn", METHODS["dgcn"], 1, big, gen)
    p = r.data.pretrain
    op = dense_operator(p.users, p.items, p.times, nu, r.ni, TAU_PRE, 0.0)
    states = dense_propagate(op, big["lightgcn"]["x"], LAYERS)
    top = states.abs().max()
    assert_table_close(st.model.x.detach(), states / top if top > 1 else states, "start")
    with torch.no_grad():
        got = _top_items(st.model(st.graph), nu, k)
    want = _top_items(states, nu, k)
    overlap = np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(got, want)])
    assert overlap >= 0.9, f"top-{k} overlap {overlap:.2f} with the pre-trained ranking"


def test_dgcn_carries_states_times_and_weights(dgcn_stages):
    r, starts, models, _, carried = dgcn_stages
    d, nu, ni = r.data, r.nu, r.ni
    m = models[("dgcn", 1)]
    g1 = r.graph(r.split(1)[0], TAU_FT)
    # the states after snapshot 1: updated where it has edges, the trained table elsewhere
    with torch.no_grad():
        torch.testing.assert_close(carried["states"], m(g1))
    no_edges = g1.rowptr[1:] == g1.rowptr[:-1]
    assert no_edges.any()
    torch.testing.assert_close(carried["states"][no_edges], m.x.detach()[no_edges])
    assert not torch.equal(carried["weights"]["w_inherit"], torch.eye(DIM).expand(2, DIM, DIM))
    s2 = starts[("dgcn", 2)]
    torch.testing.assert_close(s2["x"], carried["states"])
    for k in WEIGHTS:  # the update weights continue
        torch.testing.assert_close(carried["weights"][k], getattr(m, k).detach())
        torch.testing.assert_close(s2[k], carried["weights"][k])
    # last interaction times: pre-training + snapshot 1's training part; stage 2's dt from them
    _, lt1, seen1 = _dgcf_times([d.pretrain], r.split(1)[0], nu + ni, nu)
    torch.testing.assert_close(carried["last_time"], lt1)
    assert torch.equal(carried["seen"], seen1)
    dt2, lt2, seen2 = _dgcf_times([d.pretrain, r.split(1)[0]], r.split(2)[0], nu + ni, nu)
    torch.testing.assert_close(s2["interval"], dt2.float())
    torch.testing.assert_close(s2["last_time"], lt2)
    assert torch.equal(s2["seen"], seen2)


def test_dgcn_runs_end_to_end_and_is_deterministic(tmp_path):
    import json

    from graphpro_ext.graphpro.cli import main

    def run(out):
        assert main(["run", "--out", str(out), "--methods", "dgcn", "--synthetic-users", "120",
                     "--synthetic-items", "80", "--synthetic-snapshots", "3", "--dim", "8",
                     "--epochs", "2", "--stage-epochs", "2", "--threads", "1", "--seed",
                     "7"]) == 0
        res = json.loads((out / "results.json").read_text())["methods"]["dgcn"]
        return res, torch.load(out / "ckpt" / "dgcn" / "x_2.pt", weights_only=True)

    (res_a, state_a), (res_b, state_b) = run(tmp_path / "a"), run(tmp_path / "b")
    assert len(res_a["stages"]) == 2
    assert np.isfinite(res_a["average"]["recall@20"])
    for s_a, s_b in zip(res_a["stages"], res_b["stages"]):
        assert (s_a["recall@20"], s_a["ndcg@20"]) == (s_b["recall@20"], s_b["ndcg@20"])
    for k in ("x", "states", "last_time", "seen"):
        assert torch.equal(state_a[k], state_b[k]), k
    for k in WEIGHTS:
        assert torch.equal(state_a["weights"][k], state_b["weights"][k]), k
