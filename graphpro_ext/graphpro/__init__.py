"""GraphPro trainer and ``graphpro`` CLI on top of the graphpro_ext ops.

``data`` loads snapshot folders, time-split tables, LightGCN splits and a synthetic generator;
``model``/``train`` hold the embedding models and the BPR loop; ``stages`` runs the dynamic
protocol (pre-training, prompt fine-tuning, interpolative update, baselines, ablations);
``metrics`` and ``report`` evaluate and write results. See docs/TRAINER.md.
"""
