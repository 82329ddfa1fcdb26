"""Gradient surgery: PCGrad, CAGrad and gradient sign dropout.

* PCGrad (Yu et al., NeurIPS 2020) projects each task's gradient onto the normal plane of every
  other task's gradient it conflicts with (negative inner product), in random order, and sums.
* CAGrad (Liu et al., NeurIPS 2021) moves along the direction that maximises the worst local
  improvement of any task within a ball of radius ``c ||g0||`` around the average gradient g0.
* GradDrop (Chen et al., NeurIPS 2020) keeps, at each element of the shared representation,
  only the gradients of one sign, chosen at random with the probability of the positive sign
  purity.

PCGrad and CAGrad are linear combinations of the task gradients whose coefficients depend on
inner products only, so both are solved on the T x T Gram matrix; the update is written as
``sum_t w_t g_t``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from taskgrouper.balancing.gradient_method import GradientBalancer
from taskgrouper.errors import InputError

__all__ = ["CAGrad", "GradDrop", "PCGrad", "cagrad_weights", "graddrop_gradient",
           "pcgrad_weights"]


def pcgrad_weights(gram: np.ndarray, orders: Sequence[Sequence[int]]) -> np.ndarray:
    """PCGrad as weights on the original gradients: ``sum_i g_i^PC = sum_t w_t g_t``.

    Every projected gradient stays a combination ``g_i^PC = sum_k c_ik g_k`` of the originals,
    so its inner products follow from the Gram matrix: ``g_i^PC . g_j = c_i . M[:, j]``.
    Projecting onto the normal plane of ``g_j`` subtracts ``(g_i^PC . g_j) / ||g_j||^2`` from
    ``c_ij``.

    Args:
        gram: ``(T, T)`` Gram matrix of the task gradients.
        orders: For each task ``i``, the order in which the other tasks are visited.

    Returns:
        ``(T,)`` weights ``w = sum_i c_i``; each is at least 1 (projections only add
        conflicting gradients with positive coefficients).
    """
    m = np.asarray(gram, dtype=np.float64)
    n = m.shape[0]
    coef = np.eye(n)  # row i: coefficients of g_i^PC
    for i in range(n):
        for j in orders[i]:
            if j == i or m[j, j] <= 1e-30:
                continue
            dot = float(coef[i] @ m[:, j])  # g_i^PC . g_j
            if dot < 0.0:
                coef[i, j] -= dot / m[j, j]
    return coef.sum(axis=0)


def cagrad_weights(gram: np.ndarray, c: float) -> np.ndarray:
    """CAGrad's update as weights on the task gradients.

    With ``g0`` the average gradient and ``phi = c^2 ||g0||^2``, CAGrad (Liu et al. 2021,
    Alg. 1) solves ``min_{w in simplex} g_w . g0 + sqrt(phi) ||g_w||`` (``g_w = sum_t w_t g_t``)
    and moves along ``d = g0 + sqrt(phi) / ||g_w|| * g_w``, i.e. weights
    ``1/T + sqrt(phi) w_t / ||g_w||``. The convex subproblem is solved by SLSQP on the Gram
    matrix.

    Args:
        gram: ``(T, T)`` Gram matrix of the task gradients.
        c: The radius factor (the paper's c; 0 gives the average gradient).

    Returns:
        ``(T,)`` non-negative weights of ``d``.
    """
    from scipy.optimize import minimize

    m = np.asarray(gram, dtype=np.float64)
    n = m.shape[0]
    uniform = np.full(n, 1.0 / n)
    scale = max(float(np.trace(m)) / n, 1e-30)  # solve on a unit-scale Gram matrix
    ms = m / scale
    g0_norm = float(np.sqrt(max(uniform @ ms @ uniform, 0.0)))
    root_phi = c * g0_norm
    if root_phi <= 0.0:
        return uniform
    b = ms @ uniform  # g_t . g0

    def objective(w):
        return float(w @ b + root_phi * np.sqrt(max(w @ ms @ w, 1e-30)))

    def gradient(w):
        norm = np.sqrt(max(w @ ms @ w, 1e-30))
        return b + root_phi * (ms @ w) / norm

    result = minimize(objective, uniform, jac=gradient, method="SLSQP",
                      bounds=[(0.0, 1.0)] * n,
                      constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0,
                                    "jac": lambda w: np.ones_like(w)},),
                      options={"ftol": 1e-12, "maxiter": 200})
    w = np.clip(result.x, 0.0, None)
    w = w / max(w.sum(), 1e-30)
    gw_norm = float(np.sqrt(max(w @ ms @ w, 0.0)))
    if gw_norm <= 1e-15:  # the hull contains 0: CAGrad's direction is g0
        return uniform
    return uniform + root_phi * w / gw_norm


class PCGrad(GradientBalancer):
    """PCGrad (Yu et al., NeurIPS 2020), "gradient surgery": the shared parameters get the sum
    of the projected task gradients; each task's own parameters get its unprojected gradient
    (the paper sums the losses: head weight 1).

    The random order of the projections comes from a seeded generator that is part of the
    balancer's state.

    Args:
        seed: Seed of the projection order.
        rep: Project the gradients of the shared representation instead.
        batched: See :class:`GradientBalancer`.
    """

    name = "pcgrad"

    def __init__(self, seed: int = 0, rep: bool = False, batched: bool = False) -> None:
        super().__init__(rep=rep, batched=batched)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(f"balancer 'pcgrad': option 'seed' must be an integer, not "
                             f"{seed!r}")
        self.generator = torch.Generator().manual_seed(seed)

    def solve(self, gram, losses):
        n = gram.shape[0]
        orders = [torch.randperm(n, generator=self.generator).tolist() for _ in range(n)]
        w = pcgrad_weights(gram, orders)
        return w, np.ones(n), w

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping) -> None:
        self.generator.set_state(state["generator"])


class CAGrad(GradientBalancer):
    """CAGrad (Liu et al., NeurIPS 2021), conflict-averse gradient descent.

    The shared parameters get ``d = g0 + c ||g0|| g_w / ||g_w||`` (see
    :func:`cagrad_weights`); each task's own parameters get the gradient of the average loss
    ``L0 = (1/T) sum_t L_t`` that CAGrad descends (head weight 1/T).

    Args:
        c: Radius of the ball around the average gradient (the paper's default 0.5).
        rep: Solve on the gradients of the shared representation instead.
        batched: See :class:`GradientBalancer`.
    """

    name = "cagrad"

    def __init__(self, c: float = 0.5, rep: bool = False, batched: bool = False) -> None:
        super().__init__(rep=rep, batched=batched)
        if not isinstance(c, (int, float)) or isinstance(c, bool) or not 0.0 <= c < 1e6:
            raise InputError(f"balancer 'cagrad': option 'c' must be a number >= 0, not {c!r}")
        self.c = float(c)

    def solve(self, gram, losses):
        w = cagrad_weights(gram, self.c)
        n = gram.shape[0]
        return w, np.full(n, 1.0 / n), w


def graddrop_gradient(grads: Tensor, activations: Tensor, uniform: Tensor,
                      leak: Tensor) -> Tensor:
    """Gradient sign dropout at one layer (Chen et al. 2020, Alg. 1).

    ``G_i = sign(A) * grad_A L_i`` summed over the batch (the mask is shared by the samples);
    the positive sign purity ``P = (1 + sum_i G_i / sum_i |G_i|) / 2``; task i keeps its
    gradient where ``P > U`` and ``G_i > 0``, or ``P < U`` and ``G_i < 0``; the result is
    ``sum_i (leak_i + (1 - leak_i) M_i) grad_A L_i``.

    Args:
        grads: ``(T, B, F)`` per-task gradients with respect to the activations.
        activations: ``(B, F)`` the activations ``A``.
        uniform: ``(F,)`` draws of U(0, 1).
        leak: ``(T,)`` leak of each task (1 passes its gradient unchanged).

    Returns:
        ``(B, F)`` the combined gradient.
    """
    signed = (torch.sign(activations).unsqueeze(0) * grads).sum(dim=1)  # (T, F)
    total = signed.abs().sum(dim=0)  # (F,)
    purity = 0.5 * (1.0 + signed.sum(dim=0) / total.clamp(min=1e-30))  # (F,)
    purity = torch.where(total > 0, purity, torch.full_like(purity, 0.5))
    keep_positive = (purity > uniform).unsqueeze(0)  # (1, F)
    keep_negative = (purity < uniform).unsqueeze(0)
    mask = (keep_positive & (signed > 0)) | (keep_negative & (signed < 0))  # (T, F)
    factor = leak.view(-1, 1) + (1.0 - leak.view(-1, 1)) * mask.to(grads.dtype)  # (T, F)
    return (factor.unsqueeze(1) * grads).sum(dim=0)  # (B, F)


class GradDrop(GradientBalancer):
    """GradDrop (Chen et al., NeurIPS 2020), gradient sign dropout on the shared
    representation: the encoder gets the masked sum of the task gradients at the
    representation (see :func:`graddrop_gradient`); the heads get their own gradients (the
    paper's layer sits between encoder and heads; losses are summed).

    The uniform draws come from a seeded generator on the representation's device, saved with
    the balancer's state.

    Args:
        leak: Leak in [0, 1], one number for every task or task name -> leak (1 lets a task's
            gradient through unmasked; the paper's default 0).
        seed: Seed of the uniform draws.
        batched: See :class:`GradientBalancer`.
    """

    name = "graddrop"
    rep_only = True

    def __init__(self, leak: float | Mapping[str, float] = 0.0, seed: int = 0,
                 batched: bool = False) -> None:
        super().__init__(rep=True, batched=batched)
        leaks = leak.values() if isinstance(leak, Mapping) else [leak]
        for value in leaks:
            if (not isinstance(value, (int, float)) or isinstance(value, bool)
                    or not 0.0 <= value <= 1.0):
                raise InputError(f"balancer 'graddrop': option 'leak' must be in [0, 1] (or a "
                                 f"mapping task -> value in [0, 1]), not {leak!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(f"balancer 'graddrop': option 'seed' must be an integer, not "
                             f"{seed!r}")
        self.leak = leak
        self.seed = seed
        self.generator: torch.Generator | None = None
        self._saved_state: Tensor | None = None

    def setup(self, tasks, model) -> None:
        super().setup(tasks, model)
        if isinstance(self.leak, Mapping):
            from taskgrouper.tasks import closest

            for task in self.leak:
                if task not in self.tasks:
                    raise InputError(f"balancer 'graddrop': leak given for unknown task "
                                     f"'{task}'; " + closest(task, self.tasks))

    def _generator(self, device: torch.device) -> torch.Generator:
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device).manual_seed(self.seed)
            if self._saved_state is not None:
                self.generator.set_state(self._saved_state)
                self._saved_state = None
        return self.generator

    def combine_gradients(self, grads, losses, factor, inputs):
        n_tasks = grads.shape[0]
        if isinstance(self.leak, Mapping):
            values = [float(self.leak.get(t, 0.0)) for t in self.tasks]
        else:
            values = [float(self.leak)] * n_tasks
        leak = torch.tensor(values, dtype=grads.dtype).to(grads.device)
        parts, offset = [], 0
        for a in inputs:  # each representation tensor: (B, ...) -> (B, F)
            n = a.numel()
            batch = a.shape[0] if a.dim() > 0 else 1
            g = grads[:, offset:offset + n].reshape(n_tasks, batch, -1)  # (T, B, F)
            u = torch.rand(g.shape[-1], generator=self._generator(g.device), device=g.device)
            act = a.detach().reshape(batch, -1).to(grads.dtype)
            parts.append(graddrop_gradient(g, act, u, leak).reshape(-1))
            offset += n
        # a dead task (zero row: no label in the batch) already adds nothing to the sums above
        # and keeps nothing through the mask; it is reported with weight 0, like the dead
        # tasks of the Gram-matrix methods
        heads = (grads.square().sum(dim=1) != 0).to(grads.dtype)  # (T,) 1 live, 0 dead
        return torch.cat(parts), heads, [float(h) for h in heads.tolist()]

    def state_dict(self) -> dict:
        if self.generator is not None:
            state = self.generator.get_state()
        else:
            state = self._saved_state
        return {"generator": state}

    def load_state_dict(self, state: Mapping) -> None:
        saved = state.get("generator")
        self._saved_state = None if saved is None else saved.clone()
        self.generator = None  # re-created on the next step's device, from the saved state
