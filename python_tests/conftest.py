"""Shared fixtures of the operator tests.

* ``device``: every op test runs on "cpu" and "cuda"; cuda is skipped when torch has no GPU or
  graphpro_ext was built without the CUDA kernels.
* ``seed`` / ``gen``: fresh random inputs on every run. The seed is drawn at random (or taken from
  ``GRAPHPRO_TEST_SEED`` to replay a failure) and reported with every failing test.
* ``slow``: tests in files that others own are marked slow here, by id (SLOW_TESTS), so that
  ``make test-fast`` (``pytest -m "not slow"``) deselects them; a test in a file of one's own
  takes ``@pytest.mark.slow`` directly.
"""

from __future__ import annotations

import math
import os
import random
import re
import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import op_graphs` from the tests

import graphpro_ext  # noqa: E402
import graphpro_ext.ops  # noqa: E402,F401  (registers fake kernels and autograd)


def cuda_usable() -> bool:
    return torch.cuda.is_available() and graphpro_ext.with_cuda()


_SKIP_CUDA = pytest.mark.skipif(
    not cuda_usable(), reason="needs a CUDA device and a graphpro_ext build with CUDA kernels"
)
DEVICES = ["cpu", pytest.param("cuda", marks=[_SKIP_CUDA, pytest.mark.cuda])]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture
def seed(request) -> int:
    env = os.environ.get("GRAPHPRO_TEST_SEED")
    s = int(env) if env else random.SystemRandom().randrange(2**31)
    request.node.user_properties.append(("seed", s))
    return s


@pytest.fixture
def gen(seed) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# The slowest tests by `pytest --durations` (times: docs/TRAINER.md, "Measured speed"), as
# "<file>::<test name with parameters>" patterns in which `*` matches anything (brackets are
# literal).
SLOW_TESTS = [
    # a whole `graphpro run` three times (two crashes with GRAPHPRO_FAIL_AT, then resumes)
    "test_cli.py::test_resume_after_crashes_matches_uninterrupted",
    # TorchInductor compiles C++ for every graph. The aot_eager variants (fake kernels, autograd
    # and fullgraph tracing, without the C++ compile) stay in the fast set.
    "test_ops_compile.py::*[*inductor*]",
    # the largest case measures a subprocess's peak memory over a 30000-node run
    "test_reliability.py::test_memory_estimate_bounds_a_measured_peak[30000-*]",
]
_SLOW_RE = re.compile("|".join("(?:" + ".*".join(map(re.escape, p.split("*"))) + ")"
                              for p in SLOW_TESTS))


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects by mark
def pytest_collection_modifyitems(config, items):
    modules = {}
    for item in items:
        name = item.nodeid.rsplit("/", 1)[-1]
        modules.setdefault(name.split("::", 1)[0], getattr(item, "module", None))
        if _SLOW_RE.fullmatch(name):
            item.add_marker(pytest.mark.slow)
    for pat in SLOW_TESTS:  # a renamed test must not silently drop out of the list
        file, test = pat.split("::", 1)
        func = test.split("[", 1)[0]
        if file in modules and "*" not in func and not hasattr(modules[file], func):
            warnings.warn(pytest.PytestWarning(f"conftest.SLOW_TESTS: {file} has no {func}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for name, value in item.user_properties:
            if name == "seed":
                rep.sections.append(
                    ("random seed",
                     f"replay with GRAPHPRO_TEST_SEED={value} pytest '{item.nodeid}'")
                )


# ---------------------------------------------------------------------------------------------
# Comparison helpers
# ---------------------------------------------------------------------------------------------
def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    if a.numel() == 0:
        return 0.0
    return float((a - b).abs().max())


def assert_close(actual, expected, *, seed, rtol=None, atol=None, what="") -> None:
    """torch.testing.assert_close on CPU copies with the seed in the message."""
    torch.testing.assert_close(
        actual.cpu(), expected.to(actual.dtype).cpu(), rtol=rtol, atol=atol,
        msg=lambda m: f"{what} (seed={seed}): {m}",
    )


def assert_lowp_close(ours, ref_same, ref64, *, seed, what="", eps_rel=1e-3) -> None:
    """CONVENTIONS.md low-precision rule: our error vs the fp64 reference is at most 2x the error of
    a same-precision PyTorch reference, plus a small epsilon relative to the output's scale."""
    assert ours.dtype == ref_same.dtype, (ours.dtype, ref_same.dtype)
    assert torch.isfinite(ours).all(), f"{what}: non-finite output (seed={seed})"
    ours_err = max_err(ours, ref64)
    ref_err = max_err(ref_same, ref64)
    scale = float(ref64.abs().max()) if ref64.numel() else 0.0
    eps = eps_rel * max(scale, 1e-6)
    assert ours_err <= 2 * ref_err + eps, (
        f"{what} (seed={seed}): max error {ours_err:.3g} > 2 x {ref_err:.3g} (same-precision "
        f"reference) + {eps:.3g}"
    )


# Error allowed relative to the magnitude bound of a sum (sum of |terms|): ~32 ulps of the bound,
# enough for the short sums (rows of a few dozen terms) most checks use.
BOUND_REL = {torch.float32: 2e-6, torch.float64: 1e-14}
UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.float64: 2.0**-53}
# Probabilistic rounding-error bound for a sum of n terms (Higham & Mary, SIAM J. Sci. Comput.
# 2019): |error| <= lam * sqrt(n) * u * sum|terms| fails with probability <= 2 exp(-lam^2 / 2)
# under their model; lam = 6 puts that below 1e-7 per element. A sum of same-sign terms through
# a hub row really drifts by ~sqrt(n) * u: fp32 lightgcn layers through a hub in power form (the
# CUDA kernel's order) exceeded the fixed BOUND_REL above, while the CPU kernel's Horner form
# stays inside it. A missing term of such a row still costs ~1/n of the bound, several times
# more than the allowance. Measured figures: docs/DESIGN.md (lightgcn notes and "Precision").
BOUND_LAMBDA = 6.0


def sum_terms(rowptr: torch.Tensor, layers: int = 1) -> int:
    """Rounding steps on the longest chain of a propagation: the longest row, once per layer,
    plus the layer sum."""
    longest = int((rowptr[1:] - rowptr[:-1]).max()) if rowptr.numel() > 1 else 0
    return max(longest, 1) * max(layers, 1) + layers + 1


def bound_rel(dtype: torch.dtype, terms: int) -> float:
    """Allowed error relative to the magnitude bound for sums of up to ``terms`` terms."""
    return max(BOUND_REL[dtype], BOUND_LAMBDA * math.sqrt(terms) * UNIT_ROUNDOFF[dtype])


def assert_close_bound(actual, expected, bound, *, seed, what="", rel=None, terms=None,
                       rtol=1e-6) -> None:
    """|actual - expected| <= rel * bound + rtol * |expected| elementwise, where ``bound`` holds
    the sum of the magnitudes of the summed terms (e.g. the op applied to |weights| and |x|):
    the floating-point error of a long sum scales with it, a wrong or missing term does not.
    ``terms`` (see sum_terms) widens ``rel`` for long accumulations as sqrt(terms)."""
    if rel is None:
        rel = BOUND_REL[actual.dtype] if terms is None else bound_rel(actual.dtype, terms)
    a, e, b = actual.double().cpu(), expected.double().cpu(), bound.double().cpu()
    assert a.shape == e.shape, f"{what} (seed={seed}): shape {tuple(a.shape)} != {tuple(e.shape)}"
    assert torch.isfinite(a).all() == torch.isfinite(e).all(), f"{what} (seed={seed}): non-finite"
    err = (a - e).abs()
    allowed = rel * b.abs() + rtol * e.abs() + 1e-300
    bad = err > allowed
    if bad.any():
        i = int(torch.argmax((err / allowed).flatten()))
        raise AssertionError(
            f"{what} (seed={seed}): {int(bad.sum())}/{bad.numel()} elements off; worst at flat "
            f"index {i}: actual {a.flatten()[i].item():.9g}, expected {e.flatten()[i].item():.9g}, "
            f"allowed error {allowed.flatten()[i].item():.3g} (bound {b.flatten()[i].item():.3g})"
        )
