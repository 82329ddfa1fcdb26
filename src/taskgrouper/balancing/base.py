"""The balancer interface: how the per-task losses of one step become parameter gradients.

Lifecycle, driven by the trainer:

1. ``setup(tasks, model)`` once, before the first step (after a resume, ``load_state_dict``
   follows).
2. ``backward(losses, scale, rep)`` every training step: combine the per-task losses (a dict
   of scalar tensors, each the mean over the batch's valid labels) and *accumulate* gradients
   into ``.grad`` of the model's parameters (add, never overwrite: the trainer may already
   have back-propagated a regularisation term). ``scale`` is the AMP grad scaler's ``scale``
   (or None); ``rep`` is the model's shared representation (``Outputs.rep``, a list of
   tensors, or None), for methods defined on gradients with respect to it. Returns the weight
   given to each task, for the log.
3. ``epoch_end(train_losses, val_losses, val_metrics)`` after each epoch (methods that adapt
   per epoch use it: DWA the loss history, DTP the validation metrics as KPIs).

The model (given to ``setup``) is a :class:`~taskgrouper.models.arch.MultiTaskModel`:
``shared_parameters()``, ``task_parameters(t)`` and ``last_shared_layer()`` say which
parameters per-task gradients are taken of.

Learnable balancer parameters (e.g. uncertainty's log variances) are returned by
``parameters()`` and optimised with the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["Balancer"]


class Balancer:
    """Base class with the default (stateless) lifecycle; subclasses override ``combine`` or
    ``backward``."""

    name = "base"

    def __init__(self) -> None:
        self.tasks: tuple[str, ...] = ()
        self.model: nn.Module | None = None

    def setup(self, tasks: Sequence[str], model: nn.Module) -> None:
        """Bind to the task list and model of one training run."""
        self.tasks = tuple(tasks)
        self.model = model

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, float]:
        """The weight of each task's loss for this step."""
        raise NotImplementedError

    def combine(self, losses: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Loss-weighting methods: the scalar to back-propagate, and the weights used."""
        w = self.weights(losses)
        total = sum(w[t] * losses[t] for t in self.tasks)
        return total, w

    def backward(self, losses: Mapping[str, Tensor],
                 scale: Callable[[Tensor], Tensor] | None = None,
                 rep: Sequence[Tensor] | None = None) -> dict[str, float]:
        """Back-propagate one step's losses; ``scale`` is the AMP grad scaler's ``scale``,
        ``rep`` the shared representation (unused by loss-weighting methods)."""
        total, w = self.combine(losses)
        (scale(total) if scale is not None else total).backward()
        return w

    def epoch_end(self, train_losses: Mapping[str, float],
                  val_losses: Mapping[str, float] | None = None,
                  val_metrics: Mapping[str, Mapping[str, float]] | None = None) -> None:
        """Per-epoch update; nothing by default."""

    def parameters(self) -> list[nn.Parameter]:
        """Learnable parameters of the balancer itself (none by default)."""
        return []

    def state_dict(self) -> dict:
        """State to checkpoint (learnable parameters, histories)."""
        return {"params": [p.detach().clone() for p in self.parameters()]}

    def load_state_dict(self, state: Mapping) -> None:
        """Restore what :meth:`state_dict` returned."""
        with torch.no_grad():
            for p, saved in zip(self.parameters(), state.get("params", []), strict=True):
                p.copy_(saved)
