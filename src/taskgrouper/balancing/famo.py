"""FAMO (Liu et al., NeurIPS 2023): fast adaptive multitask optimisation, O(1) per step.

FAMO keeps logits ``xi`` (one per task), weights ``z = softmax(xi)``, and descends
``sum_t z_t log L_t``, i.e. the loss ``sum_t w_t L_t`` with ``w_t = c z_t / L_t`` and
``c = (sum_t z_t / L_t)^-1`` (detached), so every task's log loss falls at a rate set by
``z``. After the update, the observed decrease of each log loss
``delta_t = log L_t(before) - log L_t(after)`` moves the logits by one step of their own
optimiser on ``J_z(xi)^T delta + gamma xi`` (the paper's weight decay ``gamma``): tasks that
improved less gain weight.

Post-update loss: the balancer interface runs before the optimiser step and has no hook after
it, so ``L_t(after)`` is the loss of the *next* step's batch (computed anyway), not a second
forward pass on the same batch as in the paper's code. The logit update for step t therefore
happens at the start of step t + 1; it is noisier by the batch-to-batch variation of the
losses, and costs nothing.

A task without a label in the batch (loss exactly 0, see
:func:`~taskgrouper.balancing.gradients.live_losses`) gets weight 0, the softmax runs over the
other tasks, and its logit does not move for a step whose loss before or after is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from taskgrouper.balancing.base import Balancer
from taskgrouper.balancing.gradients import live_losses
from taskgrouper.errors import InputError

__all__ = ["FAMO", "famo_weights"]


def famo_weights(losses: Tensor, logits: Tensor, eps: float = 1e-8,
                 live: Tensor | None = None) -> Tensor:
    """FAMO's loss weights ``w_t = c z_t / L_t`` with ``z = softmax(logits)`` and
    ``c = 1 / sum_t (z_t / L_t)`` (so the weights sum to 1; equal losses give ``w = z``).

    Args:
        losses: ``(T,)`` current losses (detached; clamped to ``eps``).
        logits: ``(T,)`` ``xi``.
        live: ``(T,)`` bool, the tasks to weight (the softmax runs over them; the others,
            without labels in the batch, get 0; all 0 when none is live); None: all.
    """
    if live is None:
        z = torch.softmax(logits.detach(), dim=0)  # (T,)
        ratio = z / losses.detach().clamp(min=eps)  # (T,)
        return ratio / ratio.sum()
    masked = torch.where(live, logits.detach(), torch.full_like(logits.detach(), -math.inf))
    ratio = torch.softmax(masked, dim=0) / losses.detach().clamp(min=eps)  # (T,) 0 if dead
    w = ratio / ratio.sum()
    return torch.where(live, w, torch.zeros_like(w))  # (NaN when no task is live)


class FAMO(Balancer):
    """FAMO (Liu et al., NeurIPS 2023): loss weights from softmax logits that adapt to the
    observed decrease of each task's log loss.

    Args:
        lr: Learning rate of the logits' Adam optimiser (paper: 0.025).
        gamma: Weight decay of the logits (paper: 0.001).
    """

    name = "famo"

    def __init__(self, lr: float = 0.025, gamma: float = 0.001) -> None:
        super().__init__()
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
            raise InputError(f"balancer 'famo': option 'lr' must be a number > 0, not {lr!r}")
        if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or not gamma >= 0:
            raise InputError(f"balancer 'famo': option 'gamma' must be a number >= 0, not "
                             f"{gamma!r}")
        self.lr, self.gamma = float(lr), float(gamma)
        self.logits: Tensor | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.previous: Tensor | None = None  # the last step's losses

    def setup(self, tasks, model) -> None:
        super().setup(tasks, model)
        device = next(iter(model.parameters())).device
        self.logits = torch.zeros(len(self.tasks), device=device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.logits], lr=self.lr, weight_decay=self.gamma)

    def update_logits(self, before: Tensor, after: Tensor) -> None:
        """One optimiser step of the logits from the losses before and after an update.

        A loss of 0 on either side marks a task without labels in that batch (see
        :meth:`_total`): its decrease is unknown, so the step is taken for the other tasks
        alone (softmax over them) and its logit and optimiser moments stay as they were.
        """
        known = (before != 0) & (after != 0)  # (T,)
        delta = torch.log(before.clamp(min=1e-8)) - torch.log(after.clamp(min=1e-8))  # (T,)
        delta = torch.where(known, delta, torch.zeros_like(delta))
        saved = self.logits.detach().clone()
        moments = {k: v.clone() for k, v in self.optimizer.state.get(self.logits, {}).items()
                   if torch.is_tensor(v) and v.shape == self.logits.shape}
        with torch.enable_grad():
            masked = torch.where(known, self.logits, torch.full_like(saved, -math.inf))
            z = torch.softmax(masked, dim=0)
            (grad,) = torch.autograd.grad(z, self.logits, grad_outputs=delta)  # J_z^T delta
        self.logits.grad = torch.where(torch.isfinite(grad), grad, torch.zeros_like(grad))
        self.optimizer.step()
        with torch.no_grad():
            self.logits.copy_(torch.where(known, self.logits, saved))
            state = self.optimizer.state.get(self.logits, {})
            for key, value in moments.items():
                state[key].copy_(torch.where(known, state[key], value))

    def _total(self, losses: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        if self.logits is None:
            raise RuntimeError("balancer 'famo': call setup(tasks, model) first")
        own = [losses[t] for t in self.tasks]
        stacked = torch.stack(own)  # (T,)
        live = live_losses(own)  # a task without labels: loss 0, weight 0, logit unchanged
        current = torch.where(live, stacked.detach(), torch.zeros_like(stacked.detach()))
        if self.previous is not None:  # the last update's effect, seen on this batch
            self.update_logits(self.previous, current)
        self.previous = current.clone()
        w = famo_weights(current, self.logits, live=live)  # (T,)
        return (w * stacked).sum(), w

    def combine(self, losses: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        total, w = self._total(losses)
        return total, dict(zip(self.tasks, w.tolist(), strict=True))

    def backward(self, losses, scale=None, rep=None) -> dict[str, float]:
        total, w = self._total(losses)
        (scale(total) if scale is not None else total).backward()
        return dict(zip(self.tasks, w.tolist(), strict=True))  # after the backward is queued

    def state_dict(self) -> dict:
        return {"logits": None if self.logits is None else self.logits.detach().clone(),
                "previous": self.previous,
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping) -> None:
        with torch.no_grad():
            self.logits.copy_(state["logits"])
        self.previous = None if state["previous"] is None else \
            state["previous"].to(self.logits.device).clone()
        self.optimizer.load_state_dict(state["optimizer"])
