"""Recommendation backbones, found by name: a new backbone is one module implementing
``base.Model`` plus one line in ``MODELS``."""

from __future__ import annotations

from .base import Model, bpr_loss, xavier_embeddings
from .lightgcn import EmbeddingModel

__all__ = ["MODELS", "Model", "build", "model_class", "EmbeddingModel", "bpr_loss",
           "xavier_embeddings"]

MODELS: dict[str, type[Model]] = {
    "lightgcn": EmbeddingModel,  # LightGCN, plus GraphPro's temporal prompt and gate
}


def model_class(name: str) -> type[Model]:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}") from None


def build(name: str, x, *args, **kwargs) -> Model:
    """``MODELS[name](x, *args, **kwargs)``: a model starting from the table ``x``."""
    return model_class(name)(x, *args, **kwargs)
