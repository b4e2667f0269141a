"""Full retraining (baseline): the backbone (``--backbone``, LightGCN by default) from scratch at
every stage on everything up to snapshot n (its held-out slice excepted), with the pre-training
budget (epochs, patience). Retraining is pre-training repeated, so it trains what pre-training
trains: in a Table 2 column, full retraining of SGL is SGL from scratch."""

from __future__ import annotations

from graphpro_ext.graph import build_history

from .. import models
from ..data import Interactions
from .base import Method, StageStart, new_model

__all__ = ["Full"]


class Full(Method):
    def start(self, runner, name, spec, n, pretrained, gen) -> StageStart:
        cfg = runner.cfg
        train, val = runner.split(n)
        seen = Interactions.concat([runner.history(n - 1), train])
        g = runner.graph(seen, cfg.tau_finetune)
        backbone = cfg.backbone if spec.model == "lightgcn" else spec.model
        x0 = models.model_class(backbone).init_table(runner.nu, runner.ni, cfg.dim, gen)
        model = new_model(backbone, x0.to(runner.dev), cfg, 0.0, runner.dev, shard=runner.shard)
        # negatives avoid everything known, held-out pairs included
        known = Interactions.concat([runner.history(n - 1), train, val])
        return StageStart(model, g, build_history(known.users, known.items, runner.nu),
                          cfg.pretrain_train, seen)
