"""graphpro_ext: GraphPro (WWW 2024) with fused CPU/CUDA PyTorch custom ops.

``import graphpro_ext.ops`` registers the ``torch.ops.graphpro`` operators; ``graphpro_ext.graph``
builds temporal graphs; ``graphpro_ext.reference`` holds plain-PyTorch oracles; the ``graphpro``
sub-package is the trainer and CLI.
"""

import torch  # noqa: F401  (loads libtorch before the extension)

from . import _C  # noqa: E402

__version__ = _C.__version__


def with_cuda() -> bool:
    """True when this build contains the CUDA kernels."""
    return _C.with_cuda()


def build_info() -> dict:
    return {"version": _C.__version__, "with_cuda": _C.with_cuda(), "cuda_archs": _C.cuda_archs(),
            "torch": torch.__version__}
