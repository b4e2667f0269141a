"""GraphPro fine-tuning (and its ablations -PT, -GT, -IU, -TE): stage n starts from the
pre-trained table, or from the interpolative update of the last ``window`` stages (eq. 14);
propagates it once through the random gate and the prompt graph (eqs. 8-10); and fine-tunes
with the temporal prompt and the learnable gate (eq. 11) on snapshot n.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import backend
from ..data import Interactions
from ..runtime import derive_seed
from ..models.base import sigmoid_gate
from .base import Method, MethodSpec, StageStart, new_model, snapshot_start, stage_model

__all__ = ["GraphPro", "prompt_rates", "sample_prompt", "random_gate", "interpolation_weights",
           "interpolate", "start_embeddings", "prompt_embeddings"]


def prompt_rates(num_prev: int, phi: float) -> list[float]:
    """Eq. (8) sampling rates of the snapshots before the current one, oldest first: 1, 1-|phi|,
    1-2|phi|, ... counted from the oldest snapshot when phi > 0 and from the newest when phi < 0
    (clipped at 0)."""
    d = abs(phi)
    rates = [max(0.0, 1.0 - d * k) for k in range(num_prev)]
    return rates if phi >= 0 else rates[::-1]


def sample_prompt(snapshots: list[Interactions], phi: float, seed: int) -> list[Interactions]:
    """Each earlier snapshot subsampled (without replacement, exact count) at its rate."""
    out = []
    for k, (snap, rate) in enumerate(zip(snapshots, prompt_rates(len(snapshots), phi))):
        rng = np.random.default_rng(derive_seed(seed, "prompt", k))
        take = int(round(rate * len(snap)))
        out.append(snap.subset(np.sort(rng.choice(len(snap), take, replace=False))))
    return out


def random_gate(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Eq. (9): ``x * sigmoid(x W + b)`` with fixed Gaussian W [d, d] and b [1, d], each row
    L2-normalised, drawn once per stage from ``generator``."""
    d = x.shape[1]
    w = F.normalize(torch.randn(d, d, generator=generator), dim=1).to(x)
    b = F.normalize(torch.randn(1, d, generator=generator), dim=1).to(x)
    return sigmoid_gate(x, w, b)


def interpolation_weights(window: int, order: str = "reference") -> torch.Tensor:
    """Weights of the last ``window`` fine-tuned stages, newest first, summing to 1.

    ``reference``: w proportional to window, ..., 1 (the newest stage weighs most), as the
    reference code computes it; ``paper``: the reverse, as eq. (14)'s text reads."""
    w = torch.arange(window, 0, -1, dtype=torch.float64)
    if order == "paper":
        w = w.flip(0)
    elif order != "reference":
        raise ValueError(f"interpolation order must be 'reference' or 'paper', got {order!r}")
    return (w / w.sum()).float()


def interpolate(pretrained: torch.Tensor, recent: list[torch.Tensor], order: str) -> torch.Tensor:
    """Eq. (14): ``normalize(0.5 X_pre + 0.5 sum_i w_i X_{n-i})`` row-wise; ``recent`` newest
    first."""
    w = interpolation_weights(len(recent), order)
    mix = sum(wi * xi for wi, xi in zip(w.tolist(), recent))
    return F.normalize(0.5 * pretrained + 0.5 * mix, dim=1)


def start_embeddings(runner, method: str, spec: MethodSpec, n: int,
                     pretrained: torch.Tensor) -> torch.Tensor:
    """GraphPro's starting point for stage n: the pre-trained embeddings, or eq. (14) once
    ``window`` fine-tuned stages exist (unless the -IU ablation)."""
    w = runner.cfg.window
    if not spec.iu or n - 1 < w:
        return pretrained
    recent = [runner.load_table(method, n - 1 - i) for i in range(w)]  # newest first
    return interpolate(pretrained, recent, runner.cfg.interp_order)


def prompt_embeddings(runner, n: int, start: torch.Tensor, random_gating: bool = True,
                      time_weight: float | None = None) -> torch.Tensor:
    """Eqs. (8)-(10): random gating of ``start``, then one no-grad temporal propagation over
    the pre-training graph plus the (decay-sampled) snapshots before snapshot n (without the
    gate and with another ``time_weight`` for the reference code's LightGCN variant)."""
    cfg, data = runner.cfg, runner.data
    prev = sample_prompt(data.snapshots[:n - 1], cfg.sample_decay,
                         derive_seed(cfg.seed, "prompt-stage", n))
    gp = runner.graph(Interactions.concat([data.pretrain, *prev]), cfg.tau_pretrain)
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "random-gate", n))
    tw = cfg.time_weight if time_weight is None else time_weight
    with torch.no_grad():
        x = random_gate(start, gen) if random_gating else start
        return backend.lightgcn(gp, x, cfg.layers, tw, 1.0, 0)


class GraphPro(Method):
    def start(self, runner, name, spec, n, pretrained, gen) -> StageStart:
        cfg = runner.cfg
        start = start_embeddings(runner, name, spec, n, pretrained[spec.pretrain]["x"])
        tw = cfg.time_weight if spec.temporal else 0.0
        # -PT: no prompt graph (and no random gate, which only exists to feed it)
        x0 = prompt_embeddings(runner, n, start, spec.random_gate, tw) if spec.prompt else start
        g, neg_hist = snapshot_start(runner, n)
        model = new_model(stage_model(spec, cfg), x0, cfg, tw, runner.dev, gate=spec.gate,
                          generator=gen, shard=runner.shard)
        return StageStart(model, g, neg_hist, cfg.stage_train, runner.split(n)[0])

    def tables_kept(self, spec, cfg) -> int:
        return cfg.window  # eq. (14) mixes the last `window` stages' tables
