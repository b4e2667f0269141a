"""Saved models: what a run leaves for serving, and the API that reads it.

A run saves, for its served method (``--serve``, by default the first of ``--methods``), one file
per stage under ``OUT/model/``::

    OUT/model/stage_<n>.pt     stage n's model (n = 0: the pre-training, or `graphpro train`)
    OUT/model/LATEST           the name of the newest complete model file

A model file (format ``FORMAT``) is self-describing and needs no training data: the trainable
table and the gate weights, the final propagated user and item embeddings (what serving ranks
with), the configuration, both id maps (original ids in row order), the interactions the model
has seen per snapshot (to exclude a user's history, and for ``update``'s prompt graph), the graph
it propagated over, and its test metrics. Files are written atomically and ``LATEST`` moves only
after its file is complete, so a reader never sees a half-written model.

``load(OUT)`` returns a ``SavedModel``: ``recommend``, ``score``, ``user_embeddings`` and
``item_embeddings`` in original ids. Unknown users get the most popular items of the newest
snapshot, flagged ``fallback`` (docs/SERVING.md).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import numpy as np
import torch

from graphpro_ext.graph import build_history

from . import backend
from .data import Interactions
from .errors import CheckpointError, ConfigError, RunDirError
from .runtime import maybe_fail, save_atomic, write_text_atomic

__all__ = ["FORMAT", "MODEL_DIR", "IdMap", "SavedModel", "Recommendations", "load",
           "model_path", "latest_stage", "write_model", "grow_table"]

FORMAT = 1
MODEL_DIR = "model"
LATEST = "LATEST"
_KIND = "graphpro-model"


def model_path(out: str, stage: int) -> str:
    return os.path.join(out, MODEL_DIR, f"stage_{stage}.pt")


class IdMap:
    """Original ids in row order, both ways. ``ids`` is an int64 array (snapshot folders: ids
    are already integers) or an array of str (tables: any id, by its string form)."""

    def __init__(self, ids):
        ids = np.asarray(ids)
        self.ids = ids.astype(np.int64) if ids.dtype.kind in "iu" else ids.astype(str)
        self._row = {k: r for r, k in enumerate(self.ids.tolist())}
        if len(self._row) != len(self.ids):
            raise CheckpointError("an id map holds the same id twice")

    @classmethod
    def identity(cls, n: int) -> "IdMap":
        return cls(np.arange(n, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def numeric(self) -> bool:
        return self.ids.dtype.kind == "i"

    def key(self, x):
        """An id as this map spells it (``"17"`` finds 17 in a numeric map and vice versa)."""
        if self.numeric:
            try:
                return int(x)
            except (TypeError, ValueError):
                return None
        if isinstance(x, (float, np.floating)) and float(x).is_integer():
            x = int(x)
        return str(x)

    def rows(self, ids) -> np.ndarray:
        """Rows of ``ids``; -1 where an id is unknown."""
        return np.fromiter((self._row.get(self.key(x), -1) for x in ids), np.int64,
                           count=len(ids))

    def grow(self, ids) -> tuple["IdMap", np.ndarray]:
        """(the map with the unknown ``ids`` appended in sorted order, every id's row): old rows
        never move."""
        rows = self.rows(ids)
        new = sorted({self.key(x) for x, r in zip(ids, rows) if r < 0})
        if any(k is None for k in new):
            bad = next(x for x in ids if self.key(x) is None)
            raise ConfigError(f"id {bad!r} is not an integer, and this run's ids are")
        if not new:
            return self, rows
        # a string map goes through object arrays: its fixed width must not truncate new ids
        kind = np.int64 if self.numeric else object
        grown = IdMap(np.concatenate([self.ids.astype(kind), np.asarray(new, dtype=kind)]))
        return grown, grown.rows(ids)

    def to_list(self) -> list:
        return self.ids.tolist()


def grow_table(x: torch.Tensor, nu_old: int, nu: int, ni: int,
               generator: torch.Generator) -> torch.Tensor:
    """A [U_old + I_old, d] table grown to [nu + ni, d]: new users after the old users, new
    items after the old items, their rows drawn as pre-training draws a fresh table's
    (xavier-uniform with the bound of the grown table's size)."""
    ni_old = x.shape[0] - nu_old
    if nu_old == nu and ni_old == ni:
        return x
    if nu < nu_old or ni < ni_old:
        raise CheckpointError(f"a table of {nu_old} users and {ni_old} items cannot shrink to "
                              f"{nu} and {ni}")
    d = x.shape[1]

    def fresh(n_new, n_all):
        bound = (6.0 / (n_all + d)) ** 0.5
        return ((torch.rand(n_new, d, generator=generator) * 2 - 1) * bound).to(x)

    return torch.cat([x[:nu_old], fresh(nu - nu_old, nu), x[nu_old:], fresh(ni - ni_old, ni)])


def _history_record(parts: list[Interactions]) -> dict:
    allp = Interactions.concat(parts) if parts else Interactions.empty()
    return {"users": allp.users, "items": allp.items, "times": allp.times,
            "snapshot_ptr": np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)}


def _popular(latest: Interactions, num_items: int, k: int = 1000) -> dict:
    """The newest snapshot's most frequent items (the fallback of unknown users)."""
    counts = np.bincount(latest.items, minlength=num_items) if len(latest) else \
        np.zeros(num_items, np.int64)
    order = np.argsort(-counts, kind="stable")[:k]
    return {"items": order.astype(np.int64), "counts": counts[order].astype(np.int64)}


def write_model(out: str, *, stage: int, method: str, config: dict, user_map: IdMap,
                item_map: IdMap, table: torch.Tensor, gate: dict | None,
                final: torch.Tensor, history: list[Interactions], pending: list[Interactions],
                graph: Interactions, graph_tau: float, metrics: dict | None,
                extra: dict | None = None) -> str:
    """Write stage ``stage``'s model file atomically, then point LATEST at it when it is the
    newest stage. ``history``: the interactions trained on so far, one entry per snapshot
    (pre-training first; what ``recommend`` excludes); ``pending``: later snapshots the run
    knows but this model did not train on (a held-out test snapshot; ``update`` absorbs them
    first); ``graph``: the interactions ``final`` was propagated over."""
    nu, ni = len(user_map), len(item_map)
    if final.shape[0] != nu + ni or table.shape[0] != nu + ni:
        raise ValueError(f"model of {final.shape[0]} rows for {nu} users + {ni} items")
    rec = {
        "kind": _KIND, "format": FORMAT, "stage": stage, "method": method,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": config, "num_users": nu, "num_items": ni,
        "user_ids": user_map.ids, "item_ids": item_map.ids,
        "table": table.detach().cpu().contiguous(),
        "gate": None if gate is None else {k: v.detach().cpu() if torch.is_tensor(v) else v
                                           for k, v in gate.items()},
        "user_emb": final[:nu].detach().cpu().contiguous(),
        "item_emb": final[nu:].detach().cpu().contiguous(),
        "history": _history_record(history), "pending": _history_record(pending),
        "graph": {"users": graph.users, "items": graph.items, "times": graph.times,
                  "tau_hours": graph_tau},
        "popular": _popular((pending or history)[-1], ni),
        "metrics": metrics, **(extra or {}),
    }
    os.makedirs(os.path.join(out, MODEL_DIR), exist_ok=True)
    path = model_path(out, stage)
    save_atomic(_as_tensors(rec), path)
    maybe_fail(f"model/stage{stage}/before-latest")
    newest = latest_stage(out)
    if newest is None or stage >= newest:
        write_text_atomic(os.path.basename(path) + "\n", os.path.join(out, MODEL_DIR, LATEST))
    return path


def _as_tensors(obj):
    """Numeric numpy arrays as tensors, recursively: torch.save writes tensors as raw storage
    (fast) and numpy arrays through pickle (measured 4-6 s per 500 MB model file)."""
    if isinstance(obj, dict):
        return {k: _as_tensors(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray) and obj.dtype.kind in "iufb":
        return torch.from_numpy(np.ascontiguousarray(obj))
    return obj


def _as_numpy(obj, keep=("table", "user_emb", "item_emb", "gate")):
    """The inverse of ``_as_tensors`` for everything but the model's own tensors."""
    if isinstance(obj, dict):
        return {k: v if k in keep else _as_numpy(v, ()) for k, v in obj.items()}
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    return obj


def latest_stage(out: str) -> int | None:
    """The stage LATEST points at (None when the run has no complete model)."""
    p = os.path.join(out, MODEL_DIR, LATEST)
    try:
        with open(p) as f:
            name = f.read().strip()
    except FileNotFoundError:
        return None
    if not (name.startswith("stage_") and name.endswith(".pt") and name[6:-3].isdigit()):
        raise CheckpointError(f"{p}: does not name a model file ({name[:60]!r})")
    return int(name[6:-3])


def _read(out: str, stage) -> dict:
    if not os.path.isdir(out):
        raise RunDirError(f"--run {out}: no such folder")
    if stage in (None, "latest"):
        stage = latest_stage(out)
        if stage is None:
            raise RunDirError(f"--run {out}: no saved model (no {MODEL_DIR}/{LATEST}); runs made "
                              "before model format 1 saved none: train again, or the run has not "
                              "finished a stage yet")
    path = model_path(out, int(stage))
    if not os.path.exists(path):
        have = sorted(int(f[6:-3]) for f in os.listdir(os.path.join(out, MODEL_DIR))
                      if f.startswith("stage_") and f.endswith(".pt")) \
            if os.path.isdir(os.path.join(out, MODEL_DIR)) else []
        raise RunDirError(f"--run {out}: no model of stage {stage} (stages saved: "
                          f"{have or 'none'})")
    try:
        rec = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file: one line
        raise CheckpointError(f"{path}: unreadable model file ({type(e).__name__}: "
                              f"{str(e)[:120]})") from None
    if not isinstance(rec, dict) or rec.get("kind") != _KIND:
        raise CheckpointError(f"{path}: not a graphpro model file")
    if rec.get("format") != FORMAT:
        raise CheckpointError(f"{path}: model format {rec.get('format')} is not supported by "
                              f"this graphpro (format {FORMAT}); train the run again with it")
    return _as_numpy(rec)


@dataclass
class Recommendations:
    """``items[r]`` / ``scores[r]``: the top-k of ``users[r]`` (original ids), best first;
    ``fallback[r]``: the user is unknown and got the newest snapshot's most popular items
    (scores are then their interaction counts). Rows hold fewer than k items when fewer exist
    (``items`` padded with None, ``scores`` with NaN). ``item_rows`` holds the same as rows of
    ``item_ids`` (-1 padding): typed arrays, which writers of millions of rows want."""

    users: list
    item_rows: np.ndarray  # int64 [n, k]
    scores: np.ndarray  # float32 [n, k]
    fallback: np.ndarray  # bool [n]
    item_ids: np.ndarray  # the model's item ids, in row order

    @property
    def items(self) -> np.ndarray:
        """Original item ids, object [n, k], padded with None."""
        out = np.full(self.item_rows.shape, None, dtype=object)
        ok = self.item_rows >= 0
        out[ok] = self.item_ids[self.item_rows[ok]].astype(object)
        return out

    def columns(self) -> dict:
        """One row per recommended item, as arrays: user, rank (from 1), item, score, fallback;
        padding left out. Ids keep the model's type (int64 or str) where they share one."""
        n, k = self.item_rows.shape
        rows = self.item_rows.ravel()
        keep = rows >= 0
        users = np.asarray(self.users)
        if users.ndim != 1 or users.dtype.kind not in "iuU":
            users = np.empty(n, dtype=object)
            users[:] = self.users
        return {"user": np.repeat(users, k)[keep],
                "rank": np.tile(np.arange(1, k + 1), n)[keep],
                "item": self.item_ids[rows[keep]], "score": self.scores.ravel()[keep],
                "fallback": np.repeat(self.fallback, k)[keep]}


class SavedModel:
    """A model file read back: see the module docstring."""

    def __init__(self, rec: dict, path: str):
        self.path = path
        self.stage, self.method = int(rec["stage"]), rec["method"]
        self.config, self.metrics = rec["config"], rec.get("metrics")
        self.num_users, self.num_items = int(rec["num_users"]), int(rec["num_items"])
        self.users, self.items = IdMap(rec["user_ids"]), IdMap(rec["item_ids"])
        self._user_emb, self._item_emb = rec["user_emb"].float(), rec["item_emb"].float()
        h = rec["history"]
        self._hist_rowptr, self._hist_items = build_history(h["users"], h["items"],
                                                           self.num_users)
        self.record = rec

    # -- embeddings ---------------------------------------------------------------------------
    def user_embeddings(self) -> tuple[np.ndarray, torch.Tensor]:
        """(original user ids, their final embeddings [U, d]) in row order."""
        return self.users.ids, self._user_emb

    def item_embeddings(self) -> tuple[np.ndarray, torch.Tensor]:
        return self.items.ids, self._item_emb

    def score(self, user_ids, item_ids) -> np.ndarray:
        """Dot-product scores [len(user_ids), len(item_ids)]; unknown ids raise ConfigError."""
        u, i = self._known(self.users, user_ids, "user"), self._known(self.items, item_ids, "item")
        return (self._user_emb[u] @ self._item_emb[i].T).numpy()

    @staticmethod
    def _known(idmap: IdMap, ids, what: str) -> torch.Tensor:
        rows = idmap.rows(list(ids))
        if (rows < 0).any():
            bad = [x for x, r in zip(ids, rows) if r < 0]
            raise ConfigError(f"{len(bad)} unknown {what} id(s), e.g. {bad[0]!r}")
        return torch.from_numpy(rows)

    # -- recommendation -----------------------------------------------------------------------
    def recommend(self, user_ids, k: int = 20, exclude_seen: bool = True,
                  batch_users: int = 65536) -> Recommendations:
        """Top-``k`` items per user, in original ids. Known users are ranked by dot product
        over every item, their seen items excluded (``exclude_seen``); unknown users get the
        fallback (see ``Recommendations``). Batched over users, chunked over items."""
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        rows = self.users.rows(list(user_ids))
        # known ids as the model spells them (17, not "17"); unknown ones as given
        user_ids = [self.users.ids[r].item() if r >= 0 else x for x, r in zip(user_ids, rows)]
        n, kk = len(user_ids), min(k, self.num_items)
        item_rows = np.full((n, k), -1, dtype=np.int64)
        scores = np.full((n, k), np.nan, dtype=np.float32)
        known = np.flatnonzero(rows >= 0)
        if exclude_seen:
            hist_rp, hist_it = self._hist_rowptr, self._hist_items
        else:
            hist_rp, hist_it = torch.zeros(self.num_users + 1, dtype=torch.int64), \
                torch.zeros(0, dtype=self._hist_items.dtype)
        for a in range(0, known.size, batch_users):
            sel = known[a:a + batch_users]
            u = torch.from_numpy(rows[sel])
            s, ids = backend.topk_masked(self._user_emb[u].contiguous(), self._item_emb,
                                         hist_rp, hist_it, kk, users=u)
            s, ids = s.numpy(), ids.numpy()
            scores[sel, :kk] = np.where(ids >= 0, s, np.nan)
            item_rows[sel, :kk] = ids
        fallback = rows < 0
        if fallback.any():
            pop = self.record["popular"]
            m = min(k, pop["items"].size)
            item_rows[fallback, :m] = pop["items"][:m]
            scores[fallback, :m] = pop["counts"][:m].astype(np.float32)
        return Recommendations(user_ids, item_rows, scores, fallback, self.items.ids)


def load(out: str, stage="latest") -> SavedModel:
    """The model of run folder ``out``: its newest (``"latest"``) or stage ``stage``."""
    rec = _read(out, stage)
    return SavedModel(rec, model_path(out, int(rec["stage"])))


def read_record(out: str, stage="latest") -> dict:
    """The raw model record (``update`` continues from it)."""
    return _read(out, stage)
