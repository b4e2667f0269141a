"""Per-rank compute of column-sharded pre-training, measured, and the simulated scaling table.

With P ranks each rank runs the trainer's step on d/P embedding columns (propagation, BPR,
Adam) plus one all-reduce of B + 1 floats. This measures the step of the real trainer model
at d/P columns for each P (interleaved rounds, median), in one process, and adds the
communication time of the volume model in docs/SCALE.md for a given link bandwidth and latency
(parameters: a model, not a measurement of a network). The per-rank step also holds work that
does not shrink with d (subgraph extraction, sampling, index arithmetic): that is measured too.

    python benchmarks/scale_columns.py --edges 1000000 --ranks 1,2,4,8,16,32,64
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from graphpro_ext.graphpro import backend
from graphpro_ext.graphpro.models import EmbeddingModel, xavier_embeddings
from graphpro_ext.synthetic import synthetic_graph


def step_fn(graph, dim: int, batch: int, seed: int = 0):
    """One trainer pre-training step (GraphPro model, batch subgraph mode 'auto') at ``dim``."""
    gen = torch.Generator().manual_seed(seed)
    model = EmbeddingModel(xavier_embeddings(graph.num_users, graph.num_items, dim, gen), 3, 0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    hist = graph.user_history()
    rp = hist[0]
    users_all = torch.repeat_interleave(torch.arange(graph.num_users), rp[1:] - rp[:-1])
    items_all = hist[1].long()
    state = {"k": 0}

    def step():
        k = state["k"] = state["k"] + 1
        idx = torch.randint(0, users_all.numel(), (batch,), generator=gen)
        users, pos = users_all[idx], items_all[idx]
        neg = backend.sample_negatives(hist[0], hist[1], users, graph.num_items, 1, k)[:, 0]
        loss = model.batch_loss(graph, users, pos, neg, 0.8, k, 1e-4)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
    return step


def comm_seconds(world: int, batch: int, bandwidth_gbs: float, latency_us: float) -> float:
    """Ring all-reduce of the B + 1 partial sums (docs/SCALE.md)."""
    if world == 1:
        return 0.0
    volume = 2 * (world - 1) / world * (batch + 1) * 4
    return volume / (bandwidth_gbs * 1e9) + 2 * math.log2(world) * latency_us * 1e-6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", type=int, default=1_000_000, help="directed edges")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--ranks", default="1,2,4,8,16,32,64")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="steps per round and width")
    ap.add_argument("--bandwidth", type=float, default=10.0, help="GB/s per link (model)")
    ap.add_argument("--latency", type=float, default=20.0, help="us per message (model)")
    args = ap.parse_args()
    ranks = [int(r) for r in args.ranks.split(",")]
    widths = sorted({max(1, math.ceil(args.dim / p)) for p in ranks}, reverse=True)
    g = synthetic_graph(args.edges, seed=0)
    steps = {w: step_fn(g, w, args.batch) for w in widths}
    for w in widths:  # warm-up (first batch decides the batch mode, allocations)
        steps[w]()
    times = {w: [] for w in widths}
    for _ in range(args.rounds):
        for w in widths:  # interleaved, so machine load hits every width alike
            t0 = time.perf_counter()
            for _ in range(args.steps):
                steps[w]()
            times[w].append((time.perf_counter() - t0) / args.steps)
    med = {w: statistics.median(v) for w, v in times.items()}
    base = med[max(widths)]
    print(f"# {g.num_edges:,} directed edges, {g.num_nodes:,} nodes, d = {args.dim}, "
          f"B = {args.batch}, {torch.get_num_threads()} threads, {args.rounds} rounds x "
          f"{args.steps} steps, median")
    print(f"# communication: ring all-reduce of B+1 floats at {args.bandwidth} GB/s, "
          f"{args.latency} us latency (model)")
    print("| P | columns/rank | step, measured (ms) | comm, model (ms) | step, simulated (ms) "
          "| speed-up vs P = 1 |")
    print("|---|---|---|---|---|---|")
    for p in ranks:
        w = max(1, math.ceil(args.dim / p))
        c = comm_seconds(p, args.batch, args.bandwidth, args.latency)
        total = med[w] + c
        print(f"| {p} | {w} | {med[w] * 1e3:.1f} | {c * 1e3:.3f} | {total * 1e3:.1f} | "
              f"{base / total:.2f}x |")


if __name__ == "__main__":
    main()
