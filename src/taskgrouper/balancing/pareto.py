"""Pareto MTL (Lin et al., NeurIPS 2019): MGDA restricted to one region of the Pareto front.

A run is given a preference vector ``u_k`` among K vectors spread over the positive orthant.
The loss vector ``F`` should stay in the sub-region of ``u_k``: the constraints
``G_j = (u_j - u_k)^T F / ||F|| <= 0`` for every ``j != k`` say ``F`` is closer (in angle) to
``u_k`` than to any other preference. Training has two phases:

1. **Initial solution**: while some constraint is active (``G_j >= 0``), descend along the
   min-norm point of the gradients of the active constraints, ``grad G_j = sum_t (u_j - u_k)_t
   g_t``, to reach the sub-region.
2. **Main phase**: the constrained MGDA subproblem, the min-norm point of the convex hull of the
   task gradients together with the gradients of the active constraints. Its solution
   ``sum_t alpha_t g_t + sum_j beta_j grad G_j`` is a combination of the task gradients with
   weights ``w_t = alpha_t + sum_j beta_j (u_j - u_k)_t``, which may be negative.

The weights are normalised to ``sum_t |w_t| = 1`` (the scale of MGDA's convex weights).

A step where some tasks have no label (zero gradient rows) is solved for the other tasks with
the preference vectors restricted to them (:func:`restrict_preferences`); it does not end the
initial phase, which needs the whole loss vector in the sub-region.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from taskgrouper.balancing.gradient_method import GradientBalancer
from taskgrouper.balancing.mgda import min_norm_weights
from taskgrouper.errors import InputError

__all__ = ["ParetoMTL", "pareto_mtl_weights", "preference_vectors", "restrict_preferences"]


def preference_vectors(n_tasks: int, count: int) -> np.ndarray:
    """``count`` unit preference vectors spread over the positive orthant of R^n_tasks.

    Two tasks: the paper's evenly spaced angles ``(cos a_k, sin a_k)``, ``a_k = k pi / (2(K-1))``
    for ``k = 0..K-1``. More tasks: points of the simplex lattice with the fewest divisions that
    holds ``count`` points, chosen by farthest-point sampling (starting from the first task's
    corner), normalised to unit length.

    Returns:
        ``(count, n_tasks)`` array.
    """
    if count < 1:
        raise InputError(f"need at least one preference vector, not {count}")
    if count == 1 or n_tasks == 1:
        return np.full((count if n_tasks == 1 else 1, n_tasks), 1.0 / math.sqrt(n_tasks))
    if n_tasks == 2:
        angles = np.linspace(0.0, math.pi / 2, count)
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    divisions = 1
    while math.comb(divisions + n_tasks - 1, n_tasks - 1) < count:
        divisions += 1
    lattice = np.array(_compositions(divisions, n_tasks), dtype=np.float64) / divisions
    units = lattice / np.linalg.norm(lattice, axis=1, keepdims=True)
    chosen = [0]
    dist = np.linalg.norm(units - units[0], axis=1)
    while len(chosen) < count:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(units - units[nxt], axis=1))
    return units[chosen]


def _compositions(total: int, parts: int) -> list[tuple[int, ...]]:
    """Every tuple of ``parts`` non-negative integers summing to ``total`` (lexicographic,
    largest first part first)."""
    if parts == 1:
        return [(total,)]
    return [(first, *rest) for first in range(total, -1, -1)
            for rest in _compositions(total - first, parts - 1)]


def restrict_preferences(prefs: np.ndarray, index: int,
                         tasks: Sequence[int]) -> tuple[np.ndarray | None, int]:
    """The preference vectors seen from a subset of the tasks (those with labels in a batch).

    Each vector keeps the coordinates of ``tasks`` and is renormalised to unit length; vectors
    with no weight on any of them say nothing about these tasks and are left out.

    Args:
        prefs: ``(K, T)`` preference vectors.
        index: This run's preference, a row of ``prefs``.
        tasks: Indices of the tasks kept.

    Returns:
        ``(K', T')`` vectors and the new index of this run's preference; ``(None, 0)`` when it
        has no weight on any task kept.
    """
    restricted = np.asarray(prefs, dtype=np.float64)[:, list(tasks)]  # (K, T')
    norms = np.linalg.norm(restricted, axis=1)
    if norms[index] <= 0.0:
        return None, 0
    keep = norms > 0.0
    return restricted[keep] / norms[keep, None], int(keep[:index].sum())


def pareto_mtl_weights(gram: np.ndarray, losses: np.ndarray, prefs: np.ndarray, index: int,
                       initial: bool) -> tuple[np.ndarray, bool]:
    """One step of Pareto MTL as weights on the task gradients.

    Args:
        gram: ``(T, T)`` Gram matrix of the task gradients.
        losses: ``(T,)`` current losses ``F``.
        prefs: ``(K, T)`` preference vectors.
        index: ``k``, this run's preference.
        initial: True in the initial-solution phase.

    Returns:
        ``(T,)`` weights normalised to ``sum |w| = 1``, and whether the point is feasible (no
        active constraint).
    """
    f = np.asarray(losses, dtype=np.float64)
    diffs = np.delete(prefs - prefs[index], index, axis=0)  # (K-1, T) rows u_j - u_k
    diffs = diffs[np.abs(diffs).max(axis=1, initial=0.0) > 1e-12]  # u_j = u_k: no constraint
    values = diffs @ (f / max(np.linalg.norm(f), 1e-30))  # G_j
    active = diffs[values >= 0.0]  # (A, T)
    feasible = active.shape[0] == 0
    n = gram.shape[0]
    if initial:
        if feasible:
            return np.full(n, 1.0 / n), True
        basis = active  # descend on the active constraints only
    else:
        basis = np.concatenate([np.eye(n), active], axis=0)  # (T + A, T)
    coef = min_norm_weights(basis @ gram @ basis.T)  # Gram matrix of the extended set
    w = basis.T @ coef  # (T,)
    return w / max(np.abs(w).sum(), 1e-30), feasible


class ParetoMTL(GradientBalancer):
    """Pareto MTL (Lin et al., NeurIPS 2019): MGDA constrained to the sub-region of one
    preference vector; each task's own parameters get ``w_t * grad L_t`` (the paper
    back-propagates ``sum_t w_t L_t``). Weights may be negative (constraint gradients).

    Args:
        n_preferences: K, the number of preference vectors the front is split into.
        preference: Which of the K vectors this run uses (0-based, < K); None (default): the
            balanced vector ``(1, ..., 1) / sqrt(T)``, compared against K - 1 of the others.
        vector: An explicit preference vector (task name -> value >= 0, or a list in task
            order) instead of ``preference``; the other vectors are then K - 1 of the
            default ones it is compared against.
        init_steps: Most steps of the initial-solution phase (it ends earlier at the first
            feasible step).
        rep: Solve on the gradients of the shared representation instead.
        batched: See :class:`GradientBalancer`.
    """

    name = "pareto_mtl"

    def __init__(self, n_preferences: int = 5, preference: int | None = None,
                 vector: Sequence[float] | Mapping[str, float] | None = None,
                 init_steps: int = 100, rep: bool = False, batched: bool = False) -> None:
        super().__init__(rep=rep, batched=batched)
        for key, value, low in (("n_preferences", n_preferences, 1),
                                ("preference", preference, 0), ("init_steps", init_steps, 0)):
            if key == "preference" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InputError(f"balancer 'pareto_mtl': option '{key}' must be an integer "
                                 f">= {low}, not {value!r}")
        if preference is not None and preference >= n_preferences:
            raise InputError(f"balancer 'pareto_mtl': option 'preference' is {preference} but "
                             f"there are {n_preferences} preference vectors (0-based index)")
        if vector is not None:
            values = list(vector.values()) if isinstance(vector, Mapping) else list(vector)
            if not values or any(not isinstance(v, (int, float)) or not v >= 0 for v in values) \
                    or not any(v > 0 for v in values):
                raise InputError(f"balancer 'pareto_mtl': option 'vector' must hold numbers "
                                 f">= 0, not all zero; got {vector!r}")
        self.n_preferences = n_preferences
        self.preference = preference
        self.vector = vector
        self.init_steps = init_steps
        self.prefs: np.ndarray | None = None
        self.index = 0
        self.step = 0
        self.initial = init_steps > 0

    def setup(self, tasks, model) -> None:
        super().setup(tasks, model)
        n = len(self.tasks)
        if self.vector is None and self.preference is not None:
            self.prefs, self.index = preference_vectors(n, self.n_preferences), self.preference
            return
        if self.vector is None:
            own = np.ones(n)
        elif isinstance(self.vector, Mapping):
            from taskgrouper.tasks import closest

            for task in self.vector:
                if task not in self.tasks:
                    raise InputError(f"balancer 'pareto_mtl': vector names unknown task "
                                     f"'{task}'; " + closest(task, self.tasks))
            own = np.array([float(self.vector.get(t, 0.0)) for t in self.tasks])
        else:
            own = np.asarray(self.vector, dtype=np.float64)
            if own.shape != (n,):
                raise InputError(f"balancer 'pareto_mtl': option 'vector' has {own.size} "
                                 f"values for {n} tasks")
        own = own / np.linalg.norm(own)
        others = preference_vectors(n, max(self.n_preferences, 2))
        others = others[np.linalg.norm(others - own, axis=1) > 1e-9][:self.n_preferences - 1]
        self.prefs, self.index = np.concatenate([own[None], others], axis=0), 0

    def solve(self, gram, losses):
        self.step += 1
        if self.initial and self.step > self.init_steps:
            self.initial = False
        if self.solving is None:
            prefs, index = self.prefs, self.index
        else:  # some tasks have no label in this batch: compare the live tasks' losses only
            prefs, index = restrict_preferences(self.prefs, self.index, self.solving)
            if prefs is None:  # this run's preference gives no weight to a live task
                w = min_norm_weights(gram)
                return w, w, w
        w, feasible = pareto_mtl_weights(gram, losses, prefs, index, self.initial)
        if self.initial and feasible:  # the initial solution is found: main phase from now
            if self.solving is None:  # (feasible for some tasks only does not end the phase)
                self.initial = False
            w, _ = pareto_mtl_weights(gram, losses, prefs, index, False)
        return w, w, w

    def state_dict(self) -> dict:
        return {"step": self.step, "initial": self.initial}

    def load_state_dict(self, state: Mapping) -> None:
        self.step, self.initial = int(state["step"]), bool(state["initial"])
