"""The checkpoint layout of a run folder, and reading checkpoint files.

This is the only module that knows where checkpoints live (``CheckpointLayout``)::

    OUT/ckpt/config.json                  the configuration the checkpoints belong to
    OUT/ckpt/pretrain_<kind>.pt           a finished pre-training (kind: graphpro | lightgcn)
    OUT/ckpt/pretrain_<kind>.partial.pt   mid-phase state (model, optimizer, early stopping)
    OUT/ckpt/<method>/stage_<n>.pt        a finished stage's results
    OUT/ckpt/<method>/stage_<n>.partial.pt
    OUT/ckpt/<method>/x_<n>.pt            the table stage n ended with (later stages start there)

Reads refuse what cannot be trusted (unreadable, truncated or non-finite files) with a message
naming the file and what recomputing it takes, instead of a deep traceback or a run that trains
on NaN. Writes are atomic (``runtime.save_atomic``).
"""

from __future__ import annotations

import glob
import json
import os

import torch

from .errors import CheckpointError, shorten
from .runtime import save_atomic, write_text_atomic

__all__ = ["CKPT_DIR", "CheckpointLayout", "save_atomic", "load_checkpoint", "non_finite"]

CKPT_DIR = "ckpt"  # under the run folder


class CheckpointLayout:
    """Paths of every checkpoint of the run folder ``out``, and the listings ``report`` needs."""

    def __init__(self, out: str, shard=None):
        self.out = out
        self.root = os.path.join(out, CKPT_DIR)
        # Finished phases hold full tables (any world size reads them); mid-phase checkpoints
        # hold one rank's columns and Adam state, so a sharded run names them per rank.
        sharded = shard is not None and shard.world > 1
        self._partial = (f".partial.r{shard.rank}of{shard.world}.pt" if sharded
                         else ".partial.pt")

    def path(self, *parts) -> str:
        return os.path.join(self.root, *parts)

    @property
    def config(self) -> str:
        return self.path("config.json")

    def pretrain(self, kind: str, partial: bool = False) -> str:
        return self.path(f"pretrain_{kind}" + (self._partial if partial else ".pt"))

    def stage(self, method: str, n: int, partial: bool = False) -> str:
        return self.path(method, f"stage_{n}" + (self._partial if partial else ".pt"))

    def table(self, method: str, n: int) -> str:
        return self.path(method, f"x_{n}.pt")

    def remove(self, path: str) -> None:
        if os.path.exists(path):
            os.remove(path)

    def read_config(self) -> dict | None:
        """config.json, or None when there is none; ValueError/OSError when unreadable."""
        if not os.path.exists(self.config):
            return None
        with open(self.config) as f:
            return json.load(f)

    def write_config(self, cfg: dict) -> None:
        write_text_atomic(json.dumps(cfg, indent=1), self.config)

    def finished_pretrainings(self) -> dict[str, str]:
        """kind -> path of every finished pre-training, sorted by path."""
        out = {}
        for p in sorted(glob.glob(self.path("pretrain_*.pt"))):
            if ".partial." not in os.path.basename(p):
                out[os.path.basename(p)[len("pretrain_"):-3]] = p
        return out

    def finished_stages(self, method: str) -> list[str]:
        """Paths of ``method``'s finished stages (in directory order)."""
        return [p for p in glob.glob(self.path(method, "stage_*.pt"))
                if ".partial." not in os.path.basename(p)]

    def remove_partials(self, final: str) -> None:
        """Every mid-phase checkpoint of the phase whose finished file is ``final``, whatever
        world size wrote it (called once the phase is finished)."""
        for p in glob.glob(final[:-len(".pt")] + ".partial*.pt"):
            self.remove(p)

    def other_partials(self) -> list[str]:
        """Mid-phase checkpoints written by another world size (ignored: their phase restarts;
        finished phases are read whatever the world size)."""
        found = glob.glob(self.path("*.partial*.pt")) + glob.glob(self.path("*", "*.partial*.pt"))
        return sorted(p for p in found if not p.endswith(self._partial))


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
