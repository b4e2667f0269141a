"""GraphPro trainer and ``graphpro`` CLI on top of the graphpro_ext ops.

``data`` loads snapshot folders, time-split tables, LightGCN splits and a synthetic generator;
``models`` holds the backbones (by name), ``methods`` the methods (by name) and how their stages
start, ``planning`` the per-batch propagation plans, ``train`` the BPR loop; ``stages`` runs the
dynamic protocol (pre-training, then every method's stages); ``checkpoint`` owns the checkpoint
layout, ``runtime`` seeds, atomic writes and the crash hook; ``metrics`` and ``report`` evaluate
and write results; ``serving`` saves and loads models (``load``) and ``update`` absorbs a new
snapshot into a run. See docs/TRAINER.md ("Code layout") and docs/SERVING.md.
"""


def load(out: str, stage="latest"):
    """A run's saved model (``serving.SavedModel``): ``recommend``, ``score``,
    ``user_embeddings``, ``item_embeddings``. ``stage``: "latest" or a stage number."""
    from .serving import load as _load

    return _load(out, stage)


__all__ = ["load"]
