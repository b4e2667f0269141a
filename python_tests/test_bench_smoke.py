"""Smoke test of benchmarks/bench_ops.py: a tiny synthetic graph, 1-2 repeats, seconds.

Keeps the harness from rotting: every op must produce rows for ours and its baselines with finite
times, and the csv / markdown writers must work.
"""

import csv
import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ops.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_ops", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_ops"] = mod  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


EXPECTED = {
    ("temporal_propagate", "fwd"): {"ours", "reference", "torch_sparse_mm"},
    ("temporal_propagate", "fwd+bwd"): {"ours", "reference", "torch_sparse_mm"},
    ("lightgcn", "fwd"): {"ours", "reference", "torch_sparse_mm"},
    ("lightgcn", "fwd+bwd"): {"ours", "reference", "torch_sparse_mm"},
    ("spmm", "fwd"): {"ours", "reference", "torch_sparse_mm"},
    ("spmm", "fwd+bwd"): {"ours", "ours_transpose_in_bwd", "reference", "torch_sparse_mm"},
    ("edge_softmax", "fwd"): {"ours", "reference"},
    ("edge_softmax", "fwd+bwd"): {"ours", "reference"},
    ("sample_negatives", "fwd"): {"ours", "torch_rejection", "reference_python"},
    ("topk_masked", "fwd"): {"ours", "reference"},
    ("simgcl_perturb", "fwd"): {"ours", "torch_rand", "reference"},
}


def test_bench_main_tiny(bench, tmp_path):
    out_csv, out_md = tmp_path / "b.csv", tmp_path / "b.md"
    rows = bench.main([
        "--graphs", "tiny", "--tiny-edges", "4000", "--repeats", "2", "--warmup", "1",
        "--dim", "8", "--neg-batch", "256", "--neg-k", "4", "--python-ref-batch", "16",
        "--topk-batch", "64", "--copy-mb", "8", "--no-memory", "--csv", str(out_csv),
        "--markdown", str(out_md), "--quiet",
    ])
    ok = {}
    for r in rows:
        assert r["graph"] == "tiny"
        if r["status"] == "ok":
            assert math.isfinite(r["median_ms"]) and r["median_ms"] > 0, r
            assert r["repeats"] >= 1
            ok.setdefault((r["op"], r["mode"]), set()).add(r["impl"])
            if r["impl"] == "ours":
                assert r["ours_speedup"] == pytest.approx(1.0)
            else:
                assert math.isfinite(r["ours_speedup"]), r
        elif r["impl"] == "pyg":
            assert r["status"].startswith("skipped") or r["status"] == "ok"
        else:
            pytest.fail(f"unexpected status {r}")
    for key, impls in EXPECTED.items():
        assert impls <= ok.get(key, set()), (key, ok.get(key))
    for r in rows:
        if r["op"] in ("sample_negatives", "topk_masked") and r["status"] == "ok":
            assert math.isfinite(r["throughput"]) and r["throughput"] > 0
    with open(out_csv) as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    md = out_md.read_text()
    assert "| graph | op | mode | impl |" in md and "tiny" in md


def test_robustness_and_targets_helpers(bench):
    base = dict(nodes=10, edges=100, median_ms=1.0, min_ms=1.0, throughput=float("nan"))
    rows = [
        {**base, "graph": "hub", "op": "spmm", "mode": "fwd", "impl": "ours", "median_ms": 3.0},
        {**base, "graph": "uniform", "op": "spmm", "mode": "fwd", "impl": "ours"},
        {**base, "graph": "amazon_like", "op": "temporal_propagate", "mode": "fwd+bwd",
         "impl": "ours", "median_ms": 4.0, "min_ms": 4.0},
        {**base, "graph": "amazon_like", "op": "temporal_propagate", "mode": "fwd+bwd",
         "impl": "torch_sparse_mm", "median_ms": 10.0, "min_ms": 10.0},
        {**base, "graph": "amazon_like", "op": "temporal_propagate", "mode": "fwd+bwd",
         "impl": "reference", "median_ms": 30.0, "min_ms": 30.0},
        {**base, "graph": "amazon_like", "op": "sample_negatives", "mode": "fwd",
         "impl": "ours", "throughput": 25e6},
    ]
    rob = bench.robustness(rows)
    assert rob == [pytest.approx(rob[0])] and rob[0]["hub_over_uniform"] == pytest.approx(3.0)
    met = {t["target"].split()[0] + str(i): t["met"] for i, t in enumerate(bench.targets(rows))}
    assert list(met.values()) == [True, False, True]


def test_bytes_model_monotone(bench):
    bm = bench.bm
    assert bm.spmm(100, 1000, 64) > bm.spmm(100, 1000, 32) > bm.spmm(100, 100, 32)
    assert bm.lightgcn(100, 1000, 64, 3) == 3 * (bm.temporal_propagate(100, 1000, 64)
                                                   + 2 * 100 * 64 * 4)


def test_scale_columns_smoke():
    """benchmarks/scale_columns.py runs the trainer's step at d/P columns and prints the table."""
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "scale_columns.py"
    r = subprocess.run([sys.executable, str(script), "--edges", "20000", "--rounds", "1",
                        "--steps", "1", "--ranks", "1,2,8"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert [ln.split("|")[1].strip() for ln in rows] == ["1", "2", "8"]
    assert all(math.isfinite(float(ln.split("|")[5])) for ln in rows)


BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name):
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH_DIR))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH_DIR))
    return mod


def test_trainer_step_and_reorder_benchmarks_run(capsys):
    _script("trainer_step").main(["--graph", "syn:20000", "--rounds", "2", "--eval-users", "50"])
    out = capsys.readouterr().out
    assert "step / floor" in out and "samples/s" in out
    _script("reorder").main(["--edges", "20000", "--rounds", "1", "--dim", "8"])
    out = capsys.readouterr().out
    rows = [ln.split("|") for ln in out.splitlines() if ln.startswith("| ") and "x |" in ln]
    whats = ["lightgcn fwd+bwd", "trainer step, B = 2048 (2048)", "trainer step, B = "]
    assert len(rows) == 3 * len(whats)
    for k, what in enumerate(whats):
        assert [r[2].strip() for r in rows[3 * k:3 * k + 3]] == ["generated", "random", "degree"]
        assert all(r[3].strip().startswith(what) for r in rows[3 * k:3 * k + 3])
    _script("bf16_storage").main(["--edges", "20000", "--rounds", "1", "--dim", "8"])
    rows = [ln.split("|") for ln in capsys.readouterr().out.splitlines()
            if ln.startswith("| ") and "x |" in ln]
    assert [r[2].strip() for r in rows] == ["spmm fwd", "spmm fwd+bwd"]
    assert all(r[-2].strip() in ("met", "not met") for r in rows)


def test_serving_latency_benchmark_runs(tmp_path, capsys):
    from graphpro_ext.graphpro.cli import main

    assert main(["synth", str(tmp_path / "d"), "--synthetic-users", "80", "--synthetic-items",
                 "50", "--synthetic-snapshots", "4", "--hold-out-last"]) == 0
    assert main(["run", "--data", str(tmp_path / "d"), "--preset", "synthetic", "--out",
                 str(tmp_path / "r"), "--methods", "graphpro", "--no-final-test", "--dim", "8",
                 "--epochs", "1", "--stage-epochs", "1", "--threads", "1"]) == 0
    capsys.readouterr()
    _script("serving_latency").main(["--run", str(tmp_path / "r"), "--snapshot",
                                     str(tmp_path / "d" / "next_snapshot.txt"), "--budget", "1",
                                     "--work", str(tmp_path / "w")])
    out = capsys.readouterr().out
    for what in ("load the newest model", "recommend top-20 for every user", "update --mode prompt",
                 "update --mode finetune", "parquet"):
        assert what in out


def test_gate_benchmark_runs_and_agrees(capsys):
    assert _script("bench_gate").main(["--rows", "3000", "--dim", "16", "--rounds", "2",
                                       "--interactions", "5000", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("bitwise equal: True") == 3 and "speed-up" in out and "forward" in out


def test_mixgcf_benchmark_runs_and_agrees(capsys):
    _script("bench_mixgcf").main(["--dataset", "syn:20000", "--batches", "2", "--batch-size",
                                  "128", "--threads", "1"])
    out = capsys.readouterr().out
    assert "faster" in out and "gathered" in out and "materialised" in out
    assert "previous scope" in out
    worst = float(out.split("largest loss difference from ours")[1].split()[0])
    assert worst < 1e-5  # the four formulations train the same loss


def test_symmetry_check_benchmark_runs(capsys):
    assert _script("bench_symmetry_check").main(["--dataset", "syn:20000", "--dim", "8",
                                                 "--rounds", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("transposed layer") == 3 and "new graph" in out


def test_simgcl_benchmark_runs_and_agrees(capsys):
    """Both contrastive backbones: every formulation runs; SGL's differ only by rounding,
    SimGCL's by their noise streams (a small relative loss difference)."""
    for model, bound in (("sgl", 1e-5), ("simgcl", 0.05)):
        assert _script("bench_simgcl").main(["--model", model, "--dataset", "syn:20000",
                                             "--batches", "2", "--batch-size", "128",
                                             "--threads", "1"]) == 0
        out = capsys.readouterr().out
        diffs = [float(x.split()[0]) for x in out.split("loss differs by ")[1:]]
        assert "faster" in out and len(diffs) == (2 if model == "simgcl" else 1)
        assert max(diffs) < bound, out
    assert _script("bench_simgcl").main(["--model", "lightgcn"]) == 2
