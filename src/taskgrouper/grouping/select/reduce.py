"""LP reduction of large problems (steps 1 to 6 of the package doc).

The LP bound by column generation and its Lagrangian reading (:class:`_Dual`,
:func:`_lp_dual`); reduced-cost fixing to the networks and (network, task) pairs that may
still beat the incumbent; the exact solve of what survives by ``"bnb"`` or ``"milp"``, with
a core MILP for a better incumbent and a bounded proof under ``time_limit``
(:func:`_solve_reduced`); the exact canonical optimum among ties (:func:`_settle`); and what
one budget of a sweep hands the next (:class:`_Sweep`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from taskgrouper.grouping.select.bnb import _greedy, _solve_bnb
from taskgrouper.grouping.select.control import _Control
from taskgrouper.grouping.select.cover import _cover_within
from taskgrouper.grouping.select.milp import (
    EXACT_CANON_MAX,
    HIGHS_FEASTOL,
    _improve,
    _MilpModel,
)
from taskgrouper.grouping.select.model import (
    COST_TOL,
    _better,
    _finite_cover,
    _key,
    _Problem,
    _take,
    _undominated,
)

#: A reduced problem larger than this is first solved on its CORE_SIZE networks of lowest
#: reduced cost, for an incumbent that shrinks it further ("milp" only).
CORE_SIZE = 100
#: Local search for an incumbent swaps among this many survivors of lowest reduced cost.
IMPROVE_POOL = 2_000
#: HiGHS presolve on the reduced MILPs.
MILP_PRESOLVE = False
#: At most this many MILPs settle ties after a reduced MILP (then a local search does).
CANON_ROUNDS = 20
#: At most this many column-generation rounds per LP bound (any round's duals are valid).
LP_ROUNDS = 50


@dataclass
class _Dual:
    """A Lagrangian lower bound built from LP duals; valid for any ``u`` and ``lam >= 0``.

    Relaxing "each task served once" with multipliers ``u`` and the budget with ``lam`` leaves
    an independent choice per network::

        L(u, lam) = sum_t u_t - lam * B + sum_n min(0, g_n),
        g_n       = lam * cost_n + sum_t min(0, eff[n, t] - u_t),

    a lower bound on the objective of every selection within ``B``. Choosing network n raises
    it by ``max(g_n, 0)``; n serving task t raises it by ``max(g_n, 0) + max(eff[n, t] - u_t,
    0)``. The LP optimum's duals make ``L`` the LP bound.

    Attributes:
        bound: ``L(u, lam)``.
        u: Task multipliers, shape (T,).
        lam: Budget multiplier.
        g: Reduced cost of each network, shape (M,).
        columns: Networks in the last restricted LP (a warm start for the next budget).
    """

    bound: float
    u: np.ndarray
    lam: float
    g: np.ndarray
    columns: np.ndarray

    def survivors(
        self, p: _Problem, limit: float, keep: Sequence[int] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """Networks and (network, task) pairs that may appear in a selection of objective
        <= ``limit``; ``keep`` (an incumbent) is kept whole.

        Returns:
            Indices of the surviving networks, shape (K,), and their serving mask (K, T).
        """
        slack = limit - self.bound
        with np.errstate(invalid="ignore"):
            rise = np.maximum(self.g, 0.0)[:, None] + np.maximum(p.eff - self.u, 0.0)  # (M, T)
        pair = np.isfinite(p.eff) & (rise <= slack)
        keep = list(keep)
        pair[keep] = np.isfinite(p.eff[keep])
        nets = np.flatnonzero(pair.any(axis=1))
        return nets, pair[nets]


def _lp_dual(p: _Problem, budget: float, start: np.ndarray) -> _Dual:
    """The LP bound by column generation from ``start`` (which must hold a feasible cover)."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, csr_matrix, hstack, identity, vstack

    T = len(p.tasks)
    capacity = budget + COST_TOL
    cols = np.unique(np.asarray(start, dtype=np.intp))
    best: _Dual | None = None
    for _ in range(LP_ROUNDS):
        eff = p.eff[cols]  # (m, T)
        net_idx, task_idx = np.nonzero(np.isfinite(eff))
        m, P = cols.size, net_idx.size
        c = np.concatenate([np.zeros(m), eff[net_idx, task_idx]])
        a_eq = hstack(
            [csr_matrix((T, m)), coo_matrix((np.ones(P), (task_idx, np.arange(P))), shape=(T, P))]
        )
        a_ub = vstack(
            [
                hstack([coo_matrix((-np.ones(P), (np.arange(P), net_idx)), shape=(P, m)),
                        identity(P)]),
                csr_matrix(np.concatenate([p.cost[cols], np.zeros(P)])[None, :]),
            ]
        )
        b_ub = np.concatenate([np.zeros(P), [capacity]])
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.ones(T), bounds=(0, 1),
                      method="highs")
        if res.status != 0:
            raise RuntimeError(f"HiGHS could not solve the LP relaxation: {res.message}")
        u = np.asarray(res.eqlin.marginals, dtype=float)
        lam = max(0.0, -float(res.ineqlin.marginals[-1]))
        with np.errstate(invalid="ignore"):
            g = lam * p.cost + np.minimum(p.eff - u, 0.0).sum(axis=1)  # (M,)
        bound = math.fsum([*u.tolist(), -lam * capacity, *np.minimum(g, 0.0).tolist()])
        if best is None or bound > best.bound:
            best = _Dual(bound, u, lam, g, cols)
        price = g.copy()
        price[cols] = 0.0
        new = np.flatnonzero(price < -1e-9 * max(1.0, abs(bound)))
        if not new.size:
            break
        new = new[np.argsort(price[new], kind="stable")][: max(100, cols.size)]
        cols = np.union1d(cols, new)
    assert best is not None
    best.columns = cols
    return best


def _limit(value: float) -> float:
    """Objective up to which a selection ties with or beats ``value`` (with float slack)."""
    return value + 1e-9 * max(1.0, abs(value))


def _subproblem(p: _Problem, nets: np.ndarray, pair: np.ndarray) -> _Problem:
    """The problem on networks ``nets`` where each serves only the tasks of ``pair``."""
    return _Problem(p.tasks, [p.names[i] for i in nets], p.cost[nets], p.raw[nets],
                    np.where(pair, p.eff[nets], math.inf))


def _position(nets: np.ndarray, idx: Sequence[int]) -> list[int]:
    """Positions in ``nets`` (sorted) of the networks ``idx`` (all present)."""
    return np.searchsorted(nets, np.asarray(idx, dtype=np.intp)).tolist()


@dataclass
class _Sweep:
    """What one budget's solve leaves for the next, larger one, and how the last one ended."""

    previous: list[int] | None = None
    columns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    #: Time limit, gap and progress reports (:mod:`.control`); ``control.lower`` is the best
    #: lower bound proved on the current budget.
    control: _Control = field(default_factory=_Control)
    #: Why the last budget's proof did not finish: "gap" (within the requested gap),
    #: "time limit" or "memory"; None when it was proved optimal.
    stopped: str | None = None


def _solve_reduced(p: _Problem, budget: float, method: str, sweep: _Sweep) -> list[int] | None:
    """Exact canonical optimum via LP reduction, then ``method`` ("bnb" or "milp"); with a
    time limit or a gap (``sweep.control``), the best selection found when either strikes,
    its lower bound in ``sweep.control.lower`` and the reason in ``sweep.stopped``."""
    ctl = sweep.control
    # Incumbent: the previous (smaller) budget's optimum, else the greedy one, else the
    # cheapest cover; local search among the survivors improves it below.
    inc = sweep.previous if _finite_cover(p, sweep.previous, budget) else None
    inc = inc or _greedy(p, budget)
    if inc is None:
        inc = _cover_within(p, budget)
        if inc is None:
            return None
    ctl.found(inc, _key(p, inc)[0], "incumbent")
    dual = _lp_dual(p, budget, np.union1d(sweep.columns, inc))
    sweep.columns = dual.columns
    ctl.bound(dual.bound, "lp bound")

    def reduce(idx: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return dual.survivors(p, _limit(_key(p, idx)[0]), idx)

    nets, pair = reduce(inc)
    # Every improving swap stays among the survivors; those of lowest reduced cost suffice.
    pool = nets[np.argsort(dual.g[nets], kind="stable")[:IMPROVE_POOL]]
    better = _improve(p, budget, inc, pool)
    if better != inc:
        inc = better
        ctl.found(inc, _key(p, inc)[0], "local search")
        nets, pair = reduce(inc)
    if ctl.close_enough(_key(p, inc)[0], dual.bound) or ctl.out_of_time():
        sweep.stopped = "time limit" if ctl.out_of_time() else "gap"
        return inc

    if method == "bnb":
        sub = _subproblem(p, nets, pair)
        keep = _undominated(sub)
        keep[_position(nets, inc)] = True  # the seed stays whole
        nets, sub = nets[keep], _take(sub, keep)
        idx = _solve_bnb(sub, budget, seeds=[_position(nets, inc)], dual=(dual.u, dual.lam))
        return nets[idx].tolist()

    def milp(nets: np.ndarray, pair: np.ndarray, inc: list[int], stage: str
             ) -> tuple[list[int], str, float | None]:
        """MILP on the undominated ``nets``: its answer if it beats ``inc``, else ``inc``;
        how it ended ("optimal", "gap", "time limit", "memory"); HiGHS's lower bound when
        it did not prove optimality."""
        left = ctl.remaining()
        if left is not None and left <= 0:
            return inc, "time limit", None
        sub = _subproblem(p, nets, pair)
        keep = _undominated(sub)
        model = _MilpModel(_take(sub, keep))
        ctl.report(stage)
        try:
            found = model.solve(budget, bound=_limit(_key(p, inc)[0]), presolve=MILP_PRESOLVE,
                                time_limit=left, gap=ctl.gap)
        except MemoryError:  # HiGHS's search tree outgrew memory: keep the incumbent
            return inc, "memory", None
        if found is not None:
            found = nets[keep][found].tolist()
            if _better(_key(p, found), _key(p, inc)):
                inc = found
                ctl.found(inc, _key(p, inc)[0], stage)
        return inc, model.status, model.dual_bound

    solved = False
    if nets.size > CORE_SIZE:
        # Incumbent from the core: the survivors of lowest reduced cost.
        core = np.sort(np.argsort(dual.g[nets], kind="stable")[:CORE_SIZE])
        inside = set(nets[core].tolist())
        inc, status, _ = milp(nets[core], pair[core], inc, "core milp")
        nets, pair = reduce(inc)
        # The core MILP was optimal over the core: if nothing outside it survives, its answer
        # is optimal over all networks.
        solved = status == "optimal" and set(nets.tolist()) <= inside
    if not solved:
        inc, status, highs_bound = milp(nets, pair, inc, "milp")
        if status != "optimal":
            # Stopped at the gap, or out of time or memory: the incumbent, with the best lower
            # bound proved (the LP's, or HiGHS's over the survivors, which hold every
            # selection better than the incumbent).
            lower = max(dual.bound, highs_bound if highs_bound is not None else -math.inf)
            ctl.bound(lower, "milp")
            pool = nets[np.argsort(dual.g[nets], kind="stable")[:IMPROVE_POOL]]
            sweep.stopped = status
            return _improve(p, budget, inc, pool)
        nets, pair = reduce(inc)
    ctl.bound(_key(p, inc)[0], "ties")
    # Settle: every selection as good as ``inc`` (ties, and any HiGHS stopped short of)
    # survives the reduction at its objective. Out of time, a local search settles the ties
    # (the objective is proved optimal; the tie-break among equals may not be canonical).
    sub = _subproblem(p, nets, pair)
    keep = _undominated(sub)
    keep[_position(nets, inc)] = True
    nets, sub = nets[keep], _take(sub, keep)
    seed = _position(nets, inc)
    if sub.size <= EXACT_CANON_MAX and not ctl.out_of_time():
        idx = _settle(sub, budget, seed)
        if idx is not None:
            return nets[idx].tolist()
    return nets[_improve(sub, budget, seed)].tolist()


def _settle(p: _Problem, budget: float, idx: list[int]) -> list[int] | None:
    """The canonical optimum, from a near-optimal ``idx``, by MILPs that each forbid what the
    previous ones found; None if that takes more than ``CANON_ROUNDS`` MILPs.

    A found selection to which no affordable network adds an improvement has no superset that
    beats it (a superset has the same objective, costs no less and has more networks), so its
    supersets are forbidden with it; otherwise only the selection itself is.
    """
    model = _MilpModel(p)
    best_idx = _improve(p, budget, idx)
    best = _key(p, best_idx)
    found = best_idx
    exclude: list[tuple[list[int], bool]] = []
    for _ in range(CANON_ROUNDS):
        cur = p.eff[found].min(axis=0)
        room = budget + COST_TOL - math.fsum(p.cost[found].tolist())
        adds = (p.cost <= room) & (p.eff < cur).any(axis=1)
        adds[found] = False
        exclude.append((found, not adds.any()))
        bound = _limit(best[0])
        found = model.solve(budget, bound=bound, exclude=exclude)
        key = None if found is None else _key(p, found)
        if key is None or key[0] > bound + 2 * HIGHS_FEASTOL * max(1.0, abs(bound)):
            # Nothing beats the bound, and no incumbent near it made HiGHS cut below it.
            return best_idx
        if key[1] <= budget + COST_TOL and _better(key, best):
            best_idx, best = sorted(found), key
    return None
