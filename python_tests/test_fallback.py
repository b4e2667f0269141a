"""Without the compiled module: graphpro_ext imports, reports why nothing is built, and the trainer
runs end to end on graphpro_ext.reference (docs/TRAINER.md promises this fallback).

The subprocesses make graphpro_ext._C genuinely unimportable with a sys.meta_path finder that
refuses it before any other finder (the editable install's included) is asked, and check after
the run that no torch.ops.graphpro operator was ever registered.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import graphpro_ext.ops as fused_ops
import graphpro_ext.reference as reference
from graphpro_ext.graphpro import backend

PKG = Path(backend.__file__).resolve().parent  # graphpro_ext/graphpro

# Runs first in every subprocess: graphpro_ext._C cannot be found, as in an unbuilt checkout.
BLOCK_C = """
import sys
class _NoCompiledModule:
    def find_spec(self, name, path=None, target=None):
        if name == "graphpro_ext._C":
            raise ModuleNotFoundError("No module named 'graphpro_ext._C' (blocked by the test)",
                                      name=name)
        return None
sys.meta_path.insert(0, _NoCompiledModule())
"""

# After the code under test: nothing loaded the extension or registered its operators.
ASSERT_NOT_LOADED = """
import torch
assert "graphpro_ext._C" not in sys.modules, "graphpro_ext._C was loaded"
assert not hasattr(torch.ops.graphpro, "lightgcn"), "torch.ops.graphpro.lightgcn is registered"
"""


def _run_blocked(body: str, *args: str, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-c", BLOCK_C + body, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_package_imports_without_compiled_module():
    code = """
import graphpro_ext
info = graphpro_ext.build_info()
assert info["built"] is False and info["with_cuda"] is False and info["cuda_archs"] == "", info
assert "graphpro_ext._C" in info["error"], info
assert graphpro_ext.with_cuda() is False
assert graphpro_ext.compiled_error() == info["error"]
assert isinstance(graphpro_ext.__version__, str) and graphpro_ext.__version__
try:
    import graphpro_ext.ops
except ImportError as e:
    msg = str(e)
else:
    raise AssertionError("graphpro_ext.ops imported without the compiled module")
assert "graphpro_ext._C is not available" in msg, msg
assert "pip install --no-build-isolation --no-deps -e ." in msg, msg
import graphpro_ext.reference, graphpro_ext.graph
from graphpro_ext.graphpro import backend
assert backend.FUSED is False and "graphpro_ext._C" in backend.FUSED_ERROR
assert "graphpro_ext.reference" in backend.backend_name()
try:
    backend.use("fused")
except RuntimeError as e:
    assert "pip install" in str(e), e
else:
    raise AssertionError("backend.use('fused') worked without the compiled module")
print("OK")
""" + ASSERT_NOT_LOADED
    r = _run_blocked(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "OK"


@pytest.mark.slow  # a fresh interpreter imports torch and runs the trainer
def test_trainer_end_to_end_on_reference_ops(tmp_path):
    """`python -m graphpro_ext.graphpro run` (entry point included) on a tiny synthetic dataset."""
    out = tmp_path / "run"
    argv = ["graphpro", "run", "--out", str(out), "--synthetic-users", "60",
            "--synthetic-items", "40", "--synthetic-snapshots", "3", "--dim", "8", "--epochs", "1",
            "--stage-epochs", "1", "--methods", "graphpro,finetune", "--pretrain-val-users", "30"]
    code = f"""
import runpy
sys.argv = {argv!r}
try:
    runpy.run_module("graphpro_ext.graphpro", run_name="__main__", alter_sys=True)
    rc = 0
except SystemExit as e:
    rc = e.code
""" + ASSERT_NOT_LOADED + "sys.exit(rc)\n"
    r = _run_blocked(code, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    res = json.loads((out / "results.json").read_text())
    assert res["backend"].startswith("graphpro_ext.reference"), res["backend"]
    assert {"graphpro", "finetune"} <= set(res["methods"]), list(res["methods"])
    log = (out / "log.txt").read_text()
    assert "graphpro_ext.reference (plain PyTorch; compiled ops not built)" in log, log[:2000]
    assert "graphpro_ext.ops (fused)" not in log


def _names_called(tree: ast.AST, module: str) -> set[str]:
    """Attributes read from the name ``module`` (``backend.lightgcn`` -> "lightgcn")."""
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id == module}


def test_reference_covers_every_op_the_trainer_calls():
    """Every trainer module reaches the ops through backend only, every backend function it calls
    exists, and every op backend forwards exists in both graphpro_ext.ops and the reference."""
    forwarded = _names_called(ast.parse((PKG / "backend.py").read_text()), "_ops")
    assert {"lightgcn", "khop_subgraph", "topk_masked", "sample_negatives"} <= forwarded
    for name in forwarded:
        assert callable(getattr(reference, name, None)), f"reference.{name} is missing"
        assert callable(getattr(fused_ops, name, None)), f"graphpro_ext.ops.{name} is missing"
    for path in sorted(PKG.glob("*.py")):
        if path.name == "backend.py":
            continue
        src = path.read_text()
        assert not re.search(r"graphpro_ext\.ops|from graphpro_ext import .*\bops\b|"
                             r"torch\.ops\.graphpro|\b_C\b", src), (
            f"{path.name} calls the compiled ops directly; go through backend so the reference "
            "fallback covers it")
        for name in _names_called(ast.parse(src), "backend"):
            assert hasattr(backend, name), f"{path.name} calls backend.{name}, which is missing"


def test_fallback_negatives_invariants():
    """The reference path's vectorised negative sampler: in range, outside the history,
    deterministic per seed."""
    rowptr = torch.tensor([0, 3, 3, 9, 10])
    items = torch.tensor([0, 2, 5, 0, 1, 2, 3, 4, 6, 7])  # user 2 misses only items 5 and 7
    users = torch.tensor([0, 1, 2, 3, 2, 2])
    a = backend._numpy_negatives(rowptr, items, users, 8, 5, seed=3)
    b = backend._numpy_negatives(rowptr, items, users, 8, 5, seed=3)
    assert a.shape == (6, 5) and a.dtype == torch.int64 and torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < 8
    for row, u in zip(a.tolist(), users.tolist()):
        hist = set(items[rowptr[u]:rowptr[u + 1]].tolist())
        assert not hist & set(row), (u, row)
    assert set(a[2].tolist()) <= {5, 7} and set(a[4].tolist()) <= {5, 7}


def test_reference_sampler_refuses_a_full_history_instead_of_looping():
    """The numpy sampler used without the compiled ops: a user holding every item has no
    negative; rejection sampling must say so rather than spin forever."""
    import torch

    from graphpro_ext.graphpro import backend

    rp = torch.tensor([0, 3, 4])
    items = torch.tensor([0, 1, 2, 1], dtype=torch.int32)
    with pytest.raises(ValueError, match="user 0 has every one of the 3 items"):
        backend._numpy_negatives(rp, items, torch.tensor([1, 0]), 3, 2, 0)
    out = backend._numpy_negatives(rp, items, torch.tensor([1, 1]), 3, 4, 0)
    assert set(out.flatten().tolist()) <= {0, 2}
