"""What every phase of a run shares with the process around it: seeds derived from names, the
atomic file write, the graceful stop on SIGTERM, and the crash hook the resume tests use.

Kept apart so that a distributed launcher (one process per rank) has one place to make these
rank-aware: every rank derives the same random choices from (seed, phase, epoch, batch), and only
one rank writes shared files.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import zlib

import numpy as np
import torch

__all__ = ["derive_seed", "save_atomic", "write_text_atomic", "write_bytes_atomic", "maybe_fail",
           "graceful_stop", "stop_requested"]


def derive_seed(*parts) -> int:
    """A 63-bit seed from ints and strings (strings hashed with crc32, stable across runs)."""
    ints = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]
    return int(np.random.SeedSequence(ints).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _replace_atomically(path: str, write) -> None:
    """``write(binary file)`` into a temp file, fsync, then rename over ``path``: a crash leaves
    the old file or the new one; a failed write (full disk) removes its temp file and leaves the
    old file in place."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_atomic(obj, path: str) -> None:
    """``torch.save(obj)`` to ``path``, atomically."""
    _replace_atomically(path, lambda f: torch.save(obj, f))


def write_text_atomic(text: str, path: str) -> None:
    """UTF-8 ``text`` to ``path``, atomically."""
    write_bytes_atomic(text.encode("utf-8"), path)


def write_bytes_atomic(data, path: str) -> None:
    """``data`` (bytes-like, or a list of bytes-like parts) to ``path``, atomically."""
    parts = data if isinstance(data, (list, tuple)) else [data]
    _replace_atomically(path, lambda f: [f.write(p) for p in parts])


_STOP: list[int] = []  # the stop signal received, if any, while ``graceful_stop`` is active


def stop_requested() -> int | None:
    """The signal number of a pending graceful stop, else None (the training loop reads it at
    each epoch's end)."""
    return _STOP[0] if _STOP else None


@contextlib.contextmanager
def graceful_stop(signum: int = signal.SIGTERM):
    """While active, the first ``signum`` asks the training loop to finish its epoch, write a
    checkpoint and stop (``Stopped``); a second one stops at once, as without this. Batch
    schedulers and ``table2.py run`` send SIGTERM before they kill: with this every finished
    epoch is kept, not only those up to the last timed checkpoint. Only from the main thread
    (elsewhere it does nothing); the previous handler is restored on exit."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(sig, frame):
        if _STOP:  # asked twice: stop now
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            return
        _STOP.append(sig)  # nothing else here: the loop logs it (no I/O inside a handler)

    _STOP.clear()
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)
        _STOP.clear()


def maybe_fail(tag: str) -> None:
    """Test hook: ``GRAPHPRO_FAIL_AT=<tag>`` ends the process abruptly (like kill -9: no
    cleanup, no exception handlers) right after the checkpoint point named ``tag``."""
    if os.environ.get("GRAPHPRO_FAIL_AT") == tag:
        sys.stderr.write(f"GRAPHPRO_FAIL_AT={tag}: simulated crash\n")
        sys.stderr.flush()
        os._exit(75)
