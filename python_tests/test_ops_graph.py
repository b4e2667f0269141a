"""graphpro_ext.graph.TemporalGraph: building and validating the symmetric temporal CSR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from op_graphs import random_interactions

from graphpro_ext.graph import TemporalGraph, build_history, time_steps

H = 3600.0


def _dense(g: TemporalGraph):
    """(adjacency bool [N, N], times float64 [N, N]) of a CSR graph."""
    n = g.num_nodes
    rows = torch.repeat_interleave(torch.arange(n), g.rowptr[1:] - g.rowptr[:-1])
    adj = torch.zeros(n, n, dtype=torch.bool)
    tm = torch.full((n, n), float("nan"), dtype=torch.float64)
    adj[rows, g.col.long()] = True
    tm[rows, g.col.long()] = g.edge_time.double()
    return adj, tm


def _oracle(users, items, times, num_users, num_items, tau_hours=1.0):
    """Plain-Python build: merge keeping the latest time, steps from the earliest input time,
    min-max normalised steps, deg^-1/2 norms."""
    latest: dict[tuple[int, int], float] = {}
    for u, i, t in zip(users.tolist(), items.tolist(), times.tolist()):
        latest[(u, i)] = max(latest.get((u, i), -math.inf), t)
    n = num_users + num_items
    adj = torch.zeros(n, n, dtype=torch.bool)
    tm = torch.full((n, n), float("nan"), dtype=torch.float64)
    if latest:
        t0 = min(times.tolist())
        steps = {k: 1 + math.floor((t - t0) / (tau_hours * H)) for k, t in latest.items()}
        lo, hi = min(steps.values()), max(steps.values())
        for (u, i), s in steps.items():
            v = (s - lo) / (hi - lo) if hi > lo else 0.0
            adj[u, num_users + i] = adj[num_users + i, u] = True
            tm[u, num_users + i] = tm[num_users + i, u] = v
    else:
        lo = hi = 0
    deg = adj.sum(1).double()
    norm = torch.where(deg > 0, deg.clamp_min(1).rsqrt(), torch.zeros_like(deg))
    return adj, tm, norm, (lo, hi), len(latest)


@pytest.mark.parametrize("equal_times", [False, True])
@pytest.mark.parametrize("tau", [1.0, 24.0])
def test_matches_python_oracle(gen, seed, tau, equal_times):
    it = random_interactions(gen, 30, 40, equal_times=equal_times)
    g = TemporalGraph.from_interactions(it.users, it.items, it.times, 30, 40, tau_hours=tau)
    adj, tm, norm, steps, n_unique = _oracle(it.users, it.items, it.times, 30, 40, tau)
    gadj, gtm = _dense(g)
    assert torch.equal(gadj, adj), f"structure (seed={seed})"
    torch.testing.assert_close(gtm[adj], tm[adj], rtol=0, atol=1e-6,
                               msg=lambda m: f"edge times (seed={seed}): {m}")
    torch.testing.assert_close(g.node_norm.double(), norm,
                               msg=lambda m: f"node_norm (seed={seed}): {m}")
    assert g.stats["time_steps"] == steps, seed
    assert g.stats["interactions"] == n_unique and g.num_edges == 2 * n_unique
    assert g.stats["interactions_in"] == it.users.numel()
    assert g.stats["duplicates_merged"] == it.users.numel() - n_unique
    if equal_times:
        assert (g.edge_time == 0).all()
    else:
        assert float(g.edge_time.min()) == 0.0 and float(g.edge_time.max()) == 1.0


def test_layout(gen, seed):
    it = random_interactions(gen, 25, 35, big_row=True)
    g = TemporalGraph.from_interactions(it.users, it.items, it.times, 25, it.num_items)
    assert g.rowptr.dtype == torch.int64 and g.col.dtype == torch.int32
    assert g.edge_time.dtype == torch.float32 and g.node_norm.dtype == torch.float32
    assert g.rowptr.numel() == g.num_nodes + 1 and int(g.rowptr[0]) == 0
    assert int(g.rowptr[-1]) == g.num_edges and (g.rowptr[1:] >= g.rowptr[:-1]).all()
    deg = g.rowptr[1:] - g.rowptr[:-1]
    assert int(deg.max()) > 4096
    for r in range(g.num_nodes):  # columns strictly increasing within each row
        c = g.col[g.rowptr[r]:g.rowptr[r + 1]]
        assert (c[1:] > c[:-1]).all(), (r, seed)
    # Bipartite: users link only to items and vice versa.
    rows = torch.repeat_interleave(torch.arange(g.num_nodes), deg)
    assert ((rows < 25) != (g.col.long() < 25)).all()
    assert ((g.edge_time >= 0) & (g.edge_time <= 1)).all()
    g.check_symmetric()


def test_duplicate_merge_keeps_latest_time():
    # (0, 1) three times, latest last in time but not in order; (1, 0) once.
    users = [0, 0, 1, 0]
    items = [1, 1, 0, 1]
    times = [50 * H, 10 * H, 0.0, 20 * H]
    g = TemporalGraph.from_interactions(users, items, times, 2, 2)
    assert g.stats["duplicates_merged"] == 2 and g.num_edges == 4
    # merged times: (0,1) -> 50h, (1,0) -> 0h: steps 51 and 1 -> normalised 1 and 0
    assert g.stats["time_steps"] == (1, 51)
    _, tm = _dense(g)
    assert tm[0, 3] == 1.0 and tm[3, 0] == 1.0
    assert tm[1, 2] == 0.0 and tm[2, 1] == 0.0


def test_time_steps_and_normalisation():
    times = np.array([0.0, 0.5 * H, 1.0 * H, 2.9 * H, 10 * H])
    assert time_steps(times, 1.0).tolist() == [1, 1, 2, 3, 11]
    assert time_steps(times, 2.0).tolist() == [1, 1, 1, 2, 6]
    assert time_steps(times, 1.0, t_min=-1.0 * H).tolist() == [2, 2, 3, 4, 12]
    with pytest.raises(ValueError, match="tau_hours must be > 0"):
        time_steps(times, 0.0)
    g = TemporalGraph.from_interactions([0, 1, 2, 0, 1], [0, 1, 2, 3, 4], times, 3, 5)
    assert g.stats["time_steps"] == (1, 11)
    _, tm = _dense(g)
    expected = {(0, 3): 0.0, (1, 4): 0.0, (2, 5): 0.1, (0, 6): 0.2, (1, 7): 1.0}
    for (r, c), v in expected.items():
        assert abs(float(tm[r, c]) - v) < 1e-6 and abs(float(tm[c, r]) - v) < 1e-6


def test_all_equal_times_and_single_interaction():
    g = TemporalGraph.from_interactions([0, 1], [1, 0], [5.0, 5.0], 2, 2)
    assert (g.edge_time == 0).all() and g.stats["time_steps"] == (1, 1)
    g = TemporalGraph.from_interactions([1], [2], [123.0], 3, 4)
    assert g.num_edges == 2 and g.stats["interactions"] == 1
    norm = g.node_norm.tolist()
    assert norm[1] == 1.0 and norm[3 + 2] == 1.0 and sum(v != 0 for v in norm) == 2


def test_node_norm_isolated_nodes():
    g = TemporalGraph.from_interactions([0, 0, 0, 2], [0, 1, 3, 0], [1.0, 2.0, 3.0, 4.0], 4, 5)
    norm = g.node_norm
    deg = (g.rowptr[1:] - g.rowptr[:-1]).float()
    assert deg.tolist() == [3, 0, 1, 0, 2, 1, 0, 1, 0]
    expected = torch.where(deg > 0, deg.clamp_min(1).rsqrt(), torch.zeros_like(deg))
    torch.testing.assert_close(norm, expected)


def test_empty_interactions():
    g = TemporalGraph.from_interactions([], [], [], 3, 2)
    assert g.num_edges == 0 and g.rowptr.tolist() == [0] * 6
    assert (g.node_norm == 0).all()


@pytest.mark.parametrize("kind", ["list", "numpy", "tensor", "float-ids"])
def test_input_kinds(gen, seed, kind):
    it = random_interactions(gen, 10, 12)
    ref = TemporalGraph.from_interactions(it.users, it.items, it.times, 10, 12)
    conv = {
        "list": lambda a: a.tolist(),
        "numpy": lambda a: a.numpy(),
        "tensor": lambda a: a,
        "float-ids": lambda a: a.double() if not a.is_floating_point() else a,
    }[kind]
    g = TemporalGraph.from_interactions(conv(it.users), conv(it.items), conv(it.times), 10, 12)
    assert torch.equal(g.rowptr, ref.rowptr) and torch.equal(g.col, ref.col)
    assert torch.equal(g.edge_time, ref.edge_time), seed


def test_user_history_and_build_history(gen, seed):
    it = random_interactions(gen, 15, 20)
    g = TemporalGraph.from_interactions(it.users, it.items, it.times, 15, 20)
    rp, items = g.user_history()
    rp2, items2 = build_history(it.users.numpy(), it.items.numpy(), 15)
    assert torch.equal(rp, rp2) and torch.equal(items.long(), items2.long()), seed
    for u in range(15):
        row = items[rp[u]:rp[u + 1]]
        assert (row[1:] > row[:-1]).all()
        assert set(row.tolist()) == set(it.items[it.users == u].tolist())


def test_check_symmetric_detects_asymmetry(gen):
    it = random_interactions(gen, 10, 12)
    g = TemporalGraph.from_interactions(it.users, it.items, it.times, 10, 12)
    g.check_symmetric()
    bad = g.to("cpu")
    bad.edge_time = g.edge_time.clone()
    bad.edge_time[0] += 0.5
    with pytest.raises(ValueError, match="edge times are not symmetric"):
        bad.check_symmetric()
    bad = g.to("cpu")
    r = int(torch.nonzero(g.rowptr[1:] > g.rowptr[:-1])[0])  # first non-empty row
    bad.col = g.col.clone()
    bad.col[int(g.rowptr[r])] = (int(g.col[int(g.rowptr[r])]) + 1) % g.num_nodes
    with pytest.raises(ValueError, match="not structurally symmetric"):
        bad.check_symmetric()


class TestBadInputs:
    def test_user_out_of_range(self):
        with pytest.raises(ValueError, match=r"users\[1\] = 3 is outside \[0, 3\) \(num_users = 3"):
            TemporalGraph.from_interactions([0, 3], [0, 1], [1.0, 2.0], 3, 2)

    def test_item_out_of_range(self):
        with pytest.raises(ValueError, match=r"items\[0\] = 2 is outside \[0, 2\) \(num_items = 2"):
            TemporalGraph.from_interactions([0, 1], [2, 1], [1.0, 2.0], 3, 2)

    def test_negative_ids(self):
        with pytest.raises(ValueError, match=r"users\[2\] = -1 is outside \[0, 3\)"):
            TemporalGraph.from_interactions([0, 1, -1], [0, 1, 0], [1.0, 2.0, 3.0], 3, 2)
        with pytest.raises(ValueError, match=r"items\[0\] = -4 is outside"):
            TemporalGraph.from_interactions(torch.tensor([0]), torch.tensor([-4]), [1.0], 3, 2)

    def test_unequal_lengths(self):
        with pytest.raises(ValueError, match="must have the same length, got 2, 2, 3"):
            TemporalGraph.from_interactions([0, 1], [0, 1], [1.0, 2.0, 3.0], 3, 2)
        with pytest.raises(ValueError, match="must have the same length, got 1, 2, 2"):
            TemporalGraph.from_interactions([0], [0, 1], [1.0, 2.0], 3, 2)

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
    def test_non_finite_times(self, bad):
        with pytest.raises(ValueError, match=r"times\[1\] = .* is not finite"):
            TemporalGraph.from_interactions([0, 1], [0, 1], [1.0, bad], 3, 2)

    def test_non_integer_ids(self):
        with pytest.raises(ValueError, match="users must hold integer ids"):
            TemporalGraph.from_interactions([0.5, 1.0], [0, 1], [1.0, 2.0], 3, 2)
        with pytest.raises(ValueError, match="items must hold integer ids"):
            TemporalGraph.from_interactions([0, 1], [float("nan"), 1.0], [1.0, 2.0], 3, 2)

    def test_non_numeric_times_and_2d(self):
        with pytest.raises(ValueError, match="times must be numeric"):
            TemporalGraph.from_interactions([0], [0], ["x"], 3, 2)
        with pytest.raises(ValueError, match=r"users must be 1-D"):
            TemporalGraph.from_interactions([[0]], [0], [1.0], 3, 2)

    def test_bad_sizes_and_tau(self):
        with pytest.raises(ValueError, match="num_users and num_items must be >= 0"):
            TemporalGraph.from_interactions([], [], [], -1, 2)
        with pytest.raises(ValueError, match="tau_hours must be > 0"):
            TemporalGraph.from_interactions([0], [0], [1.0], 3, 2, tau_hours=0)
