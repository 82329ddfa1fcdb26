"""The collective operations balancers need under data-parallel training (``torchrun``).

Outside an initialised process group of more than one process every function here is a
no-op, so a balancer calls them unconditionally. The training side (process group setup,
gradient and buffer averaging) is :mod:`taskgrouper.train.distributed`, built on these.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["all_average", "all_sum", "distributed"]


def distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_average(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over the ranks, in place (no-op outside a process group)."""
    if distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(dist.get_world_size())
    return tensor


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place (no-op outside a process group)."""
    if distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
