"""The CPU row kernels on both instruction-set paths (cpu_isa.h): the portable baseline build and
the AVX2+FMA path with its register-resident d = 64 accumulator, against the reference, forward
and backward, with and without dropout and the temporal term."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close, assert_close_bound, sum_terms
from op_graphs import random_temporal_graph

import graphpro_ext._C as _C
import graphpro_ext.ops as ops
import graphpro_ext.reference as ref


@pytest.fixture(params=["baseline", "auto"])
def isa(request):
    used = _C.set_cpu_isa(request.param)
    yield used
    _C.set_cpu_isa("auto")


def test_switch_reports_the_isa_in_use():
    assert _C.set_cpu_isa("baseline") == "baseline" == _C.cpu_isa()
    assert _C.set_cpu_isa("auto") in ("avx2", "baseline")
    with pytest.raises(ValueError, match="cpu isa must be 'auto' or 'baseline'"):
        _C.set_cpu_isa("avx512")


@pytest.mark.parametrize("d", [64, 8, 96])  # 64: the fixed-width path; others: generic rows
@pytest.mark.parametrize("keep_prob", [1.0, 0.6])
@pytest.mark.parametrize("time_weight", [0.0, 0.5])
def test_lightgcn_and_layer_match_reference(isa, gen, seed, d, keep_prob, time_weight):
    g = random_temporal_graph(gen, 50, 60, big_row=d == 64)
    x = torch.randn(g.num_nodes, d, generator=gen, requires_grad=True)
    coef = torch.randn(g.num_nodes, d, generator=gen)
    for name, f, fr in [
        ("lightgcn",
         lambda z: ops.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, z, 3, time_weight,
                                keep_prob, 9),
         lambda z: ref.lightgcn(g.rowptr, g.col, g.edge_time, g.node_norm, z, 3, time_weight,
                                keep_prob, 9)),
        ("temporal_propagate",
         lambda z: ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, z,
                                          time_weight, keep_prob, 9),
         lambda z: ref.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, z,
                                          time_weight, keep_prob, 9)),
    ]:
        x.grad = None
        out = f(x)
        (out * coef).sum().backward()
        xd = x.detach().double().requires_grad_()
        expected = fr(xd)
        (expected * coef.double()).sum().backward()
        # both ops are linear in x, so the same op on |x| (and |coef| for the gradient) bounds
        # the magnitude of every summed term; the allowance grows with the hub row (sum_terms)
        bound = fr(xd.detach().abs())
        xb = xd.detach().clone().requires_grad_()
        (fr(xb) * coef.double().abs()).sum().backward()
        terms = sum_terms(g.rowptr, 3)
        assert_close_bound(out.detach(), expected.detach(), bound, seed=seed, terms=terms,
                           what=f"{name} fwd ({isa}, d={d})")
        assert_close_bound(x.grad, xd.grad, xb.grad, seed=seed, terms=terms,
                           what=f"{name} grad ({isa}, d={d})")


def test_paths_agree_on_a_bf16_layer(gen, seed):
    """x in bf16 takes the generic row even at d = 64 (the fixed path is fp32 only)."""
    g = random_temporal_graph(gen, 40, 40)
    x = torch.randn(g.num_nodes, 64, generator=gen).bfloat16()
    outs = []
    for isa in ("baseline", "auto"):
        _C.set_cpu_isa(isa)
        outs.append(ops.temporal_propagate(g.rowptr, g.col, g.edge_time, g.node_norm, x, 0.5))
    _C.set_cpu_isa("auto")
    assert_close(outs[1].float(), outs[0].float(), rtol=1e-2, atol=1e-2, seed=seed,
                 what="bf16 layer, avx2 vs baseline")


@pytest.mark.parametrize("d", [64, 7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_simgcl_perturb_same_on_both_paths(gen, seed, d, dtype):
    """The keyed noise is integer arithmetic and the norm is summed in the same order on both
    paths: the same output bit for bit, and the reference's values."""
    x = torch.randn(300, d, generator=gen).to(dtype)
    out = {}
    try:
        for isa in ("baseline", "auto"):
            _C.set_cpu_isa(isa)
            out[isa] = ops.simgcl_perturb(x, 0.1, seed)
    finally:
        _C.set_cpu_isa("auto")
    assert torch.equal(out["baseline"], out["auto"]), seed
    tol = {torch.float32: 1e-6, torch.float64: 1e-12, torch.bfloat16: 1e-2}[dtype]
    assert_close(out["auto"].double(), ref.simgcl_perturb(x, 0.1, seed).double(), seed=seed,
                 what="out", rtol=tol, atol=tol)
