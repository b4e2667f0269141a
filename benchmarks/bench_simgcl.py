#!/usr/bin/env python
"""SimGCL's and SGL's training step: ours against the previous and the plain formulations.

    python benchmarks/bench_simgcl.py [--model simgcl|sgl] [--dataset amazon|amazon-stage|
        gowalla|syn:EDGES] [--batches 8] [--batch-size 2048] [--threads N]

Both backbones add a contrastive loss: InfoNCE between two views of the batch's distinct users
and distinct positive items (n about 1,900 rows each at batch 2048). SimGCL's views add
``sign(h) * eps * normalize(U(0, 1))`` to every layer's output over the batch's scope.

* ``ours``: the models as they are. InfoNCE is ``models.base.info_nce`` (one [n, n] buffer, a
  backward of two matrix products and no [n, n] pass); SimGCL's noise is the fused
  ``simgcl_perturb`` op (keyed uniforms, one pass, no noise tensor).
* ``previous``: InfoNCE as matmul + logsumexp + diagonal; the noise drawn with ``torch.rand``
  and built in place without autograd (the models before the op).
* ``plain`` (SimGCL only): the previous InfoNCE and the noise expression as written, which keeps
  four scope-size tensors per layer for a backward of zeros.

All run the same batches of the trainer's case (3 layers, d = 64, edge dropout 0.2) on the same
graph, interleaved in one process: per batch, forward + backward of the loss. Printed: medians,
ratios, and the largest relative loss difference against ``ours`` (SGL: rounding only; SimGCL:
other random noise, so a small difference of the same size as between two seeds' noise).
Datasets as in ``bench_mixgcf.py``.
"""

from __future__ import annotations

import statistics
import sys

import torch
import torch.nn.functional as F

from bench_mixgcf import batch, setup, timed_step
from graphpro_ext.graphpro.models import base, build, model_class, simgcl


def previous_info_nce(a, b, temperature):
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()


def previous_noise(eps: float, view_seed: int):
    gen = torch.Generator().manual_seed(view_seed)

    def perturb(h):
        with torch.no_grad():
            noise = torch.rand(h.shape, generator=gen, dtype=h.dtype)
            noise.div_(noise.norm(dim=1, keepdim=True).clamp_min_(1e-12))
            noise.mul_(torch.sign(h)).mul_(eps)
        return h + noise
    return perturb


def plain_noise(eps: float, view_seed: int):
    gen = torch.Generator().manual_seed(view_seed)

    def perturb(h):
        noise = torch.rand(h.shape, generator=gen, dtype=h.dtype)
        return h + torch.sign(h) * F.normalize(noise, dim=1) * eps
    return perturb


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = "simgcl"
    if "--model" in argv:
        i = argv.index("--model")
        name = argv[i + 1] if i + 1 < len(argv) else ""
        del argv[i:i + 2]
    if name not in ("simgcl", "sgl"):
        print(f"bench_simgcl: error: --model {name!r}: simgcl or sgl", file=sys.stderr)
        return 2
    a, g, rp, cols, pu, perm = setup(__doc__, argv, "amazon-stage")
    x = model_class(name).init_table(g.num_users, g.num_items, 64,
                                     torch.Generator().manual_seed(0))
    # variant -> (InfoNCE, SimGCL noise) the models' modules call
    variants = {"ours": (base.info_nce, simgcl.eps_noise),
                "previous": (previous_info_nce, previous_noise)}
    if name == "simgcl":
        variants["plain"] = (previous_info_nce, plain_noise)
    models = {v: build(name, x.clone(), 3, 0.5) for v in variants}
    print(f"{name} on {a.dataset}: {g.num_nodes} nodes, {g.num_edges} directed edges; batch "
          f"{a.batch_size}; {torch.get_num_threads()} threads")
    times = {v: [] for v in variants}
    worst = {v: 0.0 for v in variants}
    try:
        for k in range(a.batches + 1):  # batch 0 warms up
            users, pos, neg = batch(a, g, rp, cols, pu, perm, k, 1)
            losses = {}
            order = list(variants) if k % 2 else list(variants)[::-1]
            for v in order:
                base.info_nce, simgcl.eps_noise = variants[v]
                seconds, losses[v] = timed_step(models[v], g, users, pos, neg[:, 0], k)
                if k:
                    times[v].append(seconds)
            for v in variants:
                worst[v] = max(worst[v], abs(losses[v] - losses["ours"]) / abs(losses["ours"]))
    finally:
        base.info_nce, simgcl.eps_noise = variants["ours"]
    med = {v: statistics.median(t) for v, t in times.items()}
    for v in variants:
        ratio = "" if v == "ours" else f"  ours {med[v] / med['ours']:.2f}x faster"
        diff = "" if v == "ours" else f"; loss differs by {worst[v]:.1e} (relative, largest)"
        print(f"  {v:8s} forward+backward {med[v] * 1e3:8.1f} ms{ratio}{diff}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
