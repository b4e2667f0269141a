"""Node renumbering (reorder.py): a bijection that sorts by pre-training degree, and invisible in
everything a run leaves: saved models, recommend, export, update, id_map.json and resume."""

import json

import numpy as np
import pytest

from graphpro_ext.graphpro import reorder, serving
from graphpro_ext.graphpro.cli import main
from graphpro_ext.graphpro.data import Interactions, SnapshotData, load_snapshot_folder, \
    synthetic, write_snapshot_file, write_snapshot_folder
from graphpro_ext.graphpro.errors import ConfigError
from graphpro_ext.graphpro.serving import IdMap

TINY = ["--dim", "8", "--batch-size", "512", "--epochs", "2", "--stage-epochs", "1",
        "--pretrain-val-users", "50", "--eval-batch", "64", "--threads", "1",
        "--methods", "graphpro", "--preset", "synthetic"]


def _pairs(inter: Interactions, umap: IdMap, imap: IdMap) -> set:
    return set(zip(umap.ids[inter.users].tolist(), imap.ids[inter.items].tolist(),
                   inter.times.tolist()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_renumber_is_a_degree_sorted_bijection_that_the_id_maps_undo(seed):
    data = synthetic(120, 70, num_snapshots=4, seed=seed)
    ids = (IdMap(np.arange(data.num_users) * 3 + 5), IdMap([f"i{j}" for j in
                                                              range(data.num_items)]))
    out, (um, im) = reorder.renumber(data, ids, "degree")
    assert sorted(um.ids.tolist()) == sorted(ids[0].ids.tolist())
    assert sorted(im.ids.tolist()) == sorted(ids[1].ids.tolist())
    for side, n in (("users", data.num_users), ("items", data.num_items)):
        deg = np.bincount(getattr(out.pretrain, side), minlength=n)
        assert (deg[:-1] >= deg[1:]).all(), side  # decreasing pre-training degree
    for a, b in zip([data.pretrain, *data.snapshots], [out.pretrain, *out.snapshots]):
        assert _pairs(a, *ids) == _pairs(b, um, im)
        assert np.array_equal(a.times, b.times)  # order within a part is kept
    same, same_ids = reorder.renumber(data, ids, "none")
    assert same is data and same_ids is ids


def test_resolve_rule():
    small = synthetic(50, 40, num_snapshots=3, seed=0)
    assert reorder.resolve("auto", small) == "none"
    n = reorder.AUTO_MIN_EDGES // 2
    big = SnapshotData("big", Interactions(np.arange(n) % 1000, np.arange(n) % 700,
                                           np.zeros(n)), small.snapshots, 1000, 700)
    assert reorder.resolve("auto", big) == "degree"
    assert reorder.resolve("none", big) == "none" and reorder.resolve("degree", small) == "degree"
    with pytest.raises(ConfigError, match="--reorder"):
        reorder.resolve("random", small)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reorder")
    full = synthetic(150, 90, num_snapshots=5, seed=3)
    write_snapshot_folder(full, root / "data")
    out = root / "run"
    assert main(["run", "--data", str(root / "data"), "--out", str(out), "--reorder", "degree",
                 "--no-final-test", *TINY]) == 0
    return root, out


def test_model_speaks_original_ids(runs):
    root, out = runs
    data = load_snapshot_folder(str(root / "data"))
    res = json.loads((out / "results.json").read_text())
    assert res["protocol"]["reorder"] == "degree"
    m = serving.load(str(out))
    assert sorted(m.users.ids.tolist()) == list(range(data.num_users))
    assert m.users.ids.tolist() != list(range(data.num_users))  # really renumbered
    # the history the model trained on, in original ids, is the data's
    h = m.record["history"]
    seen = set(zip(m.users.ids[h["users"]].tolist(), m.items.ids[h["items"]].tolist()))
    everything = Interactions.concat([data.pretrain, *data.snapshots])
    assert seen == set(zip(everything.users.tolist(), everything.items.tolist()))
    users = [0, 7, 42, 149]
    rec = m.recommend(users, k=10)
    for r, u in enumerate(users):
        mine = set(everything.items[everything.users == u].tolist())
        assert not mine & set(rec.items[r].tolist())
    # scores are the dot products of the users' and items' own embeddings
    uid, ue = m.user_embeddings()
    iid, ie = m.item_embeddings()
    urow = {x: r for r, x in enumerate(uid.tolist())}
    irow = {x: r for r, x in enumerate(iid.tolist())}
    for r, u in enumerate(users):
        for i, s in zip(rec.items[r].tolist(), rec.scores[r].tolist()):
            assert abs(float(ue[urow[u]] @ ie[irow[i]]) - s) < 1e-5


def test_update_and_resume_keep_the_numbering(runs, tmp_path, capsys):
    root, out = runs
    nxt = synthetic(150, 90, num_snapshots=6, seed=3).snapshots[-1]
    nxt = Interactions(nxt.users, nxt.items, nxt.times + 10 * 86400)
    snap = tmp_path / "next.txt"
    write_snapshot_file(nxt, str(snap))
    before = serving.load(str(out))
    assert main(["update", "--run", str(out), "--snapshot", str(snap), "--mode", "prompt"]) == 0
    after = serving.load(str(out))
    assert after.stage == before.stage + 1
    assert np.array_equal(after.users.ids, before.users.ids)  # no id moved
    # resuming with the same rule is accepted, another rule is refused by name
    args = ["run", "--data", str(root / "data"), "--out", str(out), "--no-final-test", *TINY]
    assert main([*args, "--reorder", "degree", "--resume"]) == 0
    capsys.readouterr()
    assert main([*args, "--reorder", "none", "--resume"]) == 2
    assert "differs in ['reorder']" in capsys.readouterr().err


def test_table_run_id_map_follows_the_numbering(tmp_path):
    data = synthetic(120, 80, num_snapshots=4, seed=4)
    with open(tmp_path / "t.csv", "w") as f:
        f.write("user,item,timestamp\n")
        for p in [data.pretrain, *data.snapshots]:
            for u, i, t in zip(p.users, p.items, p.times):
                f.write(f"u{u},i{i},{int(t)}\n")
    span = data.snapshots[0].times.min() - data.pretrain.times.min()
    out = tmp_path / "run"
    assert main(["run", "--table", str(tmp_path / "t.csv"), "--out", str(out),
                 "--pretrain-span", f"{int(span // 86400)}d", "--snapshot", "7d",
                 "--reorder", "degree", *TINY]) == 0
    mapping = json.loads((out / "id_map.json").read_text())
    m = serving.load(str(out))
    assert mapping["users"] == m.users.ids.tolist() and mapping["items"] == m.items.ids.tolist()
    h = m.record["history"]
    seen = set(zip(m.users.ids[h["users"]].tolist(), m.items.ids[h["items"]].tolist()))
    assert ("u0", f"i{data.pretrain.items[data.pretrain.users == 0][0]}") in seen or \
        not (data.pretrain.users == 0).any()
