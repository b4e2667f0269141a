"""Datasets for the trainer: the GraphPro snapshot folder, an interactions table split by time,
the static LightGCN format, and a synthetic generator.

Everything ends up as numpy interaction arrays over one global id space (users 0..U-1, items
0..I-1), so every node has an embedding from the start, including users and items that only show
up in later snapshots. Bad input raises :class:`DataError` naming the file and line; with
``skip_bad_rows`` such rows are skipped and counted instead, never dropped silently.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DataError", "Interactions", "SnapshotData", "StaticData", "load_snapshot_folder",
    "load_table", "load_static", "synthetic", "write_snapshot_folder", "parse_duration",
]


class DataError(ValueError):
    """Malformed input; the message starts with ``file:line:`` when a line is to blame."""


@dataclass
class Interactions:
    users: np.ndarray  # int64
    items: np.ndarray  # int64
    times: np.ndarray  # float64 Unix seconds

    def __len__(self) -> int:
        return int(self.users.size)

    @staticmethod
    def empty() -> "Interactions":
        return Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))

    @staticmethod
    def concat(parts: list["Interactions"]) -> "Interactions":
        if not parts:
            return Interactions.empty()
        return Interactions(np.concatenate([p.users for p in parts]),
                            np.concatenate([p.items for p in parts]),
                            np.concatenate([p.times for p in parts]))

    def subset(self, mask_or_idx) -> "Interactions":
        return Interactions(self.users[mask_or_idx], self.items[mask_or_idx],
                            self.times[mask_or_idx])

    def duplicates(self) -> int:
        """Repeated (user, item) pairs: merged (latest time kept) when a graph is built."""
        if not len(self):
            return 0
        width = int(self.items.max()) + 1
        return len(self) - int(np.unique(self.users * width + self.items).size)


@dataclass
class SnapshotData:
    """Pre-training interactions plus the time-ordered snapshots: ``snapshots[0]`` is the
    fine-tuning snapshot and ``snapshots[k]`` is ``test_k``; stage n trains on ``snapshots[n-1]``
    and tests on ``snapshots[n]``."""

    name: str
    pretrain: Interactions
    snapshots: list[Interactions]
    num_users: int
    num_items: int
    stats: dict = field(default_factory=dict)

    @property
    def num_stages(self) -> int:
        return len(self.snapshots) - 1


@dataclass
class StaticData:
    """LightGCN-style static split (no times)."""

    train: Interactions
    test: Interactions
    num_users: int
    num_items: int
    stats: dict = field(default_factory=dict)


class _RowErrors:
    """Raise on the first bad row, or (skip_bad_rows) count and remember a few."""

    def __init__(self, skip: bool):
        self.skip, self.count, self.examples = skip, 0, []

    def __call__(self, where: str, msg: str) -> None:
        if not self.skip:
            raise DataError(f"{where}: {msg}")
        self.count += 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {msg}")


def _parse_id(tok: str) -> int:
    if not re.fullmatch(r"\d+", tok):
        raise ValueError(tok)
    return int(tok)


def _parse_time(tok: str) -> float:
    try:
        t = float(tok)
    except ValueError:
        raise ValueError(tok) from None
    if not math.isfinite(t):
        raise ValueError(tok)
    return t


def read_snapshot_file(path: str, skip_bad_rows: bool = False) -> tuple[Interactions, dict]:
    """One GraphPro snapshot file: ``user<TAB>item item ...<TAB>ts ts ...`` per line."""
    errs = _RowErrors(skip_bad_rows)
    us, its, ts = [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue  # blank lines carry nothing (a trailing newline is common)
            where = f"{path}:{lineno}"
            parts = line.split("\t")
            if len(parts) != 3:
                errs(where, "expected 3 tab-separated fields (user, items, times), "
                            f"got {len(parts)}")
                continue
            try:
                u = _parse_id(parts[0].strip())
            except ValueError:
                errs(where, f"user id {parts[0]!r} is not a non-negative integer")
                continue
            items, times = parts[1].split(), parts[2].split()
            if not items:
                errs(where, "no items")
                continue
            if len(items) != len(times):
                errs(where, f"{len(items)} items but {len(times)} timestamps")
                continue
            try:
                row_items = [_parse_id(x) for x in items]
            except ValueError as e:
                errs(where, f"item id {e.args[0]!r} is not a non-negative integer")
                continue
            try:
                row_times = [_parse_time(x) for x in times]
            except ValueError as e:
                errs(where, f"timestamp {e.args[0]!r} is not a finite number")
                continue
            us.extend([u] * len(row_items))
            its.extend(row_items)
            ts.extend(row_times)
    if not us:
        raise DataError(f"{path}: no interactions (empty file)")
    inter = Interactions(np.asarray(us, np.int64), np.asarray(its, np.int64),
                         np.asarray(ts, np.float64))
    stats = {"file": os.path.basename(path), "interactions": len(inter),
             "users": int(np.unique(inter.users).size), "items": int(np.unique(inter.items).size),
             "duplicates_merged": inter.duplicates(), "rows_skipped": errs.count,
             "skipped_examples": errs.examples}
    return inter, stats


def load_snapshot_folder(folder: str, pretrain_file: str | None = None,
                         skip_bad_rows: bool = False) -> SnapshotData:
    """A GraphPro dataset folder: pre-training file, ``fine_tune.txt``, ``test_1..N.txt``.

    The pre-training file is ``pretrain_file`` when given, else ``pretrain.txt`` when present,
    else ``pretrain_val.txt`` (the Amazon release here only has the latter)."""
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: not a directory")
    if pretrain_file is None:
        for cand in ("pretrain.txt", "pretrain_val.txt"):
            if os.path.exists(os.path.join(folder, cand)):
                pretrain_file = cand
                break
        else:
            raise DataError(f"{folder}: no pretrain.txt or pretrain_val.txt")
    tests = sorted(int(m.group(1)) for f in os.listdir(folder)
                   if (m := re.fullmatch(r"test_(\d+)\.txt", f)))
    if not tests:
        raise DataError(f"{folder}: no test_1.txt .. test_N.txt")
    if tests != list(range(1, len(tests) + 1)):
        raise DataError(f"{folder}: test files must be test_1..test_N without gaps, found {tests}")
    names = [pretrain_file, "fine_tune.txt"] + [f"test_{k}.txt" for k in tests]
    parts, stats = [], []
    for nm in names:
        p = os.path.join(folder, nm)
        if not os.path.exists(p):
            raise DataError(f"{p}: missing")
        inter, st = read_snapshot_file(p, skip_bad_rows)
        parts.append(inter)
        stats.append(st)
    num_users = max(int(p.users.max()) for p in parts) + 1
    num_items = max(int(p.items.max()) for p in parts) + 1
    return SnapshotData(os.path.basename(os.path.normpath(folder)), parts[0], parts[1:],
                        num_users, num_items, {"files": stats})


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """'7d', '12h', '30m', '2w', '3600s' or a bare number of seconds -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text))
    if not m:
        raise ValueError(f"bad duration {text!r}; use e.g. 7d, 12h, 30m, 3600s")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _read_table_columns(path: str, cols: tuple[str, str, str]) -> tuple[list, list, list, int]:
    """(users, items, times as strings/values, first data line number) from CSV or Parquet."""
    if path.endswith((".parquet", ".pq")):
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from e
        table = pq.read_table(path)
        missing = [c for c in cols if c not in table.column_names]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; has {table.column_names}")
        return (*[table.column(c).to_pylist() for c in cols], 1)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file")
        header = [h.strip() for h in header]
        missing = [c for c in cols if c not in header]
        if missing:
            raise DataError(f"{path}:1: missing columns {missing}; header is {header}")
        idx = [header.index(c) for c in cols]
        rows = list(reader)
    out = ([], [], [])
    for k, row in enumerate(rows):
        if len(row) != len(header):
            out[0].append(None)  # flagged below with its line number
            out[1].append(None)
            out[2].append(f"__bad_row__{len(row)}")
            continue
        for j in range(3):
            out[j].append(row[idx[j]].strip())
    return (*out, 2)


def _to_seconds(v) -> float:
    if isinstance(v, (int, float, np.integer, np.floating)):
        t = float(v)
    elif hasattr(v, "timestamp"):  # datetime from Parquet
        t = float(v.timestamp())
    else:
        try:
            t = float(v)
        except (TypeError, ValueError):
            # ISO dates/datetimes ('2016-01-03', '2016-01-03T10:00:00'), read as UTC
            t = float(np.datetime64(str(v).replace(" ", "T").rstrip("Z"), "s").astype(np.int64))
    if not math.isfinite(t):
        raise ValueError(v)
    return t


def load_table(path: str, pretrain_span: str, snapshot: str,
               columns: tuple[str, str, str] = ("user", "item", "timestamp"),
               skip_bad_rows: bool = False) -> tuple[SnapshotData, dict]:
    """An interactions table (CSV with a header, or Parquet) split by time: everything within
    ``pretrain_span`` of the first timestamp is pre-training, the rest is cut into consecutive
    ``snapshot``-long windows (the last may be shorter). Ids of any type are mapped to contiguous
    integers (sorted by their string form); returns the data and that mapping."""
    if not os.path.exists(path):
        raise DataError(f"{path}: missing")
    users, items, times, first_line = _read_table_columns(path, columns)
    if not users:
        raise DataError(f"{path}: no interactions (empty file)")
    errs = _RowErrors(skip_bad_rows)
    keep_u, keep_i, keep_t = [], [], []
    for k, (u, i, t) in enumerate(zip(users, items, times)):
        where = f"{path}:{k + first_line}"
        if isinstance(t, str) and t.startswith("__bad_row__"):
            errs(where, f"expected as many fields as the header, got {t[11:]}")
            continue
        if u is None or i is None or u == "" or i == "":
            errs(where, "empty user or item id")
            continue
        try:
            ts = _to_seconds(t)
        except (TypeError, ValueError):
            errs(where, f"timestamp {t!r} is neither a number nor an ISO date")
            continue
        keep_u.append(str(u))
        keep_i.append(str(i))
        keep_t.append(ts)
    if not keep_u:
        raise DataError(f"{path}: no valid interactions")
    user_keys, uidx = np.unique(np.asarray(keep_u), return_inverse=True)
    item_keys, iidx = np.unique(np.asarray(keep_i), return_inverse=True)
    t = np.asarray(keep_t, np.float64)
    span, snap = parse_duration(pretrain_span), parse_duration(snapshot)
    if span <= 0 or snap <= 0:
        raise DataError("--pretrain-span and --snapshot must be positive")
    t0 = float(t.min())
    slot = np.where(t < t0 + span, -1, np.floor((t - t0 - span) / snap)).astype(np.int64)
    n_snap = int(slot.max()) + 1
    if n_snap < 2:
        raise DataError(f"{path}: time range {(t.max() - t0) / 86400:.1f} days leaves fewer than "
                        "2 snapshots after the pre-training span; shorten --pretrain-span or "
                        "--snapshot")
    inter = Interactions(uidx.astype(np.int64), iidx.astype(np.int64), t)
    pre = inter.subset(slot == -1)
    if not len(pre):
        raise DataError(f"{path}: the pre-training span holds no interactions")
    snaps = [inter.subset(slot == k) for k in range(n_snap)]
    empty = [k for k, s in enumerate(snaps) if not len(s)]
    if empty:
        raise DataError(f"{path}: snapshot(s) {empty} hold no interactions; "
                        "use a longer --snapshot")
    data = SnapshotData(os.path.splitext(os.path.basename(path))[0], pre, snaps,
                        len(user_keys), len(item_keys),
                        {"rows_skipped": errs.count, "skipped_examples": errs.examples,
                         "duplicates_merged": inter.duplicates(),
                         "split": {"pretrain_span_s": span, "snapshot_s": snap, "t0": t0}})
    return data, {"users": user_keys.tolist(), "items": item_keys.tolist()}


def save_id_map(mapping: dict, path: str) -> None:
    """JSON {"users": [original id of 0, of 1, ...], "items": [...]}."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(mapping, f)


def read_static_file(path: str, skip_bad_rows: bool = False) -> tuple[Interactions, dict]:
    """LightGCN format: ``user item item ...`` per line (space separated, no times)."""
    errs = _RowErrors(skip_bad_rows)
    us, its = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            toks = line.split()
            if not toks:
                continue
            try:
                ids = [_parse_id(x) for x in toks]
            except ValueError as e:
                errs(f"{path}:{lineno}", f"id {e.args[0]!r} is not a non-negative integer")
                continue
            us.extend([ids[0]] * (len(ids) - 1))
            its.extend(ids[1:])
    if not us:
        raise DataError(f"{path}: no interactions (empty file)")
    inter = Interactions(np.asarray(us, np.int64), np.asarray(its, np.int64),
                         np.zeros(len(us), np.float64))
    return inter, {"file": os.path.basename(path), "interactions": len(inter),
                   "duplicates_merged": inter.duplicates(), "rows_skipped": errs.count,
                   "skipped_examples": errs.examples}


def load_static(train_path: str, test_path: str, skip_bad_rows: bool = False) -> StaticData:
    for p in (train_path, test_path):
        if not os.path.exists(p):
            raise DataError(f"{p}: missing")
    tr, s1 = read_static_file(train_path, skip_bad_rows)
    te, s2 = read_static_file(test_path, skip_bad_rows)
    nu = int(max(tr.users.max(), te.users.max())) + 1
    ni = int(max(tr.items.max(), te.items.max())) + 1
    return StaticData(tr, te, nu, ni, {"files": [s1, s2]})


def write_snapshot_folder(data: SnapshotData, folder: str) -> None:
    """Write ``data`` in the GraphPro snapshot format (pretrain.txt, fine_tune.txt, test_k.txt)."""
    os.makedirs(folder, exist_ok=True)
    names = ["pretrain.txt", "fine_tune.txt"] + [f"test_{k}.txt" for k in
                                                  range(1, len(data.snapshots))]
    for nm, inter in zip(names, [data.pretrain, *data.snapshots]):
        order = np.lexsort((inter.times, inter.users))
        u, i, t = inter.users[order], inter.items[order], inter.times[order]
        cuts = np.flatnonzero(np.diff(u)) + 1
        with open(os.path.join(folder, nm), "w", encoding="utf-8") as f:
            for a, b in zip(np.r_[0, cuts], np.r_[cuts, u.size]):
                f.write(f"{u[a]}\t{' '.join(map(str, i[a:b]))}\t"
                        f"{' '.join(str(int(x)) for x in t[a:b])}\n")


def synthetic(num_users: int = 3000, num_items: int = 2000, num_topics: int = 16,
              pretrain_weeks: int = 4, num_snapshots: int = 5, events_per_week: float = 2.5,
              seed: int = 0) -> SnapshotData:
    """A small dynamic-recommendation dataset, deterministic from ``seed``.

    Items belong to topics, appear at a random time and fade exponentially (so later snapshots
    need items the pre-trained model barely knows); users' topic preferences drift by a random
    walk every week; user activity is power-law (Pareto) distributed. Snapshots are one week.
    """
    rng = np.random.default_rng(seed)
    weeks = pretrain_weeks + num_snapshots
    week_s = 7 * 86400.0
    t_origin = 1_600_000_000.0
    num_topics = max(1, min(num_topics, num_items))
    topic = rng.permutation(np.arange(num_items) % num_topics)  # no topic left without items
    birth = rng.uniform(-2.0, weeks, num_items)  # in weeks; some items predate the data
    life = 1.0 + rng.exponential(3.0, num_items)
    popularity = rng.lognormal(0.0, 1.0, num_items)
    activity = (rng.pareto(1.5, num_users) + 0.2)
    activity *= events_per_week / activity.mean()
    pref = rng.normal(0.0, 1.5, (num_users, num_topics))
    us, its, ts = [], [], []
    for w in range(weeks):
        if w:
            pref += rng.normal(0.0, 0.6, pref.shape)  # interest drift
        mid = w + 0.5
        alive = np.where(birth <= mid, popularity * np.exp(-(mid - birth) / life), 0.0)
        n = rng.poisson(activity)
        ev_user = np.repeat(np.arange(num_users), n)
        p = np.exp(pref[ev_user] - pref[ev_user].max(1, keepdims=True))
        cum = np.cumsum(p, 1)
        ev_topic = (cum < rng.uniform(0, 1, ev_user.size)[:, None] * cum[:, -1:]).sum(1)
        ev_item = np.empty(ev_user.size, np.int64)
        for k in range(num_topics):
            sel = np.flatnonzero(ev_topic == k)
            cand = np.flatnonzero(topic == k)
            wts = alive[cand]
            if wts.sum() <= 0:
                wts = popularity[cand]
            cdf = np.cumsum(wts / wts.sum())
            pick = np.searchsorted(cdf, rng.uniform(0, 1, sel.size) * cdf[-1], side="right")
            ev_item[sel] = cand[np.minimum(pick, cand.size - 1)]
        us.append(ev_user)
        its.append(ev_item)
        ts.append(t_origin + (w + rng.uniform(0, 1, ev_user.size)) * week_s)
    u, i, t = np.concatenate(us), np.concatenate(its), np.floor(np.concatenate(ts))
    week = ((t - t_origin) // week_s).astype(np.int64)
    inter = Interactions(u.astype(np.int64), i, t)
    pre = inter.subset(week < pretrain_weeks)
    snaps = [inter.subset(week == pretrain_weeks + k) for k in range(num_snapshots)]
    return SnapshotData(f"synthetic(seed={seed})", pre, snaps, num_users, num_items,
                        {"generator": {"num_users": num_users, "num_items": num_items,
                                       "num_topics": num_topics, "pretrain_weeks": pretrain_weeks,
                                       "num_snapshots": num_snapshots,
                                       "events_per_week": events_per_week, "seed": seed},
                         "duplicates_merged": inter.duplicates()})
