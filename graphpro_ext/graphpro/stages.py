"""The dynamic protocol: pre-training, then stage n = 1..N fine-tunes on snapshot n and is tested
on snapshot n+1, for GraphPro, its ablations and the baselines.

This is the protocol loop only: how each method's stage starts is its kind's module in
``methods/`` (found through ``methods.METHODS``), the training loop is ``train.fit``, the models
are in ``models/``, and where checkpoints live is ``checkpoint.CheckpointLayout``'s business. A
finished phase is written atomically, and a run started again with the same configuration skips
what is already there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.distributed
from tqdm import tqdm

from graphpro_ext.graph import TemporalGraph, isin, unique

from . import backend, models, reorder
from .checkpoint import CheckpointLayout, load_checkpoint
from .data import Interactions, SnapshotData, hold_out_pairs, pair_keys
from .distributed import Shard
from .errors import ConfigError
from .methods import DEFAULT_METHODS, METHODS, PRETRAININGS, kind_of
from .methods import graphpro as _graphpro
from .methods.base import STAGE_LOSSES, fresh_model
from .methods.graphpro import prompt_rates, sample_prompt
from .metrics import EvalSet, evaluate, make_eval_set
from .runtime import derive_seed, maybe_fail, save_atomic
from .serving import IdMap, write_model
from .train import BASE_BATCH, TrainConfig, fit

log = logging.getLogger("graphpro")

__all__ = ["RunConfig", "METHODS", "NO_SERVE", "Runner", "prompt_rates", "sample_prompt"]

NO_SERVE = "none"  # --serve none: an experiment grid that evaluates and serves nothing


@dataclass
class RunConfig:
    out: str
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    dim: int = 64
    layers: int = 3
    time_weight: float = 0.5
    tau_pretrain: float = 1.0  # hours per time step
    tau_finetune: float = 1.0
    window: int = 1  # omega: stages mixed by the interpolative update
    sample_decay: float = 0.05  # phi
    interp_order: str = "reference"
    select_on: str = "val"
    val_frac: float = 0.1
    pretrain_val_users: int = 3000
    drop_seen_test_pairs: bool = False
    device: str = "cpu"
    seed: int = 2023
    backbone: str = "lightgcn"  # the pre-training backbone (models.MODELS)
    # what the stages of GraphPro and finetune train: the backbone's own loss, or BPR (LightGCN)
    stage_loss: str = "backbone"
    reorder: str = "auto"  # node renumbering (reorder.RULES); the Runner stores the resolved rule
    # the method whose models are saved (None: the first of methods; "none": no model at all)
    serve: str | None = None
    final_test: bool = True  # False: one more stage trains on the newest snapshot, untested
    pretrain_train: TrainConfig = field(default_factory=TrainConfig)
    stage_train: TrainConfig = field(default_factory=TrainConfig)

    def protocol(self) -> dict:
        d = asdict(self)
        d.pop("out")
        d.pop("device")
        return d

    @classmethod
    def from_saved(cls, saved: dict, out: str) -> "RunConfig":
        """The configuration a run saved (its ``config.json``, a saved model's ``config``),
        writing to ``out``; keys this version does not know are left out."""
        known = {f.name for f in fields(cls)} - {"out"}
        tfields = {f.name for f in fields(TrainConfig)}
        proto = {k: v for k, v in saved.items() if k in known}
        for phase in ("pretrain_train", "stage_train"):
            proto[phase] = TrainConfig(**{k: v for k, v in saved[phase].items() if k in tfields})
        return cls(out=out, **proto)


def _result_relevant(proto: dict) -> dict:
    """The configuration minus what cannot change results (methods may be added on resume;
    checkpoint frequency and evaluation batch size are free to change)."""
    # the served method and an extra untested stage change no result of the other stages
    out = {k: v for k, v in proto.items() if k not in ("methods", "serve", "final_test")}
    # fields added later read as what runs before them did
    defaults = {"lr_rule": "none", "warmup_epochs": 0.0, "budget_s": 0.0, "auto_share": 0.5}
    out.setdefault("backbone", "lightgcn")
    out.setdefault("reorder", "none")
    out.setdefault("stage_loss", "bpr")  # runs before the option trained their stages with BPR
    if out["backbone"] == "lightgcn":  # LightGCN's own loss is BPR: the option changes nothing
        out.pop("stage_loss")
    for phase in ("pretrain_train", "stage_train"):
        cfg = {**defaults, **out.get(phase, {})}
        ignore = {"ckpt_every", "ckpt_minutes", "eval_batch"}
        if cfg.get("batch_graph", "auto") != "auto":
            ignore.add("auto_share")  # a threshold only auto uses
        if cfg.get("batch_size") != "auto" and int(cfg.get("batch_size", 0)) <= BASE_BATCH:
            ignore |= {"lr_rule", "warmup_epochs"}  # they act only above BASE_BATCH
        out[phase] = {k: v for k, v in cfg.items() if k not in ignore}
    return out


def _differences(old: dict, new: dict) -> list[str]:
    """The keys whose values differ, one level into nested dicts (``stage_train.lr``)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}.{j}" for j in sorted(set(a) | set(b)) if a.get(j) != b.get(j)]
        elif a != b:
            out.append(k)
    return out


class Runner:
    """Runs phases and stages for one dataset and configuration, with checkpoints in OUT/ckpt."""

    renumbers = True  # applies cfg.reorder to the data it is given (reorder.py)

    def __init__(self, data: SnapshotData, cfg: RunConfig, shard: Shard | None = None,
                 ids: tuple[IdMap, IdMap] | None = None):
        if data.num_stages < 1:
            raise ConfigError("need at least 2 snapshots (fine-tune + one test)")
        if not cfg.final_test and cfg.select_on == "test":
            raise ConfigError("--no-final-test trains the last stage without a test snapshot: "
                              "it needs --select-on val")
        if cfg.backbone not in models.MODELS:
            raise ConfigError(f"--backbone {cfg.backbone}: choose from {sorted(models.MODELS)}")
        if cfg.stage_loss not in STAGE_LOSSES:
            raise ConfigError(f"--stage-loss {cfg.stage_loss}: choose from {list(STAGE_LOSSES)}")
        if cfg.serve not in (None, NO_SERVE) and cfg.serve not in cfg.methods:
            raise ConfigError(f"--serve {cfg.serve}: not among --methods {cfg.methods} "
                              f"(or {NO_SERVE!r} to save no model)")
        unknown = [m for m in cfg.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
        if cfg.select_on not in ("val", "test"):
            raise ConfigError(f"select_on must be 'val' or 'test', got {cfg.select_on!r}")
        if cfg.select_on == "val" and not 0.0 < cfg.val_frac < 1.0:
            raise ConfigError("--select-on val needs 0 < --val-frac < 1")
        self._fingerprint: str | None = None
        # original ids in row order (saved models answer in them)
        ids = ids or (IdMap.identity(data.num_users), IdMap.identity(data.num_items))
        rule = reorder.resolve(cfg.reorder, data) if self.renumbers else cfg.reorder
        if self.renumbers and rule != "none":
            # resuming compares the data as loaded; the numbering is part of the configuration
            self._fingerprint = data.fingerprint()
            data, ids = reorder.renumber(data, ids, rule)
            log.info(f"nodes renumbered by {rule} (--reorder {cfg.reorder})")
        cfg = dataclasses.replace(cfg, reorder=rule)
        self.data, self.cfg = data, cfg
        self.dev = torch.device(cfg.device)
        # column sharding (torchrun): every rank runs this same loop on its columns; rank 0
        # alone writes the shared files, each rank its own mid-phase checkpoints
        self.shard = shard or Shard.single()
        self.layout = CheckpointLayout(cfg.out, self.shard)
        self.ckpt = self.layout.root
        self.nu, self.ni = data.num_users, data.num_items
        self.ids = ids
        self.serve = None if cfg.serve == NO_SERVE else (cfg.serve or cfg.methods[0])
        self._splits: dict[int, tuple[Interactions, Interactions]] = {}
        self._config_checked = False

    @property
    def num_stages(self) -> int:
        """Stages run: one per test snapshot, plus the untested newest one with
        ``final_test=False``."""
        return len(self.data.snapshots) - (1 if self.cfg.final_test else 0)

    # -- data views ---------------------------------------------------------------------------
    def graph(self, inter: Interactions, tau: float) -> TemporalGraph:
        return TemporalGraph.from_interactions(inter.users, inter.items, inter.times, self.nu,
                                               self.ni, tau_hours=tau).to(self.dev)

    def split(self, n: int) -> tuple[Interactions, Interactions]:
        """(train, held-out validation) parts of snapshot n (1-based): with --select-on val a
        seeded ``val_frac`` of its distinct (user, item) pairs is held out."""
        if n not in self._splits:
            snap = self.data.snapshots[n - 1]
            if self.cfg.select_on == "test":
                self._splits[n] = (snap, Interactions.empty())
            else:
                self._splits[n] = hold_out_pairs(snap, self.ni, self.cfg.val_frac,
                                                 derive_seed(self.cfg.seed, "val", n))
        return self._splits[n]

    def history(self, n: int) -> Interactions:
        """Everything up to and including snapshot n (n = 0: pre-training only)."""
        return Interactions.concat([self.data.pretrain, *self.data.snapshots[:n]])

    def test_set(self, n: int) -> EvalSet:
        h = self.history(n)
        tuned = unique(self.split(n)[0].users)
        t = self.data.snapshots[n]
        return make_eval_set(t.users, t.items, h.users, h.items, self.nu, tuned_users=tuned,
                             drop_seen=self.cfg.drop_seen_test_pairs)

    def select_set(self, n: int, test: EvalSet) -> EvalSet:
        if self.cfg.select_on == "test":
            return test  # the reference code's choice: best epoch picked on the test snapshot
        train, val = self.split(n)
        h = Interactions.concat([self.history(n - 1), train])
        return make_eval_set(val.users, val.items, h.users, h.items, self.nu)

    def seen_shares(self) -> list[float]:
        """Per stage: share of distinct test pairs already in the history (unhittable)."""
        out = []
        for n in range(1, self.data.num_stages + 1):
            h, t = self.history(n), self.data.snapshots[n]
            out.append(float(isin(unique(pair_keys(t.users, t.items, self.ni)),
                                     pair_keys(h.users, h.items, self.ni)).mean()))
        return out

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """The data's fingerprint (``SnapshotData.fingerprint``, hashed once per runner)."""
        if self._fingerprint is None:
            self._fingerprint = self.data.fingerprint()
        return self._fingerprint

    def check_config(self) -> None:
        """Refuse to resume checkpoints written under a different configuration."""
        path = self.layout.config
        proto = json.loads(json.dumps(self.cfg.protocol()))
        proto["dataset"] = self.data.name
        proto["data_fingerprint"] = self.fingerprint
        try:
            old = self.layout.read_config()
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: unreadable ({e}); delete it only if the "
                              "checkpoints beside it belong to this configuration") from None
        if old is not None:
            if old.get("data_fingerprint") != proto["data_fingerprint"]:
                raise ConfigError(f"{path}: the checkpoints were written for other data "
                                  "(the interactions differ from this run's); use another "
                                  "--out, or --overwrite to start afresh")
            old_cmp, new_cmp = _result_relevant(old), _result_relevant(proto)
            if old_cmp != new_cmp:
                diff = _differences(old_cmp, new_cmp)
                # a run from before --auto-share existed: say which flag resumes it
                was = {old_cmp[k.split(".")[0]].get("auto_share") for k in diff
                       if k.endswith(".auto_share")}
                hint = (f" (they used --auto-share {was.pop()}: resume with that flag)"
                        if len(was) == 1 and None not in was else "")
                raise ConfigError(f"{path}: checkpoints were written with a different "
                                  f"configuration (differs in {diff}){hint}; use another "
                                  "--out or run without --resume")
        self._shared(self.layout.write_config, proto)
        other = self.layout.other_partials()
        if other and self.shard.rank == 0:
            log.warning(f"ignoring {len(other)} mid-phase checkpoint(s) of another world size "
                        f"(e.g. {other[0]}); those phases restart")
        self._config_checked = True

    def _shared(self, write, *args) -> None:
        """A write to a file every rank reads: rank 0 does it, the others wait for it."""
        if self.shard.rank == 0:
            write(*args)
        if self.shard.sharded:
            torch.distributed.barrier()

    def load_table(self, method: str, n: int) -> torch.Tensor:
        """The table ``method``'s stage n ended with (what later stages start from)."""
        saved = self.load_stage_state(method, n)
        return saved["x"] if isinstance(saved, dict) else saved  # a bare table: older runs

    def load_stage_state(self, method: str, n: int):
        """What stage n left for later stages (``x_<n>.pt``): its table, plus the model's
        ``carry()`` (e.g. evolving node states or weights)."""
        return load_checkpoint(self.layout.table(method, n),
                               f"{method} stage {n} (delete stage_{n}.pt too)", self.dev,
                               weights_only=True)

    # -- pre-training -------------------------------------------------------------------------
    def pretrain(self, kind: str) -> dict:
        """Pre-train GraphPro (temporal prompt) or LightGCN (kind 'lightgcn'); early stopping
        on a seeded subset of the fine-tuning snapshot's users (never a test snapshot)."""
        path = self.layout.pretrain(kind)
        if os.path.exists(path):
            return load_checkpoint(path, f"{kind} pre-training", self.dev)
        t0 = time.perf_counter()
        how = PRETRAININGS[kind]
        g = self.graph(self.data.pretrain, self.cfg.tau_pretrain)
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "init", kind))
        tw = self.cfg.time_weight if how["temporal"] else 0.0
        model = fresh_model(how["model"], self.cfg, self.nu, self.ni, tw, self.dev, gen,
                            shard=self.shard)
        first, pre = self.data.snapshots[0], self.data.pretrain
        select = make_eval_set(first.users, first.items, pre.users, pre.items, self.nu,
                               max_users=self.cfg.pretrain_val_users,
                               seed=derive_seed(self.cfg.seed, "pretrain-val"))
        log.info(f"pre-training {kind}: {g.num_edges // 2} interactions "
                 f"({g.stats['duplicates_merged']} duplicates merged), {g.num_nodes} nodes, "
                 f"select on {len(select)} users of snapshot 1")
        summary = fit(model, g, g.user_history(), select, self.cfg.pretrain_train,
                      f"pretrain-{kind}", self.layout.pretrain(kind, partial=True), resume=True)
        summary["wall_s"] = time.perf_counter() - t0 + summary["resumed_s"]
        res = {"x": model.table(), "summary": summary, "num_users": self.nu}
        # the served method starts here: model 0
        if self.serve is not None and METHODS[self.serve].pretrain == kind:
            self.save_model(0, self.serve, model, g, [self.data.pretrain], self.data.snapshots,
                            self.data.pretrain, self.cfg.tau_pretrain, None)
        self._shared(save_atomic, res, path)
        self._shared(self.layout.remove_partials, path)
        maybe_fail(f"pretrain-{kind}/done")
        return res

    # -- stages -------------------------------------------------------------------------------
    def start_embeddings(self, method: str, n: int, pretrained: torch.Tensor) -> torch.Tensor:
        """GraphPro's starting point for stage n (``methods.graphpro.start_embeddings``)."""
        return _graphpro.start_embeddings(self, method, METHODS[method], n, pretrained)

    def prompt_embeddings(self, n: int, start: torch.Tensor) -> torch.Tensor:
        """GraphPro's prompt propagation for stage n (``methods.graphpro.prompt_embeddings``)."""
        return _graphpro.prompt_embeddings(self, n, start)

    def stage(self, method: str, n: int, pretrained: dict[str, dict]) -> dict:
        """Fine-tune (or retrain, for 'full') at stage n and test on snapshot n+1; how the stage
        starts is the method kind's (``methods``), the rest is the same for every method."""
        path = self.layout.stage(method, n)
        if os.path.exists(path):
            return load_checkpoint(path, f"{method} stage {n}")
        t0 = time.perf_counter()
        spec, cfg = METHODS[method], self.cfg
        kind = kind_of(spec)
        tested = n < len(self.data.snapshots)  # else the untested newest stage
        test = self.test_set(n) if tested else None
        select = self.select_set(n, test)
        st, model = self.start_stage(method, n, pretrained)
        summary = fit(model, st.graph, st.neg_hist, select, st.train, f"{method}/stage{n}",
                      self.layout.stage(method, n, partial=True), resume=True)
        k = cfg.stage_train.topk
        model.eval()
        with torch.no_grad():
            final = model(st.graph)
        metrics = evaluate(final, self.nu, test, k, cfg.stage_train.eval_batch) if tested else {}
        res = {"stage": n, "tested": tested, **metrics, "loss": model.loss_name,
               "best_epoch": summary["best_epoch"],
               "epochs_run": summary["epochs_run"], "epoch_train_s": summary["epoch_train_s"],
               "batch_graph": summary["batch_graph"], "select": summary["select"],
               "seen_share": test.seen_share if tested else None,
               "wall_s": time.perf_counter() - t0 + summary["resumed_s"]}
        log.info(f"[{method}/stage{n}] " + (f"test recall@{k} {res[f'recall@{k}']:.4f} "
                                            f"ndcg@{k} {res[f'ndcg@{k}']:.4f}" if tested else
                                            "trained on the newest snapshot (no test)")
                 + f" (best epoch {summary['best_epoch']}, {res['wall_s']:.1f}s)")
        keep = kind.tables_kept(spec, cfg)
        if keep:  # later stages start from these embeddings
            carry = model.carry(st.graph)  # every rank takes part; rank 0 writes
            self._shared(save_atomic, {"x": model.table(), "num_users": self.nu, **carry},
                         self.layout.table(method, n))
        if method == self.serve:
            self.save_model(n, method, model, st.graph,
                            [self.data.pretrain, *self.data.snapshots[:n]],
                            self.data.snapshots[n:], st.inter, cfg.tau_finetune,
                            metrics or None, final=final)
        self._shared(save_atomic, res, path)
        self._shared(self.layout.remove_partials, path)
        if keep:
            # only now: a crash before stage_n.pt exists recomputes stage n, which reads these
            self._shared(self.layout.remove, self.layout.table(method, n - keep))
        maybe_fail(f"{method}/stage{n}/done")
        return res

    def start_stage(self, method: str, n: int, pretrained: dict[str, dict]):
        """(the method kind's ``StageStart``, the model stage n trains), before training."""
        spec = METHODS[method]
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "stage-init", method, n))
        st = kind_of(spec).start(self, method, spec, n, pretrained, gen)
        return st, self.adapt_start(st, method, n)

    def adapt_start(self, st, method: str, n: int):
        """The stage's model before training (``update`` overrides this)."""
        return st.model

    def save_model(self, n: int, method: str, model, graph, history, pending, inter, tau,
                   metrics, final=None) -> None:
        """Model file n of the served method (``serving``); every rank takes part in gathering
        the gate, rank 0 writes."""
        if final is None:
            model.eval()
            with torch.no_grad():
                final = model(graph)
        table, gate = model.table(), model.input_transform()
        cfg = json.loads(json.dumps(self.cfg.protocol()))
        self._shared(lambda: write_model(
            self.cfg.out, stage=n, method=method, config=cfg, user_map=self.ids[0],
            item_map=self.ids[1], table=table, gate=gate, final=final, history=history,
            pending=pending, graph=inter, graph_tau=tau, metrics=metrics,
            extra={"dataset": self.data.name}))

    def run(self, phases=("pretrain", "stages")) -> dict:
        """Method by method: pre-train what it needs (once per kind), then all its stages, so
        the first method's results are complete before the next method starts."""
        if not self._config_checked:  # the CLI checks before anything runs
            self.check_config()
        pretrained: dict[str, dict] = {}
        methods = {}
        k = self.cfg.stage_train.topk
        for m in self.cfg.methods:
            kind = METHODS[m].pretrain
            if kind is not None and kind not in pretrained:
                pretrained[kind] = self.pretrain(kind)
            if "stages" not in phases:
                continue
            bar = tqdm(range(1, self.num_stages + 1), desc=f"{m} stages", unit="stage",
                       disable=not sys.stderr.isatty())
            done = [self.stage(m, n, pretrained) for n in bar]
            stages = [s for s in done if s.get("tested", True)]
            methods[m] = {
                "stages": stages,
                "average": {f"recall@{k}": float(np.mean([s[f"recall@{k}"] for s in stages])),
                            f"ndcg@{k}": float(np.mean([s[f"ndcg@{k}"] for s in stages]))},
                "wall_s": float(sum(s["wall_s"] for s in done)),
                # the stages' training loss (checkpoints from before it was recorded: unknown)
                "loss": done[0].get("loss"),
            }
            if len(done) > len(stages):
                methods[m]["untested_stage"] = done[-1]
        return {"pretrain": {kk: v["summary"] for kk, v in pretrained.items()},
                "methods": methods, "seen_test_share": self.seen_shares(),
                "backend": backend.backend_name()}
