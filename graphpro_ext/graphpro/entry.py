"""Entry point of the ``graphpro`` command and ``python -m graphpro_ext.graphpro``.

Process-wide settings belong to the program, not to the library, so they are made here, before
torch is imported (``cli`` imports torch at module level), and never on ``import graphpro_ext``.
This module must not import torch itself.
"""

from __future__ import annotations

import os

__all__ = ["main", "tune_process", "PROCESS_DEFAULTS"]

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


def tune_process() -> dict[str, str]:
    """Set PROCESS_DEFAULTS in os.environ where unset; returns the ones this call set. Effective
    only before torch is imported (hence before graphpro_ext.graphpro.cli)."""
    done = {}
    for name, value in PROCESS_DEFAULTS.items():
        if name not in os.environ:
            os.environ[name] = value
            done[name] = value
    return done


def main(argv=None) -> int:
    tune_process()
    from . import cli  # imports torch: after tune_process

    return cli.main(argv)
