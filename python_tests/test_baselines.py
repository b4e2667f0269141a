"""The baselines added for Table 2 (methods/): each stage's starting point recomputed
independently with the dense float64 references of test_trainer_runner, plus what each may and
may not train."""

import numpy as np
import torch

from graphpro_ext.graphpro.runtime import derive_seed
from test_trainer_runner import (LAYERS, SEED, TAU_FT, TAU_PRE, assert_table_close, cat,
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
    for name, init in (("gpf", 0.0), ("graphprompt", 1.0)):
        r.stage(name, 1, pre)
        r.stage(name, 2, pre)
        for n in (1, 2):
            s, m = starts[(name, n)], models[(name, n)]
            torch.testing.assert_close(s["x"], pre["lightgcn"]["x"])  # every stage: pre-trained
            assert torch.all(s["prompt"] == init)
            torch.testing.assert_close(m.x.detach(), pre["lightgcn"]["x"])  # frozen
            assert not torch.all(m.prompt.detach() == init)  # the prompt did train
            assert [k for k, v in m.named_parameters() if v.requires_grad] == ["prompt"]
    g = r.graph(r.split(1)[0], TAU_FT)
    gp_model, gpr_model = models[("gpf", 1)], models[("graphprompt", 1)]
    with torch.no_grad():
        x = gp_model.x
        d = r.data
        t1 = r.split(1)[0]
        op = dense_operator(t1.users, t1.items, t1.times, d.num_users, d.num_items, TAU_FT, 0.0)
        want = dense_propagate(op, x + gp_model.prompt, LAYERS)
        assert_table_close(gp_model(g), want, "gpf forward = propagation of x + p")
        want = dense_propagate(op, gpr_model.x, LAYERS) * gpr_model.prompt.double()
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
