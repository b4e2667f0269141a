"""Reading and writing checkpoint files: atomic writes, and reads that refuse what cannot be
trusted (unreadable, truncated or non-finite files) with a message naming the file and what
recomputing it takes, instead of a deep traceback or a run that trains on NaN."""

from __future__ import annotations

import os

import torch

from .errors import CheckpointError, shorten

__all__ = ["save_atomic", "load_checkpoint", "non_finite"]


def save_atomic(obj, path: str) -> None:
    """torch.save to a temp file, fsync, then rename: a crash leaves the old file or the new one;
    a failed write (full disk) removes its temp file and leaves the old file in place."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def non_finite(obj, where: str = "") -> str | None:
    """The name of the first floating-point tensor in ``obj`` (nested dicts/lists) holding NaN
    or inf, else None."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and not bool(torch.isfinite(obj).all()):
            return where or "tensor"
        return None
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for k, v in items:
        bad = non_finite(v, f"{where}.{k}" if where else str(k))
        if bad:
            return bad
    return None


def load_checkpoint(path: str, what: str, map_location=None, weights_only: bool = False):
    """``torch.load(path)``, checked: a file that cannot be read, or holds NaN/inf, raises
    CheckpointError naming the file and ``what`` deleting it recomputes."""
    advice = f"delete it to recompute {what}, or start the run again without --resume"
    try:
        obj = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as e:  # noqa: BLE001 - truncated zips, pickles and garbage all land here
        raise CheckpointError(f"{path}: unreadable checkpoint ({shorten(e, 120)}); "
                              f"{advice}") from None
    bad = non_finite(obj)
    if bad:
        raise CheckpointError(f"{path}: holds non-finite values in {bad} (a diverged run or a "
                              f"corrupted file); {advice}")
    return obj
