"""Build information of graphpro_ext._C and the CPU-only-build error for CUDA inputs."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
import torch
from conftest import cuda_usable

import graphpro_ext
import graphpro_ext.ops as ops
from graphpro_ext import _C

ROOT = Path(__file__).resolve().parents[1]
OPS = ["edge_softmax", "edge_softmax_backward", "spmm_kernel", "spmm", "sddmm",
       "temporal_row_stats", "temporal_spmm", "temporal_propagate", "lightgcn",
       "lightgcn_backward", "sample_negatives", "mask_history_", "topk_masked"]


def test_version_matches_project():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _C.__version__ == version
    assert graphpro_ext.__version__ == version
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", version)


def test_build_info_is_consistent():
    info = graphpro_ext.build_info()
    assert isinstance(_C.with_cuda(), bool) and isinstance(_C.cuda_archs(), str)
    assert info["with_cuda"] is _C.with_cuda() is graphpro_ext.with_cuda()
    assert info["cuda_archs"] == _C.cuda_archs() and info["torch"] == torch.__version__
    if _C.with_cuda():
        assert _C.cuda_archs() != "", "a CUDA build must report its architectures"
        assert torch.version.cuda is not None, "CUDA kernels in a build against CPU-only torch"
    else:
        assert _C.cuda_archs() == ""
    if torch.version.cuda is None:
        assert not _C.with_cuda()


def test_every_schema_registered():
    for name in OPS:
        op = getattr(torch.ops.graphpro, name)
        assert op.default._schema.name == f"graphpro::{name}"


@pytest.mark.parametrize("name", ["edge_softmax", "spmm_kernel", "sddmm", "temporal_row_stats",
                                  "temporal_spmm", "lightgcn", "lightgcn_backward",
                                  "sample_negatives", "mask_history_"])
def test_backend_kernels_registered(name):
    """Each device kernel is registered for CPU (and CUDA in a CUDA build); composite ops are
    device-generic."""
    op = f"graphpro::{name}"
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CPU")
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA") == _C.with_cuda()


@pytest.mark.parametrize("name", ["spmm", "temporal_propagate", "topk_masked"])
def test_composite_ops_registered(name):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"graphpro::{name}",
                                                          "CompositeExplicitAutograd")


def _fake_cuda(*shapes_dtypes):
    """CUDA tensors without a GPU: FakeTensorMode tensors carry device cuda but no data."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        return [torch.empty(s, dtype=d, device="cuda") for s, d in shapes_dtypes]


CPU_ONLY_MSG = r"graphpro_ext was built without CUDA kernels .*move the inputs to the CPU"


@pytest.mark.skipif(_C.with_cuda(), reason="the CPU-only-build error needs a CPU-only build")
class TestCpuOnlyBuild:
    def test_check_backend_rejects_cuda(self):
        (t,) = _fake_cuda(((3,), torch.float32))
        with pytest.raises(RuntimeError, match=CPU_ONLY_MSG):
            ops._check_backend(torch.zeros(1), None, t)
        ops._check_backend(torch.zeros(1), None)  # CPU inputs pass

    @pytest.mark.parametrize("op", ["edge_softmax", "spmm", "sddmm", "temporal_propagate",
                                    "lightgcn", "sample_negatives", "topk_masked"])
    def test_every_wrapper_raises_clear_error(self, op):
        rowptr, col, w, x, vec = _fake_cuda(((3,), torch.int64), ((2,), torch.int32),
                                            ((2,), torch.float32), ((2, 4), torch.float32),
                                            ((2,), torch.float32))
        call = {
            "edge_softmax": lambda: ops.edge_softmax(rowptr, w),
            "spmm": lambda: ops.spmm(rowptr, col, w, x),
            "sddmm": lambda: ops.sddmm(rowptr, col, x, x),
            "temporal_propagate": lambda: ops.temporal_propagate(rowptr, col, w, vec, x),
            "lightgcn": lambda: ops.lightgcn(rowptr, col, w, vec, x),
            "sample_negatives": lambda: ops.sample_negatives(rowptr, col, col, 5, 2, 0),
            "topk_masked": lambda: ops.topk_masked(x, x, rowptr, col, 2),
        }[op]
        with pytest.raises(RuntimeError, match=CPU_ONLY_MSG):
            call()

    def test_real_cuda_tensor_if_torch_has_cuda(self):
        if not torch.cuda.is_available():
            pytest.skip("no GPU: covered by the fake-CUDA tests above")
        with pytest.raises(RuntimeError, match=CPU_ONLY_MSG):
            ops.edge_softmax(torch.tensor([0, 1], device="cuda"), torch.ones(1, device="cuda"))


def test_check_backend_silent_when_built_with_cuda(monkeypatch):
    """The error depends on the build flag (read once at import), not on the device alone."""
    (t,) = _fake_cuda(((3,), torch.float32))
    assert ops._WITH_CUDA is _C.with_cuda()
    monkeypatch.setattr(ops, "_WITH_CUDA", True)
    ops._check_backend(t)
    monkeypatch.setattr(ops, "_WITH_CUDA", False)
    with pytest.raises(RuntimeError, match=CPU_ONLY_MSG):
        ops._check_backend(t)


@pytest.mark.skipif(not cuda_usable(), reason="needs a CUDA build and a GPU")
def test_cuda_build_runs_on_gpu():
    out = ops.edge_softmax(torch.tensor([0, 2], device="cuda"), torch.zeros(2, device="cuda"))
    assert out.device.type == "cuda" and torch.allclose(out.cpu(), torch.full((2,), 0.5))


@pytest.mark.parametrize("user_setting", [None, "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"])
def test_entry_point_keeps_freed_heap_for_reuse(user_setting):
    """After the entry point's tuning, glibc serves a 100 MiB allocation from its heap (below the
    program break), not from a fresh mmap, unless the user configured malloc themselves; the
    library import changes nothing."""
    import subprocess
    import sys

    if sys.platform != "linux":
        pytest.skip("glibc's mallopt: Linux only")
    from graphpro_ext.graphpro import entry

    env = {k: v for k, v in os.environ.items() if k not in entry.MALLOC_VARIABLES}
    if user_setting:
        env[user_setting] = "glibc.malloc.top_pad=131072" if user_setting == "GLIBC_TUNABLES" \
            else "131072"
    code = (
        "import ctypes\n"
        "import graphpro_ext.graphpro\n"
        "from graphpro_ext.graphpro import entry\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.malloc.restype = libc.sbrk.restype = ctypes.c_void_p\n"
        "libc.sbrk.argtypes = (ctypes.c_long,)\n"
        "def heap():\n"
        "    p = libc.malloc(100 << 20)\n"
        "    inside = p < libc.sbrk(0)\n"
        "    libc.free(ctypes.c_void_p(p))\n"
        "    return inside\n"
        "print(heap(), entry.keep_freed_heap(), heap())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True).stdout.split()
    assert out[0] == "False"  # glibc's default: a fresh mapping
    assert out[1:] == (["False", "False"] if user_setting else ["True", "True"])


@pytest.mark.parametrize("preset,expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_wait_policy_default(preset, expected):
    """The `graphpro` entry point (not the library) makes OpenMP threads wait passively unless the
    user chose a policy (spinning threads collapse on a shared 2-core machine), and does so before
    torch is imported; importing graphpro_ext leaves the environment alone."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY",
                                                            "THP_MEM_ALLOC_ENABLE")}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    code = (
        "import os, sys\n"
        "import graphpro_ext, graphpro_ext.graphpro\n"
        "from graphpro_ext.graphpro import entry\n"
        "assert 'torch' not in sys.modules, 'importing the entry point imported torch'\n"
        "print(os.environ.get('OMP_WAIT_POLICY'))\n"
        "entry.tune_process()\n"
        "print(os.environ['OMP_WAIT_POLICY'], os.environ['THP_MEM_ALLOC_ENABLE'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True).stdout.split("\n")
    assert out[0] == (preset or "None")  # the library import set nothing
    assert out[1] == f"{expected} 1"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["graphpro"] == "graphpro_ext.graphpro.entry:main"
