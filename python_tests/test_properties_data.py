"""Property-based tests of the loaders: random valid files round-trip exactly; a random
malformed line is either read as what it says or reported with its file and line (skipped and
counted under skip_bad_rows, the other lines intact); no other exception ever escapes."""

import csv
import os
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from graphpro_ext.graphpro.data import (DataError, Interactions, SnapshotData,  # noqa: E402
                                        load_snapshot_folder, load_table, read_snapshot_file,
                                        write_snapshot_folder)

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _triples(inter):
    return sorted(zip(inter.users.tolist(), inter.items.tolist(), inter.times.tolist()))


@st.composite
def interactions(draw, min_size=1):
    n = draw(st.integers(min_size, 40))
    big = draw(st.sampled_from([10, 1000, 2**40]))
    users = draw(st.lists(st.integers(0, big), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, big), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(-2**40, 2**40), min_size=n, max_size=n))
    return Interactions(np.array(users, np.int64), np.array(items, np.int64),
                        np.array(times, np.float64))


@SETTINGS
@given(parts=st.lists(interactions(), min_size=3, max_size=5))
def test_snapshot_folder_round_trips(parts):
    nu = max(int(p.users.max()) for p in parts) + 1
    ni = max(int(p.items.max()) for p in parts) + 1
    data = SnapshotData("x", parts[0], parts[1:], nu, ni)
    with tempfile.TemporaryDirectory() as d:
        write_snapshot_folder(data, d)
        back = load_snapshot_folder(d)
    assert (back.num_users, back.num_items) == (nu, ni)
    for a, b in zip([back.pretrain, *back.snapshots], parts):
        assert _triples(a) == _triples(b)


ID_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
                  min_size=1, max_size=8)


@SETTINGS
@given(rows=st.lists(st.tuples(ID_TEXT, ID_TEXT, st.integers(0, 60 * 86400)), min_size=1,
                     max_size=60),
       bom=st.booleans(), blank_lines=st.integers(0, 3))
def test_csv_tables_round_trip(rows, bom, blank_lines):
    rows.append(("anchor", "anchor", 0))  # one row in pre-training and in each snapshot
    rows.append(("mid", "mid", 20 * 86400))
    rows.append(("late", "late", 61 * 86400))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.csv")
        with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
            w = csv.writer(f)
            w.writerow(["user", "item", "timestamp"])
            w.writerows(rows)
            f.write("\n" * blank_lines)
        data, mapping = load_table(path, "10d", "30d")
    got = []
    for part in [data.pretrain, *data.snapshots]:
        got += [(mapping["users"][u], mapping["items"][i], t)
                for u, i, t in zip(part.users, part.items, part.times)]
    assert sorted(got) == sorted((u, i, float(t)) for u, i, t in rows)
    assert data.stats["files"][0]["rows_skipped"] == 0


GARBAGE = st.one_of(
    st.text(st.sampled_from("0123456789 \t-+.eE,xnaNIf"), max_size=30),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
)


@SETTINGS
@given(inter=interactions(min_size=3), garbage=GARBAGE, where=st.integers(0, 100))
def test_malformed_line_is_named_or_read(inter, garbage, where):
    with tempfile.TemporaryDirectory() as d:
        write_snapshot_folder(SnapshotData("x", inter, [inter, inter], 1, 1), d)
        path = os.path.join(d, "pretrain.txt")
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")[:-1]
        k = where % (len(lines) + 1)
        bad = garbage if isinstance(garbage, bytes) else garbage.encode()
        lines.insert(k, bad)
        with open(path, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        lineno = k + 1
        try:
            read_snapshot_file(path)
            strict_ok = True
        except DataError as e:
            strict_ok = False
            assert str(e).startswith(f"{path}:{lineno}: "), str(e)
            assert len(str(e)) < 300
        got, st_ = read_snapshot_file(path, skip_bad_rows=True)
        assert st_["rows_skipped"] == (0 if strict_ok else 1)
        if not strict_ok:  # every other line is intact
            assert _triples(got) == _triples(inter)
