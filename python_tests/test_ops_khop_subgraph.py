"""graphpro.khop_subgraph: the induced L-hop neighbourhood of a batch, and the property the trainer
relies on (propagation over it is exact at the seeds, values and input gradients)."""

from __future__ import annotations

import signal

import pytest
import torch
from conftest import assert_close
from op_graphs import BIG_DEGREE, random_csr, random_temporal_graph

import graphpro_ext.ops as ops
import graphpro_ext.reference as ref
from graphpro_ext.graph import TemporalGraph


def _brute_force(rowptr, col, seeds, hops):
    """Python sets: BFS, then every edge whose two ends were reached."""
    rp, c = rowptr.tolist(), col.tolist()
    reached = set(seeds.tolist())
    frontier = set(reached)
    for _ in range(hops):
        frontier = {c[e] for r in frontier for e in range(rp[r], rp[r + 1])} - reached
        reached |= frontier
    nodes = sorted(reached)
    local = {v: k for k, v in enumerate(nodes)}
    rows, cols, pos = [], [], []
    for r in nodes:
        for e in range(rp[r], rp[r + 1]):
            if c[e] in local:
                rows.append(local[r])
                cols.append(local[c[e]])
                pos.append(e)
    return nodes, rows, cols, pos


def _seeds(gen, n, b, dtype):
    s = torch.randint(n, (b,), generator=gen)
    if b > 2:
        s[1] = s[0]  # a duplicate
    return s.to(dtype)


@pytest.mark.parametrize("hops", [0, 1, 2, 3])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("seed_dtype", [torch.int32, torch.int64])
def test_matches_brute_force_and_reference(device, gen, hops, index_dtype, seed_dtype):
    # a directed CSR with empty rows and a > 4096-degree row: the op must not assume symmetry
    n = 300 if hops != 1 else BIG_DEGREE + 100
    csr = random_csr(gen, n, n, index_dtype=index_dtype, big_row=hops == 1)
    rowptr, col = csr.rowptr, csr.col
    seeds = _seeds(gen, n, 7, seed_dtype)
    rowptr, col, seeds = rowptr.to(device), col.to(device), seeds.to(device)
    nodes, srp, scol, pos = ops.khop_subgraph(rowptr, col, seeds, hops)
    assert nodes.dtype == srp.dtype == pos.dtype == torch.int64 and scol.dtype == index_dtype
    bn, brow, bcol, bpos = _brute_force(rowptr.cpu(), col.cpu(), seeds.cpu(), hops)
    assert nodes.cpu().tolist() == bn
    assert srp.cpu().tolist()[0] == 0 and srp.numel() == len(bn) + 1
    assert ref.row_index(srp.cpu()).tolist() == brow
    assert scol.cpu().tolist() == bcol and pos.cpu().tolist() == bpos
    for a, b in zip((nodes, srp, scol, pos), ref.khop_subgraph(rowptr, col, seeds, hops)):
        assert torch.equal(a, b)


def test_edge_cases(device):
    rowptr = torch.tensor([0, 2, 2, 3, 4], device=device)  # node 1 has no edges
    col = torch.tensor([2, 3, 0, 0], dtype=torch.int32, device=device)
    empty = torch.empty(0, dtype=torch.int64, device=device)
    nodes, srp, scol, pos = ops.khop_subgraph(rowptr, col, empty, 3)
    assert nodes.numel() == 0 and srp.tolist() == [0] and scol.numel() == pos.numel() == 0
    nodes, srp, _, _ = ops.khop_subgraph(rowptr, col, torch.tensor([1, 1], device=device), 5)
    assert nodes.tolist() == [1] and srp.tolist() == [0, 0]  # an isolated seed stays alone
    nodes, _, scol, pos = ops.khop_subgraph(rowptr, col, torch.tensor([3], device=device), 1)
    assert nodes.tolist() == [0, 3] and pos.tolist() == [1, 3] and scol.tolist() == [1, 0]
    # no edges at all
    nodes, srp, _, _ = ops.khop_subgraph(torch.zeros(3, dtype=torch.int64, device=device),
                                         torch.empty(0, dtype=torch.int32, device=device),
                                         torch.tensor([1], device=device), 2)
    assert nodes.tolist() == [1] and srp.tolist() == [0, 0]


@pytest.mark.parametrize("time_weight", [0.0, 0.5])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("gated", [False, True])
def test_propagation_over_subgraph_is_exact_at_the_seeds(device, gen, seed, layers, time_weight,
                                                         gated):
    """lightgcn over the subgraph == full-graph lightgcn at the seeds, and a loss on the seeds'
    outputs has the same gradient for every row of x (and the gate weights)."""
    g = random_temporal_graph(gen, 60, 80, big_row=layers == 3).to(device)
    x = torch.randn(g.num_nodes, 8, generator=gen, dtype=torch.float64).to(device)
    w = torch.randn(8, 8, generator=gen, dtype=torch.float64).to(device)
    seeds = torch.randint(g.num_nodes, (9,), generator=gen).to(device)
    coef = torch.randn(9, 8, generator=gen, dtype=torch.float64).to(device)

    def run(xx, ww, sub):
        h0 = xx * torch.sigmoid(xx @ ww) if gated else xx
        if sub:
            nodes, srp, scol, pos = ops.khop_subgraph(g.rowptr, g.col, seeds, layers)
            sg = g.subgraph(nodes, srp, scol, pos)
            h = ops.lightgcn(sg.rowptr, sg.col, sg.edge_time, sg.node_norm, h0[nodes], layers,
                             time_weight)
            return h[torch.searchsorted(nodes, seeds)]
        h = ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, h0, layers, time_weight)
        return h[seeds]

    outs, grads = [], []
    for sub in (False, True):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = run(xx, ww, sub)
        (out * coef).sum().backward()
        outs.append(out.detach())
        grads.append((xx.grad, ww.grad))
    assert_close(outs[1], outs[0], rtol=1e-12, atol=1e-12, seed=seed, what="seed outputs")
    assert_close(grads[1][0], grads[0][0], rtol=1e-10, atol=1e-12, seed=seed, what="x grad")
    if gated:
        assert_close(grads[1][1], grads[0][1], rtol=1e-10, atol=1e-12, seed=seed, what="w grad")


def test_subgraph_keeps_full_graph_norms(gen):
    g = random_temporal_graph(gen, 30, 30)
    seeds = torch.tensor([0, g.num_users + 1])
    nodes, srp, scol, pos = ops.khop_subgraph(g.rowptr, g.col, seeds, 1)
    sg = g.subgraph(nodes, srp, scol, pos)
    assert isinstance(sg, TemporalGraph) and sg.num_nodes == nodes.numel()
    assert sg.num_users == int((nodes < g.num_users).sum())
    assert torch.equal(sg.node_norm, g.node_norm[nodes])
    assert torch.equal(sg.edge_time, g.edge_time[pos])


def test_opcheck(device, gen):
    g = random_temporal_graph(gen, 30, 30).to(device)
    seeds = torch.randint(g.num_nodes, (5,), generator=gen).to(device)
    torch.library.opcheck(torch.ops.graphpro.khop_subgraph.default, (g.rowptr, g.col, seeds, 2))


def test_torch_compile(gen):
    g = random_temporal_graph(gen, 30, 40)
    seeds = torch.randint(g.num_nodes, (6,), generator=gen)
    x = torch.randn(g.num_nodes, 4, generator=gen)

    def f(rowptr, col, et, nn, x, seeds):
        nodes, srp, scol, pos = ops.khop_subgraph(rowptr, col, seeds, 2)
        h = ops.lightgcn(srp, scol, et[pos], nn[nodes], x[nodes], 2, 0.5)
        return h[torch.searchsorted(nodes, seeds)]

    expected = f(g.rowptr, g.col, g.edge_time, g.node_norm, x, seeds)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True):
        out = torch.compile(f, fullgraph=True, backend="aot_eager")(
            g.rowptr, g.col, g.edge_time, g.node_norm, x, seeds)
    assert torch.allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_many_hops_stop_at_the_component(device):
    """num_hops past the graph's diameter is cheap in both implementations (the BFS stops when
    the frontier empties; the torch version, CUDA's kernel, used to loop num_hops times)."""
    rowptr = torch.tensor([0, 1, 2, 2], device=device)
    col = torch.tensor([1, 0], dtype=torch.int32, device=device)
    seeds = torch.tensor([0], device=device)
    def too_slow(signum, frame):
        raise TimeoutError("khop_subgraph kept looping after the frontier emptied")

    old = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(30)
    try:
        for impl in (ops.khop_subgraph, ref.khop_subgraph):
            nodes, _, sub_col, pos = impl(rowptr, col, seeds, 2**62)
            assert nodes.tolist() == [0, 1] and sub_col.tolist() == [1, 0]
            assert pos.tolist() == [0, 1]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_bad_inputs(device):
    rowptr = torch.tensor([0, 1, 2], device=device)
    col = torch.tensor([1, 0], dtype=torch.int32, device=device)
    s = torch.tensor([0], device=device)
    for impl in (ops.khop_subgraph, ref.khop_subgraph):
        with pytest.raises(RuntimeError, match=r"seeds holds a node index outside \[0, num_nodes\)"):
            impl(rowptr, col, torch.tensor([2], device=device), 1)
        with pytest.raises(RuntimeError, match=r"seeds holds a node index outside"):
            impl(rowptr, col, torch.tensor([-1], device=device), 1)
        with pytest.raises((RuntimeError, ValueError), match="num_hops must be >= 0"):
            impl(rowptr, col, s, -1)
        with pytest.raises(RuntimeError, match="col holds an index outside"):
            impl(rowptr, torch.tensor([1, 5], dtype=torch.int32, device=device), s, 2)
        with pytest.raises(RuntimeError, match="must start at 0 and end at the number of edges"):
            impl(torch.tensor([0, 1, 3], device=device), col, s, 1)
        with pytest.raises(RuntimeError, match="rowptr is not non-decreasing"):
            impl(torch.tensor([0, 2, 1, 2], device=device), col, s, 1)
    for hops in (1.5, True, None):  # issue 9: 1.5 used to be truncated to 1 silently
        with pytest.raises(TypeError, match=r"^graphpro\.khop_subgraph: num_hops must be an "
                                            r"integer, got "):
            ops.khop_subgraph(rowptr, col, s, hops)
    with pytest.raises(RuntimeError, match="seeds must be int32 or int64"):
        ops.khop_subgraph(rowptr, col, s.float(), 1)
    with pytest.raises(RuntimeError, match="rowptr must be int64"):
        ops.khop_subgraph(rowptr.int(), col, s, 1)
