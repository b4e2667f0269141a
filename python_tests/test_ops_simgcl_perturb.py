"""graphpro.simgcl_perturb: SimGCL's ``x + sign(x) * eps * u / |u|`` with keyed uniforms u
(SplitMix64 output of (seed, row, column)), identity gradient."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close, cuda_usable

import graphpro_ext.ops as ops
import graphpro_ext.reference as ref

M64 = 2**64


def _splitmix_uniforms(seed: int, n: int, d: int) -> list[list[float]]:
    """Python integers mirroring device_math.h::noise_pair_bits: an oracle for the oracle."""
    def mix(z):
        z %= M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % M64
        return z ^ (z >> 31)
    key, pairs = mix(seed + 0x632BE59BD9B4E019), (d + 1) // 2
    rows = []
    for r in range(n):
        row = []
        for p in range(pairs):
            bits = mix(key + (r * pairs + p + 1) * 0x9E3779B97F4A7C15)
            row += [(bits >> 40) / 2**24, ((bits >> 8) & 0xFFFFFF) / 2**24]
        rows.append(row[:d])
    return rows


@pytest.mark.parametrize("s", [0, 7, -3, 2**63 + 5])
def test_reference_noise_is_the_documented_stream(s):
    assert ref.simgcl_noise(5, 7, s).tolist() == _splitmix_uniforms(s, 5, 7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [1, 2, 5, 64, 67])
def test_matches_reference(device, gen, seed, dtype, d):
    x = torch.randn(37, d, generator=gen, dtype=dtype).to(device)
    x[0, 0] = 0.0  # sign(0) = 0: a zero stays zero
    out = ops.simgcl_perturb(x, 0.1, seed)
    exp = ref.simgcl_perturb(x, 0.1, seed)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert_close(out, exp, seed=seed, what="out", rtol=tol, atol=tol)
    assert out[0, 0] == 0
    # the noise: radius eps in every row without a zero of x, the same signs as x
    noise = out - x
    assert_close(noise[1:].norm(dim=1), torch.full((36,), 0.1, dtype=dtype, device=device),
                 seed=seed, what="radius", rtol=1e-5, atol=1e-6)
    assert ((noise * x) >= 0).all()


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 1e-2)])
def test_low_precision(device, gen, seed, dtype, tol):
    x = torch.randn(50, 64, generator=gen).to(dtype).to(device)
    out = ops.simgcl_perturb(x, 0.1, seed)
    assert out.dtype == dtype
    assert_close(out.float(), ref.simgcl_perturb(x, 0.1, seed).float(), seed=seed, what="out",
                 rtol=tol, atol=tol)


def test_uniforms_look_uniform(seed):
    """Mean 1/2, variance 1/12, no correlation between neighbouring columns or rows."""
    u = ref.simgcl_noise(2000, 64, seed).double()
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002, seed
    c = u - 0.5
    for a, b in ((c[:, 1:], c[:, :-1]), (c[1:], c[:-1])):
        corr = (a * b).mean() / (1 / 12)
        assert abs(corr) < 0.01, (seed, float(corr))
    assert u.min() >= 0 and u.max() < 1


def test_keyed_deterministic_and_thread_independent(gen, seed):
    x = torch.randn(5000, 64, generator=gen)
    a = ops.simgcl_perturb(x, 0.1, seed)
    assert torch.equal(a, ops.simgcl_perturb(x, 0.1, seed))
    assert not torch.equal(a, ops.simgcl_perturb(x, 0.1, seed + 1))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        b = ops.simgcl_perturb(x, 0.1, seed)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(a, b), seed
    # row r's noise depends on (seed, r, d), not on the other rows: a prefix gets the same noise
    assert torch.equal(ops.simgcl_perturb(x[:100], 0.1, seed), a[:100])


def test_non_contiguous_and_empty(device, gen, seed):
    x = torch.randn(64, 40, generator=gen).to(device)
    assert torch.equal(ops.simgcl_perturb(x.T, 0.1, seed),
                       ops.simgcl_perturb(x.T.contiguous(), 0.1, seed))
    for shape in ((0, 8), (3, 0)):
        out = ops.simgcl_perturb(torch.empty(shape, device=device), 0.1, seed)
        assert out.shape == shape
    assert torch.equal(ops.simgcl_perturb(x, 0.0, seed), x)


def test_gradient_is_identity(device, gen, seed):
    x = torch.randn(9, 6, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    torch.autograd.gradcheck(lambda t: ops.simgcl_perturb(t, 0.1, seed), (x,))
    g = torch.randn(9, 6, generator=gen, dtype=torch.float64).to(device)
    (grad,) = torch.autograd.grad(ops.simgcl_perturb(x, 0.1, seed), x, g)
    assert torch.equal(grad, g)


def test_opcheck(device, gen):
    x = torch.randn(12, 8, generator=gen).to(device)
    for args in ((x, 0.1, 3), (x.requires_grad_(), 0.2, -5)):
        torch.library.opcheck(torch.ops.graphpro.simgcl_perturb.default, args)


def test_compile(device, gen, seed):
    torch._dynamo.reset()
    x = torch.randn(20, 8, generator=gen, dtype=torch.float64).to(device)

    def view(t):
        h = ops.simgcl_perturb(t, 0.1, seed)
        return (ops.simgcl_perturb(h * 0.5, 0.1, seed + 1) ** 2).sum()

    a = x.clone().requires_grad_()
    view(a).backward()
    b = x.clone().requires_grad_()
    torch.compile(view, fullgraph=True, backend="aot_eager")(b).backward()
    assert_close(b.grad, a.grad, seed=seed, what="grad", rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not cuda_usable(), reason="CPU==CUDA parity needs a GPU build")
@pytest.mark.parametrize("d", [3, 64, 200])
def test_cpu_cuda_parity(gen, seed, d):
    x = torch.randn(3000, d, generator=gen)
    assert_close(ops.simgcl_perturb(x.cuda(), 0.1, seed).cpu(), ops.simgcl_perturb(x, 0.1, seed),
                 seed=seed, what="out", rtol=1e-6, atol=1e-6)


class TestBadInputs:
    def test_shape_and_dtype(self, device):
        with pytest.raises(RuntimeError, match="x must be 2-D"):
            ops.simgcl_perturb(torch.zeros(4, device=device), 0.1, 0)
        with pytest.raises(RuntimeError, match="x must be a floating-point tensor"):
            ops.simgcl_perturb(torch.zeros(2, 2, dtype=torch.long, device=device), 0.1, 0)

    @pytest.mark.parametrize("eps", [-0.1, float("nan"), float("inf")])
    def test_bad_eps(self, device, eps):
        x = torch.zeros(2, 2, device=device)
        with pytest.raises(ValueError, match="eps must be finite and >= 0"):
            ops.simgcl_perturb(x, eps, 0)
        with pytest.raises(RuntimeError, match="eps must be finite and >= 0"):
            torch.ops.graphpro.simgcl_perturb(x, eps, 0)

    def test_bad_seed(self, device):
        with pytest.raises(TypeError, match="seed"):
            ops.simgcl_perturb(torch.zeros(2, 2, device=device), 0.1, 1.5)
