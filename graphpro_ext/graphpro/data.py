"""Datasets for the trainer: the GraphPro snapshot folder, an interactions table split by time,
the static LightGCN format, and a synthetic generator.

Everything ends up as numpy interaction arrays over one global id space (users 0..U-1, items
0..I-1), so every node has an embedding from the start, including users and items that only show
up in later snapshots. Bad input raises :class:`DataError` naming the file and line; with
``skip_bad_rows`` such rows are skipped and counted instead, never dropped silently.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from graphpro_ext.graph import pair_keys, isin, unique

from .errors import DataError, shorten

__all__ = [
    "DataError", "Interactions", "SnapshotData", "StaticData", "load_snapshot_folder",
    "load_table", "read_table_rows", "load_static", "synthetic", "write_snapshot_folder",
    "parse_duration",
    "pair_keys", "hold_out_pairs", "MAX_ID",
]


MAX_ID = 2**62  # larger ids could not be stored, and would overflow the user x item pair keys
MAX_ABS_TIME = 2.0**53  # seconds; beyond this float64 loses whole seconds and time steps overflow


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
        if len(self) < 2:
            return 0
        o = np.lexsort((self.items, self.users))  # no pair keys: ids may be huge here
        u, i = self.users[o], self.items[o]
        return int(np.count_nonzero((u[1:] == u[:-1]) & (i[1:] == i[:-1])))

    def fingerprint(self, h) -> None:
        """Feed the count and the id/time arrays into the hash ``h`` (hashlib)."""
        h.update(np.int64(len(self)).tobytes())
        for a in (self.users, self.items, self.times):
            h.update(np.ascontiguousarray(a).tobytes())


def hold_out_pairs(inter: Interactions, num_items: int, frac: float,
                   seed: int) -> tuple[Interactions, Interactions]:
    """(kept, held out): a seeded ``frac`` of the distinct (user, item) pairs held out, with
    every interaction of a held-out pair (the validation split of stages and ``train``)."""
    key = pair_keys(inter.users, inter.items, num_items)
    uniq = unique(key)
    rng = np.random.default_rng(seed)
    held = isin(key, rng.choice(uniq, int(round(frac * uniq.size)), replace=False))
    return inter.subset(~held), inter.subset(held)


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

    def fingerprint(self) -> str:
        """A digest of every interaction: resuming checkpoints of other data is refused."""
        h = hashlib.blake2b(digest_size=16)
        h.update(np.int64([self.num_users, self.num_items, len(self.snapshots)]).tobytes())
        for part in (self.pretrain, *self.snapshots):
            part.fingerprint(h)
        return h.hexdigest()


@dataclass
class StaticData:
    """LightGCN-style static split (no times)."""

    train: Interactions
    test: Interactions
    num_users: int
    num_items: int
    stats: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        self.train.fingerprint(h)
        self.test.fingerprint(h)
        return h.hexdigest()


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

    def nothing_left(self, path: str) -> DataError:
        """The error for a file without a single valid interaction."""
        if self.count:
            return DataError(f"{path}: no valid interactions (all {self.count} rows were bad, "
                             f"e.g. {self.examples[0]})")
        return DataError(f"{path}: no interactions (empty file)")


def _q(tok) -> str:
    """A token quoted for an error message, cut short (a binary file can hold megabyte lines)."""
    r = repr(tok)
    return r if len(r) <= 40 else r[:37] + "..."


def _parse_id(tok: str) -> int:
    """A non-negative integer id below MAX_ID; ValueError(message) otherwise."""
    if not re.fullmatch(r"\d+", tok):
        raise ValueError(f"{_q(tok)} is not a non-negative integer")
    if len(tok) > 19 or int(tok) >= MAX_ID:
        raise ValueError(f"{_q(tok)} is too large (ids must be below 2^62)")
    return int(tok)


def _check_time(t: float, shown) -> float:
    if not math.isfinite(t):
        raise ValueError(f"timestamp {_q(shown)} is not a finite number")
    if abs(t) >= MAX_ABS_TIME:
        raise ValueError(f"timestamp {_q(shown)} is outside the representable range "
                         "(|t| < 2^53 seconds)")
    return t


def _parse_time(tok: str) -> float:
    try:
        t = float(tok)
    except ValueError:
        raise ValueError(f"timestamp {_q(tok)} is not a finite number") from None
    return _check_time(t, tok)


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise DataError(f"{path}: missing")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: not readable (permission denied)")


def _text_lines(path: str, errs: _RowErrors):
    """(line number, text without the newline) for each line of a UTF-8 file (a BOM is
    ignored); a line that is not UTF-8 is a bad row."""
    _check_file(path)
    try:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    errs(f"{path}:{lineno}", "not UTF-8 text (a binary or Latin-1 file?)")
                    continue
                yield lineno, text.rstrip("\r\n")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _iso(t: float) -> str:
    try:
        return datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{t:.6g} s"


def _time_warnings(path: str, t: np.ndarray, lines: np.ndarray) -> list[str]:
    """Warnings about times far outside the bulk of a file (they squeeze every other edge's
    normalised time into a sliver of [0, 1]) and about times that look like milliseconds."""
    out = []
    if t.size >= 4:
        q25, q50, q75 = np.quantile(t, [0.25, 0.5, 0.75])
        iqr = max(float(q75 - q25), 3600.0)
        far = (t < q25 - 20 * iqr) | (t > q75 + 20 * iqr)
        if far.any():
            k = int(np.argmax(np.abs(t - q50)))
            out.append(f"{path}:{int(lines[k])}: time {t[k]:.0f} ({_iso(t[k])}) lies far outside "
                       f"the file's other times (middle half {_iso(q25)} .. {_iso(q75)}; "
                       f"{int(far.sum())} such row(s)); outliers squeeze every other edge's "
                       "normalised time together: fix or drop them")
    if t.size and float(np.median(np.abs(t))) > 1e11:
        out.append(f"{path}: times look like milliseconds (or finer) since the epoch (median "
                   f"{float(np.median(t)):.4g}); the trainer reads seconds: divide by 1000")
    return out


def _describe(path: str, inter: Interactions, lines: np.ndarray, errs: _RowErrors) -> dict:
    """Per-file statistics, including where the largest ids and the time range come from (the
    memory check and the outlier warnings point at those lines)."""
    ku, ki = int(np.argmax(inter.users)), int(np.argmax(inter.items))
    return {"file": os.path.basename(path), "path": path, "interactions": len(inter),
            "users": int(unique(inter.users).size), "items": int(unique(inter.items).size),
            "duplicates_merged": inter.duplicates(), "rows_skipped": errs.count,
            "skipped_examples": errs.examples,
            "max_user": [int(inter.users[ku]), int(lines[ku])],
            "max_item": [int(inter.items[ki]), int(lines[ki])],
            "time_range": [float(inter.times.min()), float(inter.times.max())],
            "warnings": _time_warnings(path, inter.times, lines)}


def read_snapshot_file(path: str, skip_bad_rows: bool = False) -> tuple[Interactions, dict]:
    """One GraphPro snapshot file: ``user<TAB>item item ...<TAB>ts ts ...`` per line."""
    errs = _RowErrors(skip_bad_rows)
    us, its, ts, ln = [], [], [], []
    for lineno, line in _text_lines(path, errs):
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
        except ValueError as e:
            errs(where, f"user id {e.args[0]}")
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
            errs(where, f"item id {e.args[0]}")
            continue
        try:
            row_times = [_parse_time(x) for x in times]
        except ValueError as e:
            errs(where, str(e.args[0]))
            continue
        us.extend([u] * len(row_items))
        its.extend(row_items)
        ts.extend(row_times)
        ln.extend([lineno] * len(row_items))
    if not us:
        raise errs.nothing_left(path)
    inter = Interactions(np.asarray(us, np.int64), np.asarray(its, np.int64),
                         np.asarray(ts, np.float64))
    return inter, _describe(path, inter, np.asarray(ln, np.int64), errs)


def load_snapshot_folder(folder: str, pretrain_file: str | None = None,
                         skip_bad_rows: bool = False) -> SnapshotData:
    """A GraphPro dataset folder: pre-training file, ``fine_tune.txt``, ``test_1..N.txt``.

    The pre-training file is ``pretrain_file`` when given, else ``pretrain.txt`` when present,
    else ``pretrain_val.txt`` (the Amazon release here only has the latter)."""
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: {'not a directory' if os.path.exists(folder) else 'missing'}")
    if pretrain_file is None:
        for cand in ("pretrain.txt", "pretrain_val.txt"):
            if os.path.exists(os.path.join(folder, cand)):
                pretrain_file = cand
                break
        else:
            raise DataError(f"{folder}: no pretrain.txt or pretrain_val.txt")
    try:
        listing = os.listdir(folder)
    except OSError as e:
        raise DataError(f"{folder}: cannot list ({e.strerror or e})") from None
    tests: dict[int, str] = {}
    for f in sorted(listing):
        m = re.fullmatch(r"test_(\d+)\.txt", f)
        if m:
            k = int(m.group(1))
            if k in tests:
                raise DataError(f"{folder}: {tests[k]} and {f} are both test snapshot {k}")
            tests[k] = f
    if not tests:
        raise DataError(f"{folder}: no test_1.txt .. test_N.txt")
    nums = sorted(tests)
    if nums != list(range(1, len(nums) + 1)):
        missing = sorted(set(range(1, nums[-1] + 1)) - set(nums))
        raise DataError(f"{folder}: test files must be test_1..test_N without gaps; "
                        f"{len(nums)} found, up to test_{nums[-1]}.txt, number(s) "
                        f"{_few(missing or nums[:1])} missing")
    names = [pretrain_file, "fine_tune.txt"] + [tests[k] for k in nums]
    parts, stats = [], []
    for nm in names:
        inter, st = read_snapshot_file(os.path.join(folder, nm), skip_bad_rows)
        parts.append(inter)
        stats.append(st)
    num_users = max(int(p.users.max()) for p in parts) + 1
    num_items = max(int(p.items.max()) for p in parts) + 1
    return SnapshotData(os.path.basename(os.path.normpath(folder)), parts[0], parts[1:],
                        num_users, num_items, {"files": stats})


def _few(xs, n: int = 5) -> str:
    """A list for an error message: at most ``n`` entries, then how many more."""
    xs = list(xs)
    head = ", ".join(map(str, xs[:n]))
    return head + (f" and {len(xs) - n} more" if len(xs) > n else "")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """'7d', '12h', '30m', '2w', '3600s' or a bare number of seconds -> seconds (> 0)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"bad duration {str(text)[:40]!r}; use a positive length such as 7d, "
                         "12h, 30m, 3600s")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


_TS_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def _parquet_column(table, name: str) -> list:
    """A column as Python values; timestamps and dates become Unix seconds without going
    through Python datetimes, so zone-less times are read as UTC whatever the machine's TZ."""
    import pyarrow as pa

    col = table.column(name)
    typ = col.type
    if pa.types.is_timestamp(typ):  # stored as UTC epoch counts, zone or not
        ints = col.cast(pa.int64()).to_pylist()
        return [None if v is None else v / _TS_UNITS[typ.unit] for v in ints]
    if pa.types.is_date32(typ):
        return [None if v is None else v * 86400.0 for v in col.cast(pa.int32()).to_pylist()]
    if pa.types.is_date64(typ):
        return [None if v is None else v / 1e3 for v in col.cast(pa.int64()).to_pylist()]
    return col.to_pylist()


def _csv_row(text: str) -> list[str]:
    """One line's CSV fields. Strict, and one line at a time: a quote left open does not
    swallow the lines after it (quoted newlines are not supported), it is an error naming the
    line, as are text after a closing quote and a quote inside an unquoted field."""
    try:
        row = next(csv.reader([text], strict=True))
        # an unquoted field holding a quote: the tail of a quoted newline, or a typo (a quote
        # inside a quoted field is written "")
        if '"' in text and '""' not in text and any('"' in f for f in row):
            raise csv.Error("a quote inside an unquoted field (the rest of a quoted newline?)")
        return row
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            raise csv.Error("a quoted field is not closed on its line; quoted newlines are "
                            "not supported") from None
        raise


def _read_table_columns(path: str, cols: tuple[str, str, str],
                        errs: _RowErrors) -> tuple[list, list, list, list]:
    """(users, items, times, line numbers) from CSV or Parquet (Parquet rows count from 1).
    Rows with the wrong number of fields are reported to ``errs``; blank lines are skipped."""
    _check_file(path)
    if path.endswith((".parquet", ".pq")):
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from e
        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad files
            raise DataError(f"{path}: not a readable Parquet file ({shorten(e, 160)})") from None
        missing = [c for c in cols if c not in table.column_names]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; has {table.column_names[:20]}")
        return (*[_parquet_column(table, c) for c in cols], list(range(1, table.num_rows + 1)))
    lines = _text_lines(path, errs)
    header = None
    for lineno, text in lines:
        if text.strip():
            try:
                header = [h.strip() for h in _csv_row(text)]
            except csv.Error as e:
                raise DataError(f"{path}:{lineno}: not a CSV header ({e})") from None
            break
    if header is None:
        raise errs.nothing_left(path)
    missing = [c for c in cols if c not in header]
    if missing:
        raise DataError(f"{path}:{lineno}: missing columns {missing}; header is "
                        f"{_few(header, 10)}")
    idx = [header.index(c) for c in cols]
    out = ([], [], [], [])
    for lineno, text in lines:
        if not text.strip():
            continue  # blank lines carry nothing
        try:
            row = _csv_row(text)
        except csv.Error as e:
            errs(f"{path}:{lineno}", f"not a CSV row ({e})")
            continue
        if len(row) != len(header):
            errs(f"{path}:{lineno}", f"expected as many fields as the header ({len(header)}), "
                                     f"got {len(row)}")
            continue
        for j in range(3):
            out[j].append(row[idx[j]].strip())
        out[3].append(lineno)
    return out


def _to_seconds(v) -> float:
    """Unix seconds from a number, a numeric string or an ISO date/datetime (zone-less: UTC);
    ValueError(message) for anything else."""
    if v is None or (isinstance(v, str) and not v.strip()):
        raise ValueError("empty time")
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"timestamp {_q(v)} is neither a number nor an ISO date")
    if isinstance(v, (int, float, np.integer, np.floating)):
        if isinstance(v, float) and math.isnan(v):
            raise ValueError("empty time")
        return _check_time(float(v), v)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return _check_time(v.timestamp(), v)
    text = str(v).strip()
    if text.lower() in ("nat", "nan", "null", "none", "na"):
        raise ValueError("empty time")
    try:
        t = float(text)
    except ValueError:
        t = None
    if t is not None:
        return _check_time(t, text)
    try:
        d = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"timestamp {_q(text)} is neither a number nor an ISO date") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return _check_time(d.timestamp(), text)


MAX_WINDOWS = 100_000


def read_table_rows(path: str, columns: tuple[str, str, str],
                    errs: "_RowErrors") -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(user ids, item ids as strings, Unix seconds, line numbers) of a CSV/Parquet table's
    valid rows; bad rows go to ``errs`` (file:line)."""
    users, items, times, rows = _read_table_columns(path, columns, errs)
    keep_u, keep_i, keep_t, keep_l = [], [], [], []
    for u, i, t, lineno in zip(users, items, times, rows):
        where = f"{path}:{lineno}"
        if u is None or i is None or u == "" or i == "":
            errs(where, "empty user or item id")
            continue
        try:
            ts = _to_seconds(t)
        except (TypeError, ValueError, OverflowError) as e:
            errs(where, str(e.args[0]) if e.args else "bad timestamp")
            continue
        keep_u.append(str(u))
        keep_i.append(str(i))
        keep_t.append(ts)
        keep_l.append(lineno)
    if not keep_u:
        raise errs.nothing_left(path)
    return keep_u, keep_i, np.asarray(keep_t, np.float64), np.asarray(keep_l, np.int64)


def load_table(path: str, pretrain_span: str, snapshot: str,
               columns: tuple[str, str, str] = ("user", "item", "timestamp"),
               skip_bad_rows: bool = False) -> tuple[SnapshotData, dict]:
    """An interactions table (CSV with a header, or Parquet) split by time: everything within
    ``pretrain_span`` of the first timestamp is pre-training, the rest is cut into consecutive
    ``snapshot``-long windows (the last may be shorter). Ids of any type are mapped to contiguous
    integers (sorted by their string form); returns the data and that mapping."""
    try:
        span, snap = parse_duration(pretrain_span), parse_duration(snapshot)
    except ValueError as e:
        raise DataError(f"--pretrain-span/--snapshot: {e}") from None
    errs = _RowErrors(skip_bad_rows)
    keep_u, keep_i, t, lines = read_table_rows(path, columns, errs)
    user_keys, uidx = np.unique(np.asarray(keep_u), return_inverse=True)
    item_keys, iidx = np.unique(np.asarray(keep_i), return_inverse=True)
    inter = Interactions(uidx.astype(np.int64).ravel(), iidx.astype(np.int64).ravel(), t)
    stats = _describe(path, inter, lines, errs)
    t0 = float(t.min())
    n_snap = int(math.floor((float(t.max()) - t0 - span) / snap)) + 1
    if n_snap > MAX_WINDOWS:
        k = int(np.argmin(t))
        raise DataError(f"{path}: the times span {(t.max() - t0) / 86400:.0f} days: "
                        f"{n_snap} windows of --snapshot {snapshot}; the earliest time is at "
                        f"{path}:{int(lines[k])} ({_iso(t[k])}); an outlier, or times in the "
                        "wrong unit?")
    if n_snap < 2:
        raise DataError(f"{path}: time range {(t.max() - t0) / 86400:.1f} days leaves fewer than "
                        "2 snapshots after the pre-training span; shorten --pretrain-span or "
                        "--snapshot")
    slot = np.where(t < t0 + span, -1, np.floor((t - t0 - span) / snap)).astype(np.int64)
    slot = np.minimum(slot, n_snap - 1)
    pre = inter.subset(slot == -1)
    if not len(pre):
        raise DataError(f"{path}: the pre-training span holds no interactions")
    order = np.argsort(slot, kind="stable")
    counts = np.bincount(slot + 1, minlength=n_snap + 1)[1:]
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise DataError(f"{path}: {empty.size} of {n_snap} snapshot(s) hold no interactions "
                        f"(snapshot {_few(empty.tolist())}); use a longer --snapshot")
    bounds = np.cumsum(np.r_[int((slot == -1).sum()), counts])
    snaps = [inter.subset(np.sort(order[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]
    stats.update(split={"pretrain_span_s": span, "snapshot_s": snap, "t0": t0})
    data = SnapshotData(os.path.splitext(os.path.basename(path))[0], pre, snaps,
                        len(user_keys), len(item_keys), {"files": [stats]})
    return data, {"users": user_keys.tolist(), "items": item_keys.tolist()}


def save_id_map(mapping: dict, path: str) -> None:
    """JSON {"users": [original id of 0, of 1, ...], "items": [...]}, written atomically."""
    from .runtime import write_text_atomic  # torch-free module: import only when writing

    write_text_atomic(json.dumps(mapping), path)


def read_static_file(path: str, skip_bad_rows: bool = False) -> tuple[Interactions, dict]:
    """LightGCN format: ``user item item ...`` per line (space separated, no times)."""
    errs = _RowErrors(skip_bad_rows)
    us, its, ln = [], [], []
    for lineno, line in _text_lines(path, errs):
        toks = line.split()
        if not toks:
            continue
        try:
            ids = [_parse_id(x) for x in toks]
        except ValueError as e:
            errs(f"{path}:{lineno}", f"id {e.args[0]}")
            continue
        us.extend([ids[0]] * (len(ids) - 1))
        its.extend(ids[1:])
        ln.extend([lineno] * (len(ids) - 1))
    if not us:
        raise errs.nothing_left(path)
    inter = Interactions(np.asarray(us, np.int64), np.asarray(its, np.int64),
                         np.zeros(len(us), np.float64))
    st = _describe(path, inter, np.asarray(ln, np.int64), errs)
    st["warnings"] = []  # no times in this format
    return inter, st


def load_static(train_path: str, test_path: str, skip_bad_rows: bool = False) -> StaticData:
    tr, s1 = read_static_file(train_path, skip_bad_rows)
    te, s2 = read_static_file(test_path, skip_bad_rows)
    nu = int(max(tr.users.max(), te.users.max())) + 1
    ni = int(max(tr.items.max(), te.items.max())) + 1
    return StaticData(tr, te, nu, ni, {"files": [s1, s2]})


def write_snapshot_file(inter: Interactions, path: str) -> None:
    """One GraphPro-format file: a line per user, items and times in time order."""
    order = np.lexsort((inter.times, inter.users))
    u, i, t = inter.users[order], inter.items[order], inter.times[order]
    cuts = np.flatnonzero(np.diff(u)) + 1
    with open(path, "w", encoding="utf-8") as f:
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, u.size]) if u.size else ():
            f.write(f"{u[a]}\t{' '.join(map(str, i[a:b]))}\t"
                    f"{' '.join(str(int(x)) for x in t[a:b])}\n")


def write_snapshot_folder(data: SnapshotData, folder: str) -> None:
    """Write ``data`` in the GraphPro snapshot format (pretrain.txt, fine_tune.txt, test_k.txt)."""
    os.makedirs(folder, exist_ok=True)
    names = ["pretrain.txt", "fine_tune.txt"] + [f"test_{k}.txt" for k in
                                                  range(1, len(data.snapshots))]
    for nm, inter in zip(names, [data.pretrain, *data.snapshots]):
        write_snapshot_file(inter, os.path.join(folder, nm))


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
