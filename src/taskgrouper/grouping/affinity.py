"""Task affinity from one all-task training run, turned into predicted losses for selection.

Two estimators are measured during one run of the all-task network (the run sets
``train.affinity_every``; the measuring is :mod:`taskgrouper.train.affinity`):

- ``lookahead``: ``Z(i->j) = 1 - L_j(after a step on task i alone) / L_j(before)``, the
  inter-task affinity of Fifty et al. (NeurIPS 2021), averaged over the recorded steps;
- ``gradcos``: the cosine similarity of the tasks' gradients on the shared parameters.

Selection needs a loss for every (network, task), so an affinity matrix ``A`` (``A[u][t]``:
the effect of task ``u`` on task ``t``) becomes predicted losses through this model, for a
network ``N`` of two or more tasks:

    L_t(N) = L_t(1) * (1 + c + b * (|N| - 1) / (T - 1) - s * a_t(N)),
    a_t(N) = mean of A[u][t] over the group mates u of t in N,

where ``L_t(1)`` is the measured loss of the full-width single-task network of ``t``, ``T`` the
number of tasks, ``s >= 0`` how much a unit of affinity lowers the loss, ``c`` the cost of
sharing an encoder at all, and ``b`` the further cost of sharing it with more tasks
(capacity). ``s``, ``c`` and ``b`` are fitted to the multi-task networks that were measured:
the all-task network of the recording run, and the calibration pairs (each task with its
``k`` highest-affinity partners, trained at full width; see :func:`calibration_pairs`). Each
(network, task) gives one equation ``L_t(N) / L_t(1) - 1 = c + b (|N|-1)/(T-1) - s a_t(N)``,
solved by least squares with a ridge penalty ``T * (c^2 + b^2)`` on the two sharing terms.

Why the pairs: in the all-task network every task's mates are all the other tasks, so ``a_t``
is nearly the same for every ``t`` and ``s`` is barely identified (on 30 planted tasks the fit
gave ``s = 0``: every grouping of one size then looks alike, though the affinities themselves
named a cluster mate as the top partner of 28 of the 30 tasks). The pairs vary the mean
affinity at a fixed group size, which is what ``s`` measures, and they pin the loss of a small
group against the all-task network's. Why ``c`` as well as ``b``: the cost of sharing is not
linear in group size. On the 30-task planted family one unrelated partner raised a task's loss
by about 20% and 29 partners by about 92%; a model with ``b`` alone cannot fit both (it put
the planted grouping within 1% of random groupings of the same sizes), while with ``c`` the
planted grouping is predicted 7% (lookahead) and 14% (gradcos) below random ones, and the
searches choose groups close to the planted ones (README, "Planted families").

With no pairs the penalty decides what one network cannot: when every task sees about the same
mean affinity (a symmetric family), the transfer is put on the affinity term (``c = b = 0``,
``s = -mean r / mean a``) rather than on group size. ``s`` is held at 0 when the fit makes
it negative (then ``c`` and ``b`` alone take the transfer, shrunk by the same penalty), and a
ratio below 0 counts as 0. Measured networks (every network of one task, at any width, and the
calibration pairs) keep their measured losses. How well the model ranks the others is
measured, for any sweep with the exhaustive ground truth, by
:mod:`taskgrouper.grouping.evaluation` (Spearman's rho of predicted against true losses).

This module is pure Python: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from taskgrouper.errors import InputError

__all__ = ["AFFINITY_METHODS", "AffinityFit", "affinity_matrix", "calibration_pairs",
           "fit_affinity_model", "predict_losses"]

#: The estimators one recording run measures.
AFFINITY_METHODS: tuple[str, ...] = ("lookahead", "gradcos")


def affinity_matrix(result: Mapping, method: str, tasks: Sequence[str], run_id: str = ""
                    ) -> dict[str, dict[str, float]]:
    """``A[u][t]`` (effect of ``u`` on ``t``) for ``tasks`` from a run's ``extra["affinity"]``.

    Raises:
        ValueError: an unknown method, a task the run did not record, or an entry between
            two different tasks that is NaN or infinite (names the run, the pair and the fix).
    """
    if method not in AFFINITY_METHODS:
        raise InputError(f"unknown affinity method '{method}'; choose from "
                         f"{', '.join(AFFINITY_METHODS)}")
    recorded = list(result.get("tasks") or [])
    missing = [t for t in tasks if t not in recorded]
    if missing:
        raise InputError(f"affinity run '{run_id}' recorded no task '{missing[0]}'; delete its "
                         f"folder and store row to record it again")
    rows = result.get(method)
    if rows is None:
        raise InputError(f"affinity run '{run_id}' holds no '{method}' matrix")
    index = {t: k for k, t in enumerate(recorded)}
    out: dict[str, dict[str, float]] = {}
    bad = []
    for u in tasks:
        out[u] = {}
        for t in tasks:
            value = rows[index[u]][index[t]]
            value = math.nan if value is None else float(value)
            if u != t and not math.isfinite(value):
                bad.append(f"{u}->{t}")
            out[u][t] = value
    if bad:
        raise InputError(f"affinity run '{run_id}' produced a non-finite {method} affinity for "
                         f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''} (a loss or "
                         f"gradient that was 0 or NaN at every recorded step). The trained runs "
                         f"are kept in the store; check those tasks' labels, lower train.lr, or "
                         f"use another strategy (hoa, esa)")
    return out


def _mean_affinity(matrix: Mapping[str, Mapping[str, float]], group: Sequence[str],
                   t: str) -> float:
    mates = [u for u in group if u != t]
    return math.fsum(matrix[u][t] for u in mates) / len(mates)


def calibration_pairs(matrix: Mapping[str, Mapping[str, float]], tasks: Sequence[str],
                      k: int = 1) -> list[tuple[str, str]]:
    """Each task with its ``k`` partners of highest mutual affinity ``A[u][t] + A[t][u]``
    (ties by task order), as sorted pairs in the order of ``tasks``, each pair once.

    Example: with ``A[a][b] + A[b][a] = 0.5``, ``A[a][c] + A[c][a] = 0.1`` and ``A[b][c] +
    A[c][b] = 0.3``, ``k = 1`` gives ``a`` -> b, ``b`` -> a, ``c`` -> b: pairs (a, b), (b, c).
    """
    order = {t: i for i, t in enumerate(tasks)}
    out: set[tuple[str, str]] = set()
    for t in tasks:
        others = sorted((u for u in tasks if u != t),
                        key=lambda u: (-(matrix[u][t] + matrix[t][u]), order[u]))
        for u in others[:k]:
            out.add((t, u) if order[t] < order[u] else (u, t))
    return sorted(out, key=lambda p: (order[p[0]], order[p[1]]))


@dataclass(frozen=True)
class AffinityFit:
    """The fitted model: ``L_t(N) = L_t(1) * (1 + c + b * (|N|-1)/(T-1) - s * a_t(N))``."""

    s: float
    b: float
    n_tasks: int
    residual: float  # root mean square error of the fitted ratios on the measured networks
    c: float = 0.0

    def ratio(self, group_size: int, mean_affinity: float) -> float:
        """Predicted ``L_t(N) / L_t(1)`` for a task with ``group_size - 1`` mates."""
        if group_size <= 1:
            return 1.0
        share = (group_size - 1) / (self.n_tasks - 1)
        return max(0.0, 1.0 + self.c + self.b * share - self.s * mean_affinity)


def _ridge(columns: Sequence[Sequence[float]], target: Sequence[float],
           penalty: Sequence[float]) -> list[float]:
    """Minimise ``|X w - y|^2 + sum_k penalty[k] w_k^2`` (``X`` given by its columns) through
    the normal equations, by Gaussian elimination with partial pivoting; a singular system
    gives 0 for the weights it cannot determine."""
    k = len(columns)
    def dot(u: Sequence[float], v: Sequence[float]) -> float:
        return math.fsum(p * q for p, q in zip(u, v, strict=True))

    m = [[dot(columns[i], columns[j]) + (penalty[i] if i == j else 0.0) for j in range(k)]
         + [dot(columns[i], target)] for i in range(k)]
    for col in range(k):
        pivot = max(range(col, k), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        if abs(m[col][col]) < 1e-300:
            continue
        for r in range(k):
            if r != col and m[r][col]:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    return [m[i][k] / m[i][i] if abs(m[i][i]) >= 1e-300 else 0.0 for i in range(k)]


def fit_affinity_model(matrix: Mapping[str, Mapping[str, float]], single: Mapping[str, float],
                       all_task: Mapping[str, float],
                       networks: Sequence[tuple[Sequence[str], Mapping[str, float]]] = ()
                       ) -> AffinityFit:
    """Fit ``s >= 0``, ``c`` and ``b`` to the measured multi-task networks (module docstring).

    Every (network, task) is one equation ``L_t(N) / L_t(1) - 1 = c + b x - s a``, with ``x =
    (|N| - 1) / (T - 1)`` and ``a = a_t(N)``; the fit is least squares with the ridge penalty
    ``T (c^2 + b^2)``.

    Args:
        matrix: ``A[u][t]`` over the tasks.
        single: Task -> loss of its full-width single-task network.
        all_task: Task -> loss of the all-task network.
        networks: More measured multi-task networks (the calibration pairs), each as
            ``(tasks, {task: loss})``.

    Raises:
        ValueError: fewer than two tasks, or a single-task loss that is not positive.
    """
    tasks = list(single)
    n = len(tasks)
    if n < 2:
        raise InputError("an affinity strategy needs at least two tasks")
    for t in tasks:
        if not (math.isfinite(single[t]) and single[t] > 0):
            raise InputError(f"the single-task network of '{t}' has loss {single[t]}; the "
                             f"affinity model scales positive losses")
    ones, xs, neg_a, rs = [], [], [], []
    for group, losses in [(tasks, all_task), *networks]:
        for t in group:
            ones.append(1.0)
            xs.append((len(group) - 1) / (n - 1))
            neg_a.append(-_mean_affinity(matrix, group, t))
            rs.append(losses[t] / single[t] - 1.0)
    lam = float(n)  # ridge weight on c and b (see the module docstring)
    c, b, s = _ridge([ones, xs, neg_a], rs, [lam, lam, 0.0])
    if s <= 0:
        s = 0.0
        c, b = _ridge([ones, xs], rs, [lam, lam])
    residual = math.sqrt(math.fsum((c + b * x + s * na - r) ** 2
                                   for x, na, r in zip(xs, neg_a, rs, strict=True)) / len(rs))
    return AffinityFit(s=s, b=b, n_tasks=n, residual=residual, c=c)


def predict_losses(matrix: Mapping[str, Mapping[str, float]], fit: AffinityFit,
                   single: Mapping[str, float], networks: Sequence,
                   measured: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Losses selection sees: measured where measured (every network of one task, and the
    calibration pairs), the model for the others.

    Args:
        matrix: ``A[u][t]``.
        fit: From :func:`fit_affinity_model`.
        single: Task -> full-width single-task loss.
        networks: Candidates (``.name``, ``.tasks``, ``.width``) selection chooses among.
        measured: Network name -> {task: loss} of the measured networks (every single-task
            network, and any multi-task network measured at its selectable width).

    Raises:
        KeyError: a single-task network that was not measured (names it).
    """
    out: dict[str, dict[str, float]] = {}
    for c in networks:
        if c.name in measured:
            out[c.name] = dict(measured[c.name])
            continue
        if len(c.tasks) == 1:
            raise KeyError(f"network '{c.name}' has no measured loss")
        out[c.name] = {t: single[t] * fit.ratio(len(c.tasks), _mean_affinity(matrix, c.tasks, t))
                       for t in c.tasks}
    return out
