"""The CUDA build itself, checked without a GPU: architectures, CUDA kernel registrations, the
glue reached through the dispatcher, and the shared object's symbols.

On the CPU-only build the CUDA-build tests skip. `scripts/cuda_ci.sh` (the CI's CUDA job) sets
GRAPHPRO_REQUIRE_CUDA_BUILD=1, which turns those skips into failures, and
GRAPHPRO_EXPECT_CUDA_ARCHS=80,90, the architectures the build must report.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import graphpro_ext
import graphpro_ext.ops  # noqa: F401  (registers the Python-side kernels)
from graphpro_ext import _C

REQUIRE_CUDA = os.environ.get("GRAPHPRO_REQUIRE_CUDA_BUILD") == "1"
EXPECT_ARCHS = os.environ.get("GRAPHPRO_EXPECT_CUDA_ARCHS")


def _needs_cuda_build():
    if _C.with_cuda():
        return
    if REQUIRE_CUDA:
        pytest.fail("GRAPHPRO_REQUIRE_CUDA_BUILD=1 but graphpro_ext was built without CUDA kernels "
                    f"(build_info: {graphpro_ext.build_info()})")
    pytest.skip("CPU-only build of graphpro_ext")


def test_required_cuda_build_is_one():
    if REQUIRE_CUDA:
        info = graphpro_ext.build_info()
        assert info["built"] and info["with_cuda"], info
        assert torch.version.cuda is not None, "CUDA kernels required but torch is a CPU build"


def test_cuda_archs_are_named():
    """The build reports the architectures it holds: numbers joined by commas, never `native`
    (which nvcc silently turns into sm_75 on a machine without a GPU)."""
    _needs_cuda_build()
    archs = _C.cuda_archs()
    assert re.fullmatch(r"\d+[af]?(-real|-virtual)?(,\d+[af]?(-real|-virtual)?)*", archs), archs
    if EXPECT_ARCHS is not None:
        assert archs == EXPECT_ARCHS, f"built for {archs!r}, expected {EXPECT_ARCHS!r}"


def _graphpro_ops_with_kernel(key: str) -> set[str]:
    regs = torch._C._dispatch_get_registrations_for_dispatch_key(key)
    return {r.split("::", 1)[1].split(".", 1)[0] for r in regs if r.startswith("graphpro::")}


def test_every_cpu_kernel_has_a_cuda_kernel():
    """Every op with a CPU kernel has a CUDA one: a dropped TORCH_LIBRARY_IMPL(graphpro, CUDA)
    line (or a glue file left out of the build) fails here, not on the first GPU."""
    _needs_cuda_build()
    cpu = _graphpro_ops_with_kernel("CPU")
    cuda = _graphpro_ops_with_kernel("CUDA")
    # topk_masked: the CPU has its own kernel, CUDA runs the device-generic composite
    composite = {"topk_masked"}
    assert composite <= _graphpro_ops_with_kernel("CompositeExplicitAutograd")
    assert len(cpu) >= 9, cpu
    assert cpu - cuda - composite == set(), \
        f"ops without a CUDA kernel: {sorted(cpu - cuda - composite)}"
    for name in sorted(cpu - composite):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"graphpro::{name}", "CUDA"), name


def _cpu_args(name: str):
    """Valid CPU arguments for each CUDA-kernel op (a 3-node graph): the glue's shape checks pass
    and its device check is the first to fail."""
    rowptr = torch.tensor([0, 2, 3, 4], dtype=torch.int64)
    col = torch.tensor([1, 2, 0, 0], dtype=torch.int32)
    t = torch.tensor([1.0, 2.0, 3.0, 4.0])
    norm = torch.ones(3)
    x = torch.randn(3, 4)
    hist_rowptr = torch.tensor([0, 1, 2], dtype=torch.int64)
    hist_items = torch.tensor([0, 1], dtype=torch.int64)
    users = torch.tensor([0, 1], dtype=torch.int64)
    return {
        "edge_softmax": (rowptr, t),
        "edge_softmax_backward": (rowptr, t, t.clone()),
        "spmm_kernel": (rowptr, col, t, x, None),
        "sddmm": (rowptr, col, x, x),
        "temporal_row_stats": (rowptr, col, t, 1.0, 0),
        "temporal_spmm": (rowptr, col, t, norm, torch.zeros(3), x, 0.5, 1.0, 0, False),
        "lightgcn": (rowptr, col, t, norm, x, 2, 0.5, 1.0, 0),
        "lightgcn_backward": (rowptr, col, t, norm, torch.zeros(3), x, 2, 0.5, 1.0, 0),
        "sample_negatives": (hist_rowptr, hist_items, users, 5, 1, 0),
        "mask_history_": (torch.zeros(2, 5), hist_rowptr, hist_items, users, 0),
        "khop_subgraph": (rowptr, col, torch.tensor([0], dtype=torch.int64), 1),
        "simgcl_perturb": (x, 0.1, 0),
    }[name]


CUDA_KERNEL_OPS = ["edge_softmax", "edge_softmax_backward", "spmm_kernel", "sddmm",
                   "temporal_row_stats", "temporal_spmm", "lightgcn", "lightgcn_backward",
                   "sample_negatives", "mask_history_", "simgcl_perturb"]


@pytest.mark.parametrize("name", CUDA_KERNEL_OPS)
def test_cuda_glue_rejects_cpu_tensors(name):
    """The CUDA kernel, reached through the dispatcher with CPU tensors, gives the glue's own
    error: proves the glue is linked, registered under CUDA and runs its checks (no GPU needed)."""
    _needs_cuda_build()
    op = getattr(torch.ops.graphpro, name).default
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    shown = name.removesuffix("_kernel")  # spmm_kernel reports itself as graphpro.spmm
    with pytest.raises(RuntimeError, match=rf"graphpro\.{shown}: expected CUDA tensors, got one "
                                           r"on cpu"):
        op.redispatch(keys, *_cpu_args(name))


def _undefined_symbols(path: str) -> set[str]:
    out = subprocess.run(["nm", "-D", "--undefined-only", path], capture_output=True, text=True,
                         check=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-2] == "U":  # 'w' (weak) may stay undefined
            syms.add(parts[-1].split("@", 1)[0])
    return syms


def _defined_symbols(path: str) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1].split("@", 1)[0] for line in out.splitlines() if line.strip()}


@pytest.mark.skipif(shutil.which("nm") is None or shutil.which("ldd") is None,
                    reason="needs nm and ldd (binutils, libc)")
def test_no_unresolved_native_symbols():
    """Every undefined symbol of _C except the Python C API is defined by a library that ldd
    resolves, without LD_LIBRARY_PATH: the run path finds torch (and torch's libcudart)."""
    so = _C.__file__
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    ldd = subprocess.run(["ldd", so], capture_output=True, text=True, check=True, env=env).stdout
    missing = [line.strip() for line in ldd.splitlines() if "not found" in line]
    assert not missing, f"libraries ldd cannot find for {so}: {missing}"
    # "libx.so => /path (0x..)" lines, and the dynamic loader's own "/path (0x..)" line.
    libs = [m.group(1) for m in re.finditer(r"(?:=>\s+|^\s*)(/\S+)\s+\(0x", ldd, re.M)]
    defined: set[str] = set()
    for lib in libs:
        defined |= _defined_symbols(lib)
    unresolved = sorted(s for s in _undefined_symbols(so) - defined
                        if not s.startswith(("Py", "_Py")))
    assert not unresolved, (f"{len(unresolved)} symbols of {Path(so).name} defined nowhere: "
                            f"{unresolved[:20]}")
    if _C.with_cuda():
        cudart = [lib for lib in libs if "libcudart" in Path(lib).name]
        assert cudart, "a CUDA build must link the shared CUDA runtime"
        assert all("cudart_static" not in lib for lib in libs)
