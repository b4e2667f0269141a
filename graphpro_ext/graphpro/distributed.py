"""Exact column (embedding-dimension) sharding over ``torch.distributed``.

Propagation never mixes embedding columns, so rank p of P holds columns ``[lo, hi)`` of every
table (and of its Adam state) and propagates them locally over the replicated graph. What mixes
columns goes through the collectives here, each an autograd function whose backward is exact:

* ``all_reduce_sum``: partial sums over columns (BPR scores, the L2 term, squared row norms).
  The reduced value is the same on every rank and so is the loss, so the gradient reaching each
  partial sum is the gradient of the total: the backward is the identity, no communication.
* ``all_gather_columns``: the full rows a column-mixing op needs (the gates' ``X W``); its
  backward sums the full-row gradients of all ranks and keeps this rank's columns
  (a reduce-scatter).

With one process (``Shard.single()``) every collective is the identity, so the same code runs
unsharded. Ranks come from ``torchrun``; the backend is gloo on CPU and NCCL on CUDA. The
communication volume model is in docs/SCALE.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ["Shard", "column_range", "init_from_env", "all_reduce_sum", "all_gather_columns",
           "row_normalize", "bpr_loss"]


def column_range(dim: int, world: int, rank: int) -> tuple[int, int]:
    """Columns ``[lo, hi)`` of ``rank``: ``dim`` split as evenly as possible, the first
    ``dim % world`` ranks one column wider."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    if dim < world:
        raise ValueError(f"cannot split {dim} embedding columns over {world} ranks")
    base, extra = divmod(dim, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


@dataclass(frozen=True)
class Shard:
    """This process's place in the column split (``world == 1``: not sharded)."""

    rank: int = 0
    world: int = 1
    group: object = None  # the process group (None: the default one)

    @staticmethod
    def single() -> Shard:
        return Shard()

    @property
    def sharded(self) -> bool:
        return self.world > 1

    def columns(self, dim: int) -> tuple[int, int]:
        return column_range(dim, self.world, self.rank)

    def local(self, full: torch.Tensor) -> torch.Tensor:
        """This rank's columns of a full [rows, d] tensor (a copy)."""
        lo, hi = self.columns(full.shape[-1])
        return full[..., lo:hi].clone()


def init_from_env(device: str = "cpu") -> Shard:
    """The shard of a process started by ``torchrun`` (``WORLD_SIZE`` > 1), initialising the
    default process group (gloo on CPU, NCCL on CUDA); else ``Shard.single()``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard.single()
    if not dist.is_initialized():
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
        dist.init_process_group(backend)
    return Shard(dist.get_rank(), dist.get_world_size())


def any_rank(flag: bool, shard: Shard, device="cpu") -> bool:
    """True on every rank when ``flag`` is true on any: for a decision all ranks must share
    but each takes from something local (its clock)."""
    return any_ranks((flag,), shard, device)[0]


def any_ranks(flags, shard: Shard, device="cpu") -> tuple[bool, ...]:
    """``any_rank`` of several flags in one ``all_reduce``."""
    if not shard.sharded:
        return tuple(bool(f) for f in flags)
    t = torch.tensor([int(bool(f)) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=shard.group)
    return tuple(bool(v) for v in t.tolist())


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, shard):
        out = x.clone()
        dist.all_reduce(out, group=shard.group)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def all_reduce_sum(x: torch.Tensor, shard: Shard) -> torch.Tensor:
    """Sum of ``x`` over the ranks (``x`` itself when not sharded); differentiable."""
    return _AllReduceSum.apply(x, shard) if shard.sharded else x


class _AllGatherColumns(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, shard, dim):
        ctx.shard, ctx.dim = shard, dim
        widths = [column_range(dim, shard.world, r) for r in range(shard.world)]
        width = max(hi - lo for lo, hi in widths)
        pad = torch.zeros(x.shape[0], width, dtype=x.dtype, device=x.device)
        pad[:, :x.shape[1]] = x  # uneven splits: gather equal-width blocks, then trim
        parts = [torch.empty_like(pad) for _ in range(shard.world)]
        dist.all_gather(parts, pad.contiguous(), group=shard.group)
        return torch.cat([p[:, :hi - lo] for p, (lo, hi) in zip(parts, widths)], dim=1)

    @staticmethod
    def backward(ctx, grad):
        total = grad.contiguous().clone()
        dist.all_reduce(total, group=ctx.shard.group)
        lo, hi = ctx.shard.columns(ctx.dim)
        return total[:, lo:hi], None, None


def all_gather_columns(x: torch.Tensor, shard: Shard, dim: int) -> torch.Tensor:
    """The full [rows, dim] rows from every rank's [rows, hi-lo] columns; differentiable (the
    backward reduces the gradient of the full rows and keeps this rank's columns)."""
    return _AllGatherColumns.apply(x, shard, dim) if shard.sharded else x


def row_normalize(x: torch.Tensor, shard: Shard, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize(full, dim=1)`` restricted to this rank's columns: the squared row norms are
    summed over the ranks."""
    if not shard.sharded:
        return F.normalize(x, dim=1, eps=eps)
    sq = all_reduce_sum(x.pow(2).sum(1), shard)
    return x / sq.sqrt().clamp_min(eps).unsqueeze(1)


def bpr_loss(u, i, j, ego_rows, weight_decay: float, shard: Shard) -> torch.Tensor:
    """The trainer's BPR loss, ``mean -log(1e-10 + sigmoid(u.(i - j))) + wd/2 * |ego|^2 / B``,
    from this rank's columns: the partial score differences and the partial L2 term travel in
    one all-reduce (B + 1 floats), so the loss is the full one on every rank and each rank's
    backward yields the gradient of its own columns."""
    from .models.base import square_sum

    b = u.shape[0]
    partial = torch.cat([(u * (i - j)).sum(1), square_sum(ego_rows).view(1)])
    total = all_reduce_sum(partial, shard)
    rec = -torch.log(1e-10 + torch.sigmoid(total[:b])).mean()
    return rec + weight_decay * 0.5 * total[b] / b
