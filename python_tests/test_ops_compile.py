"""torch.compile(fullgraph=True) over LightGCN / GraphPro training steps built from the ops:
forward + BPR-like loss on gathered rows + backward, gradients compared with eager."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close
from op_graphs import random_temporal_graph

import graphpro_ext.ops as ops

BACKENDS = ["aot_eager", "inductor"]  # aot_eager: fake kernels + autograd; inductor: the default


def _setup(gen, device):
    g = random_temporal_graph(gen, 30, 40).to(device)
    emb = torch.randn(g.num_nodes, 8, generator=gen, dtype=torch.float64).to(device) * 0.1
    hist_rp, hist_items = g.user_history()
    users = torch.randint(g.num_users, (16,), generator=gen).to(device)
    pos = torch.randint(g.num_items, (16,), generator=gen).to(device)
    return g, emb, hist_rp, hist_items, users, pos


def _graphpro_step(g, hist_rp, hist_items, num_items, keep_prob):
    def step(emb, users, pos, seed):
        # GraphPro: fused temporal layers (lightgcn) + one explicit temporal_propagate layer,
        # plus an edge_softmax-weighted spmm over the same CSR, negatives drawn in-graph.
        out = ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, emb, 2, 0.5, keep_prob, 7)
        out = out + ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, out, 0.3,
                                           keep_prob, 8)
        alpha = ops.edge_softmax(g.rowptr, g.edge_time.to(emb.dtype) * 2.0)
        out = out + ops.spmm(g.rowptr, g.col, alpha, emb)
        neg = ops.sample_negatives(hist_rp, hist_items, users, num_items, 1, seed)[:, 0]
        u = out[users]
        p = out[pos + g.num_users]
        n = out[neg + g.num_users]
        loss = -F.logsigmoid((u * p).sum(-1) - (u * n).sum(-1)).mean()
        return loss + 1e-4 * emb.pow(2).sum()
    return step


def _lightgcn_step(g):
    def step(emb, users, pos, neg):
        out = ops.lightgcn(g.rowptr, g.col, None, g.node_norm, emb, 3, 0.0) / 4
        u, p, n = out[users], out[pos + g.num_users], out[neg + g.num_users]
        return -F.logsigmoid((u * p).sum(-1) - (u * n).sum(-1)).mean()
    return step


def _grad(fn, emb, *args):
    e = emb.clone().requires_grad_()
    loss = fn(e, *args)
    loss.backward()
    return loss.detach(), e.grad


@pytest.mark.parametrize("backend,keep_prob", [("aot_eager", 1.0), ("aot_eager", 0.8),
                                               ("inductor", 0.8)])
def test_compiled_graphpro_step_matches_eager(device, gen, seed, backend, keep_prob):
    torch._dynamo.reset()
    g, emb, hist_rp, hist_items, users, pos = _setup(gen, device)
    step = _graphpro_step(g, hist_rp, hist_items, g.num_items, keep_prob)
    loss_e, grad_e = _grad(step, emb, users, pos, 3)
    compiled = torch.compile(step, fullgraph=True, backend=backend)
    loss_c, grad_c = _grad(compiled, emb, users, pos, 3)
    assert_close(loss_c, loss_e, seed=seed, what="loss", rtol=1e-9, atol=1e-12)
    assert_close(grad_c, grad_e, seed=seed, what="grad", rtol=1e-9, atol=1e-12)
    assert grad_e.abs().sum() > 0
    # A second call with other inputs reuses the graph and still matches eager.
    users2 = torch.randint(g.num_users, (16,), generator=gen).to(device)
    _, grad_e2 = _grad(step, emb, users2, pos, 4)
    _, grad_c2 = _grad(compiled, emb, users2, pos, 4)
    assert_close(grad_c2, grad_e2, seed=seed, what="grad (2nd call)", rtol=1e-9, atol=1e-12)


def test_compiled_lightgcn_step_matches_eager(device, gen, seed):
    torch._dynamo.reset()
    g, emb, _, _, users, pos = _setup(gen, device)
    emb = emb.float()
    neg = torch.randint(g.num_items, (16,), generator=gen).to(device)
    step = _lightgcn_step(g)
    loss_e, grad_e = _grad(step, emb, users, pos, neg)
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    loss_c, grad_c = _grad(compiled, emb, users, pos, neg)
    assert_close(loss_c, loss_e, seed=seed, what="loss", rtol=1e-5, atol=1e-6)
    assert_close(grad_c, grad_e, seed=seed, what="grad", rtol=1e-5, atol=1e-6)


def test_compiled_topk_eval(device, gen, seed):
    torch._dynamo.reset()
    g, emb, hist_rp, hist_items, _, _ = _setup(gen, device)

    def evaluate(emb):
        out = ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, emb, 2, 0.5)
        return ops.topk_masked(out[: g.num_users], out[g.num_users:], hist_rp, hist_items, 5,
                               chunk_items=7)

    ve, ie = evaluate(emb)
    vc, ic = torch.compile(evaluate, fullgraph=True, backend="aot_eager")(emb)
    assert_close(vc, ve, seed=seed, what="topk scores")
    assert torch.equal(ic, ie), seed


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_ops_fullgraph(device, gen, seed, backend):
    """The torch.ops.graphpro ops themselves (no Python wrapper) under fullgraph=True."""
    torch._dynamo.reset()
    g, emb, _, _, users, pos = _setup(gen, device)
    et, nn = g.edge_time.double(), g.node_norm.double()

    def step(emb):
        out, _ = torch.ops.graphpro.lightgcn(g.rowptr, g.col, et, nn, emb, 2, 0.5, 0.9, 1)
        y, _ = torch.ops.graphpro.temporal_propagate(g.rowptr, g.col, et, nn, out, 0.5, 0.9, 2)
        w = torch.ops.graphpro.edge_softmax(g.rowptr, et * 3)
        y = y + torch.ops.graphpro.spmm(g.rowptr, g.col, w, emb)
        return (y[users] * y[pos + g.num_users]).sum()

    loss_e, grad_e = _grad(step, emb)
    loss_c, grad_c = _grad(torch.compile(step, fullgraph=True, backend=backend), emb)
    assert_close(loss_c, loss_e, seed=seed, what="loss", rtol=1e-9, atol=1e-12)
    assert_close(grad_c, grad_e, seed=seed, what="grad", rtol=1e-9, atol=1e-12)


def test_public_wrappers_fullgraph(device, gen):
    torch._dynamo.reset()
    rowptr = torch.tensor([0, 2, 3], device=device)
    s = torch.randn(3, generator=gen).to(device)
    out = torch.compile(lambda t: ops.edge_softmax(rowptr, t), fullgraph=True, backend="eager")(s)
    assert torch.allclose(out, ops.edge_softmax(rowptr, s))
