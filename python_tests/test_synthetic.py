"""graphpro_ext.synthetic: determinism, valid symmetric CSR, degrees, hub share, dtypes (small sizes)."""

import numpy as np
import pytest
import torch

from graphpro_ext import synthetic
from graphpro_ext.graph import TemporalGraph


def _check_csr(g: TemporalGraph) -> None:
    assert isinstance(g, TemporalGraph)
    assert g.rowptr.dtype == torch.int64 and g.col.dtype == torch.int32
    assert g.edge_time.dtype == torch.float32 and g.node_norm.dtype == torch.float32
    n, e = g.num_nodes, g.num_edges
    assert g.rowptr.shape == (n + 1,) and int(g.rowptr[0]) == 0 and int(g.rowptr[-1]) == e
    deg = g.rowptr[1:] - g.rowptr[:-1]
    assert int(deg.min()) >= 0 and int(deg.sum()) == e
    assert e % 2 == 0 and int(deg[: g.num_users].sum()) == e // 2  # each interaction twice
    rows = torch.repeat_interleave(torch.arange(n), deg)
    c = g.col.long()
    assert int(c.min()) >= 0 and int(c.max()) < n
    # bipartite: user rows point at items, item rows at users
    assert bool((c[rows < g.num_users] >= g.num_users).all())
    assert bool((c[rows >= g.num_users] < g.num_users).all())
    same = rows[1:] == rows[:-1]
    assert bool(((c[1:] - c[:-1])[same] > 0).all()), "columns must be strictly increasing in a row"
    g.check_symmetric()
    assert float(g.edge_time.min()) >= 0.0 and float(g.edge_time.max()) <= 1.0
    expect = torch.where(deg > 0, deg.clamp(min=1).double().rsqrt(), torch.zeros(()).double())
    torch.testing.assert_close(g.node_norm.double(), expect, rtol=1e-6, atol=0)


def _same(a: TemporalGraph, b: TemporalGraph) -> bool:
    return all(torch.equal(x, y) for x, y in
               [(a.rowptr, b.rowptr), (a.col, b.col), (a.edge_time, b.edge_time),
                (a.node_norm, b.node_norm)])


@pytest.mark.parametrize("chunk", [1 << 24, 257])
def test_power_law_valid_and_deterministic(chunk):
    kw = dict(num_users=300, num_items=200, num_interactions=4000, seed=7, chunk_size=chunk)
    g = synthetic.power_law_graph(**kw)
    _check_csr(g)
    assert _same(g, synthetic.power_law_graph(**kw))
    assert not _same(g, synthetic.power_law_graph(**{**kw, "seed": 8}))
    st = g.stats
    assert st["interactions"] == g.num_edges // 2
    assert st["draws"] == 4000 and st["interactions"] + st["dropped_draws"] == 4000
    assert st["interactions"] > 3600  # duplicates are re-drawn, not silently lost


def test_power_law_is_skewed():
    g = synthetic.power_law_graph(2000, 2000, 40000, user_exponent=1.0, item_exponent=1.0, seed=1)
    deg = (g.rowptr[1:] - g.rowptr[:-1]).double()
    ideg = deg[2000:]
    assert float(ideg.max()) > 20 * float(ideg.mean())
    u = synthetic.power_law_graph(2000, 2000, 40000, degree="uniform", seed=1)
    udeg = (u.rowptr[1:] - u.rowptr[:-1])[:2000]
    assert int(udeg.max()) - int(udeg.min()) <= 1


def test_hub_fraction_and_uniform_control():
    h = synthetic.hub_graph(20000, hub_fraction=0.05, seed=3)
    u = synthetic.uniform_graph(20000, seed=3)
    _check_csr(h)
    _check_csr(u)
    deg = h.rowptr[1:] - h.rowptr[:-1]
    assert int(deg.argmax()) == 0
    assert abs(int(deg[0]) / h.num_edges - 0.05) < 1e-3
    assert h.num_edges == u.num_edges == 20000
    assert (h.num_users, h.num_items) == (u.num_users, u.num_items)
    assert h.num_items >= 2 * int(deg[0])  # the hub still has unseen items
    udeg = u.rowptr[1:] - u.rowptr[:-1]
    assert int(udeg.max()) < 0.01 * u.num_edges


def test_synthetic_graph_size_and_multichunk_item_side():
    g = synthetic.synthetic_graph(50000, seed=0, chunk_size=4096)
    _check_csr(g)
    assert 0.95 * 50000 <= g.num_edges <= 50000


def test_bad_arguments():
    with pytest.raises(ValueError):
        synthetic.power_law_graph(10, 10, 100, degree="nope")
    with pytest.raises(ValueError):
        synthetic.power_law_graph(10, 10, 100, hub_fraction=0.6)
    with pytest.raises(ValueError):
        synthetic.power_law_graph(10, 5, 1000, hub_fraction=0.1)  # hub wider than the item set


def test_estimate_bytes_grows_with_edges():
    assert synthetic.estimate_bytes(10**9, 75 * 10**6) > 8 * 10**9
    assert np.isfinite(synthetic.estimate_bytes(10, 10))
