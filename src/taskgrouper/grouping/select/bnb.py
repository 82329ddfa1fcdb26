"""Solver ``"bnb"``: Algorithm 1 of Standley et al. (2020) with bounds.

A recursive branch and bound over "choose / skip" with the FILTER and SORT steps of the
paper, pruned by two admissible lower bounds (each task at its lowest remaining loss; a
fractional knapsack on the networks' gains) and, on an LP-reduced problem, a Lagrangian
third. Its incumbent comes from :func:`_greedy` (also the LP reduction's first incumbent)
and from seeds (the previous budget's optimum, or a MILP's answer to canonicalise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from taskgrouper.grouping.select.model import COST_TOL, REL_TOL, _better, _key, _Problem


class _NodeLimit(Exception):
    pass


def _knapsack_bound(gain: np.ndarray, cost: np.ndarray, capacity: float) -> float:
    """Fractional-knapsack upper bound on the total gain of items fitting ``capacity``."""
    free = cost <= 0
    total = float(gain[free].sum())
    gain, cost = gain[~free], cost[~free]
    if not gain.size:
        return total
    order = np.argsort(-(gain / cost), kind="stable")
    g, c = gain[order], cost[order]
    cum = np.cumsum(c)
    k = int(np.searchsorted(cum, capacity + COST_TOL, side="right"))
    total += float(g[:k].sum())
    if k < g.size:
        left = capacity + COST_TOL - (cum[k - 1] if k else 0.0)
        total += float(g[k]) * max(0.0, left) / float(c[k])
    return total


def _greedy(p: _Problem, budget: float) -> list[int] | None:
    """Greedy incumbent: repeatedly add the affordable network with the best gain per cost."""
    cur = np.full(len(p.tasks), math.inf)
    used, chosen = 0.0, []
    worst = np.where(np.isfinite(p.eff), p.eff, -math.inf).max(axis=0)
    # An uncovered task is worth (worst - loss) plus a large bonus, so covering comes first.
    span = float(np.nanmax(np.abs(np.where(np.isfinite(p.eff), p.eff, 0.0)))) + 1.0
    while True:
        afford = p.cost <= budget - used + COST_TOL
        afford[chosen] = False
        if not afford.any():
            break
        cand = np.flatnonzero(afford)
        L = p.eff[cand]
        ref = np.where(np.isfinite(cur), cur, worst + span)
        gain = np.where(np.isfinite(L), np.maximum(ref - L, 0.0), 0.0).sum(axis=1)
        if not (gain > 0).any():
            break
        ratio = gain / np.maximum(p.cost[cand], 1e-12)
        pick = int(cand[int(np.argmax(ratio))])
        chosen.append(pick)
        used += float(p.cost[pick])
        cur = np.minimum(cur, p.eff[pick])
    return chosen if chosen and np.isfinite(cur).all() else None


def _solve_bnb(
    p: _Problem,
    budget: float,
    seeds: Sequence[Sequence[int] | None] = (),
    node_limit: int | None = None,
    dual: tuple[np.ndarray, float] | None = None,
) -> list[int] | None:
    """Algorithm 1 with bounds. Exact: returns the canonical optimum (see package doc).

    ``dual`` (task multipliers ``u`` and budget multiplier ``lam >= 0``, see :class:`_Dual`)
    adds a third bound: the Lagrangian bound with the chosen networks forced in and the
    filtered-out ones forced out.
    """
    eff, cost = p.eff, p.cost
    state: dict = {"key": None, "idx": None, "nodes": 0}
    if dual is not None:
        u, lam = dual
        with np.errstate(invalid="ignore"):
            g = lam * cost + np.minimum(eff - u, 0.0).sum(axis=1)  # (M,) reduced costs
        g_neg = np.minimum(g, 0.0)
        base = math.fsum(u.tolist()) - lam * (budget + COST_TOL)
        slack = 1e-9 * (1.0 + abs(base) + float(np.abs(g).sum()))  # float error allowance

    def consider(idx: Sequence[int]) -> None:
        if math.fsum(cost[list(idx)].tolist()) > budget + COST_TOL:
            return
        key = _key(p, idx)
        if _better(key, state["key"]):
            state["key"], state["idx"] = key, sorted(idx)

    for seed in (*seeds, _greedy(p, budget)):
        if seed:
            consider(seed)

    def pruned(lb: float, used: float) -> bool:
        best = state["key"]
        if best is None:
            return False
        tol = REL_TOL * max(abs(lb), abs(best[0]))
        if lb > best[0] + tol:
            return True
        # At best a tie on the objective, and already dearer than the incumbent.
        return lb >= best[0] - tol and used > best[1] + COST_TOL

    def rec(
        cand: np.ndarray, chosen: tuple[int, ...], cur: np.ndarray, used: float, g_in: float
    ) -> None:
        # g_in: sum of the chosen networks' reduced costs (0 without ``dual``).
        state["nodes"] += 1
        if node_limit is not None and state["nodes"] > node_limit:
            raise _NodeLimit
        covered = bool(np.isfinite(cur).all())
        if covered:
            consider(chosen)
        # FILTER: affordable networks that improve at least one task.
        rem = budget - used
        cand = cand[cost[cand] <= rem + COST_TOL]
        if not cand.size:
            return
        L = eff[cand]  # (K, T)
        keep = (L < cur).any(axis=1)
        cand, L = cand[keep], L[keep]
        if not cand.size:
            return
        # Bound 1: each task gets at best the lowest remaining loss.
        colmin = L.min(axis=0)
        lb_vec = np.minimum(cur, colmin)
        if not np.isfinite(lb_vec).all():
            return  # some uncovered task can no longer be covered
        lb = math.fsum(lb_vec.tolist())
        if pruned(lb, used):
            return
        # Bound 2: start from U (current loss, or the worst remaining loss if uncovered);
        # the gain of a set is at most the sum of its members' gains (submodularity), and the
        # members must fit the remaining budget: a fractional knapsack bounds it.
        finite = np.isfinite(L)
        worst = np.where(finite, L, -math.inf).max(axis=0)
        U = np.where(np.isfinite(cur), cur, worst)
        gain = np.where(finite, np.maximum(U - L, 0.0), 0.0)  # (K, T)
        gsum = gain.sum(axis=1)
        lb2 = math.fsum(U.tolist()) - _knapsack_bound(gsum, cost[cand], rem)
        if pruned(max(lb, lb2), used):
            return
        # SORT: most improving first (stable: ties keep name order).
        order = np.argsort(-gsum, kind="stable")
        cand, L = cand[order], L[order]
        # suffix[i] = per-task minimum over cand[i:] -> bound for the rest of the loop.
        suffix = np.minimum.accumulate(L[::-1], axis=0)[::-1]
        k = cand.size
        if dual is not None:
            # lag[i]: Lagrangian bound of the subtrees that exclude cand[:i].
            lag = base + g_in - slack + np.concatenate([np.cumsum(g_neg[cand][::-1])[::-1], [0]])
            if pruned(float(lag[0]), used):
                return
        for i in range(k):
            rest = np.minimum(cur, suffix[i])
            if not np.isfinite(rest).all() or pruned(math.fsum(rest.tolist()), used):
                break
            n = int(cand[i])
            if dual is not None:
                if pruned(float(lag[i]), used):
                    break
                if pruned(float(lag[i + 1]) + float(g[n]), used + float(cost[n])):
                    continue
            new_cur = np.minimum(cur, L[i])
            child_lb = new_cur if i + 1 == k else np.minimum(new_cur, suffix[i + 1])
            if not np.isfinite(child_lb).all():
                continue  # the child can never cover every task
            if pruned(math.fsum(child_lb.tolist()), used + float(cost[n])):
                continue
            rec(cand[i + 1 :], (*chosen, n), new_cur, used + float(cost[n]),
                g_in + (float(g[n]) if dual is not None else 0.0))

    rec(
        np.arange(p.size)[cost <= budget + COST_TOL],
        (),
        np.full(len(p.tasks), math.inf),
        0.0,
        0.0,
    )
    return state["idx"]
