"""The dynamic protocol: pre-training, then stage n = 1..N fine-tunes on snapshot n and is tested
on snapshot n+1, for GraphPro, its ablations and the baselines.

Checkpoints live in ``OUT/ckpt``: ``pretrain_<kind>.pt`` and ``<method>/stage_<n>.pt`` are
written atomically when a phase ends (``*.partial.pt`` every few epochs inside it), and a run
started again with the same configuration skips what is already there.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from graphpro_ext.graph import TemporalGraph, build_history

from . import backend
from .checkpoint import load_checkpoint, save_atomic
from .data import Interactions, SnapshotData, pair_keys
from .errors import ConfigError
from .metrics import EvalSet, evaluate, make_eval_set
from .model import EmbeddingModel, interpolate, random_gate, xavier_embeddings
from .train import TrainConfig, derive_seed, fit, maybe_fail

log = logging.getLogger("graphpro")

__all__ = ["RunConfig", "METHODS", "Runner", "prompt_rates", "sample_prompt"]

# What each method is made of. pretrain: which pre-trained model it starts from (None: trains
# from scratch every stage); prompt/gate/iu: GraphPro's structural prompt, learnable gate and
# interpolative update; temporal: the temporal prompt while fine-tuning.
METHODS = {
    "graphpro": dict(kind="graphpro", pretrain="graphpro", prompt=True, gate=True, iu=True),
    "graphpro-PT": dict(kind="graphpro", pretrain="graphpro", prompt=False, gate=True, iu=True),
    "graphpro-GT": dict(kind="graphpro", pretrain="graphpro", prompt=True, gate=False, iu=True),
    "graphpro-IU": dict(kind="graphpro", pretrain="graphpro", prompt=True, gate=True, iu=False),
    "graphpro-TE": dict(kind="graphpro", pretrain="lightgcn", prompt=True, gate=True, iu=True),
    "finetune": dict(kind="finetune", pretrain="lightgcn"),
    "full": dict(kind="full", pretrain=None),
}


@dataclass
class RunConfig:
    out: str
    methods: list[str] = field(default_factory=lambda: list(METHODS))
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
    pretrain_train: TrainConfig = field(default_factory=TrainConfig)
    stage_train: TrainConfig = field(default_factory=TrainConfig)

    def protocol(self) -> dict:
        d = asdict(self)
        d.pop("out")
        d.pop("device")
        return d


def prompt_rates(num_prev: int, phi: float) -> list[float]:
    """Eq. (8) sampling rates of the snapshots before the current one, oldest first: 1, 1-|phi|,
    1-2|phi|, ... counted from the oldest snapshot when phi > 0 and from the newest when phi < 0
    (clipped at 0)."""
    d = abs(phi)
    rates = [max(0.0, 1.0 - d * k) for k in range(num_prev)]
    return rates if phi >= 0 else rates[::-1]


def sample_prompt(snapshots: list[Interactions], phi: float, seed: int) -> list[Interactions]:
    """Each earlier snapshot subsampled (without replacement, exact count) at its rate."""
    out = []
    for k, (snap, rate) in enumerate(zip(snapshots, prompt_rates(len(snapshots), phi))):
        rng = np.random.default_rng(derive_seed(seed, "prompt", k))
        take = int(round(rate * len(snap)))
        out.append(snap.subset(np.sort(rng.choice(len(snap), take, replace=False))))
    return out


def _result_relevant(proto: dict) -> dict:
    """The configuration minus what cannot change results (methods may be added on resume;
    checkpoint frequency and evaluation batch size are free to change)."""
    out = {k: v for k, v in proto.items() if k != "methods"}
    for phase in ("pretrain_train", "stage_train"):
        out[phase] = {k: v for k, v in out.get(phase, {}).items()
                      if k not in ("ckpt_every", "eval_batch")}
    return out


def _pairs_key(inter: Interactions, width: int) -> np.ndarray:
    return pair_keys(inter.users, inter.items, width)


class Runner:
    """Runs phases and stages for one dataset and configuration, with checkpoints in OUT/ckpt."""

    def __init__(self, data: SnapshotData, cfg: RunConfig):
        if data.num_stages < 1:
            raise ConfigError("need at least 2 snapshots (fine-tune + one test)")
        unknown = [m for m in cfg.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
        if cfg.select_on not in ("val", "test"):
            raise ConfigError(f"select_on must be 'val' or 'test', got {cfg.select_on!r}")
        if cfg.select_on == "val" and not 0.0 < cfg.val_frac < 1.0:
            raise ConfigError("--select-on val needs 0 < --val-frac < 1")
        self.data, self.cfg = data, cfg
        self.dev = torch.device(cfg.device)
        self.ckpt = os.path.join(cfg.out, "ckpt")
        self.nu, self.ni = data.num_users, data.num_items
        self._splits: dict[int, tuple[Interactions, Interactions]] = {}

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
                key = _pairs_key(snap, self.ni)
                uniq = np.unique(key)
                rng = np.random.default_rng(derive_seed(self.cfg.seed, "val", n))
                val = rng.choice(uniq, int(round(self.cfg.val_frac * uniq.size)), replace=False)
                held = np.isin(key, val)
                self._splits[n] = (snap.subset(~held), snap.subset(held))
        return self._splits[n]

    def history(self, n: int) -> Interactions:
        """Everything up to and including snapshot n (n = 0: pre-training only)."""
        return Interactions.concat([self.data.pretrain, *self.data.snapshots[:n]])

    def test_set(self, n: int) -> EvalSet:
        h = self.history(n)
        tuned = np.unique(self.split(n)[0].users)
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
            out.append(float(np.isin(np.unique(_pairs_key(t, self.ni)),
                                     _pairs_key(h, self.ni)).mean()))
        return out

    # -- checkpoint helpers -------------------------------------------------------------------
    def _path(self, *parts) -> str:
        return os.path.join(self.ckpt, *parts)

    def check_config(self) -> None:
        """Refuse to resume checkpoints written under a different configuration."""
        path = self._path("config.json")
        proto = json.loads(json.dumps(self.cfg.protocol()))
        proto["dataset"] = self.data.name
        proto["data_fingerprint"] = self.data.fingerprint()
        if os.path.exists(path):
            try:
                with open(path) as f:
                    old = json.load(f)
            except (OSError, ValueError) as e:
                raise ConfigError(f"{path}: unreadable ({e}); delete it only if the "
                                  "checkpoints beside it belong to this configuration") from None
            if old.get("data_fingerprint") != proto["data_fingerprint"]:
                raise ConfigError(f"{path}: the checkpoints were written for other data "
                                  "(the interactions differ from this run's); use another "
                                  "--out, or --overwrite to start afresh")
            old_cmp, new_cmp = _result_relevant(old), _result_relevant(proto)
            if old_cmp != new_cmp:
                diff = sorted(k for k in set(old_cmp) | set(new_cmp)
                              if old_cmp.get(k) != new_cmp.get(k))
                raise ConfigError(f"{path}: checkpoints were written with a different "
                                 f"configuration (differs in {diff}); use another --out or "
                                 "run without --resume")
        os.makedirs(self.ckpt, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(proto, f, indent=1)
        os.replace(path + ".tmp", path)

    # -- pre-training -------------------------------------------------------------------------
    def pretrain(self, kind: str) -> dict:
        """Pre-train GraphPro (temporal prompt) or LightGCN (kind 'lightgcn'); early stopping
        on a seeded subset of the fine-tuning snapshot's users (never a test snapshot)."""
        path = self._path(f"pretrain_{kind}.pt")
        if os.path.exists(path):
            return load_checkpoint(path, f"{kind} pre-training", self.dev)
        t0 = time.perf_counter()
        g = self.graph(self.data.pretrain, self.cfg.tau_pretrain)
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "init", kind))
        x = xavier_embeddings(self.nu, self.ni, self.cfg.dim, gen).to(self.dev)
        tw = self.cfg.time_weight if kind == "graphpro" else 0.0
        model = EmbeddingModel(x, self.cfg.layers, tw)
        first, pre = self.data.snapshots[0], self.data.pretrain
        select = make_eval_set(first.users, first.items, pre.users, pre.items, self.nu,
                               max_users=self.cfg.pretrain_val_users,
                               seed=derive_seed(self.cfg.seed, "pretrain-val"))
        log.info(f"pre-training {kind}: {g.num_edges // 2} interactions "
                 f"({g.stats['duplicates_merged']} duplicates merged), {g.num_nodes} nodes, "
                 f"select on {len(select)} users of snapshot 1")
        summary = fit(model, g, g.user_history(), select, self.cfg.pretrain_train,
                      f"pretrain-{kind}", self._path(f"pretrain_{kind}.partial.pt"), resume=True)
        summary["wall_s"] = time.perf_counter() - t0
        res = {"x": model.x.detach().clone(), "summary": summary}
        save_atomic(res, path)
        self._remove(f"pretrain_{kind}.partial.pt")
        maybe_fail(f"pretrain-{kind}/done")
        return res

    def _remove(self, *parts) -> None:
        p = self._path(*parts)
        if os.path.exists(p):
            os.remove(p)

    # -- stages -------------------------------------------------------------------------------
    def start_embeddings(self, method: str, n: int, pretrained: torch.Tensor) -> torch.Tensor:
        """GraphPro's starting point for stage n: the pre-trained embeddings, or eq. (14) once
        ``window`` fine-tuned stages exist (unless the -IU ablation)."""
        spec, w = METHODS[method], self.cfg.window
        if not spec["iu"] or n - 1 < w:
            return pretrained
        recent = [self._load_x(method, n - 1 - i) for i in range(w)]  # newest first
        return interpolate(pretrained, recent, self.cfg.interp_order)

    def prompt_embeddings(self, n: int, start: torch.Tensor) -> torch.Tensor:
        """Eqs. (8)-(10): random gating of ``start``, then one no-grad temporal propagation over
        the pre-training graph plus the (decay-sampled) snapshots before snapshot n."""
        prev = sample_prompt(self.data.snapshots[:n - 1], self.cfg.sample_decay,
                             derive_seed(self.cfg.seed, "prompt-stage", n))
        gp = self.graph(Interactions.concat([self.data.pretrain, *prev]), self.cfg.tau_pretrain)
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "random-gate", n))
        with torch.no_grad():
            return backend.lightgcn(gp, random_gate(start, gen), self.cfg.layers,
                                    self.cfg.time_weight, 1.0, 0)

    def _load_x(self, method: str, n: int) -> torch.Tensor:
        return load_checkpoint(self._path(method, f"x_{n}.pt"),
                               f"{method} stage {n} (delete stage_{n}.pt too)", self.dev,
                               weights_only=True)

    def stage(self, method: str, n: int, pretrained: dict[str, dict]) -> dict:
        """Fine-tune (or retrain, for 'full') at stage n and test on snapshot n+1."""
        path = self._path(method, f"stage_{n}.pt")
        if os.path.exists(path):
            return load_checkpoint(path, f"{method} stage {n}")
        t0 = time.perf_counter()
        spec, cfg = METHODS[method], self.cfg
        train, val = self.split(n)
        test = self.test_set(n)
        select = self.select_set(n, test)
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "stage-init", method, n))
        if spec["kind"] == "full":
            # LightGCN from scratch on everything up to snapshot n (its held-out slice excepted)
            g = self.graph(Interactions.concat([self.history(n - 1), train]), cfg.tau_finetune)
            x0 = xavier_embeddings(self.nu, self.ni, cfg.dim, gen).to(self.dev)
            model = EmbeddingModel(x0, cfg.layers, 0.0)
        elif spec["kind"] == "finetune":
            # plain incremental fine-tuning: continue from the previous stage's embeddings
            x0 = pretrained["lightgcn"]["x"] if n == 1 else self._load_x(method, n - 1)
            g = self.graph(train, cfg.tau_finetune)
            model = EmbeddingModel(x0, cfg.layers, 0.0)
        else:
            start = self.start_embeddings(method, n, pretrained[spec["pretrain"]]["x"])
            # -PT: no prompt graph (and no random gate, which only exists to feed it)
            x0 = self.prompt_embeddings(n, start) if spec["prompt"] else start
            g = self.graph(train, cfg.tau_finetune)
            model = EmbeddingModel(x0, cfg.layers, cfg.time_weight, gate=spec["gate"],
                                   generator=gen)
        model.to(self.dev)
        if spec["kind"] == "full":  # negatives avoid everything known, held-out pairs included
            known = Interactions.concat([self.history(n - 1), train, val])
            neg_hist = build_history(known.users, known.items, self.nu)
        else:  # negatives avoid all of the user's snapshot-n items, held-out ones included
            snap = Interactions.concat([train, val])
            neg_hist = build_history(snap.users, snap.items, self.nu)
        # 'full' trains from scratch, so it gets the pre-training budget (epochs, patience)
        tcfg = cfg.pretrain_train if spec["kind"] == "full" else cfg.stage_train
        summary = fit(model, g, neg_hist, select, tcfg, f"{method}/stage{n}",
                      self._path(method, f"stage_{n}.partial.pt"), resume=True)
        model.eval()
        with torch.no_grad():
            metrics = evaluate(model(g), self.nu, test, cfg.stage_train.topk,
                               cfg.stage_train.eval_batch)
        res = {"stage": n, **metrics, "best_epoch": summary["best_epoch"],
               "epochs_run": summary["epochs_run"], "epoch_train_s": summary["epoch_train_s"],
               "select": summary["select"], "seen_share": test.seen_share,
               "wall_s": time.perf_counter() - t0}
        k = cfg.stage_train.topk
        log.info(f"[{method}/stage{n}] test recall@{k} {res[f'recall@{k}']:.4f} "
                 f"ndcg@{k} {res[f'ndcg@{k}']:.4f} (best epoch {summary['best_epoch']}, "
                 f"{res['wall_s']:.1f}s)")
        if spec["kind"] != "full":  # later stages start from these embeddings
            save_atomic(model.x.detach().clone(), self._path(method, f"x_{n}.pt"))
        save_atomic(res, path)
        self._remove(method, f"stage_{n}.partial.pt")
        if spec["kind"] != "full":
            # only now: a crash before stage_n.pt exists recomputes stage n, which reads these
            keep = cfg.window if spec["kind"] == "graphpro" else 1
            self._remove(method, f"x_{n - keep}.pt")
        maybe_fail(f"{method}/stage{n}/done")
        return res

    def run(self, phases=("pretrain", "stages")) -> dict:
        """Method by method: pre-train what it needs (once per kind), then all its stages, so
        the first method's results are complete before the next method starts."""
        self.check_config()
        pretrained: dict[str, dict] = {}
        methods = {}
        k = self.cfg.stage_train.topk
        for m in self.cfg.methods:
            kind = METHODS[m]["pretrain"]
            if kind is not None and kind not in pretrained:
                pretrained[kind] = self.pretrain(kind)
            if "stages" not in phases:
                continue
            bar = tqdm(range(1, self.data.num_stages + 1), desc=f"{m} stages", unit="stage",
                       disable=not sys.stderr.isatty())
            stages = [self.stage(m, n, pretrained) for n in bar]
            methods[m] = {
                "stages": stages,
                "average": {f"recall@{k}": float(np.mean([s[f"recall@{k}"] for s in stages])),
                            f"ndcg@{k}": float(np.mean([s[f"ndcg@{k}"] for s in stages]))},
                "wall_s": float(sum(s["wall_s"] for s in stages)),
            }
        return {"pretrain": {kk: v["summary"] for kk, v in pretrained.items()},
                "methods": methods, "seen_test_share": self.seen_shares(),
                "backend": backend.backend_name()}
