"""Solver ``"milp"``: the selection as a mixed-integer programme solved by HiGHS.

:class:`_MilpModel` is built once per problem and re-solved for each budget (through
``scipy.optimize.milp``, imported when first needed). HiGHS returns an arbitrary optimum
among ties, so :func:`_solve_milp` canonicalises it by branch and bound seeded with it, or
by the local search :func:`_improve` above ``EXACT_CANON_MAX`` candidates. The HiGHS
settings shared with the cover MILP live here.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from taskgrouper.grouping.select.bnb import _solve_bnb
from taskgrouper.grouping.select.model import COST_TOL, _better, _key, _Problem

#: Above this many candidates HiGHS presolve is switched off (it dominated the time there).
PRESOLVE_MAX = 10_000
#: HiGHS's MIP feasibility tolerance: after finding a selection of objective v it only looks
#: for objectives below v - HIGHS_FEASTOL.
HIGHS_FEASTOL = 1e-6
#: A MILP answer is canonicalised exactly up to this many candidates (after reduction: by
#: branch and bound seeded with the optimum, or by excluding MILPs), by local search above.
EXACT_CANON_MAX = 200


class _MilpModel:
    """The MILP of one problem, built once and re-solved for each budget.

    Variables: binary ``x[n]`` (network n chosen) and continuous ``y[n, t]`` in [0, 1] for
    every (network, task) pair where n can serve t (task t served by n). For a fixed ``x``
    the ``y`` part is a per-task choice whose optimum is integral, so ``y`` needs no
    integrality. Constraints: ``sum_n y[n, t] = 1`` per task; ``y[n, t] <= x[n]`` per pair;
    ``sum_n cost[n] x[n] <= B``. Objective: ``sum eff[n, t] y[n, t]``.
    """

    def __init__(self, p: _Problem):
        from scipy.sparse import coo_matrix, csr_matrix, hstack, identity, vstack

        m, T = p.eff.shape
        net_idx, task_idx = np.nonzero(np.isfinite(p.eff))
        P = net_idx.size
        self.m = m
        self.c = np.concatenate([np.zeros(m), p.eff[net_idx, task_idx]])
        # (T, m + P): each task served exactly once
        a_eq = hstack(
            [csr_matrix((T, m)), coo_matrix((np.ones(P), (task_idx, np.arange(P))), shape=(T, P))]
        )
        # (P, m + P): y[p] - x[n(p)] <= 0
        a_link = hstack(
            [coo_matrix((-np.ones(P), (np.arange(P), net_idx)), shape=(P, m)), identity(P)]
        )
        a_cost = csr_matrix(np.concatenate([p.cost, np.zeros(P)])[None, :])
        self.A = vstack([a_eq, a_link, a_cost]).tocsr()
        self.lb = np.concatenate([np.ones(T), np.full(P, -np.inf), [-np.inf]])
        self.ub_base = np.concatenate([np.ones(T), np.zeros(P), [0.0]])
        self.integrality = np.concatenate([np.ones(m), np.zeros(P)])

    def solve(
        self,
        budget: float,
        time_limit: float | None = None,
        *,
        bound: float | None = None,
        presolve: bool | None = None,
        exclude: Sequence[tuple[Sequence[int], bool]] = (),
        gap: float = 0.0,
    ) -> list[int] | None:
        """Chosen network indices; None if infeasible, or nothing has objective < ``bound``.

        After the call ``status`` says how it ended: ``"optimal"``, ``"gap"`` (HiGHS proved
        its answer within the relative ``gap``) or ``"time limit"`` (``time_limit`` struck;
        the answer, if any, is the best HiGHS met); ``dual_bound`` is HiGHS's lower bound in
        the last two cases. ``proved`` is True for ``"optimal"`` only.

        ``bound`` (an incumbent's objective) lets HiGHS prune from the start; it is not a
        constraint: HiGHS may return a worse selection it met on the way when none beats the
        bound. ``exclude`` forbids selections: ``(idx, True)`` every superset of ``idx``,
        ``(idx, False)`` exactly ``idx``. HiGHS stops once nothing beats its incumbent by its
        MIP feasibility tolerance (``HIGHS_FEASTOL``), so the answer is optimal to that
        tolerance; callers settle the rest.
        """
        from scipy.optimize import LinearConstraint, milp
        from scipy.sparse import csr_matrix, vstack

        A, lb = self.A, self.lb
        ub = self.ub_base.copy()
        ub[-1] = budget + COST_TOL
        if exclude:
            rows = np.zeros((len(exclude), self.c.size))
            for r, (idx, supersets) in enumerate(exclude):
                if not supersets:
                    rows[r, : self.m] = -1.0
                rows[r, list(idx)] = 1.0
            A = vstack([A, csr_matrix(rows)]).tocsr()
            lb = np.concatenate([lb, np.full(len(exclude), -np.inf)])
            ub = np.concatenate([ub, [len(set(idx)) - 1.0 for idx, _ in exclude]])
        options: dict = {
            "mip_rel_gap": float(gap),
            "mip_abs_gap": 0.0,  # HiGHS default 1e-6 could stop short on totals ~0.5
            "presolve": self.m <= PRESOLVE_MAX if presolve is None else presolve,
        }
        if bound is not None:
            options["objective_bound"] = bound
            options["mip_heuristic_effort"] = 0.0  # the incumbent is known; prove, not search
        if time_limit is not None:
            options["time_limit"] = time_limit
        self.proved, self.status, self.dual_bound = True, "optimal", None

        def run() -> Any:
            with warnings.catch_warnings():
                # mip_abs_gap is passed to HiGHS verbatim; scipy warns that it does so.
                warnings.filterwarnings("ignore", message="Unrecognized options",
                                        category=Warning)
                return milp(self.c, integrality=self.integrality, bounds=(0, 1),
                            constraints=LinearConstraint(A, lb, ub), options=options)

        res = _interruptible(run)
        dual = getattr(res, "mip_dual_bound", None)
        dual = float(dual) if dual is not None and np.isfinite(dual) else None
        if res.status == 1 and time_limit is not None:  # out of time: maybe a solution
            self.proved, self.status, self.dual_bound = False, "time limit", dual
            return None if res.x is None else np.flatnonzero(res.x[: self.m] > 0.5).tolist()
        if res.x is None and (res.status == 2 or bound is not None):
            return None  # infeasible, or nothing beats the bound
        if res.status != 0 or res.x is None:
            raise RuntimeError(f"HiGHS did not finish: {res.message}")
        if gap > 0 and dual is not None and dual < float(res.fun) - HIGHS_FEASTOL * max(
                1.0, abs(float(res.fun))):
            self.proved, self.status, self.dual_bound = False, "gap", dual
        return np.flatnonzero(res.x[: self.m] > 0.5).tolist()


def _interruptible(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a worker thread, so that Ctrl-C reaches the caller while HiGHS runs.

    HiGHS releases the GIL but runs no Python signal handler, so a KeyboardInterrupt would
    wait for it to finish. Here the calling thread waits in short joins and the interrupt
    is raised there at once; the worker runs on (a daemon) until HiGHS returns.
    """
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=work, name="taskgrouper-highs", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _improve(
    p: _Problem, budget: float, idx: Sequence[int], pool: np.ndarray | None = None
) -> list[int]:
    """Local search on the full key: add, drop or swap single networks (swaps from ``pool``).

    Returns a selection whose key is no worse than ``idx``'s; used for incumbents and to
    canonicalise ties where the exact search would be too large.
    """
    pool = np.arange(p.size) if pool is None else np.asarray(pool, dtype=np.intp)
    E, C = p.eff[pool], p.cost[pool]  # (K, T), (K,)
    cur = sorted(set(int(i) for i in idx))
    best = _key(p, cur)
    if best is None:
        return cur
    for _ in range(10 * (len(p.tasks) + p.size)):  # each move strictly improves the key
        move = None
        for drop in (None, *cur):
            rest = [i for i in cur if i != drop]
            if drop is not None and rest:
                key = _key(p, rest)
                if _better(key, best):
                    move = (rest, key)
                    break
            base = p.eff[rest].min(axis=0) if rest else np.full(len(p.tasks), math.inf)
            vals = np.minimum(base, E).sum(axis=1)  # (K,) objective with each pool network
            room = budget + COST_TOL - math.fsum(p.cost[rest].tolist())
            ok = np.isfinite(vals) & (room - C >= -1e-12) & ~np.isin(pool, cur)
            ok &= vals <= best[0] + max(1e-9, abs(best[0]) * 1e-9)
            for k in np.flatnonzero(ok)[np.argsort(vals[ok], kind="stable")][:8]:
                cand = [*rest, int(pool[k])]
                key = _key(p, cand)
                if key is not None and key[1] <= budget + COST_TOL and _better(key, best):
                    move = (sorted(cand), key)
                    break
            if move:
                break
        if move is None:
            break
        cur, best = move
    return cur


def _solve_milp(
    p: _Problem, budget: float, model: _MilpModel | None = None
) -> list[int] | None:
    model = model or _MilpModel(p)
    idx = model.solve(budget)
    if idx is None:
        return None
    # Canonicalise among optimal alternatives (the MILP picks an arbitrary one).
    if p.size <= EXACT_CANON_MAX:
        return _solve_bnb(p, budget, seeds=[idx])
    return _improve(p, budget, idx)
