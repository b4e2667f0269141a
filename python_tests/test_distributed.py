"""Column sharding over torch.distributed (gloo, ranks spawned by the test): every sharded
quantity equals the matching columns of the single-process computation, forward and gradients,
for P = 2 and 3 (an uneven split)."""

import os
import tempfile

import pytest
import torch
import torch.multiprocessing as mp

from graphpro_ext.graphpro.distributed import Shard, column_range


@pytest.mark.parametrize("dim,world", [(64, 1), (64, 2), (64, 3), (10, 4), (7, 7), (65, 8)])
def test_column_ranges_tile_the_embedding(dim, world):
    ranges = [column_range(dim, world, r) for r in range(world)]
    assert ranges[0][0] == 0 and ranges[-1][1] == dim
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    widths = [hi - lo for lo, hi in ranges]
    assert max(widths) - min(widths) <= 1
    with pytest.raises(ValueError, match="cannot split"):
        column_range(world - 1, world, 0) if world > 1 else column_range(0, 1, 0)


def _close(a, b, what, rtol=1e-5, atol=1e-6):
    if not torch.allclose(a, b, rtol=rtol, atol=atol):
        raise AssertionError(f"{what}: max abs diff {(a - b).abs().max().item():.3g}")


def _rank_main(rank, world, init_file):
    import torch.distributed as dist

    from graphpro_ext import ops
    from graphpro_ext.graphpro import distributed as D
    from graphpro_ext.synthetic import power_law_graph

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    shard = Shard(rank, world)
    gen = torch.Generator().manual_seed(1234)  # the same inputs on every rank
    b, d, rows = 37, 19, 50
    u, i, j = (torch.randn(b, d, generator=gen) for _ in range(3))
    ego = torch.randn(3 * b, d, generator=gen)
    lo, hi = shard.columns(d)

    # BPR loss: the full loss on every rank, gradients of this rank's columns
    full = [t.clone().requires_grad_() for t in (u, i, j, ego)]
    ref = -torch.log(1e-10 + torch.sigmoid((full[0] * full[1]).sum(1)
                                           - (full[0] * full[2]).sum(1))).mean()
    ref = ref + 1e-2 * 0.5 * full[3].pow(2).sum() / b
    ref.backward()
    loc = [t[:, lo:hi].clone().requires_grad_() for t in (u, i, j, ego)]
    loss = D.bpr_loss(*loc, 1e-2, shard)
    loss.backward()
    _close(loss.detach(), ref.detach(), "bpr loss")
    for name, f, s in zip("uije", full, loc):
        _close(s.grad, f.grad[:, lo:hi], f"bpr grad {name}")

    # the learnable gate x * sigmoid(x W + b) mixes columns
    x = torch.randn(rows, d, generator=gen)
    w = torch.randn(d, d, generator=gen) * 0.3
    bias = torch.randn(1, d, generator=gen)
    g = torch.randn(rows, d, generator=gen)
    xf, wf, bf = (t.clone().requires_grad_() for t in (x, w, bias))
    (xf * torch.sigmoid(xf @ wf + bf) * g).sum().backward()
    xl, wl, bl = (t[:, lo:hi].clone().requires_grad_() for t in (x, w, bias))
    xg = D.all_gather_columns(xl, shard, d)
    out = xl * torch.sigmoid(xg @ wl + bl)
    _close(out.detach(), (x * torch.sigmoid(x @ w + bias))[:, lo:hi], "gate forward")
    (out * g[:, lo:hi]).sum().backward()
    _close(xl.grad, xf.grad[:, lo:hi], "gate grad x")
    _close(wl.grad, wf.grad[:, lo:hi], "gate grad W")
    _close(bl.grad, bf.grad[:, lo:hi], "gate grad b")

    # a decision from a local clock is taken by all ranks when any one takes it
    assert D.any_rank(rank == world - 1, shard) and not D.any_rank(False, shard)

    # the interpolative update's row normalisation
    _close(D.row_normalize(x[:, lo:hi], shard), torch.nn.functional.normalize(x, dim=1)[:, lo:hi],
           "row normalize")

    # propagation is column-local, edge dropout included
    gr = power_law_graph(120, 90, 2000, seed=5)
    e = torch.randn(gr.num_nodes, d, generator=gen)
    args = (gr.rowptr, gr.col, gr.edge_time, gr.node_norm)
    kw = dict(num_layers=3, time_weight=0.5, keep_prob=0.7, seed=99)
    _close(ops.lightgcn(*args, e[:, lo:hi].contiguous(), **kw),
           ops.lightgcn(*args, e, **kw)[:, lo:hi], "lightgcn columns")
    dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_collectives_match_single_process(world):
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_rank_main, args=(world, os.path.join(d, "init")), nprocs=world, join=True)


def _stop_rank_main(rank, world, init_file, out_dir):
    import signal

    import numpy as np
    import torch.distributed as dist

    from graphpro_ext.graph import TemporalGraph
    from graphpro_ext.graphpro import models, runtime
    from graphpro_ext.graphpro import train as T
    from graphpro_ext.graphpro.errors import Stopped
    from graphpro_ext.graphpro.metrics import make_eval_set

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    rng = np.random.default_rng(1)
    u, i = rng.integers(0, 60, 3000), rng.integers(0, 40, 3000)
    g = TemporalGraph.from_interactions(u, i, np.zeros(3000), 60, 40, tau_hours=1.0)
    es = make_eval_set(u[:200], i[:200], u, i, 60)
    x = models.model_class("lightgcn").init_table(60, 40, 8, torch.Generator().manual_seed(0))
    model = models.build("lightgcn", x, 2, 0.0, shard=Shard(rank, world))
    cfg = T.TrainConfig(epochs=5, patience=10, batch_size=1024, ckpt_every=0, ckpt_minutes=0.0)
    evaluate, calls = T.evaluate_model, [0]

    def eval_then_signal(*a, **k):  # only the last rank receives the SIGTERM, in epoch 2
        calls[0] += 1
        if rank == world - 1 and calls[0] == 3:
            runtime._STOP.append(signal.SIGTERM)
        return evaluate(*a, **k)
    T.evaluate_model = eval_then_signal
    path = os.path.join(out_dir, f"p.r{rank}of{world}.pt")
    try:
        T.fit(model, g, g.user_history(), es, cfg, "t", path)
        raise AssertionError(f"rank {rank} did not stop")
    except Stopped as e:
        assert "stopped after epoch 2" in str(e), str(e)
    assert torch.load(path, weights_only=False)["state"]["epoch"] == 3
    dist.destroy_process_group()


def test_a_sigterm_on_one_rank_stops_every_rank_at_the_same_epoch(tmp_path):
    """The stop flag rides the per-epoch all_reduce: the ranks that got no signal checkpoint
    and stop at the same epoch as the one that did (none is left waiting in a collective)."""
    import time

    ctx = mp.spawn(_stop_rank_main, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2,
                   join=False)
    deadline = time.monotonic() + 120  # ranks that disagree would wait in a collective forever
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise AssertionError("the ranks did not stop together (one waits in a collective)")


def test_single_shard_is_the_identity():
    from graphpro_ext.graphpro import distributed as D

    s = Shard.single()
    assert D.any_rank(True, s) and not D.any_rank(False, s)
    x = torch.randn(4, 6)
    assert D.all_reduce_sum(x, s) is x and D.all_gather_columns(x, s, 6) is x
    assert torch.equal(D.row_normalize(x, s), torch.nn.functional.normalize(x, dim=1))
    assert s.columns(6) == (0, 6) and not s.sharded


TINY_RUN = ["--synthetic-users", "150", "--synthetic-items", "100", "--synthetic-snapshots", "4",
            "--dim", "16", "--batch-size", "256", "--epochs", "3", "--stage-epochs", "2",
            "--pretrain-val-users", "100", "--eval-batch", "64", "--threads", "1",
            "--window", "2", "--ckpt-every", "1"]


def _launch(out, nproc, *extra, env=None):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "graphpro_ext.graphpro", "run", "--out", str(out),
           *TINY_RUN, *extra]
    if nproc > 1:
        cmd[1:3] = ["-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                    "-m", "graphpro_ext.graphpro"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))


def _compare(single, sharded):
    """Largest metric difference, relative per-epoch loss difference and table difference."""
    import json

    a, b = (json.loads((d / "results.json").read_text()) for d in (single, sharded))
    metric = max(abs(sa[k] - sb[k]) for m in a["methods"]
                 for sa, sb in zip(a["methods"][m]["stages"], b["methods"][m]["stages"])
                 for k in ("recall@20", "ndcg@20"))
    loss = max(abs(ha["loss"] - hb["loss"]) / abs(ha["loss"]) for kind in a["pretrain"]
               for ha, hb in zip(a["pretrain"][kind]["history"], b["pretrain"][kind]["history"]))
    tables = 0.0
    for p in (single / "ckpt").rglob("*.pt"):
        x = torch.load(p, weights_only=False)
        y = torch.load(sharded / p.relative_to(single), weights_only=False)
        x, y = (v["x"] if isinstance(v, dict) and "x" in v else v for v in (x, y))
        if isinstance(x, torch.Tensor):
            tables = max(tables, (x - y).abs().max().item())
    return b["distributed"], metric, loss, tables


@pytest.mark.parametrize("world", [2, 3])
def test_torchrun_matches_single_process(tmp_path, world):
    """`torchrun --nproc-per-node P graphpro run` (gloo, one thread per rank, every method,
    window 2 over 3 stages) against the single process with the same seed: the same metrics
    up to ranking flips, per-epoch losses and stage tables equal to fp32 tolerance."""
    single = tmp_path / "single"
    r = _launch(single, 1)
    assert r.returncode == 0, r.stderr[-3000:]
    sharded = tmp_path / f"p{world}"
    r = _launch(sharded, world)
    assert r.returncode == 0, r.stderr[-3000:]
    info, metric, loss, tables = _compare(single, sharded)
    assert info == {"world_size": world, "backend": "gloo", "sharding": "embedding columns"}
    assert metric < 2e-3 and loss < 1e-5 and tables < 1e-5, (metric, loss, tables)
    assert f"{world} ranks (gloo)" in (sharded / "log.txt").read_text()


@pytest.mark.slow
def test_sharded_run_resumes_under_another_world_size(tmp_path):
    """Killed mid-stage with P = 2, resumed with P = 3: finished phases are full tables any P
    reads, the interrupted phase restarts, and the results equal an uninterrupted single run."""
    single = tmp_path / "single"
    assert _launch(single, 1).returncode == 0
    out = tmp_path / "crashy"
    r = _launch(out, 2, env={"GRAPHPRO_FAIL_AT": "graphpro/stage2/epoch1"})
    assert r.returncode != 0
    assert sorted(p.name for p in (out / "ckpt" / "graphpro").glob("*.partial*")) == [
        "stage_2.partial.r0of2.pt", "stage_2.partial.r1of2.pt"]
    r = _launch(out, 3, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ignoring 2 mid-phase checkpoint(s) of another world size" in r.stderr
    assert not list((out / "ckpt").rglob("*.partial*"))
    _, metric, loss, tables = _compare(single, out)
    assert metric < 2e-3 and loss < 1e-5 and tables < 1e-5, (metric, loss, tables)
