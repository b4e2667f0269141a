"""GraphPro trainer and ``graphpro`` CLI on top of the graphpro_ext ops.

``data`` loads snapshot folders, time-split tables, LightGCN splits and a synthetic generator;
``models`` holds the backbones (by name), ``methods`` the methods (by name) and how their stages
start, ``planning`` the per-batch propagation plans, ``train`` the BPR loop; ``stages`` runs the
dynamic protocol (pre-training, then every method's stages); ``checkpoint`` owns the checkpoint
layout, ``runtime`` seeds, atomic writes and the crash hook; ``metrics`` and ``report`` evaluate
and write results. See docs/TRAINER.md ("Code layout").
"""
