"""``graphpro update``: absorb one new snapshot into a run and save the next model version.

The run's newest model (``serving``) holds the interactions it has seen, snapshot by snapshot,
and the id maps; the new snapshot is mapped through them (unknown users and items are appended,
so old ids keep their rows) and becomes the next stage of the served method, run exactly as the
stages run (``stages.Runner.stage``), without a test snapshot after it:

* ``prompt``: the stage's start without training: for GraphPro the interpolative update of the
  last ``window`` stages, the random gate and the prompt propagation over everything before the
  snapshot, then the previous model's learnable gate and one propagation over the snapshot;
  for ``finetune`` the previous table propagated over the snapshot. The fast refresh.
* ``finetune``: a full stage of fine-tuning on the snapshot (early stopping on a held-out share
  of it), optionally cut at ``budget_s`` seconds of training.

Tables of earlier stages grow to the new id space as they are read (``serving.grow_table``: new
rows drawn as pre-training draws them). The new model file is written and ``LATEST`` moved only
when it is complete.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import torch

from graphpro_ext.graph import unique

from .data import Interactions, SnapshotData, _iso
from .errors import ConfigError
from .methods import METHODS
from .runtime import derive_seed
from .serving import IdMap, grow_table, model_path, read_record
from .stages import RunConfig, Runner

log = logging.getLogger("graphpro")

__all__ = ["MODES", "update", "updatable", "RawSnapshot"]

MODES = ("prompt", "finetune")


@dataclasses.dataclass
class RawSnapshot:
    """New interactions in the run's original ids (ints or strings)."""

    users: list
    items: list
    times: np.ndarray
    source: str


def _parts(h: dict) -> list[Interactions]:
    ptr = h["snapshot_ptr"]
    allp = Interactions(np.asarray(h["users"]), np.asarray(h["items"]), np.asarray(h["times"]))
    return [allp.subset(slice(int(a), int(b))) for a, b in zip(ptr[:-1], ptr[1:])]


def _run_config(rec: dict, out: str, mode: str, budget_s: float) -> RunConfig:
    proto = dict(rec["config"])
    proto.setdefault("stage_loss", "bpr")  # models saved before the option: BPR stages
    cfg = RunConfig.from_saved(proto, out)
    cfg.methods, cfg.serve, cfg.final_test = [rec["method"]], rec["method"], False
    if cfg.select_on == "test":  # there is no test snapshot after an update
        cfg.select_on = "val"
    st = cfg.stage_train
    cfg.stage_train = dataclasses.replace(st, epochs=0 if mode == "prompt" else st.epochs,
                                          budget_s=budget_s, ckpt_every=0,
                                          ckpt_minutes=0.0)
    return cfg


class _UpdateRunner(Runner):
    """A Runner whose earlier stages are the run's saved models, grown to the new id space."""

    renumbers = False  # the model files' history is in the run's numbering already

    def __init__(self, data, cfg, ids, prev: dict, mode: str):
        super().__init__(data, cfg, ids=ids)
        self._prev, self._mode = prev, mode
        self._config_checked = True  # the data grew on purpose: the saved models are the truth
        self._records = {int(prev["stage"]): prev}  # model files already read, by stage

    def record(self, n: int) -> dict:
        """Stage n's model record, each file read once (they are hundreds of MB at scale)."""
        if n not in self._records:
            self._records[n] = read_record(self.cfg.out, n)
        return self._records[n]

    def _grown(self, rec: dict, what: str) -> torch.Tensor:
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "grow", what, self.nu,
                                                        self.ni))
        return grow_table(rec["table"], int(rec["num_users"]), self.nu, self.ni, gen).to(self.dev)

    def load_table(self, method: str, n: int) -> torch.Tensor:
        return self._grown(self.record(n), f"stage{n}")

    def adapt_start(self, st, method: str, n: int):
        # prompt mode trains nothing: the gate is the newest trained one, not a fresh draw
        gate = self._prev.get("gate")
        if self._mode == "prompt" and gate is not None and st.model.input_transform() is not None:
            st.model.load_input_transform(gate)
        return st.model


def _same(a: Interactions, b: Interactions) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in
                                    ((a.users, b.users), (a.items, b.items), (a.times, b.times)))


def _map_snapshot(raw: RawSnapshot, rec: dict) -> tuple[Interactions, IdMap, IdMap, dict]:
    umap0, imap0 = IdMap(rec["user_ids"]), IdMap(rec["item_ids"])
    try:
        umap, urows = umap0.grow(raw.users)
        imap, irows = imap0.grow(raw.items)
    except ConfigError as e:
        raise ConfigError(f"{raw.source}: {e}") from None
    inter = Interactions(urows.astype(np.int64), irows.astype(np.int64),
                         np.asarray(raw.times, np.float64))
    counts = {"interactions": len(inter), "new_users": len(umap) - len(umap0),
              "new_items": len(imap) - len(imap0),
              "users": int(unique(urows).size), "items": int(unique(irows).size)}
    return inter, umap, imap, counts


def updatable(out: str) -> dict:
    """The newest model record of run ``out``, or ConfigError when it cannot be updated."""
    rec = read_record(out, "latest")
    method = rec["method"]
    spec = METHODS.get(method)
    if spec is None or spec.kind not in ("graphpro", "finetune"):
        raise ConfigError(f"--run {out}: its model is of method {method!r}; update continues "
                          "graphpro-kind and finetune methods (a `graphpro train` or `full` "
                          "model can be served, not updated: train it again with the data)")
    if spec.pretrain is not None and not _has_stage(out, 0):
        raise ConfigError(f"--run {out}: its pre-trained model (stage 0) is missing; update "
                          "needs it")
    return rec


def update(out: str, raw: RawSnapshot, mode: str = "prompt", budget_s: float = 0.0,
           device: str = "cpu", rec: dict | None = None) -> dict:
    """Absorb ``raw`` into run ``out`` as its next stage; returns what was done. ``rec``: the
    run's newest model record when already read (``updatable``)."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: choose from {', '.join(MODES)}")
    t0 = time.perf_counter()
    rec = rec or updatable(out)
    method, spec = rec["method"], METHODS[rec["method"]]
    hist, pending = _parts(rec["history"]), _parts(rec["pending"])
    if not len(raw.users):
        raise ConfigError(f"{raw.source}: no interactions")
    inter, umap, imap, counts = _map_snapshot(raw, rec)
    if pending and _same(inter, pending[-1]):
        # an update interrupted after its catch-up stages: this snapshot is known, untrained
        pending = pending[:-1]
    known = hist + pending
    newest_seen, newest_new = float(max(p.times.max() for p in known if len(p))), \
        float(np.max(raw.times))
    if newest_new <= newest_seen:
        raise ConfigError(f"{raw.source}: its newest interaction ({_iso(newest_new)}) is not "
                          f"newer than the run's newest ({_iso(newest_seen)}); an update "
                          "must bring a later snapshot (was it absorbed already?)")
    if counts["new_items"] == counts["items"]:
        log.warning(f"{raw.source}: all {counts['items']} items are new to the run: they start "
                    "from fresh embeddings and are reached only through this snapshot's users")
    nu, ni = len(umap), len(imap)
    data = SnapshotData(rec.get("dataset") or "run", known[0], [*known[1:], inter], nu, ni)
    cfg = _run_config(rec, out, mode, budget_s)
    cfg.device = device
    runner = _UpdateRunner(data, cfg, (umap, imap), rec, mode)
    n = len(data.snapshots)
    first = len(hist)  # snapshots the run knew but never trained on (a test one) come first
    for k in range(first, n + 1):
        # the stage files of these stages can only be an interrupted update's (the model file
        # is written before them), possibly of another snapshot: start them afresh
        runner.layout.remove_partials(runner.layout.stage(method, k))
        runner.layout.remove(runner.layout.stage(method, k))
    pretrained = {}
    if spec.pretrain is not None:
        pretrained[spec.pretrain] = {"x": runner._grown(runner.record(0), "stage0")}
    log.info(f"update {mode}: {counts['interactions']} interactions of {counts['users']} users "
             f"({counts['new_users']} new) and {counts['items']} items ({counts['new_items']} "
             f"new) -> stage {n} of {method}"
             + (f" (stage(s) {first}..{n - 1} first absorb the {len(pending)} snapshot(s) the "
                "run had only tested on)" if pending else ""))
    for k in range(first, n):
        runner.stage(method, k, pretrained)
    res = runner.stage(method, n, pretrained)
    return {"stage": n, "mode": mode, "method": method, **counts, "num_users": nu,
            "num_items": ni, "epochs_run": res["epochs_run"], "best_epoch": res["best_epoch"],
            "select": res["select"], "seconds": time.perf_counter() - t0,
            "model": model_path(out, n)}


def _has_stage(out: str, n: int) -> bool:
    import os

    return os.path.exists(model_path(out, n))
