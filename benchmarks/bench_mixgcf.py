#!/usr/bin/env python
"""MixGCF's training step: the model's hop mixing against the materialised formulation.

    python benchmarks/bench_mixgcf.py [--dataset amazon|amazon-stage|gowalla|syn:EDGES]
        [--batches 8] [--batch-size 2048] [--threads N]

The model (``models/mixgcf.py``) picks each layer's hardest mixed candidate from [B, M] scores,
computed by one fused ``sddmm`` over the propagated layer (``BatchScope.dots``), and mixes only
the kept one. Three baselines: ``gathered`` gathers the [B * M, d] candidate rows and scores them
with ``bmm`` (this model's code before the sddmm scores, and still its path under a baseline's
readout), ``materialised`` builds every mixed candidate, a [B, M, L+1, d] tensor, and takes the
hardest from it (MixGCF's published formulation). A third, ``previous scope``, is this model
with its batch scope as it was before the rows' positions came from a scatter map and the zero
layers of rows without edges stopped being tables of zeros. All run the same batches of the
trainer's case (batch 2048, M = 64 candidates, 3 layers, d = 64, edge dropout 0.2) on the same
graph, interleaved in one process: per batch, forward + backward of the loss. Printed: medians, the
ratios, and the largest loss difference from ``ours`` (they must agree; an argmax near-tie may
rarely pick another candidate).

``amazon``: the Amazon release's pre-training file (``--data``); ``amazon-stage``: its first
fine-tuning snapshot in the global id space (a GraphPro stage's graph: most candidates have no
edges); ``gowalla``: ``synthetic.gowalla_like()``; ``syn:EDGES``: a small power-law graph (the
smoke test's).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from graphpro_ext.graph import TemporalGraph
from graphpro_ext.graphpro import backend
from graphpro_ext.graphpro.errors import DataError
from graphpro_ext.graphpro.models import build, model_class
from graphpro_ext.graphpro.models.base import EgoRows, bpr_loss
from graphpro_ext.graphpro.models.lightgcn import BatchScope, _GatherRows
from graphpro_ext.graphpro.models.mixgcf import MixGCF
from graphpro_ext.graphpro.runtime import derive_seed


class MaterialisedMixGCF(MixGCF):
    """Hop mixing over the full [B, M, L+1, d] tensor of mixed candidates."""

    def batch_loss(self, graph, users, pos, neg, keep_prob, seed, weight_decay, mode="auto"):
        b, m, nl = users.numel(), neg.shape[1], self.num_layers + 1
        rows = torch.cat([users, graph.num_users + pos, graph.num_users + neg.reshape(-1)])
        layers, ego = self.rows_through(
            graph, rows, mode,
            lambda sub, x0: tuple(backend.layers(sub, x0, self.num_layers, self.time_weight,
                                                 keep_prob, seed)),
            lambda g: (g,) + tuple(torch.zeros_like(g) for _ in range(self.num_layers)))
        h = torch.stack(layers, dim=1)
        e_u, e_p, e_c = h[:b], h[b:2 * b], h[2 * b:].view(b, m, nl, -1)
        gen = torch.Generator(device=h.device).manual_seed(derive_seed(seed, "mixgcf-alpha"))
        alpha = torch.rand(b, 1, nl, 1, generator=gen, device=h.device, dtype=h.dtype)
        mixed = alpha * e_p.unsqueeze(1) + (1 - alpha) * e_c
        with torch.no_grad():
            best = (e_u.unsqueeze(1) * mixed).sum(-1).argmax(dim=1)
        e_n = mixed.gather(1, best[:, None, :, None].expand(b, 1, nl, h.shape[-1])).squeeze(1)
        reg = EgoRows(ego.table, rows[:2 * b], ego._gather).square_sum() + \
            e_n[:, 0].pow(2).sum()
        return bpr_loss(e_u.mean(1), e_p.mean(1), e_n.mean(1), torch.zeros(0), 0.0) + \
            weight_decay * 0.5 * reg / b


class GatheredMixGCF(MixGCF):
    """The candidates' rows gathered and scored by ``bmm``: the path MixGCF takes under a
    baseline's readout (any override of ``readout`` selects it)."""

    def readout(self, e):
        return e


class PreviousScopeMixGCF(MixGCF):
    """This model's batch scope before 2026-12-07: the batch rows located by ``searchsorted``
    (in the subgraph's nodes, or in the sorted rows without edges), and those rows' zero layers
    held as tables of zeros that ``dots`` multiplied with the users' rows."""

    def scope_through(self, graph, rows, mode, propagate, isolated):
        mode, extracted = self.planner.mode(graph, rows, self.num_layers, mode)
        ego = EgoRows(self.x, rows, _GatherRows.apply)
        if mode == "subgraph":
            sub, nodes = extracted or backend.khop_subgraph(graph, rows, self.num_layers)
            (x_sub,) = _GatherRows.apply(self.x, nodes)
            self.scope_nodes = nodes
            outs = propagate(sub, self.gate(x_sub))
            return BatchScope(outs, torch.searchsorted(nodes, rows)), ego
        cg = self.planner.compact(graph)
        (x_act,) = _GatherRows.apply(self.x, cg.glob)
        self.scope_nodes = cg.glob
        outs = propagate(cg.sub, self.gate(x_act))
        loc = cg.local[rows]
        lonely = loc < 0
        if not bool(lonely.any()):
            return BatchScope(outs, loc), ego
        alone = torch.unique(rows[lonely])
        (x_alone,) = _GatherRows.apply(self.x, alone)
        g = self.gate(x_alone)
        fill = tuple(torch.zeros_like(g) if t is None else t for t in isolated(g))
        return BatchScope(outs, loc, fill, torch.searchsorted(alone, rows)), ego


DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "amazon"


def load(dataset: str, data_dir: str) -> TemporalGraph:
    if dataset in ("amazon", "amazon-stage"):
        from graphpro_ext.graphpro.data import load_snapshot_folder

        d = load_snapshot_folder(data_dir)
        pre = d.pretrain if dataset == "amazon" else d.snapshots[0]
        nu, ni = d.num_users, d.num_items
        return TemporalGraph.from_interactions(pre.users, pre.items, pre.times, nu, ni,
                                               tau_hours=24.0)
    from graphpro_ext import synthetic

    if dataset.startswith("syn:"):
        edges = int(dataset[4:])
        return synthetic.power_law_graph(max(edges // 10, 10), max(edges // 15, 10), edges)
    return synthetic.gowalla_like()


def setup(doc: str, argv, dataset: str):
    """The training-step benchmarks' flags and data: (args, graph, history rowptr, history
    items, the pairs' users, a fixed permutation of the pairs)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--dataset", default=dataset, help="amazon, amazon-stage, gowalla or syn:EDGES")
    p.add_argument("--data", default=str(DEFAULT_DATA),
                   help="the Amazon snapshot folder (default: shared/data/amazon beside the "
                        "repository)")
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.dataset not in ("amazon", "amazon-stage", "gowalla") and not (
            a.dataset.startswith("syn:") and a.dataset[4:].isdigit()):
        p.error(f"--dataset {a.dataset}: amazon, amazon-stage, gowalla or syn:EDGES")
    if a.batches < 1 or a.batch_size < 1:
        p.error("--batches and --batch-size must be positive")
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        g = load(a.dataset, a.data)
    except DataError as e:  # a missing or malformed folder: one line, exit 2
        p.error(f"--data {a.data}: {e}")
    rp, cols = g.user_history()
    pu = torch.from_numpy(np.repeat(np.arange(g.num_users), np.diff(rp.numpy())))
    return a, g, rp, cols, pu, torch.from_numpy(np.random.default_rng(0).permutation(pu.numel()))


def batch(a, g, rp, cols, pu, perm, k: int, negatives: int):
    """Batch ``k`` of ``setup``'s data: (users, positives, [B, negatives] negatives)."""
    idx = perm[(k * a.batch_size) % pu.numel():][:a.batch_size]
    users, pos = pu[idx], cols.long()[idx]
    return users, pos, backend.sample_negatives(rp, cols, users, g.num_items, negatives, k)


def timed_step(model, g, users, pos, neg, k: int) -> tuple[float, float]:
    """(seconds, loss) of one forward + backward of the trainer's batch loss."""
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    loss = model.batch_loss(g, users, pos, neg, 0.8, k, 1e-4)
    loss.backward()
    return time.perf_counter() - t0, loss.item()


def main(argv=None) -> int:
    a, g, rp, cols, pu, perm = setup(__doc__, argv, "amazon")
    x = model_class("mixgcf").init_table(g.num_users, g.num_items, 64,
                                         torch.Generator().manual_seed(0))
    ours = build("mixgcf", x.clone(), 3, 0.5)
    variants = {"ours": ours, "previous scope": PreviousScopeMixGCF(x.clone(), 3, 0.5),
                "gathered": GatheredMixGCF(x.clone(), 3, 0.5),
                "materialised": MaterialisedMixGCF(x.clone(), 3, 0.5)}
    bs = a.batch_size
    print(f"{a.dataset}: {g.num_nodes} nodes, {g.num_edges} directed edges; batch {bs}, "
          f"M = {MixGCF.negatives}; {torch.get_num_threads()} threads")
    times = {name: [] for name in variants}
    worst = 0.0
    for k in range(a.batches + 1):  # batch 0 warms up
        users, pos, neg = batch(a, g, rp, cols, pu, perm, k, MixGCF.negatives)
        losses = {}
        names = list(variants)
        for name in names[k % len(names):] + names[:k % len(names)]:  # rotate the order
            seconds, losses[name] = timed_step(variants[name], g, users, pos, neg, k)
            if k:
                times[name].append(seconds)
        worst = max(worst, *(abs(v - losses["ours"]) for v in losses.values()))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"  {k:14s} forward+backward {v * 1e3:8.1f} ms (min {min(times[k]) * 1e3:.1f})"
              + ("" if k == "ours" else f"  ours {v / med['ours']:.2f}x faster (medians)"))
    print(f"  largest loss difference from ours {worst:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
