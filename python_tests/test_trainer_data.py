"""Loaders: round trips, every bad-data error (file and line named), skip-and-count, synthetic."""

import os

import numpy as np
import pytest

from graphpro_ext.graphpro.data import (DataError, load_snapshot_folder, load_static, load_table,
                                        parse_duration, read_snapshot_file, synthetic,
                                        write_snapshot_folder)


def _pairs(inter):
    return sorted(zip(inter.users.tolist(), inter.items.tolist(), inter.times.tolist()))


def test_snapshot_folder_round_trip(tmp_path):
    d = synthetic(200, 150, num_snapshots=3, seed=1)
    write_snapshot_folder(d, tmp_path)
    back = load_snapshot_folder(str(tmp_path))
    assert back.num_stages == 2
    assert _pairs(back.pretrain) == _pairs(d.pretrain)
    for a, b in zip(back.snapshots, d.snapshots):
        assert _pairs(a) == _pairs(b)
    assert back.stats["files"][0]["file"] == "pretrain.txt"


def test_pretrain_val_used_when_no_pretrain_txt(tmp_path):
    for nm, line in [("pretrain_val.txt", "0\t1 2\t10 20\n"), ("fine_tune.txt", "1\t0\t30\n"),
                     ("test_1.txt", "0\t3\t40\n")]:
        (tmp_path / nm).write_text(line)
    d = load_snapshot_folder(str(tmp_path))
    assert len(d.pretrain) == 2 and d.num_users == 2 and d.num_items == 4


def test_synthetic_deterministic_and_drifting():
    a, b, c = synthetic(300, 200, seed=3), synthetic(300, 200, seed=3), synthetic(300, 200, seed=4)
    assert _pairs(a.pretrain) == _pairs(b.pretrain)
    assert _pairs(a.pretrain) != _pairs(c.pretrain)
    assert a.num_stages == 4
    # items appear over time: some items of the last snapshot are never seen in pre-training
    assert np.setdiff1d(a.snapshots[-1].items, a.pretrain.items).size > 0
    # snapshots are consecutive weeks after pre-training
    assert a.pretrain.times.max() < a.snapshots[0].times.min()
    assert a.snapshots[0].times.max() < a.snapshots[1].times.min()


@pytest.mark.parametrize("line,msg", [
    ("0\t1 2\n", "expected 3 tab-separated fields"),
    ("0\t1 2\t10\n", "2 items but 1 timestamps"),
    ("-1\t1\t10\n", "user id '-1' is not a non-negative integer"),
    ("0\t1 x\t10 11\n", "item id 'x' is not a non-negative integer"),
    ("0\t1 -3\t10 11\n", "item id '-3'"),
    ("0\t1.5\t10\n", "item id '1.5'"),
    ("0\t1 2\t10 abc\n", "timestamp 'abc' is not a finite number"),
    ("0\t1\tnan\n", "timestamp 'nan'"),
    ("0\t\t\n", "no items"),
])
def test_snapshot_bad_rows_name_file_and_line(tmp_path, line, msg):
    p = tmp_path / "f.txt"
    p.write_text("3\t4 5\t1 2\n" + line)
    with pytest.raises(DataError) as e:
        read_snapshot_file(str(p))
    assert f"{p}:2:" in str(e.value) and msg in str(e.value)
    inter, st = read_snapshot_file(str(p), skip_bad_rows=True)
    assert len(inter) == 2 and st["rows_skipped"] == 1 and f"{p}:2:" in st["skipped_examples"][0]


def test_empty_file_and_missing_tests(tmp_path):
    p = tmp_path / "e.txt"
    p.write_text("\n\n")
    with pytest.raises(DataError, match="empty file"):
        read_snapshot_file(str(p))
    (tmp_path / "pretrain.txt").write_text("0\t1\t1\n")
    (tmp_path / "fine_tune.txt").write_text("0\t1\t2\n")
    with pytest.raises(DataError, match="no test_1"):
        load_snapshot_folder(str(tmp_path))
    (tmp_path / "test_1.txt").write_text("0\t1\t3\n")
    (tmp_path / "test_3.txt").write_text("0\t1\t3\n")
    with pytest.raises(DataError, match="without gaps"):
        load_snapshot_folder(str(tmp_path))


def test_duplicates_counted():
    d = synthetic(100, 50, seed=0)
    assert d.pretrain.duplicates() > 0
    assert d.stats["duplicates_merged"] > 0


def _write_csv(path, rows, header="user,item,timestamp"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")


def test_table_split_and_mapping(tmp_path):
    day = 86400
    rows = [("alice", "x", 0), ("bob", "y", day), ("alice", "z", 2 * day),        # pretrain
            ("carol", "x", 3 * day + 5), ("bob", "z", 4 * day),                    # snapshot 0
            ("alice", "y", 5 * day), ("dave", "w", 5 * day + 100)]                 # snapshot 1
    p = tmp_path / "t.csv"
    _write_csv(p, rows)
    d, mapping = load_table(str(p), "3d", "2d")
    assert mapping["users"] == ["alice", "bob", "carol", "dave"]
    assert mapping["items"] == ["w", "x", "y", "z"]
    assert len(d.pretrain) == 3 and [len(s) for s in d.snapshots] == [2, 2]
    back = {(mapping["users"][u], mapping["items"][i], int(t)) for u, i, t in
            zip(d.snapshots[1].users, d.snapshots[1].items, d.snapshots[1].times)}
    assert back == {("alice", "y", 5 * day), ("dave", "w", 5 * day + 100)}


def test_table_iso_dates(tmp_path):
    p = tmp_path / "t.csv"
    _write_csv(p, [(1, 1, "2020-01-01"), (2, 2, "2020-01-05"), (1, 3, "2020-01-09"),
                   (2, 1, "2020-01-10T12:00:00")])
    d, _ = load_table(str(p), "3d", "4d")
    assert len(d.pretrain) == 1 and [len(s) for s in d.snapshots] == [1, 2]


def test_table_errors(tmp_path):
    p = tmp_path / "t.csv"
    _write_csv(p, [(1, 1, 0), (2, 2, "soon"), (1, 3, 10 * 86400)])
    with pytest.raises(DataError, match=r"t.csv:3: timestamp 'soon'"):
        load_table(str(p), "1d", "1d")
    p.write_text("user,item,timestamp\n1,1,0\n2,2\n")
    with pytest.raises(DataError, match=r"t.csv:3: expected as many fields"):
        load_table(str(p), "1d", "1d")
    # a quoted newline: the open quote is named at its line (not read as a 1-field row), the
    # line after it is not read as a row of its own; text after a closing quote is an error
    h = "user,item,timestamp\n1,1,0\n"
    for text, msg in ((h + '"2\n5",2,3600\n1,3,86400\n',
                       r"t.csv:3: not a CSV row \(a quoted field is not closed on its line"),
                      (h + '"2"x,2,3600\n', r"t.csv:3: not a CSV row"),
                      (h + '5",2,3600\n', r"t.csv:3: not a CSV row \(a quote inside an unquoted"),
                      ('"' + h, r"t.csv:1: not a CSV header")):
        p.write_text(text)
        with pytest.raises(DataError, match=msg):
            load_table(str(p), "1d", "1d")
    p.write_text('user,"item",timestamp\n"1",1,0\n"a,b",2,129600\n"say ""hi""",3,216000\n')
    d, _ = load_table(str(p), "1d", "1d")  # quoted fields, a comma or "" inside one: fine
    assert d.num_users == 3
    p.write_text("u,i,t\n1,1,0\n")
    with pytest.raises(DataError, match="missing columns"):
        load_table(str(p), "1d", "1d")
    p.write_text("")
    with pytest.raises(DataError, match="empty file"):
        load_table(str(p), "1d", "1d")
    _write_csv(p, [(1, 1, 0), (1, 2, 3600)])
    with pytest.raises(DataError, match="fewer than 2 snapshots"):
        load_table(str(p), "1d", "1d")
    _write_csv(p, [(1, 1, 0), (2, 2, "x"), (1, 3, 1.5 * 86400), (2, 1, 2.5 * 86400)])
    d, _ = load_table(str(p), "1d", "1d", skip_bad_rows=True)
    assert d.stats["files"][0]["rows_skipped"] == 1


def test_static_round_trip_and_errors(tmp_path):
    tr, te = tmp_path / "train.txt", tmp_path / "test.txt"
    tr.write_text("0 1 2 3\n1 2\n2 0 4\n")
    te.write_text("0 4\n1 0 1\n")
    d = load_static(str(tr), str(te))
    assert d.num_users == 3 and d.num_items == 5
    assert list(zip(d.train.users, d.train.items)) == [(0, 1), (0, 2), (0, 3), (1, 2), (2, 0),
                                                        (2, 4)]
    te.write_text("0 4\n1 a\n")
    with pytest.raises(DataError, match=r"test.txt:2: id 'a'"):
        load_static(str(tr), str(te))
    te.write_text("")
    with pytest.raises(DataError, match="empty file"):
        load_static(str(tr), str(te))


def test_parse_duration():
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("12h") == 43200
    assert parse_duration("90") == 90
    with pytest.raises(ValueError):
        parse_duration("a week")


def test_parquet_table(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    day = 86400
    t = pa.table({"user": ["a", "b", "a", "c"], "item": [1, 2, 3, 1],
                  "timestamp": [0, 2 * day, 3 * day, 4 * day]})
    pq.write_table(t, tmp_path / "t.parquet")
    d, mapping = load_table(str(tmp_path / "t.parquet"), "1d", "2d")
    assert mapping["users"] == ["a", "b", "c"] and len(d.pretrain) == 1
    assert [len(s) for s in d.snapshots] == [1, 2]  # windows [1d, 3d) and [3d, 5d)


AMAZON = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "amazon")


@pytest.mark.skipif(not os.path.isdir(AMAZON), reason="../shared/data/amazon not present")
def test_amazon_snapshots_and_seen_share(tmp_path):
    """The real release loads with its global id space, and the share of test pairs already in
    the history matches the quirk measured in its README."""
    from graphpro_ext.graphpro.stages import RunConfig, Runner

    d = load_snapshot_folder(AMAZON)
    assert (d.num_users, d.num_items, d.num_stages) == (131707, 107028, 8)
    assert len(d.pretrain) == 135898 and len(d.snapshots[0]) == 24051
    shares = Runner(d, RunConfig(out=str(tmp_path))).seen_shares()
    assert shares[:2] == [0.0, 0.0]
    assert [round(100 * s, 1) for s in shares[2:]] == [13.4, 23.9, 29.5, 37.0, 40.7, 48.2]
