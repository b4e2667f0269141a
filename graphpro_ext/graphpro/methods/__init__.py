"""The methods, found by name: ``METHODS`` maps every ``--methods`` name to its spec, and
``KINDS`` each spec's kind to the module that starts its stages. A new method is one line in
``METHODS`` (a new kind: one module plus one line in ``KINDS``)."""

from __future__ import annotations

from .base import Method, MethodSpec, StageStart
from .dgcf import DGCF
from .finetune import Finetune
from .full import Full
from .evolving import Evolving
from .graphpro import GraphPro
from .prompt import Prompt

__all__ = ["METHODS", "DEFAULT_METHODS", "DESCRIPTIONS", "KINDS", "PRETRAININGS", "Method",
           "MethodSpec",
           "StageStart", "kind_of"]

KINDS: dict[str, Method] = {"graphpro": GraphPro(), "finetune": Finetune(), "full": Full(),
                            "prompt": Prompt(), "evolving": Evolving(), "dgcf": DGCF()}

METHODS: dict[str, MethodSpec] = {
    "graphpro": MethodSpec("graphpro", pretrain="graphpro", prompt=True, gate=True, iu=True),
    "graphpro-PT": MethodSpec("graphpro", pretrain="graphpro", prompt=False, gate=True, iu=True),
    "graphpro-GT": MethodSpec("graphpro", pretrain="graphpro", prompt=True, gate=False, iu=True),
    "graphpro-IU": MethodSpec("graphpro", pretrain="graphpro", prompt=True, gate=True, iu=False),
    "graphpro-TE": MethodSpec("graphpro", pretrain="lightgcn", prompt=True, gate=True, iu=True),
    "finetune": MethodSpec("finetune", pretrain="lightgcn"),
    "full": MethodSpec("full", pretrain=None),
    "finetune-eq7": MethodSpec("finetune", pretrain="lightgcn", start="propagated"),
    "lightgcn-variant": MethodSpec("graphpro", pretrain="lightgcn", prompt=True, gate=False,
                                   iu=False, random_gate=False, temporal=False),
    "gpf": MethodSpec("prompt", pretrain="lightgcn", prompt_style="feature"),
    "graphprompt": MethodSpec("prompt", pretrain="lightgcn", prompt_style="readout"),
    "roland": MethodSpec("evolving", pretrain="lightgcn", variant="roland"),
    "evolvegcn-o": MethodSpec("evolving", pretrain="lightgcn", variant="evolvegcn-o"),
    "evolvegcn-h": MethodSpec("evolving", pretrain="lightgcn", variant="evolvegcn-h"),
    "dgcn": MethodSpec("dgcf", pretrain="lightgcn"),
}

# what `graphpro run` runs without --methods: GraphPro, its ablations and our own baselines (the
# Table 2 baselines are named, or `--methods all`)
DEFAULT_METHODS = ["graphpro", "graphpro-PT", "graphpro-GT", "graphpro-IU", "graphpro-TE",
                   "finetune", "full"]

# one line each for `graphpro --help`
DESCRIPTIONS: dict[str, str] = {
    "graphpro": "GraphPro: temporal-prompt pre-training; per stage structural prompt, random + "
                "learnable gates, interpolative update",
    "graphpro-PT": "GraphPro without the structural prompt (ablation)",
    "graphpro-GT": "GraphPro without the learnable gate (ablation)",
    "graphpro-IU": "GraphPro without the interpolative update (ablation)",
    "graphpro-TE": "GraphPro from a pre-training without the temporal prompt (ablation)",
    "finetune": "incremental fine-tuning: each stage continues from the previous stage's table",
    "full": "full retraining of the backbone from scratch on everything up to the snapshot, "
            "every stage",
    "finetune-eq7": "incremental fine-tuning from the previous model's output over the previous "
                    "graph (the paper's eq. 7)",
    "lightgcn-variant": "the reference code's LightGCN variant: prompt propagation of the "
                        "pre-trained table, no gates, no time weights",
    "gpf": "GPF (Fang et al. 2023): frozen pre-trained LightGCN, a learnable prompt added to "
           "the input features",
    "graphprompt": "GraphPrompt (Liu et al. 2023): frozen pre-trained LightGCN, a learnable "
                   "prompt re-weighting the readout",
    "roland": "ROLAND-GRU (You et al. 2022): per-layer node states updated by GRUs from stage "
              "to stage, live update",
    "evolvegcn-o": "EvolveGCN-O (Pareja et al. 2020): per-layer weights evolved by a matrix GRU "
                   "from the previous weights",
    "evolvegcn-h": "EvolveGCN-H: per-layer weights evolved by a matrix GRU from a top-k summary "
                   "of the node table",
    "dgcn": "DGCF (Li et al. 2020): per snapshot, node states updated from their own state + "
            "time gap, their neighbours' and their neighbours' neighbours' states",
}

# The pre-trainings methods start from: kind -> (backbone, temporal prompt while pre-training).
PRETRAININGS: dict[str, dict] = {
    "graphpro": dict(model="lightgcn", temporal=True),
    "lightgcn": dict(model="lightgcn", temporal=False),
}


def kind_of(spec: MethodSpec) -> Method:
    return KINDS[spec.kind]
