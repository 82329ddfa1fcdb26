"""Nash-MTL (Navon et al., ICML 2022): the update is the Nash bargaining solution of the tasks.

The tasks bargain over a direction d in a ball; the solution is ``d = sum_t alpha_t g_t`` with
``alpha`` solving ``G^T G alpha = 1 / alpha`` elementwise (``alpha > 0``), so that every task's
directional derivative ``g_t . d = 1 / alpha_t`` is positive and large gradients get small
weights. With ``M = G^T G`` that condition is the stationarity of the strictly convex function
``f(alpha) = alpha^T M alpha / 2 - sum_t log alpha_t``, solved here by damped Newton steps.
"""

from __future__ import annotations

import numpy as np

from taskgrouper.balancing.gradient_method import GradientBalancer
from taskgrouper.errors import InputError

__all__ = ["NashMTL", "nash_weights"]


def nash_weights(gram: np.ndarray, max_iter: int = 100, tol: float = 1e-12) -> np.ndarray:
    """The positive solution of ``M alpha = 1 / alpha`` (Nash-MTL's bargaining weights).

    Newton's method on ``f(alpha) = alpha^T M alpha / 2 - sum log alpha`` (gradient
    ``M alpha - 1/alpha``, Hessian ``M + diag(1/alpha^2)``, positive definite), with
    backtracking that keeps ``alpha > 0`` and decreases ``f``. It is solved for
    ``beta_t = alpha_t ||g_t||`` on the Gram matrix of the unit gradients, from ``beta = 1`` (the
    solution when the gradients are orthogonal); a ridge of 1e-8 on that unit diagonal keeps the
    problem bounded when the gradients are linearly dependent.

    Args:
        gram: ``(T, T)`` Gram matrix ``M_ij = g_i . g_j``.

    Returns:
        ``(T,)`` positive weights (ones when every gradient is zero).
    """
    m = np.asarray(gram, dtype=np.float64)
    n = m.shape[0]
    diag = np.diag(m)
    if not np.all(np.isfinite(m)) or diag.max() <= 1e-30:
        return np.ones(n)
    # solve for beta_t = alpha_t ||g_t|| on the unit-diagonal matrix N = D M D (D = 1/||g||):
    # the equation is unchanged (N beta = 1/beta) and the ridge is relative to every task
    norms = np.sqrt(np.maximum(diag, 1e-12 * diag.max()))
    m = m / np.outer(norms, norms) + 1e-8 * np.eye(n)
    alpha = np.ones(n)

    def f(a):
        return 0.5 * a @ m @ a - np.log(a).sum()

    value = f(alpha)
    for _ in range(max_iter):
        grad = m @ alpha - 1.0 / alpha
        hess = m + np.diag(1.0 / alpha ** 2)
        step = np.linalg.solve(hess, grad)
        decrement = float(grad @ step)  # Newton decrement squared
        if decrement <= tol:
            break
        t = 1.0
        while np.any(alpha - t * step <= 0.0):
            t *= 0.5
        while True:
            candidate = alpha - t * step
            new_value = f(candidate)
            if new_value <= value - 0.25 * t * decrement or t < 1e-12:
                break
            t *= 0.5
        alpha, value = candidate, new_value
    return alpha / norms


class NashMTL(GradientBalancer):
    """Nash-MTL (Navon et al., ICML 2022): the shared parameters get ``sum_t alpha_t g_t`` with
    the bargaining weights of :func:`nash_weights`; each task's own parameters get
    ``alpha_t * grad L_t`` (the paper back-propagates ``sum_t alpha_t L_t``).

    Args:
        update_every: Solve for new weights every this many steps, and between solves reuse
            the last weights with a plain backward of ``sum_t alpha_t L_t`` (the paper's
            speed-up; 1 solves every step). A task without labels at a solve (a zero gradient
            row, weight 0 for that step) keeps its previous weight for the reuse steps; one
            never solved for gets the mean of the live tasks' weights. (A reuse step takes no
            per-task gradients, so it reports those weights even for a task without labels,
            whose loss of 0 times its prediction adds nothing whatever its weight.)
        rep: Solve on the gradients of the shared representation instead.
        batched: See :class:`GradientBalancer`.
    """

    name = "nash_mtl"

    def __init__(self, update_every: int = 1, rep: bool = False, batched: bool = False) -> None:
        super().__init__(rep=rep, batched=batched)
        if (not isinstance(update_every, int) or isinstance(update_every, bool)
                or update_every < 1):
            raise InputError(f"balancer 'nash_mtl': option 'update_every' must be an integer "
                             f">= 1, not {update_every!r}")
        self.update_every = update_every
        self.step = 0
        self.alpha: list[float] | None = None

    def solve(self, gram, losses):
        alpha = nash_weights(gram)
        if self.solving is None:
            self.alpha = [float(a) for a in alpha]
        else:  # dead tasks this step (no label): keep their last weights for the reuse steps
            fill = float(np.mean(alpha))  # a task not solved for yet: the live tasks' mean
            kept = self.alpha if self.alpha is not None else [fill] * len(self.tasks)
            kept = list(kept)
            for i, a in zip(self.solving, alpha, strict=True):
                kept[i] = float(a)
            self.alpha = kept
        return alpha, alpha, alpha

    def backward(self, losses, scale=None, rep=None):
        self.step += 1
        if self.alpha is None or (self.step - 1) % self.update_every == 0:
            return super().backward(losses, scale, rep)
        total = sum(a * losses[t] for a, t in zip(self.alpha, self.tasks, strict=True))
        (scale(total) if scale is not None else total).backward()
        return dict(zip(self.tasks, self.alpha, strict=True))

    def state_dict(self) -> dict:
        return {"step": self.step, "alpha": self.alpha}

    def load_state_dict(self, state) -> None:
        self.step = int(state["step"])
        self.alpha = None if state["alpha"] is None else [float(a) for a in state["alpha"]]

