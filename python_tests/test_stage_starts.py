"""scripts/stage_starts.py (issue 13): every method's untrained stage-1 model, built as `graphpro
run` builds it, read-only on the run's checkpoints."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("stage_starts", ROOT / "scripts" / "stage_starts.py")
ss = importlib.util.module_from_spec(_spec)
sys.modules["stage_starts"] = ss
_spec.loader.exec_module(ss)

METHODS = ["finetune", "gpf", "graphprompt", "dgcn", "evolvegcn-h", "roland"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(data folder, a run's ckpt folder with its LightGCN pre-training)."""
    from graphpro_ext.graphpro.cli import main
    from graphpro_ext.graphpro.data import synthetic, write_snapshot_folder

    tmp = tmp_path_factory.mktemp("starts")
    write_snapshot_folder(synthetic(60, 40, num_snapshots=4, seed=3), tmp / "data")
    assert main(["run", "--data", str(tmp / "data"), "--out", str(tmp / "run"), "--methods",
                 "finetune", "--epochs", "3", "--stage-epochs", "1", "--dim", "8",
                 "--threads", "1", "--seed", "5"]) == 0
    return tmp / "data", tmp / "run" / "ckpt"


def _table(out: str) -> dict:
    rows = re.findall(r"^\| ([\w-]+) \| ([0-9.]+) \| ([0-9.]+) \|$", out, re.M)
    return {m: (float(r), float(n)) for m, r, n in rows}


def _untrained_stage_results(data, ckpt, tmp_path, monkeypatch) -> dict:
    """What `Runner.stage` reports for stage 1 when training is skipped (fit returns at once)."""
    import graphpro_ext.graphpro.stages as stages
    from graphpro_ext.graphpro import data as D

    def no_training(model, *args, **kwargs):
        return {"best_epoch": -1, "epochs_run": 0, "epoch_train_s": 0.0, "batch_graph": "none",
                "select": {}, "resumed_s": 0.0}

    monkeypatch.setattr(stages, "fit", no_training)
    out = tmp_path / "copy"
    (out / "ckpt").mkdir(parents=True)
    for f in ("config.json", "pretrain_lightgcn.pt"):  # not the run's finished stages
        shutil.copy(ckpt / f, out / "ckpt" / f)
    r = stages.Runner(D.load_snapshot_folder(str(data)), ss._config(str(ckpt), str(out), METHODS))
    pre = {"lightgcn": r.pretrain("lightgcn")}
    res = {m: r.stage(m, 1, pre) for m in METHODS}
    return {m: (round(v["recall@20"], 4), round(v["ndcg@20"], 4)) for m, v in res.items()}


def test_starts_are_the_runs_untrained_stage_one(run, tmp_path, monkeypatch, capsys):
    data, ckpt = run
    before = {p: os.stat(p).st_mtime_ns for p in ckpt.rglob("*")}
    assert ss.main([str(ckpt), "--data", str(data), "--methods", ",".join(METHODS)]) == 0
    got = _table(capsys.readouterr().out)
    assert list(got) == METHODS
    assert {p: os.stat(p).st_mtime_ns for p in ckpt.rglob("*")} == before  # read-only
    want = _untrained_stage_results(data, ckpt, tmp_path, monkeypatch)
    assert got == want
    # the prompt baselines start neutral: the frozen pre-trained model's own ranking
    assert got["gpf"] == got["graphprompt"] == got["finetune"]
    assert got["finetune"][0] > 0


def test_default_methods_are_those_with_a_pretraining_here(run, capsys):
    data, ckpt = run
    assert ss.main([str(ckpt), "--data", str(data)]) == 0
    got = _table(capsys.readouterr().out)
    from graphpro_ext.graphpro.methods import METHODS as ALL

    assert list(got) == [m for m, s in ALL.items() if s.pretrain == "lightgcn"]


@pytest.mark.parametrize("extra, message", [
    (["--methods", "nope"], "--methods: unknown ['nope']"),
    (["--methods", "graphpro"], "has no pretrain_graphpro.pt"),
    (["--methods", "full"], "--methods: full starts from scratch"),
    (["--data", "/nonexistent"], "--data /nonexistent: not a snapshot folder"),
])
def test_bad_arguments_exit_2(run, extra, message, capsys):
    data, ckpt = run
    args = [str(ckpt), "--data", str(data), *extra]
    if extra[0] == "--data":
        args = [str(ckpt), *extra]
    assert ss.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_not_a_run_folder_exit_2(tmp_path, capsys):
    assert ss.main([str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({"methods": 1}))
    assert ss.main([str(tmp_path), "--methods", "finetune"]) == 2
    assert "no pretrain_lightgcn.pt" in capsys.readouterr().err
