"""Plain incremental fine-tuning (baseline): LightGCN continues from the previous stage's table
(the pre-trained LightGCN at stage 1) on snapshot n."""

from __future__ import annotations

from .base import Method, StageStart, new_model, snapshot_start

__all__ = ["Finetune"]


class Finetune(Method):
    def start(self, runner, name, spec, n, pretrained, gen) -> StageStart:
        cfg = runner.cfg
        x0 = pretrained[spec.pretrain]["x"] if n == 1 else runner.load_table(name, n - 1)
        g, neg_hist = snapshot_start(runner, n)
        return StageStart(new_model(spec.model, x0, cfg, 0.0, runner.dev, shard=runner.shard),
                          g, neg_hist, cfg.stage_train, runner.split(n)[0])

    def tables_kept(self, spec, cfg) -> int:
        return 1
