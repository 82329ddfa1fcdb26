"""The contract every multi-task architecture keeps, so the trainer and balancers need no
``isinstance`` branches.

A multi-task network is a :class:`MultiTaskModel`:

* ``forward(x)`` returns :class:`Outputs`, a ``dict`` of task name -> final prediction in the
  head conventions of :mod:`taskgrouper.models.heads`, with two optional attributes:

  - ``aux``: task name -> list of auxiliary predictions for deep supervision (PAD-Net's and
    MTI-Net's initial predictions). Each is in the task's head convention but may have a
    smaller spatial size; the trainer upsamples dense ones to the label size and adds their
    losses to the task's loss with weight 1 (the survey's deep supervision). Evaluation uses
    the final predictions only.
  - ``rep``: the shared representation (list of tensors that every task's prediction depends
    on and nothing task-specific precedes), for balancers that work on gradients with respect
    to it (MGDA-UB and the representation-level variants). ``None`` when the architecture has
    no single shared representation.

* ``shared_parameters()``: parameters every task's loss reaches (the shared encoder, and
  shared fusion layers); empty for architectures without shared parameters (cross-stitch,
  NDDR: one network per task). Balancers that need per-task gradients of shared parameters
  use these; GradNorm uses :meth:`MultiTaskModel.last_shared_layer`.
* ``task_parameters(task)``: parameters only that task's loss reaches.
* ``regularization()``: a scalar added to the training loss outside balancing (AdaShare's
  sparsity and sharing losses), or ``None``.
* ``on_epoch_start(epoch, epochs)``: called by the trainer before every epoch (1-based); an
  architecture with a schedule (AdaShare's curriculum and temperature, its switch from policy
  search to re-training) acts here. It returns ``True`` when the model entered a new phase
  whose parameters were re-initialised: the trainer then rebuilds the optimiser and schedule
  and restarts early stopping, so the best checkpoint is one of the new phase.

Architectures are built from a backbone that exposes ``out_channels``, ``strides`` and
``spatial`` (see :mod:`taskgrouper.models.backbones`); those that need a chain of stages
(cross-stitch, NDDR, AdaShare) use ``backbone.stages()``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.tasks import TaskSpec, closest

__all__ = ["MultiTaskModel", "Outputs", "check_task_names"]


class Outputs(dict):
    """Task name -> final prediction, with ``aux`` (deep supervision) and ``rep`` (shared
    representation) attached. A plain ``dict`` everywhere a dict is expected."""

    def __init__(self, final: Mapping[str, torch.Tensor],
                 aux: Mapping[str, Sequence[torch.Tensor]] | None = None,
                 rep: Sequence[torch.Tensor] | None = None) -> None:
        super().__init__(final)
        self.aux: dict[str, list[torch.Tensor]] = {t: list(v) for t, v in (aux or {}).items()}
        self.rep: list[torch.Tensor] | None = list(rep) if rep is not None else None


def check_task_names(tasks: Mapping[str, TaskSpec], architecture: str) -> None:
    """Task names must be usable as module names (they key ``nn.ModuleDict``)."""
    if not tasks:
        raise InputError(f"architecture '{architecture}' needs at least one task")
    for name in tasks:
        if not name or "." in name:
            raise InputError(f"task name '{name}' cannot be a module name (empty or has '.')")


class MultiTaskModel(nn.Module):
    """Base class with the default lifecycle; see the module docstring.

    Attributes:
        tasks: Task names, in the order given.
        specs: Task name -> spec.
        backbone_name: The backbone's name in :data:`~taskgrouper.models.backbones.BACKBONES`.
    """

    def __init__(self, tasks: Mapping[str, TaskSpec], backbone_name: str | None = None,
                 architecture: str = "model") -> None:
        super().__init__()
        check_task_names(tasks, architecture)
        self.tasks: tuple[str, ...] = tuple(tasks)
        self.specs: dict[str, TaskSpec] = dict(tasks)
        self.backbone_name = backbone_name

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters every task's loss reaches (none by default)."""
        return iter(())

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """Parameters only ``task``'s loss reaches."""
        raise NotImplementedError

    def last_shared_layer(self) -> list[nn.Parameter]:
        """The parameters of the last layer shared by every task (GradNorm's W); empty when
        there is none."""
        return []

    def lr_scales(self) -> dict[str, float]:
        """Parameter name prefix -> multiplier of the learning rate for the parameters under
        it (e.g. the mixing weights of cross-stitch units, trained faster than the networks
        they mix); parameters no prefix covers train at the schedule's rate. None by default.
        """
        return {}

    def regularization(self) -> torch.Tensor | None:
        """A loss term outside balancing (none by default)."""
        return None

    def on_epoch_start(self, epoch: int, epochs: int) -> bool:
        """Per-epoch schedule hook; ``True`` when a new phase re-initialised the model."""
        return False

    def _check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise KeyError(f"no task '{task}'; " + closest(task, self.tasks))
