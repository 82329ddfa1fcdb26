"""GradNorm (Chen et al., ICML 2018; survey Eq. 7): learn loss weights that equalise the
gradient norms of the weighted task losses at the last shared layer, scaled by each task's
relative training rate.

With ``G_i = ||grad_W (w_i L_i)||`` on the last shared layer W, ``G_bar`` their mean,
``L~_i = L_i(t) / L_i(0)`` and ``r_i = L~_i / mean(L~)``, the weights minimise
``L_grad = sum_i |G_i - G_bar r_i^alpha|`` with the target held constant; after each step of
their own optimiser they are renormalised to sum to T.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from taskgrouper.balancing.base import Balancer
from taskgrouper.balancing.gradients import (
    accumulate_gradients,
    scale_factor,
    split_at_representation,
    task_gradients,
    unflatten,
)
from taskgrouper.errors import InputError

__all__ = ["GradNorm", "gradnorm_targets"]


def gradnorm_targets(norms: Tensor, weights: Tensor, losses: Tensor, initial: Tensor,
                     alpha: float, live: Tensor | None = None) -> Tensor:
    """GradNorm's target gradient norms ``G_bar * r_i^alpha``.

    Args:
        norms: ``(T,)`` ``||grad_W L_i||`` (unweighted).
        weights: ``(T,)`` current loss weights ``w_i``.
        losses: ``(T,)`` current losses ``L_i(t)``.
        initial: ``(T,)`` first-step losses ``L_i(0)``.
        alpha: The asymmetry ``alpha``.
        live: ``(T,)`` bool, the tasks to balance (the others, without labels in the batch,
            get target 0 and count in no mean, and their ``initial`` may be 0); None: all.

    Returns:
        ``(T,)`` targets (no gradient).
    """
    g = (weights * norms).detach()  # G_i
    ratio = losses.detach() / initial.clamp(min=1e-12)  # L~_i
    if live is None:
        r = ratio / ratio.mean().clamp(min=1e-12)  # relative inverse training rate
        return g.mean() * r ** alpha
    count = live.sum().clamp(min=1).to(g.dtype)
    g_bar = torch.where(live, g, torch.zeros_like(g)).sum() / count
    ratio = torch.where(live, ratio, torch.zeros_like(ratio))
    r = ratio / (ratio.sum() / count).clamp(min=1e-12)
    return torch.where(live, g_bar * r ** alpha, torch.zeros_like(r))


class GradNorm(Balancer):
    """GradNorm (Chen et al., ICML 2018): loss ``sum_i w_i L_i`` with weights learnt to balance
    the gradient norms at the last shared layer.

    The weights are updated by their own Adam optimiser (not the model's) after each step's
    backward, then clamped to stay positive and renormalised to sum to T. ``L_i(0)`` is the
    first step's loss. Each step takes one backward per task through its head to the last
    shared layer; when the shared representation is available and the heads read only it,
    that same pass yields the heads' gradients and the encoder gets one backward from the
    representation (the cost of a plain step plus the head passes).

    A task without a label in the batch (a zero gradient at the last shared layer) is left out
    of the step's balancing: it is reported with weight 0, its weight and optimiser moments
    stay as they were, the live weights keep their sum, and its ``L_i(0)`` is taken at its
    first step with labels.

    Args:
        alpha: Strength of the restoring force towards equal training rates (paper: 1.5 on
            NYUv2).
        lr: Learning rate of the weights' Adam optimiser.
    """

    name = "gradnorm"

    def __init__(self, alpha: float = 1.5, lr: float = 0.025) -> None:
        super().__init__()
        for key, value in (("alpha", alpha), ("lr", lr)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise InputError(f"balancer 'gradnorm': option '{key}' must be a number >= 0, "
                                 f"not {value!r}")
        if not lr > 0:
            raise InputError(f"balancer 'gradnorm': option 'lr' must be > 0, not {lr!r}")
        self.alpha = float(alpha)
        self.lr = float(lr)
        self.w: Tensor | None = None
        self.initial: Tensor | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def setup(self, tasks, model) -> None:
        super().setup(tasks, model)
        device = next(iter(model.parameters())).device
        self.w = torch.ones(len(self.tasks), device=device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.w], lr=self.lr)
        if not list(model.last_shared_layer()):
            raise InputError("balancer 'gradnorm' needs the model's last shared layer "
                             "(last_shared_layer() is empty: no shared parameters); use a "
                             "loss-weighting balancer or an architecture with a shared encoder")

    def backward(self, losses: Mapping[str, Tensor], scale=None, rep=None) -> dict[str, float]:
        if self.model is None or self.w is None:
            raise RuntimeError("balancer 'gradnorm': call setup(tasks, model) first")
        own = [losses[t] for t in self.tasks]
        stacked = torch.stack(own)  # (T,)
        factor = scale_factor(scale, stacked)
        scaled = [loss * factor for loss in own] if factor is not None else own
        w = self.w.detach().clone()  # (T,) the weights of this step
        layer = list(self.model.last_shared_layer())
        n_layer = sum(p.numel() for p in layer)
        split = split_at_representation(scaled, rep) if rep is not None else None
        if split is not None and split.clean:
            front = [rep[i] for i in split.frontier]
            n_rep = sum(r.numel() for r in front)
            grads = task_gradients(scaled, layer + front + split.downstream)  # (T, Pw + R + Pd)
            rep_grad = w @ grads[:, n_layer:n_layer + n_rep]  # (R,)
            if split.downstream:
                accumulate_gradients(split.downstream, w @ grads[:, n_layer + n_rep:])
            torch.autograd.backward(front, grad_tensors=unflatten(rep_grad, front))
        else:
            grads = task_gradients(scaled, layer)  # (T, Pw)
            (w * torch.stack(scaled)).sum().backward()
        norms = grads[:, :n_layer].norm(dim=1)  # (T,) ||grad_W L_i||, scaled
        if factor is not None:
            norms = norms / factor
        live = norms != 0  # a task without labels in the batch has a zero row (NaN: live)
        current = stacked.detach()
        # L_i(0), from the task's first step with labels (0 until then)
        if self.initial is None:
            self.initial = torch.where(live, current, torch.zeros_like(current))
        else:
            self.initial = torch.where((self.initial == 0) & live, current, self.initial)
        self._update(norms, current, live)
        return dict(zip(self.tasks, torch.where(live, w, torch.zeros_like(w)).tolist(),
                        strict=True))

    def _update(self, norms: Tensor, losses: Tensor, live: Tensor | None = None) -> None:
        """One step of the weights on ``L_grad = sum_i |w_i n_i - target_i|`` over the
        ``live`` tasks (default all); the others keep their weight and optimiser moments, and
        the live weights keep their sum (T when every task is live)."""
        if live is None:
            live = torch.ones_like(norms, dtype=torch.bool)
        before = self.w.detach().clone()
        moments = {k: v.clone() for k, v in self.optimizer.state.get(self.w, {}).items()
                   if torch.is_tensor(v) and v.shape == self.w.shape}
        target = gradnorm_targets(norms, before, losses, self.initial, self.alpha, live)
        with torch.enable_grad():
            gap = (self.w * norms - target).abs()
            l_grad = torch.where(live, gap, torch.zeros_like(gap)).sum()
            (grad,) = torch.autograd.grad(l_grad, self.w)
        finite = torch.isfinite(grad).all() & torch.isfinite(norms).all()
        self.w.grad = torch.where(finite, grad, torch.zeros_like(grad))  # skip AMP overflows
        self.optimizer.step()
        with torch.no_grad():
            self.w.clamp_(min=1e-4)
            # the live weights share what the dead ones leave of T (all of it when all live)
            dead_sum = torch.where(live, torch.zeros_like(before), before).sum()
            live_sum = torch.where(live, self.w, torch.zeros_like(before)).sum()
            scaled = self.w * ((len(self.tasks) - dead_sum) / live_sum)
            self.w.copy_(torch.where(live, scaled, before))
            state = self.optimizer.state.get(self.w, {})
            for key, saved in moments.items():
                state[key].copy_(torch.where(live, state[key], saved))

    def state_dict(self) -> dict:
        return {"w": None if self.w is None else self.w.detach().clone(),
                "initial": self.initial,
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping) -> None:
        if state.get("w") is not None and self.w is not None:
            with torch.no_grad():
                self.w.copy_(state["w"])
        initial = state.get("initial")
        self.initial = None if initial is None else initial.to(self.w.device).clone()
        if state.get("optimizer") is not None and self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
