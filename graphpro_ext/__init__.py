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
# OpenMP threads that wait passively instead of spinning at barriers (read once, when torch loads
# libgomp). On a 2-core machine with one other busy process, spinning made an Amazon training batch
# 4.4x slower (153 vs 35 ms); passive waiting 1.6x (56 ms), for 3-7% on an idle machine. An
# explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402, F401  (loads libtorch before the extension)

from . import _C  # noqa: E402

__version__ = _C.__version__


def with_cuda() -> bool:
    """True when this build contains the CUDA kernels."""
    return _C.with_cuda()


def build_info() -> dict:
    return {"version": _C.__version__, "with_cuda": _C.with_cuda(), "cuda_archs": _C.cuda_archs(),
            "torch": torch.__version__}
