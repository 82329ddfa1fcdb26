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
* ``on_epoch_start(epoch, epochs, validate=None)``: called by the trainer before every epoch
  (1-based); an architecture with a schedule (AdaShare's warm-up, curriculum and temperature,
  its switch from policy search to re-training) acts here. ``validate()``, when given, returns
  the total validation loss of the model as it stands (eval mode), for a phase switch that
  chooses among candidates (AdaShare's sampled policies). It returns ``True`` when the model
  entered a new phase (re-initialised, or trained differently from here on): the trainer then
  rebuilds the optimiser and schedule and restarts early stopping, so the best checkpoint is
  one of the new phase.
* ``must_train(epoch, epochs)``: ``True`` when epoch ``epoch`` runs whatever early stopping
  or the plateau schedule's end say (a phase of fixed length and the first epoch of the phase
  after it: AdaShare's policy search and the start of its re-training, which restarts early
  stopping); ``False`` by default.
* ``train_passes()``: how the coming epoch goes over the training split, as a tuple of
  :class:`TrainPass` (read after ``on_epoch_start``): by default one pass over every row in
  which every parameter learns. AdaShare's policy search makes two: the network weights learn
  on one half of the training rows, then the policy logits on the other half.
* ``extra_results()``: JSON-ready measurements of the trained model that the trainer adds to
  ``TrainResult.extra`` (AdaShare: its policies and the fraction of blocks each task keeps).

Architectures are built from a backbone that exposes ``out_channels``, ``strides`` and
``spatial`` (see :mod:`taskgrouper.models.backbones`); those that need a chain of stages
(cross-stitch, NDDR, AdaShare) use ``backbone.stages()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.tasks import TaskSpec, closest

__all__ = ["MultiTaskModel", "Outputs", "TrainPass", "check_task_names"]


class Outputs(dict):
    """Task name -> final prediction, with ``aux`` (deep supervision) and ``rep`` (shared
    representation) attached. A plain ``dict`` everywhere a dict is expected."""

    def __init__(self, final: Mapping[str, torch.Tensor],
                 aux: Mapping[str, Sequence[torch.Tensor]] | None = None,
                 rep: Sequence[torch.Tensor] | None = None) -> None:
        super().__init__(final)
        self.aux: dict[str, list[torch.Tensor]] = {t: list(v) for t, v in (aux or {}).items()}
        self.rep: list[torch.Tensor] | None = list(rep) if rep is not None else None


@dataclass(frozen=True)
class TrainPass:
    """One pass of an epoch over (part of) the training split.

    Attributes:
        half: ``None``: every training row; ``0`` or ``1``: the first or second half of a fixed
            split of the training rows (drawn once from ``train.seed``; disjoint; the first
            half has ``ceil(n / 2)`` of the ``n`` rows; the validation split is no part of it).
            The pass visits its rows in a fresh random order.
        learns: Parameter-name prefixes (as in ``named_parameters()``) of the model's
            parameters that learn in this pass; the others keep their values (their gradients
            are dropped before the optimiser step). ``None``: every parameter. A balancer's
            own parameters learn in every pass.
    """

    half: int | None = None
    learns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.half not in (None, 0, 1):
            raise ValueError(f"TrainPass.half must be None, 0 or 1, got {self.half}")

    def frozen(self, model: nn.Module) -> list[nn.Parameter]:
        """The parameters of ``model`` this pass keeps fixed."""
        if self.learns is None:
            return []
        return [p for name, p in model.named_parameters()
                if not any(name == k or name.startswith(k + ".") for k in self.learns)]


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

    def on_epoch_start(self, epoch: int, epochs: int, *,
                       validate: Callable[[], float] | None = None) -> bool:
        """Per-epoch schedule hook; ``True`` when the model entered a new phase."""
        return False

    def must_train(self, epoch: int, epochs: int) -> bool:
        """``True`` when epoch ``epoch`` runs whatever early stopping says (never, by
        default)."""
        return False

    def train_passes(self) -> tuple[TrainPass, ...]:
        """The passes of the coming epoch: one over every row, every parameter learning."""
        return (TrainPass(),)

    def extra_results(self) -> dict[str, Any]:
        """Measurements for ``TrainResult.extra`` (none by default)."""
        return {}

    def _check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise KeyError(f"no task '{task}'; " + closest(task, self.tasks))
