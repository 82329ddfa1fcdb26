"""Uncertainty weighting (Kendall et al., CVPR 2018; survey Eq. 6).

Each task gets a learnable log variance ``s_t = log sigma_t^2`` (optimised with the model). The
negative log-likelihood of a Gaussian (regression) or a Boltzmann (classification) output with
that homoscedastic noise gives

* regression-style tasks (``regression``, ``dense_regression``, ``normals``):
  ``exp(-s_t) L_t / 2 + s_t / 2`` (``L / (2 sigma^2) + log sigma``);
* classification-style tasks (``classification``, ``segmentation``, ``binary``,
  ``dense_binary``):
  ``exp(-s_t) L_t + s_t / 2`` (``L / sigma^2 + log sigma``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from taskgrouper.balancing.base import Balancer
from taskgrouper.balancing.gradients import live_losses

__all__ = ["CLASSIFICATION_KINDS", "Uncertainty", "uncertainty_loss"]

#: Task kinds whose loss is a cross-entropy (weight ``exp(-s)``); the others get ``exp(-s) / 2``.
CLASSIFICATION_KINDS = frozenset({"classification", "segmentation", "binary", "dense_binary"})


def uncertainty_loss(losses: Tensor, log_vars: Tensor, factors: Tensor,
                     live: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Kendall et al.'s objective.

    Args:
        losses: ``(T,)`` task losses.
        log_vars: ``(T,)`` ``s_t = log sigma_t^2``.
        factors: ``(T,)`` 1/2 for regression-style tasks, 1 for classification-style ones.
        live: ``(T,)`` bool, the tasks with labels in the batch; the others' terms are left
            out (their ``s_t`` gets no gradient, where ``s_t / 2`` alone would raise it) and
            their weight is 0. None: all.

    Returns:
        The scalar ``sum_t factor_t exp(-s_t) L_t + s_t / 2`` and the ``(T,)`` weights
        ``factor_t exp(-s_t)``.
    """
    weights = factors * torch.exp(-log_vars)  # (T,)
    if live is None:
        return (weights * losses).sum() + 0.5 * log_vars.sum(), weights
    weights = torch.where(live, weights, torch.zeros_like(weights))
    return ((weights * losses).sum()
            + 0.5 * torch.where(live, log_vars, torch.zeros_like(log_vars)).sum()), weights


class Uncertainty(Balancer):
    """Homoscedastic uncertainty weighting (Kendall et al., CVPR 2018).

    The task kind (from ``model.specs``) picks the regression or classification form; a model
    without specs is treated as regression throughout. The log variances start at 0 and are
    returned by :meth:`parameters`, so the trainer's optimiser updates them with the model.
    The logged weights are ``exp(-s_t)`` times 1/2 or 1. A task without a label in the batch
    (loss exactly 0) is left out of the step: weight 0, no gradient for its ``s_t``.
    """

    name = "uncertainty"

    def __init__(self) -> None:
        super().__init__()
        self.log_vars: nn.Parameter | None = None
        self.factors: Tensor | None = None

    def setup(self, tasks, model) -> None:
        super().setup(tasks, model)
        device = next(iter(model.parameters())).device
        specs = getattr(model, "specs", {})
        self.factors = torch.tensor([1.0 if getattr(specs.get(t), "kind", None)
                                     in CLASSIFICATION_KINDS else 0.5 for t in self.tasks],
                                    device=device)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks), device=device))

    def parameters(self) -> list[nn.Parameter]:
        return [self.log_vars] if self.log_vars is not None else []

    def _total(self, losses: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        if self.log_vars is None:
            raise RuntimeError("balancer 'uncertainty': call setup(tasks, model) first")
        own = [losses[t] for t in self.tasks]
        return uncertainty_loss(torch.stack(own), self.log_vars, self.factors, live_losses(own))

    def combine(self, losses: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        total, weights = self._total(losses)
        return total, dict(zip(self.tasks, weights.detach().tolist(), strict=True))

    def backward(self, losses, scale=None, rep=None) -> dict[str, float]:
        total, weights = self._total(losses)
        (scale(total) if scale is not None else total).backward()
        # the weights reach the host after the backward is queued (no stall before it)
        return dict(zip(self.tasks, weights.detach().tolist(), strict=True))
