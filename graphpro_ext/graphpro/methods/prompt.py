"""Graph prompt-tuning baselines: the pre-trained LightGCN stays frozen and each stage learns only
a prompt vector p [1, d] on snapshot n, from the pre-trained table every stage.

* GPF (Fang et al., NeurIPS 2023, "universal prompt tuning"): p is added to every node's input
  features, ``x + p``, before propagation; p starts at 0 (the pre-trained model itself).
* GraphPrompt (Liu et al., WWW 2023): p re-weights the readout element-wise, here the final
  user and item embeddings (``p * e``) whose dot product scores a pair; p starts at 1 and keeps
  mean 1 (``p = 1 + q - mean(q)``, q learnt). The paper scores by cosine similarity, which no
  scale of p changes; under BPR's dot product the uniform scale of p is the steepest direction
  yet changes no ranking, and Adam's per-coordinate steps went almost wholly into it (the
  prompt grew as a uniform scale and never changed a recommendation). Fixing the mean removes
  that direction, as the paper's cosine does.

Both are built from the papers' descriptions, adapted to user-item scoring; they are the
prompt-learning methods GraphPro's Table 2 compares with.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import EmbeddingModel
from .base import Method, StageStart, snapshot_start, stage_class

__all__ = ["Prompt", "PromptModel"]


class PromptModel(EmbeddingModel):
    """A frozen table plus one learnable prompt vector (``style``: "feature" or "readout")."""

    unshardable = "the prompt baselines run in one process"

    def __init__(self, x: torch.Tensor, num_layers: int, time_weight: float, style: str,
                 **kwargs):
        super().__init__(x, num_layers, time_weight, **kwargs)
        if style not in ("feature", "readout"):
            raise ValueError(f"prompt style must be 'feature' or 'readout', got {style!r}")
        self.style = style
        self.x.requires_grad_(False)
        # feature: the added vector itself; readout: q in p = 1 + q - mean(q). Both start at 0,
        # the pre-trained model.
        self.prompt = nn.Parameter(torch.zeros(1, x.shape[1], dtype=x.dtype, device=x.device))

    def readout_weights(self) -> torch.Tensor:
        """GraphPrompt's p [1, d], mean 1 (only its shape across dimensions changes rankings)."""
        return 1.0 + self.prompt - self.prompt.mean()

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.prompt if self.style == "feature" else x

    def forward(self, graph, keep_prob: float = 1.0, seed: int = 0):
        return self.readout(super().forward(graph, keep_prob, seed))

    def readout(self, e: torch.Tensor) -> torch.Tensor:
        return e * self.readout_weights() if self.style == "readout" else e

    def input_transform(self) -> dict | None:
        p = self.prompt if self.style == "feature" else self.readout_weights()
        return {"prompt": p.detach().clone(), "style": self.style}


class Prompt(Method):
    def start(self, runner, name, spec, n, pretrained, gen) -> StageStart:
        cfg = runner.cfg
        g, neg_hist = snapshot_start(runner, n)
        model = stage_class(PromptModel, cfg)(
            pretrained[spec.pretrain]["x"].to(runner.dev), cfg.layers, 0.0, spec.prompt_style,
            shard=runner.shard).to(runner.dev)
        return StageStart(model, g, neg_hist, cfg.stage_train, runner.split(n)[0])
