"""graphpro_ext: GraphPro (WWW 2024) with fused CPU/CUDA PyTorch custom ops.

``import graphpro_ext.ops`` registers the ``torch.ops.graphpro`` operators; ``graphpro_ext.graph``
builds temporal graphs; ``graphpro_ext.reference`` holds plain-PyTorch oracles; the ``graphpro``
sub-package is the trainer and CLI.

Importing this package does not import torch or load the compiled module ``graphpro_ext._C``:
that happens on first use (``graphpro_ext.ops``, ``build_info()``, ``with_cuda()``), so the
package, ``graphpro_ext.reference`` and the trainer work without a build, and the ``graphpro``
entry point can set process-wide defaults before torch loads (``graphpro_ext.graphpro.entry``).
"""

from __future__ import annotations

import importlib

BUILD_HINT = ("build it from the repository root with `pip install --no-build-isolation "
              "--no-deps -e .` (or `make setup`)")

_C_ERROR: str | None = None  # why graphpro_ext._C did not load, once a load was tried


def _load_compiled():
    """graphpro_ext._C, loaded after torch (the extension links against libtorch); a clear
    ImportError naming the cause and the build command when it is missing or broken."""
    global _C_ERROR
    if _C_ERROR is not None:
        raise ImportError(f"graphpro_ext._C is not available ({_C_ERROR}); {BUILD_HINT}")
    import torch  # noqa: F401  (loads libtorch before the extension)

    try:
        return importlib.import_module(f"{__name__}._C")
    except (ImportError, OSError) as e:
        _C_ERROR = f"{type(e).__name__}: {e}"
        raise ImportError(f"graphpro_ext._C is not available ({_C_ERROR}); {BUILD_HINT}") from e


def __getattr__(name: str):
    # Module-level __getattr__ (PEP 562): `from graphpro_ext import _C` and `graphpro_ext._C`
    # load the extension lazily; `graphpro_ext.__version__` does not need it.
    if name == "_C":
        return _load_compiled()
    if name == "__version__":
        try:
            return _load_compiled().__version__
        except ImportError:
            from importlib.metadata import PackageNotFoundError, version

            try:
                return version("graphpro_ext")
            except PackageNotFoundError:
                return "unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def compiled_error() -> str | None:
    """None when the compiled module loads, else why it does not (the ImportError's text)."""
    try:
        _load_compiled()
    except ImportError:
        return _C_ERROR
    return None


def with_cuda() -> bool:
    """True when this build contains the CUDA kernels (False when nothing is built)."""
    try:
        return bool(_load_compiled().with_cuda())
    except ImportError:
        return False


def build_info() -> dict:
    """Version, whether the compiled module loads (``built``, else ``error`` says why), whether
    and for which architectures it holds CUDA kernels, and the torch version."""
    import torch

    try:
        c = _load_compiled()
    except ImportError:
        return {"version": __getattr__("__version__"), "built": False, "error": _C_ERROR,
                "with_cuda": False, "cuda_archs": "", "torch": torch.__version__}
    return {"version": c.__version__, "built": True, "error": None, "with_cuda": c.with_cuda(),
            "cuda_archs": c.cuda_archs(), "torch": torch.__version__}
