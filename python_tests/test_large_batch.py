"""The large-batch rule (train.py): lr scaling above batch 2048 with a linear warm-up, the
``--batch-size auto`` rule, and the training-time budget."""

import numpy as np
import pytest
import torch

from graphpro_ext.graph import TemporalGraph
from graphpro_ext.graphpro import models
from graphpro_ext.graphpro.cli import main
from graphpro_ext.graphpro.metrics import make_eval_set
from graphpro_ext.graphpro.train import (BASE_BATCH, TrainConfig, auto_batch_size, fit,
                                         scaled_lr)


def test_scaled_lr():
    assert scaled_lr(1e-3, 1024, "sqrt") == 1e-3  # never scaled down
    assert scaled_lr(1e-3, 2048, "linear") == 1e-3
    assert scaled_lr(1e-3, 8192, "sqrt") == pytest.approx(2e-3)
    assert scaled_lr(1e-3, 8192, "linear") == pytest.approx(4e-3)
    assert scaled_lr(1e-3, 8192, "none") == 1e-3
    with pytest.raises(ValueError):
        scaled_lr(1e-3, 8192, "cubic")


@pytest.mark.parametrize("n,users,want", [(10, 5, BASE_BATCH), (135898, 131707, 4096),
                                          (647818, 29858, 65536), (5_000_000, 500_000, 262144),
                                          (10**9, 10**7, 262144), (135898, None, 16384)])
def test_auto_batch_size(n, users, want):
    b = auto_batch_size(n, users)
    assert b == want and b & (b - 1) == 0
    sparse = users is not None and n < 4 * users
    assert b == BASE_BATCH or n // b >= (32 if sparse else 8)  # steps per epoch


def _tiny():
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 60, 3000), rng.integers(0, 40, 3000)
    g = TemporalGraph.from_interactions(u, i, np.zeros(3000), 60, 40, tau_hours=1.0)
    es = make_eval_set(u[:200], i[:200], u, i, 60)
    return g, es


def _model(g):
    x = models.model_class("lightgcn").init_table(60, 40, 8, torch.Generator().manual_seed(0))
    return models.build("lightgcn", x, 2, 0.0)


def test_warmup_ramps_the_lr_linearly(monkeypatch):
    g, es = _tiny()
    seen = []
    orig = torch.optim.Adam.step

    def step(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    n = g.num_edges // 2
    cfg = TrainConfig(epochs=2, patience=5, batch_size=4096, lr=1e-3, lr_rule="linear",
                      warmup_epochs=2.0, ckpt_every=0, keep_prob=1.0)
    s = fit(_model(g), g, g.user_history(), es, cfg, "t")
    steps = -(-n // 4096)
    assert s["batch_size"] == 4096 and s["lr"] == pytest.approx(2e-3)
    want = [2e-3 * min(1.0, (k + 1) / (2 * steps)) for k in range(2 * steps)]
    assert seen == pytest.approx(want)


def test_auto_batch_and_budget():
    g, es = _tiny()
    cfg = TrainConfig(epochs=50, patience=50, batch_size="auto", ckpt_every=0, budget_s=1e-9)
    s = fit(_model(g), g, g.user_history(), es, cfg, "t")
    assert s["batch_size"] == auto_batch_size(g.num_edges // 2, 60)
    assert s["epochs_run"] == 1  # the budget is spent after the first epoch


def test_cli_batch_flags(tmp_path, capsys):
    tiny = ["--synthetic-users", "100", "--synthetic-items", "60", "--synthetic-snapshots", "3",
            "--dim", "8", "--epochs", "1", "--stage-epochs", "1", "--methods", "graphpro",
            "--threads", "1"]
    assert main(["run", "--out", str(tmp_path / "a"), "--batch-size", "auto", *tiny]) == 0
    for bad, msg in ((["--batch-size", "0"], "--batch-size"), (["--batch-size", "big"], "auto"),
                     (["--lr-rule", "cubic"], "--lr-rule")):
        with pytest.raises(SystemExit) as e:
            main(["run", "--out", str(tmp_path / "b"), *bad, *tiny])
        assert e.value.code == 2 and msg in capsys.readouterr().err


def test_runs_from_before_the_new_fields_still_resume(tmp_path):
    import json

    tiny = ["--synthetic-users", "100", "--synthetic-items", "60", "--synthetic-snapshots", "3",
            "--dim", "8", "--epochs", "1", "--stage-epochs", "1", "--methods", "graphpro",
            "--threads", "1", "--out", str(tmp_path / "r")]
    assert main(["run", *tiny]) == 0
    path = tmp_path / "r" / "ckpt" / "config.json"
    cfg = json.loads(path.read_text())
    for k in ("backbone", "serve", "final_test"):
        cfg.pop(k)
    for phase in ("pretrain_train", "stage_train"):
        for k in ("lr_rule", "warmup_epochs", "budget_s"):
            cfg[phase].pop(k)
    path.write_text(json.dumps(cfg))
    assert main(["run", "--resume", *tiny]) == 0  # batch 1024: the new fields change nothing
