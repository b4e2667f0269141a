"""How much memory a run will need, checked before anything id-space-sized is allocated.

The embedding tables are sized by the largest id, not by the ids in use, so one stray huge id
(a time column read as items, an unmapped hash) would otherwise exhaust the machine's memory. The
estimate is deliberately simple; docs/RELIABILITY.md compares it with measured peaks.
"""

from __future__ import annotations

import logging
import os
import re

import numpy as np

from .errors import ResourceError

log = logging.getLogger("graphpro")

__all__ = ["estimate_bytes", "available_bytes", "parse_size", "fmt_bytes", "check_memory"]

# [N, d] fp32 tables alive at the peak of a phase: the parameter, its gradient, Adam's two
# moments, the best epoch's copy, the propagated output, and the pre-trained tables the
# dynamic protocol keeps for its stages.
_TABLES = 8
# Per interaction: the id/time arrays, the graph in both directions (int32 column, fp32 time)
# and the sort/unique temporaries while it is built.
_PER_INTERACTION = 96
# [3B, d] fp32 rows alive per training step (gathered rows, gated rows, their gradients).
_BATCH_ROWS = 5
_RUNTIME = 350 << 20  # torch and the Python process itself, at least


def _runtime_bytes() -> int:
    """What the process holds already (a CUDA build of torch alone holds more than a CPU one)
    plus headroom, never below ``_RUNTIME``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return max(_RUNTIME, int(line.split()[1]) * 1024 + (64 << 20))
    except (OSError, ValueError):
        pass
    return _RUNTIME


def estimate_bytes(num_users: int, num_items: int, dim: int, interactions: int,
                   eval_batch: int = 2048, window: int = 0, batch_size: int = 2048) -> int:
    """Approximate peak resident memory of a run."""
    nodes = int(num_users) + int(num_items)
    tables = nodes * int(dim) * 4 * (_TABLES + int(window))
    batch = 3 * int(batch_size) * int(dim) * 4 * _BATCH_ROWS
    # one [eval_batch, item chunk] score block of topk_masked, plus its top-k bookkeeping
    evaluation = int(eval_batch) * min(int(num_items), 65536) * 4 * 6 // 5
    return tables + batch + int(interactions) * _PER_INTERACTION + evaluation + _runtime_bytes()


def available_bytes() -> int:
    """Memory this process can still use: MemAvailable, capped by a cgroup v2 limit."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 62  # unknown: do not refuse on a guess
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                avail = min(avail, int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        pass
    return max(int(avail), 0)


_SIZE = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """'8G', '512M', '1.5GB', '2048' (bytes) -> bytes (> 0)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtb]?)(?:i?b)?\s*", str(text).lower())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"bad size {str(text)[:40]!r}; use e.g. 8G, 512M")
    return int(float(m.group(1)) * _SIZE[m.group(2)])


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def _largest_id(files: list[dict], which: str) -> tuple[int, str]:
    """(largest id, 'file:line' it is on) over the loaders' per-file statistics."""
    best, where = -1, "?"
    for st in files:
        v = st.get(f"max_{which}")
        if v and v[0] > best:
            best, where = v[0], f"{st.get('path', st.get('file'))}:{v[1]}"
    return best, where


def check_memory(num_users: int, num_items: int, files: list[dict], used_users: np.ndarray,
                 used_items: np.ndarray, dim: int, interactions: int, eval_batch: int,
                 window: int = 0, max_memory: int | None = None, remap_hint: str = "",
                 batch_size: int = 2048) -> int:
    """Refuse (ResourceError) a run whose estimate exceeds the available memory or
    ``max_memory``, naming the line of the largest id; warn when ids are sparse. Returns the
    estimate."""
    est = estimate_bytes(num_users, num_items, dim, interactions, eval_batch, window,
                         batch_size)
    limit = max_memory if max_memory is not None else available_bytes()
    from graphpro_ext.graph import unique

    n_u, n_i = int(unique(used_users).size), int(unique(used_items).size)
    if est > limit:
        # blame the id that sizes the larger table
        which = "item" if num_items - n_i >= num_users - n_u else "user"
        big, where = _largest_id(files, which)
        raise ResourceError(
            f"{where}: {which} id {big} makes an id space of {num_users + num_items:,} nodes "
            f"({num_users:,} users + {num_items:,} items, {n_u:,} + {n_i:,} in use); the run "
            f"would need about {fmt_bytes(est)} but "
            + (f"--max-memory is {fmt_bytes(limit)}" if max_memory is not None
               else f"only {fmt_bytes(limit)} are available")
            + (f"; {remap_hint}" if remap_hint else ""))
    for which, used, total in (("user", n_u, num_users), ("item", n_i, num_items)):
        if total >= 1000 and used < 0.01 * total:
            big, where = _largest_id(files, which)
            log.warning(f"{which} ids are sparse: {used:,} distinct ids in an id space of "
                        f"{total:,} (largest {big} at {where}); every id gets an embedding row"
                        + (f"; {remap_hint}" if remap_hint else ""))
    return est
