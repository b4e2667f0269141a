"""The ``graphpro`` CLI end to end on tiny data: outputs, static training, data errors, and a
run killed at several points (mid-epoch loop, after a stage) that resumes to identical results."""

import json
import os
import subprocess
import sys

import pytest

from graphpro_ext.graphpro.cli import main

TINY = ["--synthetic-users", "150", "--synthetic-items", "100", "--synthetic-snapshots", "3",
        "--dim", "16", "--batch-size", "512", "--epochs", "3", "--stage-epochs", "2",
        "--pretrain-val-users", "100", "--eval-batch", "64"]


def test_tiny_run_writes_reports(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), *TINY]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["methods"]) == {"graphpro", "graphpro-PT", "graphpro-GT", "graphpro-IU",
                                   "graphpro-TE", "finetune", "full"}
    for m in res["methods"].values():
        assert len(m["stages"]) == 2
        for s in m["stages"]:
            assert 0.0 <= s["recall@20"] <= 1.0 and 0.0 <= s["ndcg@20"] <= 1.0
            assert s["tuned"]["users"] + s["cold"]["users"] == s["users"]
        assert m["average"]["recall@20"] == pytest.approx(
            sum(s["recall@20"] for s in m["stages"]) / 2)
    assert res["protocol"]["select_on"] == "val"
    assert res["hyperparameters"]["preset"] == "synthetic"
    assert set(res["pretrain"]) == {"graphpro", "lightgcn"}
    assert len(res["seen_test_share"]) == 2
    assert "pretrain-graphpro" in res["wall_s"]
    md = (out / "results.md").read_text()
    assert "| graphpro |" in md and "select-on val" in md
    assert (out / "recall_per_stage.png").stat().st_size > 1000
    assert "epoch   0" in (out / "log.txt").read_text()


def test_pretrain_then_finetune_and_select_on_test(tmp_path, capsys):
    out = str(tmp_path / "pf")
    common = ["--out", out, "--select-on", "test", "--drop-seen-test-pairs", *TINY]
    assert main(["pretrain", *common]) == 0
    assert os.path.exists(os.path.join(out, "ckpt", "pretrain_graphpro.pt"))
    assert main(["finetune", *common]) == 0
    res = json.loads(open(os.path.join(out, "results.json")).read())
    assert list(res["methods"]) == ["graphpro"]
    assert res["protocol"]["select_on"] == "test" and res["protocol"]["drop_seen_test_pairs"]
    # rebuilt from the checkpoints alone (what one does while a long run is still going)
    full = json.loads(open(os.path.join(out, "results.json")).read())
    assert main(["report", "--out", out]) == 0
    part = json.loads(open(os.path.join(out, "results.json")).read())
    assert part["partial"]
    assert part["methods"]["graphpro"]["average"] == full["methods"]["graphpro"]["average"]
    assert "**Partial**" in open(os.path.join(out, "results.md")).read()
    assert main(["finetune", "--out", str(tmp_path / "empty"), *TINY]) == 2
    assert "no pre-trained" in capsys.readouterr().err


def test_reference_ops_flag(tmp_path):
    """--ops reference trains with the plain-PyTorch formulation (both batch modes) and says so."""
    from graphpro_ext.graphpro import backend

    try:
        for mode in ("full", "subgraph"):
            out = tmp_path / mode
            assert main(["pretrain", "--out", str(out), "--ops", "reference", "--batch-graph",
                         mode, *TINY, "--epochs", "1"]) == 0
            res = json.loads((out / "results.json").read_text())
            assert res["backend"] == "graphpro_ext.reference (plain PyTorch)"
            assert res["hyperparameters"]["batch_graph"] == mode
        # a later call without --ops is back on the fused ops
        out = tmp_path / "default"
        assert main(["pretrain", "--out", str(out), *TINY, "--epochs", "1"]) == 0
        assert json.loads((out / "results.json").read_text())["backend"] == \
            "graphpro_ext.ops (fused)"
    finally:
        backend.use("fused")
    assert backend.FUSED
    with pytest.raises(ValueError, match="ops must be"):
        backend.use("cuda")


def test_results_record_the_batch_graph_mode(tmp_path):
    """results.json says what training batches propagated over: the flag's mode, or what
    --batch-graph auto resolved to on each phase's graph (they draw different dropout masks)."""
    for mode in ("auto", "subgraph"):
        out = tmp_path / mode
        assert main(["run", "--out", str(out), "--methods", "graphpro,finetune", *TINY,
                     "--epochs", "1", "--stage-epochs", "1", "--batch-graph", mode]) == 0
        res = json.loads((out / "results.json").read_text())
        # the command as parsed, with no interpreter or script path of this machine
        assert res["command"].startswith(f"graphpro run --out {out} --methods graphpro,finetune")
        used = [v["batch_graph"] for v in res["pretrain"].values()]
        used += [st["batch_graph"] for m in res["methods"].values() for st in m["stages"]]
        assert len(used) == len(res["pretrain"]) + 2 * 2  # 2 pre-trainings, 2 methods x 2 stages
        if mode == "auto":  # the tiny graphs are nearly all reached: full-graph batches
            assert set(used) <= {"full", "subgraph", "full+subgraph"} and "full" in used
        else:
            assert set(used) == {"subgraph"}


def test_static_train(tmp_path):
    tr, te = tmp_path / "train.txt", tmp_path / "test.txt"
    tr.write_text("".join(f"{u} {u % 7} {(u * 3) % 11} {(u + 5) % 13}\n" for u in range(40)))
    te.write_text("".join(f"{u} {(u + 1) % 7}\n" for u in range(40)))
    out = tmp_path / "static"
    assert main(["train", "--train", str(tr), "--test", str(te), "--out", str(out),
                 "--epochs", "3", "--dim", "8", "--batch-size", "64"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert 0.0 <= res["test"]["recall@20"] <= 1.0 and res["test"]["users"] == 40


def test_bad_data_exits_with_message(tmp_path, capsys):
    d = tmp_path / "ds"
    d.mkdir()
    (d / "pretrain.txt").write_text("0\t1 2\t1 2\n")
    (d / "fine_tune.txt").write_text("0\t1 2\t3\n")
    (d / "test_1.txt").write_text("0\t1\t4\n")
    assert main(["run", "--data", str(d), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "fine_tune.txt:1: 2 items but 1 timestamps" in err


def _cli(args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "graphpro_ext.graphpro", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def _metrics(path):
    res = json.loads(open(path).read())
    return ({m: [(s["stage"], s["recall@20"], s["ndcg@20"], s["best_epoch"], s["batch_graph"])
                 for s in v["stages"]] for m, v in res["methods"].items()},
            {k: (v["best_epoch"], v["select"], v["batch_graph"])
             for k, v in res["pretrain"].items()})


def test_resume_after_crashes_matches_uninterrupted(tmp_path):
    args = [*TINY, "--methods", "graphpro,finetune", "--ckpt-every", "1", "--window", "1",
            "--stage-epochs", "3"]
    ref = tmp_path / "ref"
    p = _cli(["run", "--out", str(ref), *args])
    assert p.returncode == 0, p.stderr
    out = tmp_path / "crashy"
    p = _cli(["run", "--out", str(out), *args], {"GRAPHPRO_FAIL_AT": "pretrain-graphpro/epoch2"})
    assert p.returncode == 75, p.stderr  # killed inside pre-training, after epoch 2's checkpoint
    assert not (out / "results.json").exists()
    # the last: killed after a stage's final epoch, so the resumed stage trains no batch and
    # must take what its batches propagated over from the checkpoint
    for tag in ("graphpro/stage1/done", "finetune/stage2/epoch2", "finetune/stage2/epoch3"):
        p = _cli(["run", "--out", str(out), "--resume", *args], {"GRAPHPRO_FAIL_AT": tag})
        assert p.returncode == 75, p.stderr
        if tag == "graphpro/stage1/done":  # continued pre-training from its epoch-2 checkpoint
            assert "[pretrain-graphpro] resumed from" in p.stderr
            # two epochs (logged as 0 and 1) were done: the log goes on at 2, none repeated
            assert "2 epoch(s) done, continuing at epoch 2" in p.stderr
            assert "[pretrain-graphpro] epoch   2" in p.stderr
            assert "[pretrain-graphpro] epoch   1" not in p.stderr
    p = _cli(["run", "--out", str(out), "--resume", *args])
    assert p.returncode == 0, p.stderr
    assert _metrics(out / "results.json") == _metrics(ref / "results.json")


def test_resume_refuses_other_config(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["pretrain", "--out", out, *TINY]) == 0
    assert main(["run", "--out", out, "--resume", *TINY, "--lr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "Traceback" not in err


def test_resume_of_a_run_from_before_auto_share(tmp_path, capsys):
    """Runs begun before --auto-share existed used 0.5: their config reads as 0.5, so resuming
    with the new default is refused with the flag to pass, and passing it resumes."""
    out = tmp_path / "o"
    assert main(["pretrain", "--out", str(out), *TINY]) == 0
    cfg_path = out / "ckpt" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    assert cfg["pretrain_train"]["auto_share"] == 0.8
    for phase in ("pretrain_train", "stage_train"):
        del cfg[phase]["auto_share"]
    cfg_path.write_text(json.dumps(cfg))
    capsys.readouterr()
    assert main(["run", "--out", str(out), "--resume", *TINY]) == 2
    err = capsys.readouterr().err
    assert "differs in ['pretrain_train.auto_share', 'stage_train.auto_share']" in err
    assert "they used --auto-share 0.5: resume with that flag" in err.strip().splitlines()[-1]
    assert main(["run", "--out", str(out), "--resume", *TINY, "--auto-share", "0.5"]) == 0
    for bad in ("0", "1.5", "x"):
        with pytest.raises(SystemExit) as e:
            main(["run", "--out", str(tmp_path / "b"), *TINY, "--auto-share", bad])
        assert e.value.code == 2


def test_table_input_saves_id_map(tmp_path):
    from graphpro_ext.graphpro.data import synthetic

    d = synthetic(120, 80, num_topics=4, pretrain_weeks=2, num_snapshots=3, seed=4)
    rows = ["user,item,timestamp"]
    for part in [d.pretrain, *d.snapshots]:
        rows += [f"u{u},item-{i},{int(t)}" for u, i, t in zip(part.users, part.items, part.times)]
    csv = tmp_path / "events.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "o"
    assert main(["run", "--table", str(csv), "--pretrain-span", "14d", "--snapshot", "7d",
                 "--methods", "graphpro", "--out", str(out), "--epochs", "2",
                 "--stage-epochs", "1", "--dim", "8", "--batch-size", "512"]) == 0
    ids = json.loads((out / "id_map.json").read_text())
    assert len(ids["users"]) == len(set(d.pretrain.users) | set().union(
        *[set(s.users) for s in d.snapshots])) and ids["items"][0].startswith("item-")
    res = json.loads((out / "results.json").read_text())
    assert len(res["methods"]["graphpro"]["stages"]) == 2
    assert res["hyperparameters"]["preset"] == "reference"
