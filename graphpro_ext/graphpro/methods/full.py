"""Full retraining (baseline): the backbone (``--backbone``, LightGCN by default) from scratch at
every stage on everything up to snapshot n (its held-out slice excepted), with the pre-training
budget (epochs, patience). Retraining is pre-training repeated, so it trains what pre-training
trains: in a Table 2 column, full retraining of SGL is SGL from scratch."""

from __future__ import annotations

from graphpro_ext.graph import build_history

from ..data import Interactions
from .base import Method, StageStart, fresh_model

__all__ = ["Full"]


class Full(Method):
    def start(self, runner, name, spec, n, pretrained, gen) -> StageStart:
        cfg = runner.cfg
        train, val = runner.split(n)
        seen = Interactions.concat([runner.history(n - 1), train])
        g = runner.graph(seen, cfg.tau_finetune)
        model = fresh_model(spec.model, cfg, runner.nu, runner.ni, 0.0, runner.dev, gen,
                            shard=runner.shard)
        # negatives avoid everything known, held-out pairs included
        known = Interactions.concat([runner.history(n - 1), train, val])
        return StageStart(model, g, build_history(known.users, known.items, runner.nu),
                          cfg.pretrain_train, seen)
