"""Node renumbering for memory locality, applied once when a run's data is loaded.

Propagation gathers a neighbour's row for every edge; numbering users and items by decreasing
degree packs the rows gathered most often together, so more of them are in cache (docs/SCALE.md,
"Node reordering": 13-22% faster propagation at 1M-10M directed edges, nothing below). Users and
items are renumbered within their own blocks, by their degree in the pre-training interactions
(ties and nodes first seen later keep their original order). The run's id maps carry the
permutation, so everything a user sees (saved models, ``recommend``, ``export``, ``update``) speaks
original ids; what changes is which random numbers a node draws (its initial row, the negatives
that hit it), so results equal a run without renumbering in distribution, not bit for bit.
"""

from __future__ import annotations

import numpy as np

from .data import Interactions, SnapshotData
from .errors import ConfigError
from .serving import IdMap

__all__ = ["RULES", "AUTO_MIN_EDGES", "resolve", "degree_order", "renumber"]

RULES = ("auto", "degree", "none")
# `auto` renumbers from this many directed pre-training edges on (2 per interaction): the
# smallest size where the benchmark showed a gain
AUTO_MIN_EDGES = 1_000_000


def resolve(rule: str, data: SnapshotData) -> str:
    """``auto`` -> ``degree`` or ``none`` for this data; the others as given."""
    if rule not in RULES:
        raise ConfigError(f"--reorder {rule}: choose from {', '.join(RULES)}")
    if rule != "auto":
        return rule
    return "degree" if 2 * len(data.pretrain) >= AUTO_MIN_EDGES else "none"


def degree_order(ids: np.ndarray, n: int) -> np.ndarray:
    """The old ids in their new order: decreasing degree in ``ids``, ties by old id."""
    return np.argsort(-np.bincount(ids, minlength=n), kind="stable")


def _relabel(inter: Interactions, user_rank: np.ndarray, item_rank: np.ndarray) -> Interactions:
    return Interactions(user_rank[inter.users], item_rank[inter.items], inter.times)


def renumber(data: SnapshotData, ids: tuple[IdMap, IdMap],
             rule: str) -> tuple[SnapshotData, tuple[IdMap, IdMap]]:
    """(the data with users and items renumbered by ``rule``, the id maps that undo it)."""
    if rule == "none":
        return data, ids
    u_order = degree_order(data.pretrain.users, data.num_users)
    i_order = degree_order(data.pretrain.items, data.num_items)
    u_rank, i_rank = np.empty_like(u_order), np.empty_like(i_order)
    u_rank[u_order] = np.arange(u_order.size)
    i_rank[i_order] = np.arange(i_order.size)
    out = SnapshotData(data.name, _relabel(data.pretrain, u_rank, i_rank),
                       [_relabel(s, u_rank, i_rank) for s in data.snapshots],
                       data.num_users, data.num_items, data.stats)
    return out, (IdMap(ids[0].ids[u_order]), IdMap(ids[1].ids[i_order]))
