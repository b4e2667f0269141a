"""Former home of the models, kept so older imports keep working: the backbones are in
``models/`` (interface ``models.base.Model``, LightGCN/GraphPro in ``models.lightgcn``), batch
planning in ``planning``, GraphPro's random gate and interpolative update in
``methods.graphpro``. New code imports from those."""

from __future__ import annotations

from .methods.graphpro import interpolate, interpolation_weights, random_gate
from .models import EmbeddingModel, bpr_loss, xavier_embeddings
from .planning import CompactGraph, compact

__all__ = ["EmbeddingModel", "CompactGraph", "compact", "xavier_embeddings", "random_gate",
           "bpr_loss", "interpolation_weights", "interpolate"]
