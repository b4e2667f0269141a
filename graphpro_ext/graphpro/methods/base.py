"""What a method is: a registry entry (``MethodSpec``) naming its kind, the pre-training it
starts from and its switches, and per kind one module saying how a stage starts (``Method``).

The protocol loop (``stages.Runner``) does the rest for every method alike: the evaluation sets,
``fit``, the test, the checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from graphpro_ext.graph import TemporalGraph, build_history

from .. import models
from ..data import Interactions
from ..train import TrainConfig

__all__ = ["MethodSpec", "Method", "StageStart", "snapshot_start", "new_model",
           "fresh_model", "stage_model", "stage_class", "STAGE_LOSSES"]

# ``--stage-loss``: what the stages train with. ``backbone``: the pre-training backbone's loss
# (SGL's contrastive term, SimGCL's, MixGCF's synthesised negatives), as the reference code's
# plug-in runs fine-tune; ``bpr``: LightGCN's BPR whatever the backbone.
STAGE_LOSSES = ("backbone", "bpr")


@dataclass(frozen=True)
class MethodSpec:
    """One ``--methods`` name. ``kind``: the module in ``methods/`` that starts its stages;
    ``pretrain``: which pre-trained model it starts from (None: trains from scratch every
    stage); ``prompt``/``gate``/``iu``: GraphPro's structural prompt, learnable gate and
    interpolative update, ``random_gate``/``temporal``: its random gate before the prompt and the
    temporal prompt while fine-tuning (kind ``graphpro``); ``start``: where kind ``finetune``
    starts stage n, the previous table (``"table"``) or its propagation over the previous stage's
    graph (``"propagated"``, the paper's eq. 7); ``prompt_style``: kind ``prompt``'s learnable
    prompt, added to the input features (``"feature"``, GPF) or multiplied into the readout
    (``"readout"``, GraphPrompt); ``variant``: kind ``evolving``'s model (``"roland"``,
    ``"evolvegcn-o"``, ``"evolvegcn-h"``); ``model``: the backbone in ``models.MODELS``."""

    kind: str
    pretrain: str | None
    prompt: bool = False
    gate: bool = False
    iu: bool = False
    random_gate: bool = True
    temporal: bool = True
    start: str = "table"
    prompt_style: str = "feature"
    variant: str = ""
    model: str = "lightgcn"


@dataclass
class StageStart:
    """Everything ``fit`` needs for one stage, as the method's kind decides it."""

    model: models.Model
    graph: TemporalGraph  # the training graph
    neg_hist: tuple[torch.Tensor, torch.Tensor]  # history CSR negatives must avoid
    train: TrainConfig  # epochs, patience, ... of this stage
    inter: Interactions | None = None  # the interactions ``graph`` was built from (saved models)


class Method:
    """How a stage of one method kind starts, and what it leaves for later stages."""

    def start(self, runner, name: str, spec: MethodSpec, n: int, pretrained: dict[str, dict],
              gen: torch.Generator) -> StageStart:
        """The model (on the runner's device), training graph, negative-exclusion history and
        training configuration of stage ``n`` (1-based). ``pretrained``: kind -> the
        pre-training checkpoint (``{"x": table, "summary": ...}``); ``gen``: the stage's seeded
        generator for any fresh parameters."""
        raise NotImplementedError

    def tables_kept(self, spec: MethodSpec, cfg) -> int:
        """How many of the latest stage tables (``x_<n>.pt``) later stages read: 0 saves none."""
        return 0


def new_model(spec_model: str, x: torch.Tensor, cfg, time_weight: float, device,
              **kwargs) -> models.Model:
    """A backbone from the registry, starting from ``x``, on ``device``."""
    return models.build(spec_model, x, cfg.layers, time_weight, **kwargs).to(device)


def stage_model(spec: MethodSpec, cfg) -> str:
    """The model a stage of ``spec`` builds: a LightGCN slot trains the backbone's loss under
    ``--stage-loss backbone``."""
    if spec.model == "lightgcn" and cfg.stage_loss == "backbone":
        return cfg.backbone
    return spec.model


def stage_class(base: type[models.Model], cfg) -> type[models.Model]:
    """A baseline's model class for its stages: under ``--stage-loss backbone`` it trains the
    backbone's loss over its own propagation (``models.with_loss``)."""
    return models.with_loss(base, cfg.backbone) if cfg.stage_loss == "backbone" else base


def fresh_model(spec_model: str, cfg, num_users: int, num_items: int, time_weight: float,
                device, gen: torch.Generator, **kwargs) -> models.Model:
    """A model trained from scratch (pre-training, full retraining) from a new table drawn from
    ``gen``: a LightGCN slot trains the run's ``--backbone``."""
    name = cfg.backbone if spec_model == "lightgcn" else spec_model
    x = models.model_class(name).init_table(num_users, num_items, cfg.dim, gen)
    return new_model(name, x.to(device), cfg, time_weight, device, **kwargs)


def snapshot_start(runner, n: int) -> tuple[TemporalGraph, tuple[torch.Tensor, torch.Tensor]]:
    """The incremental methods' training graph (snapshot n's training part) and negatives
    (avoiding all of the user's snapshot-n items, held-out ones included)."""
    cfg = runner.cfg
    train, val = runner.split(n)
    g = runner.graph(train, cfg.tau_finetune)
    snap = Interactions.concat([train, val])
    return g, build_history(snap.users, snap.items, runner.nu)
