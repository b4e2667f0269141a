"""Entry point of the ``graphpro`` command and ``python -m graphpro_ext.graphpro``.

Process-wide settings belong to the program, not to the library, so they are made here, before
torch is imported (``cli`` imports torch at module level), and never on ``import graphpro_ext``.
This module must not import torch itself.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["main", "tune_process", "keep_freed_heap", "PROCESS_DEFAULTS"]

# Defaults only: a variable the user already set wins.
PROCESS_DEFAULTS = {
    # Transparent huge pages for PyTorch's large CPU allocations (read at torch's first
    # allocation): the trainer allocates N x d embedding buffers every step, and with 4 KiB pages
    # their page faults cost as much as a propagation layer.
    "THP_MEM_ALLOC_ENABLE": "1",
    # OpenMP threads wait passively instead of spinning at barriers (read once, when torch loads
    # libgomp). Spinning threads collapse when another process shares the cores; the measurements
    # are in docs/TRAINER.md (Implementation notes). OMP_WAIT_POLICY=ACTIVE restores spinning.
    "OMP_WAIT_POLICY": "PASSIVE",
}


# glibc's own malloc variables: a user who set any of them chose malloc's behaviour, and
# keep_freed_heap leaves it alone.
MALLOC_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                    "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")
# mallopt parameters (malloc.h) and the values keep_freed_heap gives them
_MALLOPT = {"M_MMAP_MAX": (-4, 0), "M_TRIM_THRESHOLD": (-1, 2**31 - 1), "M_TOP_PAD": (-2, 64 << 20)}


def keep_freed_heap() -> bool:
    """Make glibc serve large allocations from its heap and keep freed memory for reuse, instead
    of a fresh mmap per allocation returned to the kernel on free (its rule above 32 MiB). A
    training step allocates and frees N x d buffers larger than that (61 MiB on Amazon's id
    space), and every fresh mapping is page-faulted and zero-filled by the kernel again
    (measurements: docs/TRAINER.md). Freed memory stays with the process (trimmed above
    2 GiB), so its resident size stays near its peak. Applied only with glibc and when none of
    MALLOC_VARIABLES is set; returns whether it was."""
    if sys.platform != "linux" or any(v in os.environ for v in MALLOC_VARIABLES):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in _MALLOPT.values())


def tune_process() -> dict[str, str]:
    """Set PROCESS_DEFAULTS in os.environ where unset and keep freed heap memory for reuse
    (``keep_freed_heap``); returns the variables this call set. Effective only before torch is
    imported (hence before graphpro_ext.graphpro.cli)."""
    done = {}
    for name, value in PROCESS_DEFAULTS.items():
        if name not in os.environ:
            os.environ[name] = value
            done[name] = value
    keep_freed_heap()
    return done


def main(argv=None) -> int:
    tune_process()
    from . import cli  # imports torch: after tune_process

    return cli.main(argv)
