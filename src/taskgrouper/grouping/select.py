"""Exact network selection under an inference-time budget (Standley et al., 2020, Sec. 3.2).

Given candidate networks, each with an inference cost and a loss for every task it predicts,
choose the subset with total cost at most the budget that predicts every task and minimises
the sum, over tasks, of the lowest loss among the chosen networks that predict the task. Each
task is then served by (assigned to) the chosen network with the lowest loss for it.

Three interchangeable exact solvers:

- ``"bnb"``: Algorithm 1 of the paper (recursive branch and bound over "choose / skip" with the
  FILTER and SORT steps), with two admissible lower bounds so that it prunes, an incumbent from
  a greedy heuristic (and, in sweeps, from the previous budget).
- ``"milp"``: a mixed-integer programme solved by HiGHS through ``scipy.optimize.milp``.
- ``"brute"``: enumeration of all subsets; the reference for tests (at most 22 candidates).

The paper's ``BETTER()`` is an :class:`Objective`: per-task weights and per-task hard
constraints ``{task: max_loss}``. Selection is deterministic on ties: among selections whose
objective values agree to a relative tolerance of 1e-12, the lower total cost wins (costs
compared to 1e-9), then fewer networks, then the lexicographically smaller sorted tuple of
network names. Every solver returns the same selection.

This module imports only numpy, scipy and the standard library.
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "COST_TOL",
    "REL_TOL",
    "SOLVERS",
    "InfeasibleBudget",
    "Network",
    "Objective",
    "Selection",
    "cheapest_cover",
    "score",
    "select",
    "select_many",
]

#: Tolerance on costs: a selection fits the budget when ``cost <= budget + COST_TOL``.
COST_TOL = 1e-9
#: Relative tolerance under which two objective values count as a tie.
REL_TOL = 1e-12
#: Solver names accepted by :func:`select` and :func:`select_many`.
SOLVERS = ("bnb", "milp", "brute", "auto")
#: ``solver="auto"`` uses branch and bound up to this many candidates, MILP above.
AUTO_BNB_MAX = 64
#: Above this many candidates HiGHS presolve is switched off (it dominated the time there).
PRESOLVE_MAX = 10_000
#: Brute force refuses more candidates than this.
BRUTE_MAX = 22
#: The MILP answer is canonicalised exactly (by branch and bound seeded with the optimum) up to
#: this many candidates, and by a local search on ties above.
EXACT_CANON_MAX = 200


@dataclass(frozen=True)
class Network:
    """A trained candidate network: its name, inference cost and per-task losses.

    Attributes:
        name: Unique name, e.g. ``"sd"`` or ``"s|half"``.
        cost: Inference cost (e.g. in SNT); finite and non-negative.
        losses: Task -> loss (lower is better). Tasks absent here are not predicted.
    """

    name: str
    cost: float
    losses: Mapping[str, float]

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks this network predicts, in the order of ``losses``."""
        return tuple(self.losses)


@dataclass(frozen=True)
class Selection:
    """The chosen networks for one budget and the task -> network assignment.

    Attributes:
        budget: The budget this selection was made for.
        networks: Names of the chosen networks, sorted.
        cost: Total cost of the chosen networks.
        total: Sum over tasks of the assigned network's loss (unweighted).
        assignment: Task -> name of the chosen network serving it.
        objective: The minimised value (equals ``total`` without weights).
    """

    budget: float
    networks: tuple[str, ...]
    cost: float
    total: float
    assignment: dict[str, str]
    objective: float = field(default=math.nan, compare=False)


class InfeasibleBudget(ValueError):
    """No selection covering every task fits the budget.

    Attributes:
        budget: The budget asked for.
        cheapest: Cost of the cheapest selection that covers every task.
    """

    def __init__(self, budget: float, cheapest: float):
        self.budget = float(budget)
        self.cheapest = float(cheapest)
        super().__init__(
            f"budget {self.budget:g} is below the cheapest cover of every task "
            f"(cost {self.cheapest:g}); raise the budget to at least {self.cheapest:g}"
        )

    def __reduce__(self):
        return (InfeasibleBudget, (self.budget, self.cheapest))


@dataclass(frozen=True)
class Objective:
    """What "better" means (the ``BETTER()`` of Algorithm 1): minimise sum_t w_t * loss_t.

    A network whose loss on a constrained task exceeds the bound cannot serve that task, which
    is exactly "the chosen set must reach loss <= bound on the task" since each task is served
    by its best chosen network. Subclasses may override :meth:`effective_losses` with any
    per-(network, task) transformation; every solver minimises the sum over tasks of the
    lowest effective loss among the chosen networks (``inf`` = cannot serve).

    Attributes:
        weights: Task -> non-negative weight (missing tasks weigh 1).
        constraints: Task -> maximum admissible loss.
    """

    weights: Mapping[str, float] | None = None
    constraints: Mapping[str, float] | None = None

    def validate(self, tasks: Sequence[str]) -> None:
        """Raise ValueError for an unknown task or a bad weight or bound."""
        for label, table in (("weight", self.weights), ("constraint", self.constraints)):
            for task, value in (table or {}).items():
                if task not in tasks:
                    raise ValueError(
                        f"{label} names unknown task {task!r}; known tasks: {', '.join(tasks)}"
                    )
                if not _is_real(value) or math.isnan(float(value)):
                    raise ValueError(f"{label} for task {task!r} must be a number, got {value!r}")
                if label == "weight" and not (0.0 <= float(value) < math.inf):
                    raise ValueError(
                        f"weight for task {task!r} must be finite and >= 0, got {value!r}"
                    )

    def effective_losses(self, raw: np.ndarray, tasks: Sequence[str]) -> np.ndarray:
        """Map raw losses (networks x tasks, ``inf`` = not predicted) to minimised values."""
        eff = raw.copy()
        for j, task in enumerate(tasks):
            if self.constraints and task in self.constraints:
                eff[raw[:, j] > float(self.constraints[task]), j] = math.inf
            if self.weights and task in self.weights:
                col = eff[:, j]
                finite = np.isfinite(col)
                col[finite] = col[finite] * float(self.weights[task])
        return eff


# --------------------------------------------------------------------------- problem set-up


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass
class _Problem:
    """Validated arrays: networks sorted by name, ``inf`` where a network cannot serve."""

    tasks: tuple[str, ...]
    names: list[str]
    cost: np.ndarray  # (M,)
    raw: np.ndarray  # (M, T) raw losses, inf = not predicted
    eff: np.ndarray  # (M, T) effective losses, inf = cannot serve
    _cheapest: float | None = None

    @property
    def size(self) -> int:
        return len(self.names)


def _compile(
    networks: Iterable[Network],
    tasks: Sequence[str] | None,
    objective: Objective,
) -> _Problem:
    nets = list(networks)
    if not nets:
        raise ValueError("no candidate networks given")
    seen: set[str] = set()
    for net in nets:
        if not isinstance(net, Network):
            raise ValueError(f"expected Network objects, got {type(net).__name__}")
        if net.name in seen:
            raise ValueError(f"duplicate network name {net.name!r}")
        seen.add(net.name)
        if not _is_real(net.cost) or not math.isfinite(float(net.cost)) or net.cost < 0:
            raise ValueError(
                f"network {net.name!r}: cost must be a finite number >= 0, got {net.cost!r}"
            )
        for task, loss in net.losses.items():
            if not _is_real(loss):
                raise ValueError(
                    f"network {net.name!r}, task {task!r}: loss must be a number, got {loss!r}"
                )
            if math.isnan(float(loss)) or float(loss) == -math.inf:
                raise ValueError(
                    f"network {net.name!r}, task {task!r}: loss is {loss!r}; "
                    "give a finite loss or leave the task out"
                )
    if tasks is None:
        order: dict[str, None] = {}
        for net in nets:
            order.update(dict.fromkeys(net.losses))
        task_list = tuple(order)
    else:
        task_list = tuple(tasks)
        if len(set(task_list)) != len(task_list):
            raise ValueError(f"duplicate task in {list(task_list)}")
    if not task_list:
        raise ValueError("no tasks to cover")
    objective.validate(task_list)
    nets.sort(key=lambda n: n.name)
    raw = np.full((len(nets), len(task_list)), math.inf)
    for i, net in enumerate(nets):
        for j, task in enumerate(task_list):
            if task in net.losses:
                raw[i, j] = float(net.losses[task])
    eff = objective.effective_losses(raw, task_list)
    for j, task in enumerate(task_list):
        if not np.isfinite(raw[:, j]).any():
            raise ValueError(f"no network predicts task {task!r}; add a network that does")
        if not np.isfinite(eff[:, j]).any():
            bound = (objective.constraints or {}).get(task)
            raise ValueError(
                f"no network reaches loss <= {bound} on task {task!r}; relax the constraint"
            )
    useful = np.isfinite(eff).any(axis=1)
    keep = np.flatnonzero(useful)
    return _Problem(
        tasks=task_list,
        names=[nets[i].name for i in keep],
        cost=np.array([float(nets[i].cost) for i in keep]),
        raw=raw[keep],
        eff=eff[keep],
    )


def _prune_dominated(p: _Problem) -> _Problem:
    """Drop networks that can never be in the canonical optimum.

    Network b dominates a when b serves every task a serves at an effective loss no higher,
    and b is cheaper by more than ``COST_TOL``, or no dearer and earlier by name. Swapping a
    for b in any selection keeps it within budget, does not raise the objective, and improves
    (or keeps) the tie-break key, so a is never needed. The order is strict and acyclic, so
    removing every dominated network at once is safe.
    """
    m = p.size
    keep = np.ones(m, dtype=bool)
    finite = np.isfinite(p.eff)
    for a in range(m):
        cols = np.flatnonzero(finite[a])
        idx = np.flatnonzero(p.eff[:, cols[0]] <= p.eff[a, cols[0]])
        for c in cols[1:]:
            idx = idx[p.eff[idx, c] <= p.eff[a, c]]
            if idx.size <= 1:
                break
        ca, cb = p.cost[a], p.cost[idx]
        dom = (cb < ca - COST_TOL) | ((cb <= ca) & (idx < a))  # names sorted: index = order
        if dom.any():
            keep[a] = False
    if keep.all():
        return p
    return _Problem(p.tasks, [n for n, k in zip(p.names, keep, strict=True) if k],
                    p.cost[keep], p.raw[keep], p.eff[keep], p._cheapest)


# --------------------------------------------------------------------------- evaluation

_Key = tuple  # (objective, cost, count, names)


def _key(p: _Problem, idx: Sequence[int]) -> _Key | None:
    """Canonical (objective, cost, count, names) of a set of indices; None if not a cover."""
    idx = sorted(set(int(i) for i in idx))
    if not idx:
        return None
    mins = p.eff[idx].min(axis=0)
    if not np.isfinite(mins).all():
        return None
    # fsum is correctly rounded, so equal per-task minima give bit-identical objectives.
    return (
        math.fsum(mins.tolist()),
        math.fsum(p.cost[idx].tolist()),
        len(idx),
        tuple(p.names[i] for i in idx),
    )


def _better(a: _Key | None, b: _Key | None) -> bool:
    """True when key ``a`` is strictly preferred to key ``b`` (None = no solution)."""
    if a is None:
        return False
    if b is None:
        return True
    tol = REL_TOL * max(abs(a[0]), abs(b[0]))
    if a[0] < b[0] - tol:
        return True
    if a[0] > b[0] + tol:
        return False
    if a[1] < b[1] - COST_TOL:
        return True
    if a[1] > b[1] + COST_TOL:
        return False
    return (a[2], a[3]) < (b[2], b[3])


def _to_selection(p: _Problem, budget: float, idx: Sequence[int]) -> Selection:
    idx = sorted(set(int(i) for i in idx))
    key = _key(p, idx)
    assert key is not None
    assignment: dict[str, str] = {}
    total = []
    for j, task in enumerate(p.tasks):
        best = min(
            (i for i in idx if math.isfinite(p.eff[i, j])),
            key=lambda i, j=j: (p.eff[i, j], p.raw[i, j], p.names[i]),
        )
        assignment[task] = p.names[best]
        total.append(float(p.raw[best, j]))
    return Selection(
        budget=float(budget),
        networks=key[3],
        cost=key[1],
        total=math.fsum(total),
        assignment=assignment,
        objective=key[0],
    )


def score(
    selection: Selection,
    networks: Mapping[str, Network] | Iterable[Network],
    *,
    mode: str = "min",
) -> float:
    """Total loss of a selection on another table (e.g. the test losses).

    Args:
        selection: A selection made on the validation table.
        networks: The networks of the other table, by name or as an iterable.
        mode: ``"min"`` (default, the paper's protocol): each task contributes the lowest loss
            in ``networks`` among the chosen networks that predict it; this reproduces Table 4
            of Standley et al. (2020) exactly, ESA row included. ``"assignment"``: each task
            keeps the network assigned to it on validation and contributes that network's
            loss in ``networks`` (what a deployed system would report; the ESA row then reads
            0.470 instead of 0.467 at budget 2).

    Returns:
        The sum over the selection's tasks.

    Raises:
        ValueError: A chosen network or one of its tasks is missing from ``networks``.
    """
    by_name = dict(networks) if isinstance(networks, Mapping) else {n.name: n for n in networks}
    for name in selection.networks:
        if name not in by_name:
            raise ValueError(f"network {name!r} of the selection is missing from the score table")
    parts = []
    for task, name in selection.assignment.items():
        if mode == "assignment":
            losses = by_name[name].losses
            if task not in losses:
                raise ValueError(f"network {name!r} has no loss for task {task!r} in score table")
            parts.append(float(losses[task]))
        elif mode == "min":
            vals = [
                float(by_name[n].losses[task])
                for n in selection.networks
                if task in by_name[n].losses
            ]
            if not vals:
                raise ValueError(f"no chosen network has a loss for task {task!r} in score table")
            parts.append(min(vals))
        else:
            raise ValueError(f"mode must be 'assignment' or 'min', got {mode!r}")
    return math.fsum(parts)


# --------------------------------------------------------------------------- cheapest cover


def _cheapest_cover(p: _Problem) -> float:
    """Exact minimum cost of a set covering every task (set cover, solved by HiGHS)."""
    if p._cheapest is not None:
        return p._cheapest
    from scipy.optimize import LinearConstraint, milp

    cover = np.isfinite(p.eff).T.astype(float)  # (T, M)
    res = milp(
        p.cost,
        integrality=np.ones(p.size),
        bounds=(0, 1),
        constraints=LinearConstraint(cover, lb=1.0, ub=np.inf),
        options={"mip_rel_gap": 0.0},
    )
    if res.x is None:  # pragma: no cover - every task has a server after _compile
        raise RuntimeError(f"set cover failed: {res.message}")
    chosen = np.flatnonzero(res.x > 0.5)
    p._cheapest = math.fsum(p.cost[chosen].tolist())
    return p._cheapest


def cheapest_cover(
    networks: Iterable[Network],
    *,
    tasks: Sequence[str] | None = None,
    constraints: Mapping[str, float] | None = None,
) -> float:
    """Cost of the cheapest set of networks covering every task (and meeting constraints)."""
    return _cheapest_cover(_compile(networks, tasks, Objective(constraints=constraints)))


# --------------------------------------------------------------------------- brute force


def _solve_brute(p: _Problem, budget: float) -> list[int] | None:
    m = p.size
    if m > BRUTE_MAX:
        raise ValueError(f"brute force refuses {m} candidates (at most {BRUTE_MAX})")
    best: _Key | None = None
    best_idx: list[int] | None = None
    for r in range(1, m + 1):
        combos = np.array(list(itertools.combinations(range(m), r)), dtype=np.intp)
        costs = p.cost[combos].sum(axis=1)
        combos = combos[costs <= budget + COST_TOL + 1e-12]
        if not len(combos):
            continue
        mins = p.eff[combos].min(axis=1)  # (C, T)
        ok = np.isfinite(mins).all(axis=1)
        if not ok.any():
            continue
        combos, vals = combos[ok], mins[ok].sum(axis=1)
        # Approximate sums pre-filter; exact keys decide among the near-best.
        near = combos[vals <= vals.min() + 1e-9 * max(1.0, abs(vals.min()))]
        for c in near:
            key = _key(p, c)
            if _better(key, best):
                best, best_idx = key, list(c)
    if best_idx is not None and best[1] > budget + COST_TOL:  # fsum vs numpy sum edge
        return None
    return best_idx


# --------------------------------------------------------------------------- branch and bound


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
) -> list[int] | None:
    """Algorithm 1 with bounds. Exact: returns the canonical optimum (see module doc)."""
    eff, cost = p.eff, p.cost
    state: dict = {"key": None, "idx": None, "nodes": 0}

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

    def rec(cand: np.ndarray, chosen: tuple[int, ...], cur: np.ndarray, used: float) -> None:
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
        for i in range(k):
            rest = np.minimum(cur, suffix[i])
            if not np.isfinite(rest).all() or pruned(math.fsum(rest.tolist()), used):
                break
            n = int(cand[i])
            new_cur = np.minimum(cur, L[i])
            child_lb = new_cur if i + 1 == k else np.minimum(new_cur, suffix[i + 1])
            if not np.isfinite(child_lb).all():
                continue  # the child can never cover every task
            if pruned(math.fsum(child_lb.tolist()), used + float(cost[n])):
                continue
            rec(cand[i + 1 :], (*chosen, n), new_cur, used + float(cost[n]))

    rec(
        np.arange(p.size)[cost <= budget + COST_TOL],
        (),
        np.full(len(p.tasks), math.inf),
        0.0,
    )
    return state["idx"]


# --------------------------------------------------------------------------- MILP


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

    def solve(self, budget: float, time_limit: float | None = None) -> list[int] | None:
        from scipy.optimize import LinearConstraint, milp

        ub = self.ub_base.copy()
        ub[-1] = budget + COST_TOL
        options: dict = {
            "mip_rel_gap": 0.0,
            "mip_abs_gap": 0.0,  # HiGHS default 1e-6 could stop short on totals ~0.5
            "presolve": self.m <= PRESOLVE_MAX,
        }
        if time_limit is not None:
            options["time_limit"] = time_limit
        with warnings.catch_warnings():
            # mip_abs_gap is passed to HiGHS verbatim; scipy warns that it does so.
            warnings.filterwarnings("ignore", message="Unrecognized options", category=Warning)
            res = milp(
                self.c,
                integrality=self.integrality,
                bounds=(0, 1),
                constraints=LinearConstraint(self.A, self.lb, ub),
                options=options,
            )
        if res.status == 2 or res.x is None:  # infeasible
            return None
        if res.status != 0:
            raise RuntimeError(f"HiGHS did not finish: {res.message}")
        return np.flatnonzero(res.x[: self.m] > 0.5).tolist()


def _local_canonical(p: _Problem, budget: float, idx: list[int]) -> list[int]:
    """Improve a selection's tie-break key by dropping and swapping single networks."""
    best = _key(p, idx)
    cur = sorted(idx)
    improved = True
    while improved:
        improved = False
        for a in list(cur):
            rest = [i for i in cur if i != a]
            base = (
                p.eff[rest].min(axis=0) if rest else np.full(len(p.tasks), math.inf)
            )
            if rest and _better(_key(p, rest), best):
                cur, best, improved = rest, _key(p, rest), True
                break
            vals = np.minimum(base, p.eff).sum(axis=1)  # objective with a swapped for each n
            rest_cost = math.fsum(p.cost[rest].tolist())
            ok = np.isfinite(vals) & (p.cost + rest_cost <= budget + COST_TOL)
            ok &= vals <= best[0] + max(1e-9, abs(best[0]) * 1e-9)
            ok[cur] = False
            for n in np.flatnonzero(ok):
                key = _key(p, [*rest, int(n)])
                if key[1] <= budget + COST_TOL and _better(key, best):
                    cur, best, improved = sorted([*rest, int(n)]), key, True
            if improved:
                break
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
    return _local_canonical(p, budget, idx)


# --------------------------------------------------------------------------- public API


def _resolve_solver(solver: str, p: _Problem) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if solver == "auto":
        return "bnb" if p.size <= AUTO_BNB_MAX else "milp"
    return solver


def _check_budget(budget: object) -> float:
    if not _is_real(budget) or math.isnan(float(budget)):
        raise ValueError(f"budget must be a number, got {budget!r}")
    return float(budget)


def select_many(
    networks: Iterable[Network],
    budgets: Iterable[float],
    *,
    tasks: Sequence[str] | None = None,
    constraints: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    solver: str = "auto",
    objective: Objective | None = None,
) -> list[Selection | InfeasibleBudget]:
    """Select networks for each budget of a sweep, reusing work across budgets.

    The problem is validated and compiled once; the MILP matrix is built once; branch and bound
    solves budgets in increasing order, seeding each with the previous optimum (it fits a larger
    budget). The cheapest cover is computed once.

    Args:
        networks: Candidate networks (names unique).
        budgets: Budgets, in any order.
        tasks: Tasks to cover (default: every task any network predicts).
        constraints: Task -> maximum admissible loss.
        weights: Task -> weight of its loss in the total.
        solver: ``"bnb"``, ``"milp"``, ``"brute"`` or ``"auto"`` (bnb for at most
            ``AUTO_BNB_MAX`` candidates, milp above).
        objective: An :class:`Objective` to use instead of ``constraints``/``weights``.

    Returns:
        One entry per budget, in the given order: a :class:`Selection`, or an
        :class:`InfeasibleBudget` (not raised) when no cover fits.

    Raises:
        ValueError: Invalid networks, tasks, constraints or weights, or a task no network
            predicts.
    """
    if objective is None:
        objective = Objective(weights=weights, constraints=constraints)
    elif constraints or weights:
        raise ValueError("give either objective or constraints/weights, not both")
    budget_list = [_check_budget(b) for b in budgets]
    p = _compile(networks, tasks, objective)
    name = _resolve_solver(solver, p)
    if name != "brute":  # brute force stays the untouched reference
        p = _prune_dominated(p)
    model = _MilpModel(p) if name == "milp" else None
    out: dict[int, Selection | InfeasibleBudget] = {}
    previous: list[int] | None = None
    for k in sorted(range(len(budget_list)), key=lambda k: budget_list[k]):
        budget = budget_list[k]
        if name == "brute":
            idx = _solve_brute(p, budget)
        elif name == "bnb":
            idx = _solve_bnb(p, budget, seeds=[previous])
        else:
            idx = _solve_milp(p, budget, model)
        if idx is None:
            out[k] = InfeasibleBudget(budget, _cheapest_cover(p))
        else:
            previous = idx
            out[k] = _to_selection(p, budget, idx)
    return [out[k] for k in range(len(budget_list))]


def select(
    networks: Iterable[Network],
    budget: float,
    *,
    tasks: Sequence[str] | None = None,
    constraints: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    solver: str = "bnb",
    objective: Objective | None = None,
) -> Selection:
    """Choose the networks that minimise total loss within a budget (Standley et al., 2020).

    Args:
        networks: Candidate networks (names unique).
        budget: Maximum total cost (compared as ``cost <= budget + 1e-9``).
        tasks: Tasks to cover (default: every task any network predicts).
        constraints: Task -> maximum admissible loss (hard requirement).
        weights: Task -> weight of its loss in the minimised total.
        solver: ``"bnb"`` (Algorithm 1 with bounds), ``"milp"`` (HiGHS), ``"brute"`` or
            ``"auto"``.
        objective: An :class:`Objective` to use instead of ``constraints``/``weights``.

    Returns:
        The canonical optimal selection (ties broken as described in the module doc).

    Raises:
        InfeasibleBudget: No cover fits the budget; the message gives the cheapest cover.
        ValueError: Invalid input, naming the network and task at fault, or a task that no
            network predicts.
    """
    (result,) = select_many(
        networks,
        [budget],
        tasks=tasks,
        constraints=constraints,
        weights=weights,
        solver=solver,
        objective=objective,
    )
    if isinstance(result, InfeasibleBudget):
        raise result
    return result
