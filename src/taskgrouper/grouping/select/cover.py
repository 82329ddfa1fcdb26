"""The cheapest cover of every task, exact: what :class:`InfeasibleBudget` reports.

A greedy cover is proved optimal by the LP relaxation or a "slot" knapsack bound, or else a
set-cover MILP (HiGHS) on the networks that LP reduced costs leave finds the optimum
(:func:`_cover`). :func:`_cover_within` gives the LP reduction a cover that fits a budget.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from taskgrouper.grouping.select.milp import HIGHS_FEASTOL, PRESOLVE_MAX
from taskgrouper.grouping.select.model import COST_TOL, Network, Objective, _compile, _Problem

__all__ = ["cheapest_cover"]


def _cheapest_cover(p: _Problem) -> float:
    """Exact minimum cost of a set covering every task (cached on ``p``)."""
    return _cover(p)[0]


def _cover(p: _Problem) -> tuple[float, list[int]]:
    """Exact cheapest cover of every task: its cost and its networks (cached on ``p``).

    A greedy cover is the incumbent; two lower bounds often prove it optimal at once: the
    LP relaxation, and a "slot" bound (each task needs one slot and network n offers as many
    slots as it serves tasks, so a cover costs at least the cheapest set of networks offering T
    slots, a small knapsack solved exactly by dynamic programming). Otherwise networks whose
    LP reduced cost rules them out of every cover no dearer than the incumbent are dropped and
    HiGHS solves the set-cover MILP on the rest.
    """
    if p._cover is not None:
        return p._cover
    can = np.isfinite(p.eff)  # (M, T)
    T = len(p.tasks)
    best = _greedy_cover(can, p.cost)
    ub = math.fsum(p.cost[best].tolist())
    tol = 1e-12 * max(1.0, abs(ub))
    if _slot_bound(can.sum(axis=1), p.cost, T) < ub - tol:
        from scipy.optimize import linprog
        from scipy.sparse import csr_matrix

        a_ub = -csr_matrix(can.T.astype(float))  # (T, M): covered at least once
        res = linprog(p.cost, A_ub=a_ub, b_ub=-np.ones(T), bounds=(0, 1), method="highs")
        if res.status == 0:
            pi = np.maximum(-np.asarray(res.ineqlin.marginals, dtype=float), 0.0)  # (T,)
            reduced = p.cost - can @ pi  # (M,)
            lb = math.fsum([*pi.tolist(), *np.minimum(reduced, 0.0).tolist()])
            keep = lb + np.maximum(reduced, 0.0) <= ub + 1e-9 * max(1.0, abs(ub))
            keep[best] = True
        else:  # pragma: no cover - the LP of a coverable problem is feasible
            lb, keep = -math.inf, np.ones(p.size, dtype=bool)
        if lb < ub - tol:
            sub = np.flatnonzero(keep)
            chosen = _milp_cover(can[sub], p.cost[sub], bound=ub + 1e-9 * max(1.0, abs(ub)))
            if chosen is not None:
                chosen = sub[chosen].tolist()
                cost = math.fsum(p.cost[chosen].tolist())
                if cost < ub:
                    best, ub = chosen, cost
    p._cover = (ub, sorted(int(i) for i in best))
    return p._cover


def _cover_within(p: _Problem, budget: float) -> list[int] | None:
    """A cover that fits ``budget``, or None when none does."""
    cost, cover = _cover(p)
    if cost <= budget + COST_TOL:
        return cover
    if cost > budget + COST_TOL + 2 * HIGHS_FEASTOL * max(1.0, abs(cost)):
        return None
    # HiGHS's cover may be dearer than the cheapest by its tolerance: ask for one that fits.
    found = _milp_cover(np.isfinite(p.eff), p.cost, bound=budget + COST_TOL)
    if found is None or math.fsum(p.cost[found].tolist()) > budget + COST_TOL:
        return None
    return found


def _greedy_cover(can: np.ndarray, cost: np.ndarray) -> list[int]:
    """Greedy set cover (cheapest cost per newly covered task), then drop redundant networks."""
    uncovered = np.ones(can.shape[1], dtype=bool)
    chosen: list[int] = []
    while uncovered.any():
        new = can[:, uncovered].sum(axis=1)
        ratio = np.where(new > 0, cost / np.maximum(new, 1), math.inf)
        pick = int(np.argmin(ratio))
        chosen.append(pick)
        uncovered &= ~can[pick]
    for i in sorted(chosen, key=lambda i: (-cost[i], i)):  # dearest redundant ones first
        rest = [j for j in chosen if j != i]
        if rest and can[rest].any(axis=0).all():
            chosen = rest
    return chosen


def _slot_bound(slots: np.ndarray, cost: np.ndarray, T: int) -> float:
    """Least total cost of distinct networks offering at least T slots in all (exact DP)."""
    dp = np.full(T + 1, math.inf)  # dp[s]: least cost of min(T, slots offered) = s
    dp[0] = 0.0
    level = np.arange(T + 1)
    for size in np.unique(slots[slots > 0]):
        size = int(size)
        # Of the networks offering ``size`` slots, an optimum uses the cheapest few.
        prefix = np.cumsum(np.sort(cost[slots == size])[: -(-T // size)])
        new = dp.copy()
        for j, spent in enumerate(prefix.tolist(), start=1):
            np.minimum.at(new, np.minimum(level + j * size, T), dp + spent)
        dp = new
    return float(dp[T])


def _milp_cover(can: np.ndarray, cost: np.ndarray, bound: float) -> list[int] | None:
    """The set-cover MILP (HiGHS); None when nothing cheaper than ``bound`` exists."""
    from scipy.optimize import LinearConstraint, milp
    from scipy.sparse import csr_matrix

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unrecognized options", category=Warning)
        res = milp(
            cost,
            integrality=np.ones(cost.size),
            bounds=(0, 1),
            constraints=LinearConstraint(csr_matrix(can.T.astype(float)), lb=1.0, ub=np.inf),
            options={
                "mip_rel_gap": 0.0,
                "mip_abs_gap": 0.0,
                "presolve": cost.size <= PRESOLVE_MAX,
                "objective_bound": bound,
            },
        )
    if res.x is None:
        return None
    return np.flatnonzero(res.x > 0.5).tolist()


def cheapest_cover(
    networks: Iterable[Network],
    *,
    tasks: Sequence[str] | None = None,
    constraints: Mapping[str, float] | None = None,
) -> float:
    """Cost of the cheapest set of networks covering every task (and meeting constraints)."""
    return _cheapest_cover(_compile(networks, tasks, Objective(constraints=constraints)))
