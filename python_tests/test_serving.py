"""Saved models, recommend/export, and update (docs/SERVING.md): what a run leaves is loadable
without the data, answers in original ids, excludes histories, and an update grows the id maps
without moving old ids and never leaves LATEST on a partial model."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import graphpro_ext.graphpro as gp
from graphpro_ext.graph import build_history
from graphpro_ext.graphpro import serving
from graphpro_ext.graphpro.cli import main
from graphpro_ext.graphpro.data import Interactions, load_snapshot_folder, synthetic, \
    write_snapshot_folder

TINY = ["--dim", "8", "--batch-size", "512", "--epochs", "2", "--stage-epochs", "2",
        "--pretrain-val-users", "50", "--eval-batch", "64", "--threads", "1"]


def _cli(args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "graphpro_ext.graphpro", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def _split_folder(root, snaps=5, users=150, items=90, seed=0):
    """A snapshot folder without its last test file, and that file (the update)."""
    full = root / "full"
    write_snapshot_folder(synthetic(users, items, num_snapshots=snaps, seed=seed), full)
    d = root / "data"
    d.mkdir()
    last = f"test_{snaps - 1}.txt"
    for f in os.listdir(full):
        if f != last:
            shutil.copy(full / f, d / f)
    return d, full / last


def _csv_of(parts, path, fmt_user="u{}", fmt_item="i{}", extra=()):
    with open(path, "w") as f:
        f.write("user,item,timestamp\n")
        for p in parts:
            for u, i, t in zip(p.users, p.items, p.times):
                f.write(f"{fmt_user.format(u)},{fmt_item.format(i)},{int(t)}\n")
        for row in extra:
            f.write(",".join(map(str, row)) + "\n")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    data, new = _split_folder(root)
    out = root / "run"
    assert main(["run", "--data", str(data), "--out", str(out), "--methods", "graphpro",
                 "--preset", "synthetic", *TINY]) == 0
    return {"root": root, "data": data, "new": new, "out": out}


def _brute_topk(m: serving.SavedModel, users, k, exclude=True):
    rows = m.users.rows(users)
    s = m.user_embeddings()[1][rows] @ m.item_embeddings()[1].T
    if exclude:
        rp, it = build_history(m.record["history"]["users"], m.record["history"]["items"],
                               m.num_users)
        for r, u in enumerate(rows):
            s[r, it[rp[u]:rp[u + 1]].long()] = -float("inf")
    v, i = s.topk(k, dim=1)
    return v.numpy(), m.items.ids[i.numpy()]


def test_run_saves_a_model_per_stage_and_latest(run):
    files = sorted(os.listdir(run["out"] / "model"))
    assert files == ["LATEST"] + [f"stage_{n}.pt" for n in range(4)]
    m = gp.load(str(run["out"]))
    assert m.stage == 3 and m.method == "graphpro"
    rec = m.record
    assert rec["format"] == serving.FORMAT
    assert rec["gate"]["w"].shape == (8, 8) and rec["table"].shape == (m.num_users + m.num_items, 8)
    # the newest snapshot was only a test set: kept as pending for update
    assert len(rec["pending"]["snapshot_ptr"]) == 2 and rec["metrics"]["recall@20"] >= 0
    assert gp.load(str(run["out"]), 1).stage == 1


def test_serve_none_saves_no_model_and_changes_no_result(run, tmp_path, capsys):
    """Experiment grids (scripts/table2.py) report metrics only: --serve none writes no model
    file, and the stages' results are those of the run that served graphpro."""
    out = tmp_path / "grid_cell"
    assert main(["run", "--data", str(run["data"]), "--out", str(out), "--methods", "graphpro",
                 "--preset", "synthetic", "--serve", "none", *TINY]) == 0
    assert not (out / "model").exists() or not os.listdir(out / "model")
    ours = json.loads((out / "results.json").read_text())["methods"]["graphpro"]
    served = json.loads((run["out"] / "results.json").read_text())["methods"]["graphpro"]
    def metrics(stages):
        return [(st["stage"], st["recall@20"], st["ndcg@20"], st["best_epoch"]) for st in stages]
    assert ours["stages"] and metrics(ours["stages"]) == metrics(served["stages"])
    capsys.readouterr()
    assert main(["recommend", "--run", str(out), "--users", "1"]) == 2
    assert "no saved model" in capsys.readouterr().err
    assert main(["run", "--data", str(run["data"]), "--out", str(tmp_path / "bad"), "--methods",
                 "graphpro", "--preset", "synthetic", "--serve", "finetune", *TINY]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "--serve finetune" in last and "'none'" in last


def test_recommend_matches_brute_force_and_excludes_history(run):
    m = gp.load(str(run["out"]))
    users = list(range(0, m.num_users, 7))
    rec = m.recommend(users, k=10)
    v, ids = _brute_topk(m, users, 10)
    np.testing.assert_allclose(rec.scores, v, rtol=1e-5, atol=1e-6)
    assert (rec.items == ids).all() and not rec.fallback.any()
    h = m.record["history"]
    for r, u in enumerate(users):
        seen = set(h["items"][h["users"] == u].tolist())
        assert seen.isdisjoint(rec.items[r].tolist())
    # without exclusion the brute force over all items again, and seen items do come up
    rec_all = m.recommend(users, k=10, exclude_seen=False)
    v2, ids2 = _brute_topk(m, users, 10, exclude=False)
    assert (rec_all.items == ids2).all()
    assert any(set(h["items"][h["users"] == u].tolist()) & set(rec_all.items[r].tolist())
               for r, u in enumerate(users))
    # score() agrees with the ranking
    np.testing.assert_allclose(m.score([users[0]], rec.items[0].tolist())[0], rec.scores[0],
                               rtol=1e-5)


def test_unknown_users_get_the_flagged_popular_fallback(run, capsys):
    m = gp.load(str(run["out"]))
    rec = m.recommend([0, 10**9, "nobody"], k=5)
    assert rec.fallback.tolist() == [False, True, True]
    pend = m.record["pending"]
    top = np.argsort(-np.bincount(pend["items"], minlength=m.num_items), kind="stable")[:5]
    assert rec.items[1].tolist() == top.tolist() == rec.items[2].tolist()
    assert main(["recommend", "--run", str(run["out"]), "--users", "0,nobody", "--k", "3"]) == 0
    cap = capsys.readouterr()
    assert "1 unknown" in cap.err
    assert cap.out.splitlines()[0] == "user,rank,item,score,fallback"
    assert cap.out.splitlines()[-1].startswith("nobody,3,") and cap.out.endswith(",1\n")
    with pytest.raises(gp.serving.ConfigError, match="unknown user"):
        m.score(["nobody"], [0])


def test_export_round_trips(run, tmp_path):
    m = gp.load(str(run["out"]))
    assert main(["export", "--run", str(run["out"]), "--out", str(tmp_path / "npy")]) == 0
    ids, emb = m.user_embeddings()
    assert (np.load(tmp_path / "npy" / "users_ids.npy") == ids).all()
    np.testing.assert_array_equal(np.load(tmp_path / "npy" / "items_embeddings.npy"),
                                  m.item_embeddings()[1].numpy())
    pq = pytest.importorskip("pyarrow.parquet")
    assert main(["export", "--run", str(run["out"]), "--out", str(tmp_path / "pq"),
                 "--format", "parquet"]) == 0
    t = pq.read_table(tmp_path / "pq" / "users.parquet")
    assert t.column("id").to_pylist() == ids.tolist()
    np.testing.assert_array_equal(np.array(t.column("embedding").to_pylist(), np.float32),
                                  emb.numpy())


def test_recommend_formats(run, tmp_path):
    import json

    out = tmp_path / "r.json"
    assert main(["recommend", "--run", str(run["out"]), "--users", "3,4", "--k", "2",
                 "--format", "json", "--output", str(out)]) == 0
    js = json.loads(out.read_text())
    assert [e["user"] for e in js] == [3, 4] and all(len(e["items"]) == 2 for e in js)
    users = tmp_path / "users.txt"
    users.write_text("user\n3\n4\n")
    pq = pytest.importorskip("pyarrow.parquet")
    assert main(["recommend", "--run", str(run["out"]), "--users", str(users), "--k", "2",
                 "--format", "parquet", "--output", str(tmp_path / "r.parquet")]) == 0
    t = pq.read_table(tmp_path / "r.parquet")
    assert t.num_rows == 4 and t.column("item").to_pylist() == \
        [str(i) for e in js for i in e["items"]]


def test_a_moved_run_folder_loads(run, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(run["out"], moved)
    a, b = gp.load(str(run["out"])), gp.load(str(moved))
    assert (a.recommend([1, 2], k=5).items == b.recommend([1, 2], k=5).items).all()


def test_update_prompt_absorbs_pending_then_new_snapshot(run, tmp_path):
    out = tmp_path / "u"
    shutil.copytree(run["out"], out)
    before = {f: (out / "model" / f).read_bytes() for f in os.listdir(out / "model")
              if f.endswith(".pt")}
    prev = gp.load(str(out))
    r = _cli(["update", "--run", str(out), "--snapshot", str(run["new"]), "--mode", "prompt"])
    assert r.returncode == 0, r.stderr
    m = gp.load(str(out))
    assert m.stage == 5  # stage 4 trained on the held-out test snapshot, stage 5 on the new one
    assert serving.latest_stage(str(out)) == 5
    for f, b in before.items():  # old versions untouched
        assert (out / "model" / f).read_bytes() == b
    # prompt mode trains nothing: the gate is the newest trained one
    torch.testing.assert_close(m.record["gate"]["w"], prev.record["gate"]["w"])
    assert len(m.record["pending"]["snapshot_ptr"]) == 1  # nothing left untrained
    new = load_snapshot_folder(str(run["root"] / "full")).snapshots[-1]
    h = m.record["history"]
    assert h["snapshot_ptr"][-1] - h["snapshot_ptr"][-2] == len(new)
    # an update never absorbs the same snapshot twice
    r = _cli(["update", "--run", str(out), "--snapshot", str(run["new"])])
    assert r.returncode == 2 and "not newer" in r.stderr and "Traceback" not in r.stderr


def test_update_grows_ids_and_keeps_old_ones(tmp_path):
    d = synthetic(150, 90, num_snapshots=5, seed=3)
    hist = _csv_of([d.pretrain, *d.snapshots[:-1]], tmp_path / "hist.csv")
    t_new = int(d.snapshots[-1].times.max()) + 3600
    new = _csv_of([d.snapshots[-1]], tmp_path / "new.csv",
                  extra=[("fresh_user_with_a_long_id", "i3", t_new),
                         ("u1", "fresh_item_with_a_long_id", t_new),
                         ("fresh_user_with_a_long_id", "fresh_item_with_a_long_id", t_new)])
    out = tmp_path / "run"
    assert main(["run", "--table", str(hist), "--out", str(out), "--methods", "graphpro",
                 "--preset", "synthetic", "--no-final-test", *TINY]) == 0
    old = gp.load(str(out))
    assert old.stage == len(d.snapshots) - 1  # the untested stage on the newest snapshot
    assert len(old.record["pending"]["snapshot_ptr"]) == 1
    assert main(["update", "--run", str(out), "--table", str(new), "--mode", "finetune",
                 "--budget-seconds", "30"]) == 0
    m = gp.load(str(out))
    assert m.stage == old.stage + 1
    nu0, ni0 = old.num_users, old.num_items
    assert m.users.ids[:nu0].tolist() == old.users.ids.tolist()
    assert m.items.ids[:ni0].tolist() == old.items.ids.tolist()
    assert "fresh_user_with_a_long_id" in m.users.ids.tolist()
    assert "fresh_item_with_a_long_id" in m.items.ids.tolist()
    rec = m.recommend(["fresh_user_with_a_long_id", "u1"], k=5)
    assert not rec.fallback.any()
    assert "i3" not in rec.items[0].tolist()  # its own history is excluded


def test_finetune_prompt_update_leaves_untouched_nodes_unchanged(tmp_path):
    """Method finetune, --mode prompt: the previous table propagated over the new snapshot, no
    training: a node without an edge in that snapshot keeps its previous table row exactly."""
    data, new = _split_folder(tmp_path, seed=5)
    out = tmp_path / "run"
    assert main(["run", "--data", str(data), "--out", str(out), "--methods", "finetune",
                 "--preset", "synthetic", "--no-final-test", *TINY]) == 0
    prev = gp.load(str(out))
    assert main(["update", "--run", str(out), "--snapshot", str(new), "--mode", "prompt"]) == 0
    m = gp.load(str(out))
    snap = load_snapshot_folder(str(tmp_path / "full")).snapshots[-1]
    touched_u = np.zeros(m.num_users, bool)
    touched_u[snap.users] = True
    touched_i = np.zeros(m.num_items, bool)
    touched_i[snap.items] = True
    nu = prev.num_users
    table = prev.record["table"]
    for emb, touched, rows in ((m.user_embeddings()[1], touched_u, table[:nu]),
                               (m.item_embeddings()[1], touched_i, table[nu:])):
        keep = ~touched[:rows.shape[0]]
        assert keep.sum() > 0
        torch.testing.assert_close(emb[:rows.shape[0]][keep], rows[keep], rtol=0, atol=0)
        assert not torch.allclose(emb[:rows.shape[0]][~keep], rows[~keep])


def test_latest_never_points_at_a_partial_model(run, tmp_path):
    out = tmp_path / "u"
    shutil.copytree(run["out"], out)
    # the worst moment: the new file is complete, LATEST not yet moved
    r = _cli(["update", "--run", str(out), "--snapshot", str(run["new"])],
              env={"GRAPHPRO_FAIL_AT": "model/stage5/before-latest"})
    assert r.returncode == 75
    assert serving.latest_stage(str(out)) == 4  # the catch-up stage 4 is complete and LATEST
    gp.load(str(out)).recommend([0], k=3)
    r = _cli(["update", "--run", str(out), "--snapshot", str(run["new"])])
    assert r.returncode == 0, r.stderr
    assert gp.load(str(out)).stage == 5


@pytest.mark.slow
def test_kill_9_during_update_then_recommend(run, tmp_path):
    out = tmp_path / "u"
    shutil.copytree(run["out"], out)
    rng = np.random.default_rng()
    for attempt in range(3):
        p = subprocess.Popen([sys.executable, "-m", "graphpro_ext.graphpro", "update", "--run",
                              str(out), "--snapshot", str(run["new"]), "--mode", "finetune"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(1.0, 4.0)))
        p.send_signal(signal.SIGKILL)
        p.wait()
        m = gp.load(str(out))  # whatever LATEST names is complete and loads
        assert m.stage in (3, 4, 5)
        m.recommend([0, 1], k=3)
        if m.stage == 5:
            break


def test_train_writes_a_loadable_model(tmp_path, capsys):
    d = synthetic(80, 50, num_snapshots=2, seed=1)
    train, test = d.pretrain, d.snapshots[0]

    def write(inter: Interactions, path):
        with open(path, "w") as f:
            for u in np.unique(inter.users):
                f.write(" ".join(map(str, [u, *inter.items[inter.users == u]])) + "\n")

    write(train, tmp_path / "train.txt")
    write(test, tmp_path / "test.txt")
    out = tmp_path / "static"
    assert main(["train", "--train", str(tmp_path / "train.txt"), "--test",
                 str(tmp_path / "test.txt"), "--out", str(out), "--dim", "8", "--epochs", "2",
                 "--threads", "1"]) == 0
    m = gp.load(str(out))
    assert m.stage == 0 and m.method == "train" and m.record["gate"] is None
    rec = m.recommend([int(train.users[0])], k=5)
    assert not set(rec.items[0].tolist()) & set(train.items[train.users == train.users[0]])
    assert main(["update", "--run", str(out), "--snapshot", str(tmp_path / "train.txt")]) == 2
    assert "can be served, not updated" in capsys.readouterr().err


def test_bad_serving_input_is_one_line(run, tmp_path, capsys):
    cases = []
    empty = tmp_path / "empty_run"
    empty.mkdir()
    cases.append((["recommend", "--run", str(empty), "--users", "1"], "no saved model"))
    cases.append((["recommend", "--run", str(tmp_path / "nope"), "--users", "1"],
                  "no such folder"))
    cases.append((["recommend", "--run", str(run["out"]), "--users", "1", "--stage", "9"],
                  "no model of stage 9"))
    old = tmp_path / "old_format"
    shutil.copytree(run["out"], old)
    rec = torch.load(old / "model" / "stage_3.pt", weights_only=False)
    rec["format"] = 0
    torch.save(rec, old / "model" / "stage_3.pt")
    cases.append((["recommend", "--run", str(old), "--users", "1"], "model format 0"))
    cases.append((["recommend", "--run", str(run["out"]), "--users", "1", "--format",
                   "parquet"], "needs --output"))
    older = tmp_path / "older.txt"
    older.write_text("0\t1 2\t1000 1001\n")
    cases.append((["update", "--run", str(run["out"]), "--snapshot", str(older)], "not newer"))
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0] and "Traceback" not in err[0], (argv, err)


def test_snapshot_of_only_new_items_is_absorbed_and_counted(run, tmp_path, caplog):
    out = tmp_path / "u"
    shutil.copytree(run["out"], out)
    t = int(max(run and load_snapshot_folder(str(run["root"] / "full")).snapshots[-1].times)) + 10
    snap = tmp_path / "new_items.txt"
    snap.write_text(f"0\t100000 100001\t{t} {t}\n1\t100001\t{t}\n")
    r = _cli(["update", "--run", str(out), "--snapshot", str(snap)])
    assert r.returncode == 0, r.stderr
    assert "all 2 items are new" in r.stderr and "2 new items" in r.stdout
    m = gp.load(str(out))
    assert m.items.ids[-2:].tolist() == [100000, 100001]
    assert m.recommend([2], k=m.num_items).items[0].tolist().count(100000) == 1


def test_csv_output_quotes_ids_that_need_it(tmp_path, capsys):
    import csv
    import io

    d = synthetic(60, 40, num_snapshots=3, seed=4)
    with open(tmp_path / "t.csv", "w") as f:
        f.write("user,item,timestamp\n")
        for p in [d.pretrain, *d.snapshots]:
            for u, i, t in zip(p.users, p.items, p.times):
                f.write(f'"u{u},x",i{i},{int(t)}\n')
    out = tmp_path / "run"
    assert main(["run", "--table", str(tmp_path / "t.csv"), "--out", str(out), "--methods",
                 "graphpro", "--preset", "synthetic", *TINY]) == 0
    capsys.readouterr()
    users = tmp_path / "users.txt"
    m = gp.load(str(out))
    users.write_text(f'"{m.users.ids[0]}"\n')  # a CSV column: the comma is quoted
    assert main(["recommend", "--run", str(out), "--users", str(users), "--k", "3"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["user", "rank", "item", "score", "fallback"]
    assert [r[0] for r in rows[1:]] == [m.users.ids[0]] * 3 and rows[1][4] == "0"
