#!/usr/bin/env python
"""SimGCL's training step: the model's noise against the plain autograd expression.

    python benchmarks/bench_simgcl.py [--dataset amazon|amazon-stage|gowalla|syn:EDGES]
        [--batches 8] [--batch-size 2048] [--threads N]

Each of SimGCL's two views adds ``sign(h) * eps * normalize(U(0, 1))`` to every layer's output
over the batch's scope. The model (``models/simgcl.py``, ``eps_noise``) builds that term without
autograd and in place; ``plain`` is the expression as written, which allocates four scope-size
tensors per layer and keeps them for a backward of zeros. Both run the same batches of the
trainer's case (batch 2048, 3 layers, d = 64, edge dropout 0.2) on the same graph, interleaved in
one process: per batch, forward + backward of the loss. Printed: medians, the ratio, and the
largest differences of loss and table gradient (both 0: the same values bit for bit). Datasets
as in ``bench_mixgcf.py``.
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from bench_mixgcf import batch, setup, timed_step
from graphpro_ext.graphpro.models import build, model_class
from graphpro_ext.graphpro.models import simgcl


def plain_noise(eps: float, view_seed: int, device):
    gen = torch.Generator(device=device).manual_seed(view_seed)

    def perturb(h):
        noise = torch.rand(h.shape, generator=gen, device=h.device, dtype=h.dtype)
        return h + torch.sign(h) * F.normalize(noise, dim=1) * eps
    return perturb


def main(argv=None) -> int:
    a, g, rp, cols, pu, perm = setup(__doc__, argv, "amazon-stage")
    x = model_class("simgcl").init_table(g.num_users, g.num_items, 64,
                                         torch.Generator().manual_seed(0))
    models = {"ours": build("simgcl", x.clone(), 3, 0.5), "plain": build("simgcl", x.clone(), 3,
                                                                          0.5)}
    noises = {"ours": simgcl.eps_noise, "plain": plain_noise}
    print(f"{a.dataset}: {g.num_nodes} nodes, {g.num_edges} directed edges; batch "
          f"{a.batch_size}; {torch.get_num_threads()} threads")
    times = {name: [] for name in models}
    worst_loss = worst_grad = 0.0
    try:
        for k in range(a.batches + 1):  # batch 0 warms up
            users, pos, neg = batch(a, g, rp, cols, pu, perm, k, 1)
            losses = {}
            for name in list(models) if k % 2 else list(models)[::-1]:
                simgcl.eps_noise = noises[name]  # what SimGCL.batch_loss calls
                seconds, losses[name] = timed_step(models[name], g, users, pos, neg[:, 0], k)
                if k:
                    times[name].append(seconds)
            worst_loss = max(worst_loss, abs(losses["ours"] - losses["plain"]))
            worst_grad = max(worst_grad, float((models["ours"].x.grad
                                                - models["plain"].x.grad).abs().max()))
    finally:
        simgcl.eps_noise = noises["ours"]
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"  ours  forward+backward {med['ours'] * 1e3:8.1f} ms")
    print(f"  plain forward+backward {med['plain'] * 1e3:8.1f} ms  ours "
          f"{med['plain'] / med['ours']:.2f}x faster (medians)")
    print(f"  largest loss difference {worst_loss:.2e}, largest gradient difference "
          f"{worst_grad:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
