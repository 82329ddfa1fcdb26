"""Data-parallel training under ``torchrun`` (torch.distributed), one process per device.

``taskgrouper train`` launched as ``torchrun --nproc_per_node N -m taskgrouper.cli train ...``
(or ``torchrun --nproc_per_node N $(which taskgrouper) train ...``) finds ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK`` in its environment and trains data-parallel:

- backend NCCL on GPUs (rank ``r`` on ``cuda:LOCAL_RANK``), gloo on CPU;
- ``train.batch_size`` stays the *global* batch: every rank draws the same shuffled order and
  takes rows ``rank::world`` of each batch, so N processes see what one process sees;
- after the balancer's backward, every gradient is averaged over the ranks (an all-reduce) before
  the optimiser steps, so the weights stay identical on every rank;
- balancers that need per-task gradients on the shared parameters (PCGrad, CAGrad, MGDA,
  GradNorm, ...) get them averaged over the ranks inside
  :func:`taskgrouper.balancing.gradients.task_gradients`, so they combine the global-batch
  gradients, as in one process; the representation-space variants (gradients with respect to
  per-sample activations, e.g. MGDA-UB) are refused with a message;
- rank 0 alone writes the run folder (checkpoints, logs, metrics) and the messages.

Without those variables (or ``WORLD_SIZE=1``) nothing changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# the collectives balancers use live below training; re-exported here
from taskgrouper.balancing.distributed import all_average, all_sum, distributed
from taskgrouper.errors import SetupError

__all__ = ["DistContext", "all_average", "all_sum", "average_buffers", "average_gradients",
           "barrier", "broadcast_state",
           "distributed", "setup"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run (``world == 1``: a normal run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    #: :func:`setup` started the process group, so :func:`teardown` ends it.
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device_name: str) -> DistContext:
    """The context from ``torchrun``'s environment; initialises the process group once.

    Args:
        device_name: ``train.device``; with ``auto`` or ``cuda`` each rank takes
            ``cuda:LOCAL_RANK`` when CUDA is available.

    Raises:
        RuntimeError: ``WORLD_SIZE > 1`` but torch.distributed is unavailable, or
            ``train.device`` names one fixed GPU (every rank would share it).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_available():
        raise SetupError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if device_name.startswith("cuda:"):
        raise SetupError(f"train.device={device_name} under torchrun: every rank would use "
                           f"that one GPU; use 'auto' or 'cuda' (rank r takes cuda:LOCAL_RANK)")
    owns = not dist.is_initialized()
    if owns:
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size(),
                       local_rank=local_rank, owns_group=owns)


def teardown(ctx: DistContext) -> None:
    """End the process group :func:`setup` started (a caller's own group is left alone)."""
    if ctx.owns_group and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(params) -> None:
    """Average the ``.grad`` of every parameter over the ranks (one flat all-reduce).

    A parameter without a gradient on this rank (a head whose task had no label in this rank's
    rows) gets zeros, so every rank sends the same layout.
    """
    if not distributed():
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    all_average(flat)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def average_buffers(model: torch.nn.Module) -> None:
    """Average the floating-point buffers (batch-norm running statistics) over the ranks."""
    if distributed():
        for b in model.buffers():
            if b.is_floating_point():
                all_average(b.data)


def broadcast_state(model: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank."""
    if distributed():
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, src=0)


def barrier() -> None:
    if distributed():
        dist.barrier()
