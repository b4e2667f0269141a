"""graphpro_ext: GraphPro (WWW 2024) with fused CPU/CUDA PyTorch custom ops.

``import graphpro_ext.ops`` registers the ``torch.ops.graphpro`` operators; ``graphpro_ext.graph``
builds temporal graphs; ``graphpro_ext.reference`` holds plain-PyTorch oracles; the ``graphpro``
sub-package is the trainer and CLI.
"""

import os

# Ask PyTorch's CPU allocator for transparent huge pages on large tensors (read once, at torch's
# first allocation, so it only takes effect when graphpro_ext is imported before torch allocates):
# N x d embedding buffers are allocated every step, and with 4 KiB pages their page faults cost
# as much as a propagation layer.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import torch  # noqa: E402, F401  (loads libtorch before the extension)

from . import _C  # noqa: E402

__version__ = _C.__version__


def with_cuda() -> bool:
    """True when this build contains the CUDA kernels."""
    return _C.with_cuda()


def build_info() -> dict:
    return {"version": _C.__version__, "with_cuda": _C.with_cuda(), "cuda_archs": _C.cuda_archs(),
            "torch": torch.__version__}
