"""IMTL (Liu et al., ICLR 2021): impartial multi-task learning.

IMTL-G finds the combination ``g = sum_t alpha_t g_t`` (``sum alpha = 1``) whose projections on
every task's unit gradient ``u_t = g_t / ||g_t||`` are equal, ``g . u_1 = g . u_t``. With
``D = [g_1 - g_2, ..., g_1 - g_T]`` and ``U = [u_1 - u_2, ..., u_1 - u_T]`` (rows) the closed
form is ``alpha_{2:T} = g_1 U^T (D U^T)^{-1}``, ``alpha_1 = 1 - sum alpha_{2:T}``; every entry
of ``D U^T`` and ``g_1 U^T`` is an inner product, so it is solved on the Gram matrix.

IMTL-L learns a scale per task, ``L_t -> exp(s_t) L_t - s_t``, so that the scaled losses stay
equal (their gradient in ``s_t`` is ``exp(s_t) L_t - 1``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from taskgrouper.balancing.gradient_method import GradientBalancer
from taskgrouper.balancing.gradients import live_losses
from taskgrouper.errors import InputError

__all__ = ["IMTL", "imtl_weights"]


def imtl_weights(gram: np.ndarray) -> np.ndarray:
    """IMTL-G's closed-form weights from the Gram matrix of the task gradients.

    With ``A[a, b] = g_a . u_b = M[a, b] / ||g_b||``:
    ``(D U^T)[i, j] = A[0, 0] - A[0, j] - A[i, 0] + A[i, j]`` and
    ``(g_1 U^T)[j] = A[0, 0] - A[0, j]`` for ``i, j = 2..T``; the system is solved by least
    squares (robust when two gradients coincide).

    Returns:
        ``(T,)`` weights summing to one; unconstrained, so some may be negative.
    """
    m = np.asarray(gram, dtype=np.float64)
    n = m.shape[0]
    if n == 1:
        return np.ones(1)
    norms = np.sqrt(np.maximum(np.diag(m), 1e-30))
    a = m / norms[None, :]  # a[i, j] = g_i . u_j
    du = a[0, 0] - a[0, 1:][None, :] - a[1:, 0][:, None] + a[1:, 1:]  # (T-1, T-1)
    g1u = a[0, 0] - a[0, 1:]  # (T-1,)
    rest = np.linalg.lstsq(du.T, g1u, rcond=None)[0]  # row vector g1u @ inv(du)
    return np.concatenate([[1.0 - rest.sum()], rest])


class IMTL(GradientBalancer):
    """IMTL (Liu et al., ICLR 2021): the shared parameters get IMTL-G's impartial combination
    ``sum_t alpha_t g_t``; each task's own parameters get the gradient of its (scaled) loss,
    unweighted, as in the paper. The logged weights are ``alpha`` (of the scaled losses when
    ``learn_scales`` is on).

    Args:
        learn_scales: Add IMTL-L: a learnable log-scale ``s_t`` per task (optimised with the
            model, see :meth:`parameters`); the losses become ``exp(s_t) L_t - s_t`` and IMTL-G
            works on the gradients of ``exp(s_t) L_t`` (the hybrid IMTL of the paper).
        rep: Solve on the gradients of the shared representation (the paper computes IMTL-G
            on the shared feature for speed).
        batched: See :class:`GradientBalancer`.
    """

    name = "imtl"

    def __init__(self, learn_scales: bool = False, rep: bool = False,
                 batched: bool = False) -> None:
        super().__init__(rep=rep, batched=batched)
        if not isinstance(learn_scales, bool):
            raise InputError(f"balancer 'imtl': option 'learn_scales' must be true or false, "
                             f"not {learn_scales!r}")
        self.learn_scales = learn_scales
        self.log_scales: nn.Parameter | None = None

    def setup(self, tasks, model) -> None:
        super().setup(tasks, model)
        if self.learn_scales:
            device = next(iter(model.parameters())).device
            self.log_scales = nn.Parameter(torch.zeros(len(self.tasks), device=device))

    def parameters(self) -> list[nn.Parameter]:
        return [self.log_scales] if self.log_scales is not None else []

    def solve(self, gram, losses):
        alpha = imtl_weights(gram)
        return alpha, np.ones_like(alpha), alpha

    def backward(self, losses, scale=None, rep=None):
        if self.log_scales is None:
            return super().backward(losses, scale, rep)
        s = self.log_scales  # (T,)
        own = [losses[t] for t in self.tasks]
        raw = torch.stack(own)  # (T,)
        # IMTL-L: d/ds_t of (exp(s_t) L_t - s_t) is exp(s_t) L_t - 1, with L_t held fixed; a
        # task without labels (loss 0) would get -1 and its scale would drift: left out
        terms = torch.exp(s) * raw.detach() - s
        scale_loss = torch.where(live_losses(own), terms, torch.zeros_like(terms)).sum()
        (scale(scale_loss) if scale is not None else scale_loss).backward()
        factors = torch.exp(s.detach())  # (T,)
        scaled = {t: factors[i] * losses[t] for i, t in enumerate(self.tasks)}
        return super().backward(scaled, scale, rep)  # alpha_t of the scaled losses
