"""MGDA and MGDA-UB (Sener & Koltun, 2018): the min-norm point of the task gradients.

The multiple gradient descent algorithm (Desideri, 2012) moves along the minimum-norm element
of the convex hull of the per-task gradients, ``min_{alpha in simplex} ||sum_t alpha_t g_t||^2``:
a direction that decreases every task's loss unless the point is Pareto-stationary. Sener &
Koltun solve it exactly for two tasks and by Frank-Wolfe for more; MGDA-UB takes the gradients
with respect to the shared representation instead of the shared parameters (an upper bound of
the same objective), which needs one backward through the heads per task instead of one
through the whole network.
"""

from __future__ import annotations

import numpy as np

from taskgrouper.balancing.gradient_method import GradientBalancer
from taskgrouper.errors import InputError

__all__ = ["MGDA", "MGDAUB", "NORMALIZATIONS", "gradient_normalizers", "min_norm_two",
           "min_norm_weights"]

#: Gradient normalisations of Sener & Koltun's released code (the weights are found on the
#: normalised gradients; the update uses the raw ones).
NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def min_norm_two(g11: float, g12: float, g22: float) -> float:
    """Weight ``gamma`` of the first vector in ``min ||gamma v1 + (1 - gamma) v2||``.

    With ``v1.v1 = g11``, ``v1.v2 = g12``, ``v2.v2 = g22``: setting the derivative of
    ``gamma^2 g11 + 2 gamma (1 - gamma) g12 + (1 - gamma)^2 g22`` to zero gives
    ``gamma = (g22 - g12) / (g11 - 2 g12 + g22)``, clipped to [0, 1].
    """
    denom = g11 - 2.0 * g12 + g22
    if denom <= 1e-20:  # equal vectors: any point is the same
        return 0.5
    return float(min(max((g22 - g12) / denom, 0.0), 1.0))


def min_norm_weights(gram: np.ndarray, max_iter: int = 1000, tol: float = 1e-10) -> np.ndarray:
    """The simplex weights of the min-norm point of vectors with Gram matrix ``gram``.

    Exact for one and two vectors; Frank-Wolfe with exact line search otherwise (Sener &
    Koltun, Alg. 2), started at the best pair and stopped when the duality gap
    ``alpha^T M alpha - min_t (M alpha)_t`` falls below ``tol`` times the squared norm.

    Args:
        gram: ``(T, T)`` symmetric positive semi-definite matrix ``M_ij = g_i . g_j``.

    Returns:
        ``(T,)`` non-negative weights summing to one.
    """
    m = np.asarray(gram, dtype=np.float64)
    n = m.shape[0]
    if n == 1:
        return np.ones(1)
    if n == 2:
        gamma = min_norm_two(m[0, 0], m[0, 1], m[1, 1])
        return np.array([gamma, 1.0 - gamma])
    # start from the best pair
    best, alpha = np.inf, np.full(n, 1.0 / n)
    for i in range(n):
        for j in range(i + 1, n):
            gamma = min_norm_two(m[i, i], m[i, j], m[j, j])
            value = (gamma ** 2 * m[i, i] + 2 * gamma * (1 - gamma) * m[i, j]
                     + (1 - gamma) ** 2 * m[j, j])
            if value < best:
                best = value
                alpha = np.zeros(n)
                alpha[i], alpha[j] = gamma, 1.0 - gamma
    scale = max(float(np.max(np.diag(m))), 1e-30)
    for _ in range(max_iter):
        m_alpha = m @ alpha  # (T,)
        vv = float(alpha @ m_alpha)  # ||v||^2 of the current point v
        t = int(np.argmin(m_alpha))  # the vertex most opposed to v
        if vv - m_alpha[t] <= tol * scale:  # Frank-Wolfe duality gap
            break
        # line search between the point v and the vertex g_t
        gamma = min_norm_two(vv, float(m_alpha[t]), float(m[t, t]))
        alpha = gamma * alpha
        alpha[t] += 1.0 - gamma
    return alpha


def gradient_normalizers(gram: np.ndarray, losses: np.ndarray, kind: str) -> np.ndarray:
    """Per-task divisors of the gradients before the min-norm solve (``NORMALIZATIONS``).

    ``l2``: the gradient norm; ``loss``: the loss; ``loss+``: loss times gradient norm;
    ``none``: 1.
    """
    norms = np.sqrt(np.maximum(np.diag(gram), 0.0))
    if kind == "l2":
        out = norms
    elif kind == "loss":
        out = np.asarray(losses, dtype=np.float64)
    elif kind == "loss+":
        out = np.asarray(losses, dtype=np.float64) * norms
    else:
        out = np.ones_like(norms)
    return np.where(out > 1e-12, out, 1.0)


class MGDA(GradientBalancer):
    """MGDA (Sener & Koltun, NeurIPS 2018): the update is the min-norm point of the per-task
    gradients; each task's own parameters get ``alpha_t * grad L_t``.

    Args:
        normalization: One of :data:`NORMALIZATIONS`. The weights ``alpha`` are found on the
            gradients divided by these; the update uses the raw gradients.
        rep: Solve on the gradients of the shared representation (MGDA-UB).
        batched: See :class:`GradientBalancer`.
    """

    name = "mgda"

    def __init__(self, normalization: str = "none", rep: bool = False,
                 batched: bool = False) -> None:
        super().__init__(rep=rep, batched=batched)
        if normalization not in NORMALIZATIONS:
            raise InputError(f"balancer '{self.name}': option 'normalization' must be one of "
                             f"{', '.join(NORMALIZATIONS)}, not {normalization!r}")
        self.normalization = normalization

    def solve(self, gram, losses):
        d = gradient_normalizers(gram, losses, self.normalization)
        alpha = min_norm_weights(gram / np.outer(d, d))  # Gram matrix of g_t / d_t
        return alpha, alpha, alpha


class MGDAUB(MGDA):
    """MGDA-UB (Sener & Koltun, 2018): MGDA on the gradients with respect to the shared
    representation, then one backward of ``sum_t alpha_t L_t`` (a pass through each head per
    task, and one through the encoder).

    Args:
        normalization: As for :class:`MGDA`.
        batched: See :class:`GradientBalancer`.
    """

    name = "mgda_ub"
    rep_only = True

    def __init__(self, normalization: str = "none", batched: bool = False) -> None:
        super().__init__(normalization=normalization, rep=True, batched=batched)
