"""Nothing lost, nothing silently wrong: bad data, odd flags, misuse of the output folder,
corrupt checkpoints and diverging runs each end in one clear line (exit code 2), never a hang,
a traceback, a deleted result or a meaningless exit 0. docs/RELIABILITY.md lists these cases."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from graphpro_ext.graphpro.cli import main
from graphpro_ext.graphpro.data import (DataError, load_snapshot_folder, load_table,
                                        read_snapshot_file, synthetic, write_snapshot_folder)

TINY = ["--synthetic-users", "120", "--synthetic-items", "80", "--synthetic-snapshots", "3",
        "--dim", "8", "--batch-size", "512", "--epochs", "2", "--stage-epochs", "1",
        "--pretrain-val-users", "50", "--eval-batch", "64"]
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0  # root reads and writes everything


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error message"
    last = err[-1]
    assert "Traceback" not in "\n".join(err)
    return last


def _cli(args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "graphpro_ext.graphpro", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def _csv(path, rows, header="user,item,timestamp"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def _folder(tmp_path, name="ds", users=100, items=60, snaps=3, seed=0):
    d = tmp_path / name
    write_snapshot_folder(synthetic(users, items, num_snapshots=snaps, seed=seed), d)
    return d


# -- 1. empty / NaT timestamps ---------------------------------------------------------------
def test_empty_time_in_csv_is_an_error_not_a_hang(tmp_path):
    day = 86400
    p = _csv(tmp_path / "f.csv", [(1, 1, 0), (2, 2, day), (3, 3, ""), (1, 2, 30 * day),
                                  (2, 3, 40 * day)])
    with pytest.raises(DataError, match=r"f.csv:4: empty time"):
        load_table(str(p), "28d", "7d")
    d, _ = load_table(str(p), "28d", "7d", skip_bad_rows=True)
    assert d.stats["files"][0]["rows_skipped"] == 1
    # the CLI: one line, exit 2, quickly (a subprocess, so a hang fails by timeout)
    r = _cli(["pretrain", "--table", str(p), "--pretrain-span", "28d", "--snapshot", "7d",
              "--out", str(tmp_path / "o")], timeout=60)
    assert r.returncode == 2 and "f.csv:4: empty time" in r.stderr
    assert "Traceback" not in r.stderr


def test_null_and_nat_times_in_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    for typ, vals in [(pa.timestamp("s"), [0, 86400, None, 3 * 86400]),
                      (pa.float64(), [0.0, 86400.0, float("nan"), 3 * 86400.0]),
                      (pa.string(), ["2020-01-01", "2020-01-02", "NaT", "2020-01-04"])]:
        t = pa.table({"user": ["a", "b", "c", "a"], "item": [1, 2, 3, 2],
                      "timestamp": pa.array(vals, typ)})
        pq.write_table(t, tmp_path / "t.parquet")
        with pytest.raises(DataError, match=r"t.parquet:3: empty time"):
            load_table(str(tmp_path / "t.parquet"), "1d", "1d")


# -- 2. huge ids: the memory estimate refuses before allocating --------------------------------
def test_stray_huge_item_id_is_refused_with_its_line(tmp_path, capsys):
    d = _folder(tmp_path)
    with open(d / "test_2.txt", "a") as f:
        f.write("3\t10000000\t1600000000\n")
    n_lines = len((d / "test_2.txt").read_text().splitlines())
    assert main(["pretrain", "--data", str(d), "--out", str(tmp_path / "o"),
                 "--max-memory", "1G"]) == 2
    err = _err_line(capsys)
    assert f"test_2.txt:{n_lines}: item id 10000000" in err and "id space of 10,000,1" in err
    assert "--max-memory is 1.0 GB" in err and "--table" in err


def test_absurd_ids_are_refused_without_a_limit(tmp_path, capsys):
    tr, te = tmp_path / "train.txt", tmp_path / "test.txt"
    tr.write_text("0 1 2\n1 1000000000000\n")
    te.write_text("0 3\n")
    assert main(["train", "--train", str(tr), "--test", str(te),
                 "--out", str(tmp_path / "o")]) == 2
    assert "train.txt:2: item id 1000000000000" in _err_line(capsys)
    tr.write_text("0 99999999999999999999999\n")  # beyond int64
    assert main(["train", "--train", str(tr), "--test", str(te),
                 "--out", str(tmp_path / "o2")]) == 2
    assert "train.txt:1: id '99999999999999999999999' is too large" in _err_line(capsys)


def test_sparse_ids_warn(caplog, monkeypatch):
    import logging

    from graphpro_ext.graphpro.resources import check_memory

    monkeypatch.setattr(logging.getLogger("graphpro"), "propagate", True)

    files = [{"path": "f.txt", "max_user": [5, 1], "max_item": [99_999, 7]}]
    with caplog.at_level("WARNING", logger="graphpro"):
        check_memory(6, 100_000, files, np.arange(6), np.array([0, 1, 99_999]), 8, 10, 64,
                     max_memory=1 << 40, remap_hint="remap")
    assert "item ids are sparse: 3 distinct ids in an id space of 100,000" in caplog.text
    assert "f.txt:7" in caplog.text


@pytest.mark.parametrize("nodes,dim,batch", [(30000, 128, 65536), (2000, 8, 4096)])
def test_memory_estimate_bounds_a_measured_peak(tmp_path, nodes, dim, batch):
    """The estimate is neither optimistic nor absurd: the peak RSS of a pre-training epoch in a
    fresh process lies below it, and above half of it (large tables and batches; tiny run)."""
    code = textwrap.dedent("""
        import sys
        from graphpro_ext.graphpro.cli import main
        rc = main(["pretrain", "--synthetic-users", sys.argv[4], "--synthetic-items", sys.argv[4],
                   "--synthetic-snapshots", "2", "--dim", sys.argv[2], "--epochs", "1",
                   "--batch-size", sys.argv[3], "--pretrain-val-users", "500",
                   "--out", sys.argv[1]])
        # VmHWM: this process's own peak. ru_maxrss would survive exec and report the pytest
        # parent's RSS at fork time once the parent has grown past the estimate.
        hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0].split()[1]
        print("peak", int(hwm) * 1024)
        sys.exit(rc)
    """)
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-c", code, str(out), str(dim), str(batch), str(nodes)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    peak = int(r.stdout.split("peak")[1])
    log = (out / "log.txt").read_text()
    est = int(log.split("memory estimate ")[1].split(" bytes")[0].split("(")[1])
    assert peak < est < 2 * peak, (peak, est)


# -- 3. a user who has interacted with every item -------------------------------------------
def test_user_with_every_item_is_skipped_and_counted(tmp_path):
    d = tmp_path / "small"
    d.mkdir()
    items = " ".join(map(str, range(6)))
    (d / "pretrain.txt").write_text(f"0\t{items}\t{' '.join(['100'] * 6)}\n1\t0 1\t100 200\n"
                                    "2\t2 3\t150 250\n")
    (d / "fine_tune.txt").write_text(f"0\t{items}\t{' '.join(['90000'] * 6)}\n1\t2\t90000\n"
                                     "2\t4\t90100\n")
    (d / "test_1.txt").write_text("1\t3\t180000\n2\t5\t180000\n")
    (d / "test_2.txt").write_text("1\t4\t270000\n2\t0\t270000\n")
    out = tmp_path / "o"
    r = _cli(["run", "--data", str(d), "--out", str(out), "--methods", "graphpro,finetune,full",
              "--epochs", "2", "--stage-epochs", "1", "--dim", "4", "--batch-size", "4",
              "--pretrain-val-users", "2", "--select-on", "test"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "have interacted with every item" in (out / "log.txt").read_text()


# -- 4. a previous run is never deleted silently ---------------------------------------------
def test_fresh_run_never_deletes_a_previous_run(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["pretrain", "--out", str(out), *TINY]) == 0
    before = sorted(os.listdir(out / "ckpt"))
    assert main(["run", "--data", str(tmp_path / "no_such_dir"), "--out", str(out)]) == 2
    assert "holds a previous run" in _err_line(capsys)
    # --overwrite with bad input: refused before anything is removed
    assert main(["run", "--data", str(tmp_path / "no_such_dir"), "--out", str(out),
                 "--overwrite"]) == 2
    assert "no_such_dir: missing" in _err_line(capsys)
    assert sorted(os.listdir(out / "ckpt")) == before
    # --resume with bad input: refused, nothing removed either
    assert main(["run", "--data", str(tmp_path / "no_such_dir"), "--out", str(out),
                 "--resume"]) == 2
    assert sorted(os.listdir(out / "ckpt")) == before
    # --overwrite with valid input replaces the run; files the user put there stay
    (out / "notes.txt").write_text("mine")
    assert main(["pretrain", "--out", str(out), *TINY, "--seed", "7", "--overwrite"]) == 0
    cfg = json.loads((out / "ckpt" / "config.json").read_text())
    assert cfg["seed"] == 7 and (out / "notes.txt").read_text() == "mine"


# -- 5. one writer per output folder ---------------------------------------------------------
def test_second_writer_is_refused_and_lock_dies_with_its_holder(tmp_path, capsys):
    from graphpro_ext.graphpro.rundir import RunDir

    out = tmp_path / "o"
    with RunDir(str(out)):
        assert main(["pretrain", "--out", str(out), *TINY]) == 2
        assert "in use by another graphpro run (pid" in _err_line(capsys)
    # a holder killed with SIGKILL leaves no stale lock
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys, time
        from graphpro_ext.graphpro.rundir import RunDir
        rd = RunDir({str(out)!r}).__enter__()
        print("locked", flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["pretrain", "--out", str(out), *TINY]) == 2
        capsys.readouterr()
    finally:
        holder.kill()
        holder.wait()
    assert main(["pretrain", "--out", str(out), *TINY]) == 0


# -- 6. resuming on changed data is refused --------------------------------------------------
def test_resume_refuses_changed_data(tmp_path, capsys):
    d = _folder(tmp_path)
    out = tmp_path / "o"
    common = ["--data", str(d), "--out", str(out), "--dim", "8", "--epochs", "1",
              "--pretrain-val-users", "20", "--preset", "synthetic"]
    assert main(["pretrain", *common]) == 0
    lines = (d / "fine_tune.txt").read_text().splitlines()
    u, its, ts = lines[0].split("\t")
    lines[0] = "\t".join([u, its, " ".join(str(int(t) + 1) for t in ts.split())])
    (d / "fine_tune.txt").write_text("\n".join(lines) + "\n")  # one time moved by a second
    assert main(["run", "--resume", "--methods", "graphpro", *common]) == 2
    assert "written for other data" in _err_line(capsys)


# -- 7. non-finite checkpoints and losses ----------------------------------------------------
def test_nan_and_garbage_checkpoints_are_refused(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["pretrain", "--out", str(out), *TINY]) == 0
    p = out / "ckpt" / "pretrain_graphpro.pt"
    good = p.read_bytes()
    obj = torch.load(p, weights_only=False)
    obj["x"][3, 1] = float("nan")
    torch.save(obj, p)
    args = ["run", "--out", str(out), "--resume", "--methods", "graphpro", *TINY]
    assert main(args) == 2
    err = _err_line(capsys)
    assert "pretrain_graphpro.pt: holds non-finite values in x" in err and "delete it" in err
    for bad in (good[: len(good) // 2], b"\0" * 4096, b"garbage"):
        p.write_bytes(bad)
        assert main(args) == 2
        assert "pretrain_graphpro.pt: unreadable checkpoint" in _err_line(capsys)


def test_sigterm_checkpoints_the_epoch_and_the_resume_is_exact(tmp_path, monkeypatch):
    """Under ``graceful_stop`` a SIGTERM finishes the epoch, checkpoints it (with both timed
    rules off) and raises ``Stopped``; resuming ends exactly where an uninterrupted fit does.
    A second SIGTERM stops at once (the default action, re-sent); the handler is restored."""
    import signal

    from graphpro_ext.graph import TemporalGraph
    from graphpro_ext.graphpro import models, runtime
    from graphpro_ext.graphpro import train as T
    from graphpro_ext.graphpro.errors import Stopped
    from graphpro_ext.graphpro.metrics import make_eval_set

    rng = np.random.default_rng(1)
    u, i = rng.integers(0, 60, 3000), rng.integers(0, 40, 3000)
    g = TemporalGraph.from_interactions(u, i, np.zeros(3000), 60, 40, tau_hours=1.0)
    es = make_eval_set(u[:200], i[:200], u, i, 60)
    cfg = T.TrainConfig(epochs=5, patience=10, batch_size=1024, ckpt_every=0, ckpt_minutes=0.0)

    def run(path=None, resume=False):
        x = models.model_class("lightgcn").init_table(60, 40, 8, torch.Generator().manual_seed(0))
        s = T.fit(models.build("lightgcn", x, 2, 0.0), g, g.user_history(), es, cfg, "t",
                  path and str(path), resume=resume)
        return [(h["loss"], h["recall@20"]) for h in s["history"]], s["best_epoch"]

    want = run()
    evaluate, calls = T.evaluate_model, [0]

    def eval_then_signal(*a, **k):  # the signal lands inside epoch 2 (its evaluation)
        calls[0] += 1
        if calls[0] == 3:
            signal.raise_signal(signal.SIGTERM)
        return evaluate(*a, **k)
    monkeypatch.setattr(T, "evaluate_model", eval_then_signal)
    before = signal.getsignal(signal.SIGTERM)
    path = tmp_path / "p.pt"
    with runtime.graceful_stop():
        with pytest.raises(Stopped, match="stopped after epoch 2 .* continue the run with "
                                          "--resume") as e:
            run(path)
        assert e.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before and runtime.stop_requested() is None
    assert torch.load(path, weights_only=False)["state"]["epoch"] == 3
    monkeypatch.setattr(T, "evaluate_model", evaluate)
    assert run(path, resume=True) == want
    # a stop asked for between phases is honoured when the next one starts, before any epoch
    with runtime.graceful_stop():
        signal.raise_signal(signal.SIGTERM)
        with pytest.raises(Stopped, match=r"stopped before epoch 0 on SIGTERM \(no checkpoint\)$"):
            run()
        sent = []
        monkeypatch.setattr(runtime.os, "kill", lambda pid, sig: sent.append(sig))
        signal.raise_signal(signal.SIGTERM)  # the second: re-sent with the default action
        assert sent == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_to_the_cli_exits_143_and_resumes_to_the_same_results(tmp_path):
    """A real SIGTERM to ``graphpro run`` during pre-training: one line on stderr naming the
    checkpoint and --resume, exit code 143, no results yet; --resume then ends with the results
    of an uninterrupted run."""
    import signal

    from test_cli import _metrics

    args = [*TINY, "--methods", "graphpro,finetune", "--epochs", "4"]
    ref = tmp_path / "ref"
    assert _cli(["run", "--out", str(ref), *args]).returncode == 0
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "graphpro_ext.graphpro", "run", "--out",
                             str(out), *args], stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "[pretrain-graphpro] epoch   0" in line:
            proc.send_signal(signal.SIGTERM)
            break
    lines += proc.stderr.readlines()
    assert proc.wait(timeout=120) == 143, "".join(lines)
    assert lines[-1].startswith("graphpro: [pretrain-graphpro] stopped after epoch ")
    assert "on SIGTERM; continue the run with --resume" in lines[-1]
    assert not (out / "results.json").exists()
    assert list((out / "ckpt").glob("pretrain_graphpro.partial.pt"))
    p = _cli(["run", "--out", str(out), "--resume", *args])
    assert p.returncode == 0, p.stderr
    assert "[pretrain-graphpro] resumed from" in p.stderr
    assert _metrics(out / "results.json") == _metrics(ref / "results.json")


def test_time_based_checkpoint_and_wall_time_across_resumes(tmp_path, monkeypatch):
    """--ckpt-minutes saves after the epoch that ends that long after the last save, even with
    --ckpt-every 0; a resumed phase reports the earlier processes' time too."""
    from graphpro_ext.graph import TemporalGraph
    from graphpro_ext.graphpro import models
    from graphpro_ext.graphpro import train as T
    from graphpro_ext.graphpro.metrics import make_eval_set

    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 60, 3000), rng.integers(0, 40, 3000)
    g = TemporalGraph.from_interactions(u, i, np.zeros(3000), 60, 40, tau_hours=1.0)
    es = make_eval_set(u[:200], i[:200], u, i, 60)

    def run(cfg, path, resume=False):
        x = models.model_class("lightgcn").init_table(60, 40, 8, torch.Generator().manual_seed(0))
        return T.fit(models.build("lightgcn", x, 2, 0.0), g, g.user_history(), es, cfg, "t",
                     str(path), resume=resume)

    clock = [0.0]  # a fake clock that only each epoch's evaluation moves, by 100 s
    evaluate = T.evaluate_model
    def slow_eval(*a, **k):
        clock[0] += 100.0
        return evaluate(*a, **k)
    monkeypatch.setattr(T, "evaluate_model", slow_eval)
    monkeypatch.setattr(T.time, "perf_counter", lambda: clock[0])
    base = dict(epochs=4, patience=10, batch_size=1024, ckpt_every=0)
    never = tmp_path / "never.pt"
    run(T.TrainConfig(**base, ckpt_minutes=0.0), never)
    assert not never.exists()  # neither rule asks for a checkpoint
    saved = []
    orig = T.save_atomic
    monkeypatch.setattr(T, "save_atomic", lambda obj, p: (saved.append(obj["state"]["epoch"]),
                                                         orig(obj, p)))
    timed = tmp_path / "timed.pt"
    s = run(T.TrainConfig(**base, ckpt_minutes=5.0), timed)
    assert saved == [3] and s["resumed_s"] == 0.0  # 300 s after the start; epoch 4: 100 s
    clock[0], saved[:] = 0.0, []
    run(T.TrainConfig(**{**base, "ckpt_every": 2}, ckpt_minutes=5.0), tmp_path / "both.pt")
    assert saved == [2, 4]  # by epochs; the time rule counts from the last save of either
    # resuming from epoch 3 counts the time the first process spent up to its checkpoint
    prior = torch.load(timed, weights_only=False)["state"]
    assert prior["epoch"] == 3 and prior["elapsed_s"] == 300.0
    s2 = run(T.TrainConfig(**base, ckpt_minutes=5.0), timed, resume=True)
    assert s2["resumed_s"] == prior["elapsed_s"] and s2["epochs_run"] == 4
    # a checkpoint from before the field: its epochs' train + eval time stands in
    del prior["elapsed_s"]
    ck = torch.load(timed, weights_only=False)
    ck["state"] = prior
    torch.save(ck, timed)
    s3 = run(T.TrainConfig(**base, ckpt_minutes=5.0), timed, resume=True)
    assert s3["resumed_s"] == pytest.approx(prior["train_s"] + prior["eval_s"])


def test_non_finite_loss_stops_training_with_epoch_and_batch():
    from graphpro_ext.graph import TemporalGraph
    from graphpro_ext.graphpro.errors import TrainingDiverged
    from graphpro_ext.graphpro.metrics import make_eval_set
    from graphpro_ext.graphpro.models import EmbeddingModel
    from graphpro_ext.graphpro.train import TrainConfig, fit

    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 20, 200), rng.integers(0, 30, 200)
    g = TemporalGraph.from_interactions(u, i, np.zeros(200), 20, 30)
    x = torch.randn(50, 8)
    x[25] = float("inf")  # item 5
    model = EmbeddingModel(x, 2, 0.0)
    sel = make_eval_set(u[:20], i[:20], u, i, 20)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 0, batch \d+"):
        fit(model, g, g.user_history(), sel, TrainConfig(epochs=2, batch_size=64), "t")


# -- 8. naive Parquet times are UTC, whatever the machine's zone -----------------------------
def test_naive_parquet_times_are_utc_under_another_tz(tmp_path):
    pytest.importorskip("pyarrow")
    code = textwrap.dedent(f"""
        import datetime, pyarrow as pa, pyarrow.parquet as pq, time
        from graphpro_ext.graphpro.data import load_table
        assert time.timezone != 0  # really another zone
        base = datetime.datetime(2020, 1, 1)
        ts = [base + datetime.timedelta(days=d) for d in (0, 1, 3, 5)]
        for unit in ("s", "ms", "us", "ns"):
            t = pa.table({{"user": ["a", "b", "a", "c"], "item": [1, 2, 3, 1],
                          "timestamp": pa.array(ts, pa.timestamp(unit))}})
            pq.write_table(t, {str(tmp_path / 'n.parquet')!r})
            d, _ = load_table({str(tmp_path / 'n.parquet')!r}, "1d", "2d")
            assert d.pretrain.times.tolist() == [1577836800.0], (unit, d.pretrain.times)
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, TZ="America/New_York"), timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_iso_times_with_and_without_offset(tmp_path):
    p = _csv(tmp_path / "iso.csv", [("a", 1, "2020-01-01T00:00:00"), ("b", 2, "2020-01-01Z"),
                                    ("c", 3, "2020-01-03T02:00:00+02:00"),
                                    ("a", 2, "2020-01-05 00:00:00")])
    d, _ = load_table(str(p), "1d", "2d")
    assert sorted(d.pretrain.times.tolist()) == [1577836800.0, 1577836800.0]
    assert d.snapshots[0].times.tolist() == [1577836800.0 + 2 * 86400]


# -- 9. outlier and unrepresentable times ----------------------------------------------------
def test_unrepresentable_times_rejected_and_outliers_warned(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("0\t1 2\t1600000000 1e300\n")
    with pytest.raises(DataError, match=r"f.txt:1: timestamp '1e300' is outside the "):
        read_snapshot_file(str(p))
    p.write_text("".join(f"{u}\t{u + 1}\t{1600000000 + 3600 * u}\n" for u in range(30))
                 + "30\t2\t-5\n")
    _, st = read_snapshot_file(str(p))
    assert st["time_range"] == [-5.0, 1600000000.0 + 3600 * 29]
    assert any("f.txt:31: time -5" in w and "far outside" in w for w in st["warnings"])
    p.write_text("".join(f"{u}\t{u + 1}\t{1600000000000 + 3600 * u}\n" for u in range(30)))
    _, st = read_snapshot_file(str(p))
    assert any("milliseconds" in w for w in st["warnings"])


def test_far_past_time_in_a_table_gives_a_short_message(tmp_path):
    day = 86400
    rows = [(u, u % 5, 1_600_000_000 + day * (u % 60)) for u in range(100)] + [(1, 1, 5)]
    p = _csv(tmp_path / "t.csv", rows)
    with pytest.raises(DataError) as e:
        load_table(str(p), "7d", "7d")
    msg = str(e.value)
    assert len(msg) < 400 and "t.csv" in msg and "hold no interactions" in msg
    rows[-1] = (1, 1, -1e15)
    _csv(p, rows)
    with pytest.raises(DataError, match=r"t.csv:102 .*outlier") as e:
        load_table(str(p), "7d", "1h")
    assert len(str(e.value)) < 400


# -- 10. every flag's range is checked at parse time -----------------------------------------
@pytest.mark.parametrize("flags", [
    ["--batch-size", "-5"], ["--batch-size", "0"], ["--epochs", "-1"], ["--window", "0"],
    ["--window", "-2"], ["--threads", "0"], ["--threads", "-3"], ["--pretrain-val-users", "0"],
    ["--weight-decay", "-5"], ["--synthetic-users", "0"], ["--synthetic-items", "0"],
    ["--synthetic-snapshots", "0"], ["--synthetic-snapshots", "1"], ["--eval-batch", "0"],
    ["--dim", "0"], ["--lr", "-1"], ["--lr", "nan"], ["--layers", "-1"], ["--layers", "1000"],
    ["--topk", "0"], ["--tau", "0"], ["--time-weight", "2"], ["--val-frac", "0"],
    ["--val-frac", "1"], ["--edge-dropout", "1.5"], ["--pretrain-span", "abc"],
    ["--device", "tpu"], ["--seed", str(2**63)], ["--max-memory", "lots"],
    ["--columns", "a,b"], ["--batch-size", "2.5"], ["--ckpt-minutes", "-1"],
    ["--ckpt-minutes", "inf"],
])
def test_bad_flags_one_line_exit_2(tmp_path, capsys, flags):
    with pytest.raises(SystemExit) as e:
        main(["run", "--out", str(tmp_path / "o"), *flags])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flags[0] in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag", [["--table", "x.csv"], ["--window", "2"], ["--resume"],
                                  ["--methods", "graphpro"]])
def test_train_rejects_flags_of_the_dynamic_protocol(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as e:
        main(["train", "--train", "a", "--test", "b", "--out", str(tmp_path / "o"), *flag])
    assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_unknown_method_and_cuda_on_a_cpu_build(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path / "a"), "--methods", "graphpro,nope", *TINY]) == 2
    assert "--methods: unknown method(s) ['nope']" in _err_line(capsys)
    if not torch.cuda.is_available():
        assert main(["run", "--out", str(tmp_path / "b"), "--device", "cuda", *TINY]) == 2
        assert "--device cuda" in _err_line(capsys)


# -- clear errors instead of tracebacks ------------------------------------------------------
def _snapshot_dir(tmp_path, **files):
    d = tmp_path / "ds"
    d.mkdir(exist_ok=True)
    base = {"pretrain.txt": "0\t1 2\t10 20\n1\t0\t15\n", "fine_tune.txt": "1\t2\t30\n",
            "test_1.txt": "0\t0\t40\n"}
    base.update(files)
    for nm, content in base.items():
        p = d / nm
        if isinstance(content, bytes):
            p.write_bytes(content)
        elif content is None:
            p.mkdir()
        else:
            p.write_text(content, encoding="utf-8")
    return d


@pytest.mark.parametrize("files,msg", [
    ({"fine_tune.txt": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary"},
     "fine_tune.txt:1: not UTF-8 text"),
    ({"fine_tune.txt": "1\t2\t30\n2\tcaf\xe9\t40\n".encode("latin-1")},
     "fine_tune.txt:2: not UTF-8 text"),
    ({"fine_tune.txt": None}, "fine_tune.txt: is a directory"),
    ({"fine_tune.txt": "1\t99999999999999999999\t30\n"}, "fine_tune.txt:1: item id"),
    ({"fine_tune.txt": "\n\n"}, "fine_tune.txt: no interactions (empty file)"),
])
def test_bad_files_one_line(tmp_path, capsys, files, msg):
    d = _snapshot_dir(tmp_path, **files)
    assert main(["run", "--data", str(d), "--out", str(tmp_path / "o")]) == 2
    assert msg in _err_line(capsys)


def test_all_rows_skipped_says_so(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("a\tb\tc\nx\n")
    with pytest.raises(DataError, match=r"no valid interactions \(all 2 rows were bad"):
        read_snapshot_file(str(p), skip_bad_rows=True)


@pytest.mark.skipif(ROOT, reason="root can read files without read permission")
def test_unreadable_file(tmp_path, capsys):
    d = _snapshot_dir(tmp_path)
    os.chmod(d / "test_1.txt", 0)
    assert main(["run", "--data", str(d), "--out", str(tmp_path / "o")]) == 2
    assert "test_1.txt: not readable" in _err_line(capsys)


def test_zero_padded_test_files_and_duplicates(tmp_path):
    d = _snapshot_dir(tmp_path, **{"test_01.txt": "0\t0\t40\n", "test_02.txt": "1\t1\t50\n"})
    os.remove(d / "test_1.txt")
    assert load_snapshot_folder(str(d)).num_stages == 2
    (d / "test_1.txt").write_text("0\t0\t40\n")
    with pytest.raises(DataError, match="test_01.txt and test_1.txt are both test snapshot 1"):
        load_snapshot_folder(str(d))


def test_truncated_and_empty_parquet(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"user": ["a"] * 50, "item": list(range(50)),
                             "timestamp": list(range(50))}), p)
    p.write_bytes(p.read_bytes()[:100])
    assert main(["run", "--table", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "t.parquet: not a readable Parquet file" in _err_line(capsys)
    p.write_bytes(b"")
    assert main(["run", "--table", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "t.parquet: not a readable Parquet file" in _err_line(capsys)


def test_csv_blank_lines_bom_and_skip_counts(tmp_path):
    day = 86400
    p = tmp_path / "b.csv"
    body = "user,item,timestamp\n1,1,0\n\n2,2,%d\n1,2,%d\n2,1,%d\n\n\n" % (day, 2 * day, 3 * day)
    p.write_bytes(b"\xef\xbb\xbf" + body.encode())
    d, _ = load_table(str(p), "1d", "1d")
    assert len(d.pretrain) == 1 and sum(map(len, d.snapshots)) == 3
    d, _ = load_table(str(p), "1d", "1d", skip_bad_rows=True)
    assert d.stats["files"][0]["rows_skipped"] == 0


def test_out_is_a_file_or_read_only(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["run", "--out", str(f), *TINY]) == 2
    assert "is a file, not a folder" in _err_line(capsys)
    if not ROOT:
        ro = tmp_path / "ro"
        ro.mkdir()
        os.chmod(ro, 0o500)
        assert main(["run", "--out", str(ro), *TINY]) == 2
        assert "not writable" in _err_line(capsys)


def test_report_of_a_missing_folder(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "nope")]) == 2
    assert "no such folder" in _err_line(capsys)
    (tmp_path / "empty").mkdir()
    assert main(["report", "--out", str(tmp_path / "empty")]) == 2
    assert "no checkpoints of a run here" in _err_line(capsys)


def test_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path, capsys, monkeypatch):
    import errno

    from graphpro_ext.graphpro import checkpoint

    real = checkpoint.torch.save

    def full(obj, f):
        real(obj, f)
        raise OSError(errno.ENOSPC, "No space left on device", f.name)

    monkeypatch.setattr(checkpoint.torch, "save", full)
    out = tmp_path / "o"
    assert main(["pretrain", "--out", str(out), *TINY]) == 2
    assert "No space left on device" in _err_line(capsys)
    left = [f for _, _, fs in os.walk(out) for f in fs if ".tmp" in f]
    assert left == []


def test_temporaries_of_interrupted_writes_are_cleaned(tmp_path):
    out = tmp_path / "o"
    assert main(["pretrain", "--out", str(out), *TINY]) == 0
    (out / "ckpt" / "pretrain_graphpro.pt.tmp12345").write_bytes(b"half")
    (out / "results.json.tmp999").write_text("{")
    (out / "my_data.tmp1").write_text("mine")  # not ours: kept
    assert main(["run", "--out", str(out), "--resume", "--methods", "graphpro", *TINY]) == 0
    assert not (out / "ckpt" / "pretrain_graphpro.pt.tmp12345").exists()
    assert not (out / "results.json.tmp999").exists()
    assert (out / "my_data.tmp1").read_text() == "mine"


def test_internal_errors_keep_the_traceback_in_the_log(tmp_path, capsys, monkeypatch):
    from graphpro_ext.graphpro import stages

    def boom(*a, **k):
        raise RuntimeError("planted bug")

    monkeypatch.setattr(stages.Runner, "pretrain", boom)
    out = tmp_path / "o"
    assert main(["pretrain", "--out", str(out), *TINY]) == 1
    assert "internal error: RuntimeError: planted bug" in _err_line(capsys)
    assert "Traceback" in (out / "log.txt").read_text()
