"""Recommendation backbones, found by name: a new backbone is one module implementing
``base.Model`` plus one line in ``MODELS``."""

from __future__ import annotations

from .base import Model, bpr_loss, xavier_embeddings
from .lightgcn import EmbeddingModel
from .mixgcf import MixGCF
from .sgl import SGL
from .simgcl import SimGCL

__all__ = ["MODELS", "DESCRIPTIONS", "Model", "build", "model_class", "with_loss",
           "EmbeddingModel", "bpr_loss", "xavier_embeddings"]

MODELS: dict[str, type[Model]] = {
    "lightgcn": EmbeddingModel,  # LightGCN, plus GraphPro's temporal prompt and gate
    "sgl": SGL,  # + contrastive loss between two edge-dropout views (SGL-ED)
    "simgcl": SimGCL,  # + contrastive loss between two noise-perturbed views
    "mixgcf": MixGCF,  # + hard negatives synthesised by positive and hop mixing
}
# one line each for `graphpro --help`
DESCRIPTIONS = {
    "lightgcn": "LightGCN (He et al. 2020); with the temporal prompt in GraphPro pre-training",
    "sgl": "SGL-ED (Wu et al. 2021): LightGCN + InfoNCE between two edge-dropout views",
    "simgcl": "SimGCL (Yu et al. 2022): LightGCN + InfoNCE between two noise-perturbed views",
    "mixgcf": "MixGCF (Huang et al. 2021): LightGCN + hard negatives mixed from 64 candidates",
}


def model_class(name: str) -> type[Model]:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}") from None


def build(name: str, x, *args, **kwargs) -> Model:
    """``MODELS[name](x, *args, **kwargs)``: a model starting from the table ``x``."""
    return model_class(name)(x, *args, **kwargs)


def with_loss(base: type[Model], backbone: str) -> type[Model]:
    """``base`` (a baseline's ``EmbeddingModel`` subclass, which may override the propagation
    hooks ``propagate``, ``layer_outputs`` and ``readout``) trained with ``backbone``'s loss: the
    backbone's ``batch_loss`` runs over the baseline's hooks, everything else is the
    baseline's. LightGCN's loss is the baselines' own."""
    loss = model_class(backbone)
    if loss is EmbeddingModel or issubclass(base, loss):
        return base
    return type(f"{loss.__name__}{base.__name__}", (loss, base), {})
