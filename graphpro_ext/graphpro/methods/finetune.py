"""Plain incremental fine-tuning (baseline): LightGCN continues from the previous stage's table
(the pre-trained LightGCN at stage 1) on snapshot n; with ``start="propagated"`` (the paper's
eq. 7) from that table propagated once over the previous stage's training graph (the
pre-training graph at stage 1)."""

from __future__ import annotations

import torch

from .. import backend
from .base import Method, StageStart, new_model, snapshot_start, stage_model

__all__ = ["Finetune"]


class Finetune(Method):
    def start(self, runner, name, spec, n, pretrained, gen) -> StageStart:
        cfg = runner.cfg
        x0 = pretrained[spec.pretrain]["x"] if n == 1 else runner.load_table(name, n - 1)
        if spec.start == "propagated":
            prev = runner.data.pretrain if n == 1 else runner.split(n - 1)[0]
            tau = cfg.tau_pretrain if n == 1 else cfg.tau_finetune
            with torch.no_grad():
                x0 = backend.lightgcn(runner.graph(prev, tau), x0, cfg.layers, 0.0, 1.0, 0)
        g, neg_hist = snapshot_start(runner, n)
        model = new_model(stage_model(spec, cfg), x0, cfg, 0.0, runner.dev, shard=runner.shard)
        return StageStart(model, g, neg_hist, cfg.stage_train, runner.split(n)[0])

    def tables_kept(self, spec, cfg) -> int:
        return 1
