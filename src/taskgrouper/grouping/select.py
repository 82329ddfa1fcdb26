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

Above ``REDUCE_MIN`` candidates, ``"bnb"`` and ``"milp"`` first shrink the problem without
losing the optimum, by LP reduced-cost fixing (as in facility-location solvers):

1. Incumbent: the previous (smaller) budget's optimum, which fits a larger budget, else a
   greedy selection, else the cheapest cover; a local search improves it.
2. LP bound by column generation: a restricted LP over a few hundred networks (warm-started
   with the previous budget's columns), priced against all of them. Its duals give a
   Lagrangian lower bound ``L`` and, per network and per (network, task) pair, how much the
   bound rises if the network is chosen or serves the task (:class:`_Dual`).
3. Fixing: a network or pair whose forced bound exceeds the incumbent's objective ``U`` is in
   no selection as good as the incumbent, so it goes (a network left serving no task is never
   in the canonical optimum: dropping it would keep the objective and lower the cost). Then
   networks dominated by a single other network go (:func:`_undominated`). Of 20,000
   candidates typically 30 to 800 remain.
4. ``"milp"``: when many survive, a MILP over the ``CORE_SIZE`` survivors of lowest reduced
   cost finds a better incumbent (usually the optimum), which shrinks the survivors further;
   the MILP over all survivors proves it. ``"bnb"``: Algorithm 1 on the survivors, with the
   Lagrangian bound as a third bound.
5. Ties (``"milp"``): every selection tying with the optimum survives a final reduction at the
   optimum's objective; up to ``EXACT_CANON_MAX`` survivors, MILPs that each forbid what the
   previous found settle the canonical one exactly (this also repairs HiGHS stopping within
   its 1e-6 tolerance of the optimum); above, a local search on ties does, and the objective
   is optimal to HiGHS's tolerance.
6. Bounded proof (``time_limit``): when many networks tie closely with the optimum (e.g.
   losses predicted by a smooth model for 30 tasks: 174,436 candidates, an LP bound 0.2%
   below the incumbent, 32,852 survivors), the MILP over all survivors can run for many
   minutes and outgrow memory. With a time limit, or when HiGHS runs out of memory, the best
   selection found is returned with ``Selection.gap``, its relative distance to the best lower
   bound proved; ``gap == 0`` means proved optimal.

The solvers stay exact: nothing is dropped that could be in the canonical optimum. The
cheapest cover is a greedy cover proved optimal by the LP and a "slot" knapsack bound, or a
set-cover MILP on what LP fixing leaves. ``"brute"`` never reduces.

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
#: A MILP answer is canonicalised exactly up to this many candidates (after reduction: by
#: branch and bound seeded with the optimum, or by excluding MILPs), by local search above.
EXACT_CANON_MAX = 200
#: Above this many candidates "bnb" and "milp" run on the LP-reduced problem (module doc).
REDUCE_MIN = 64
#: A reduced problem larger than this is first solved on its CORE_SIZE networks of lowest
#: reduced cost, for an incumbent that shrinks it further ("milp" only).
CORE_SIZE = 100
#: Local search for an incumbent swaps among this many survivors of lowest reduced cost.
IMPROVE_POOL = 2_000
#: HiGHS presolve on the reduced MILPs.
MILP_PRESOLVE = False
#: HiGHS's MIP feasibility tolerance: after finding a selection of objective v it only looks
#: for objectives below v - HIGHS_FEASTOL.
HIGHS_FEASTOL = 1e-6
#: At most this many MILPs settle ties after a reduced MILP (then a local search does).
CANON_ROUNDS = 20
#: At most this many column-generation rounds per LP bound (any round's duals are valid).
LP_ROUNDS = 50


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
        gap: 0 when the selection is proved optimal; else how far its objective may lie above
            the optimum, relative to it: ``(objective - bound) / |bound|`` with the best lower
            bound proved (the proof ran out of ``time_limit`` or memory; module doc).
    """

    budget: float
    networks: tuple[str, ...]
    cost: float
    total: float
    assignment: dict[str, str]
    objective: float = field(default=math.nan, compare=False)
    gap: float = field(default=0.0, compare=False)


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


def _finite_cover(p: _Problem, idx: Sequence[int] | None, budget: float) -> bool:
    """True when ``idx`` is a non-empty selection that fits ``budget``."""
    return bool(idx) and math.fsum(p.cost[list(idx)].tolist()) <= budget + COST_TOL


@dataclass
class _Problem:
    """Validated arrays: networks sorted by name, ``inf`` where a network cannot serve."""

    tasks: tuple[str, ...]
    names: list[str]
    cost: np.ndarray  # (M,)
    raw: np.ndarray  # (M, T) raw losses, inf = not predicted
    eff: np.ndarray  # (M, T) effective losses, inf = cannot serve
    _cover: tuple[float, list[int]] | None = None  # cheapest cover: cost, indices

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
            if type(loss) is not float and not _is_real(loss):  # (fast path for floats)
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
    column = {task: j for j, task in enumerate(task_list)}
    raw = np.full((len(nets), len(task_list)), math.inf)
    for i, net in enumerate(nets):
        for task, loss in net.losses.items():
            j = column.get(task)
            if j is not None:
                raw[i, j] = float(loss)
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
    """Drop networks that can never be in the canonical optimum (see :func:`_undominated`)."""
    keep = _undominated(p)
    return p if keep.all() else _take(p, keep)


def _take(p: _Problem, keep: np.ndarray) -> _Problem:
    """The problem on the networks where the boolean mask ``keep`` is set."""
    return _Problem(p.tasks, [p.names[i] for i in np.flatnonzero(keep)], p.cost[keep],
                    p.raw[keep], p.eff[keep])


def _undominated(p: _Problem) -> np.ndarray:
    """Mask of the networks that no other network dominates.

    Network b dominates a when b serves every task a serves at an effective loss no higher,
    and b is cheaper by more than ``COST_TOL``, or no dearer and earlier by name. Swapping a
    for b in any selection keeps it within budget, does not raise the objective, and improves
    (or keeps) the tie-break key, so a is never needed. The order is strict and acyclic, so
    removing every dominated network at once is safe.
    """
    m = p.size
    keep = np.ones(m, dtype=bool)
    if m == 0:
        return keep
    finite = np.isfinite(p.eff)
    # Per task, the networks serving it sorted by effective loss: the networks no worse than
    # a on task c are a prefix of that order. Each a is checked against the shortest such
    # prefix over its tasks, then filtered on its other tasks.
    order, counts = [], np.full(p.eff.shape, m + 1, dtype=np.intp)
    for c in range(p.eff.shape[1]):
        rows = np.flatnonzero(finite[:, c])
        rows = rows[np.argsort(p.eff[rows, c], kind="stable")]
        order.append(rows)
        counts[rows, c] = np.searchsorted(p.eff[rows, c], p.eff[rows, c], side="right")
    first = counts.argmin(axis=1)
    for a in range(m):
        c0 = first[a]
        idx = order[c0][: counts[a, c0]]
        for c in np.flatnonzero(finite[a]):
            if idx.size <= 1:
                break
            if c != c0:
                idx = idx[p.eff[idx, c] <= p.eff[a, c]]
        ca, cb = p.cost[a], p.cost[idx]
        dom = (cb < ca - COST_TOL) | ((cb <= ca) & (idx < a))  # names sorted: index = order
        if dom.any():
            keep[a] = False
    return keep


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


def _to_selection(p: _Problem, budget: float, idx: Sequence[int],
                  lower: float | None = None) -> Selection:
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
        gap=0.0 if lower is None else max(0.0, key[0] - lower) / max(abs(lower), 1e-12),
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
    dual: tuple[np.ndarray, float] | None = None,
) -> list[int] | None:
    """Algorithm 1 with bounds. Exact: returns the canonical optimum (see module doc).

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

    def solve(
        self,
        budget: float,
        time_limit: float | None = None,
        *,
        bound: float | None = None,
        presolve: bool | None = None,
        exclude: Sequence[tuple[Sequence[int], bool]] = (),
    ) -> list[int] | None:
        """Chosen network indices; None if infeasible, or nothing has objective < ``bound``.

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
            "mip_rel_gap": 0.0,
            "mip_abs_gap": 0.0,  # HiGHS default 1e-6 could stop short on totals ~0.5
            "presolve": self.m <= PRESOLVE_MAX if presolve is None else presolve,
        }
        if bound is not None:
            options["objective_bound"] = bound
            options["mip_heuristic_effort"] = 0.0  # the incumbent is known; prove, not search
        if time_limit is not None:
            options["time_limit"] = time_limit
        self.proved, self.dual_bound = True, None
        with warnings.catch_warnings():
            # mip_abs_gap is passed to HiGHS verbatim; scipy warns that it does so.
            warnings.filterwarnings("ignore", message="Unrecognized options", category=Warning)
            res = milp(
                self.c,
                integrality=self.integrality,
                bounds=(0, 1),
                constraints=LinearConstraint(A, lb, ub),
                options=options,
            )
        if res.status == 1 and time_limit is not None:  # out of time: maybe a solution
            self.proved = False
            dual = getattr(res, "mip_dual_bound", None)
            self.dual_bound = float(dual) if dual is not None and np.isfinite(dual) else None
            return None if res.x is None else np.flatnonzero(res.x[: self.m] > 0.5).tolist()
        if res.x is None and (res.status == 2 or bound is not None):
            return None  # infeasible, or nothing beats the bound
        if res.status != 0 or res.x is None:
            raise RuntimeError(f"HiGHS did not finish: {res.message}")
        return np.flatnonzero(res.x[: self.m] > 0.5).tolist()


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


# --------------------------------------------------------------------------- LP reduction


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
    """What one budget's solve leaves for the next, larger one."""

    previous: list[int] | None = None
    columns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    #: Seconds each MILP of the reduced problem may take (None: no limit).
    time_limit: float | None = None
    #: The lower bound proved when the last budget's proof did not finish (None: it did).
    lower: float | None = None


def _solve_reduced(p: _Problem, budget: float, method: str, sweep: _Sweep) -> list[int] | None:
    """Exact canonical optimum via LP reduction, then ``method`` ("bnb" or "milp")."""
    # Incumbent: the previous (smaller) budget's optimum, else the greedy one, else the
    # cheapest cover; local search among the survivors improves it below.
    inc = sweep.previous if _finite_cover(p, sweep.previous, budget) else None
    inc = inc or _greedy(p, budget)
    if inc is None:
        inc = _cover_within(p, budget)
        if inc is None:
            return None
    dual = _lp_dual(p, budget, np.union1d(sweep.columns, inc))
    sweep.columns = dual.columns

    def reduce(idx: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return dual.survivors(p, _limit(_key(p, idx)[0]), idx)

    nets, pair = reduce(inc)
    # Every improving swap stays among the survivors; those of lowest reduced cost suffice.
    pool = nets[np.argsort(dual.g[nets], kind="stable")[:IMPROVE_POOL]]
    better = _improve(p, budget, inc, pool)
    if better != inc:
        inc = better
        nets, pair = reduce(inc)

    if method == "bnb":
        sub = _subproblem(p, nets, pair)
        keep = _undominated(sub)
        keep[_position(nets, inc)] = True  # the seed stays whole
        nets, sub = nets[keep], _take(sub, keep)
        idx = _solve_bnb(sub, budget, seeds=[_position(nets, inc)], dual=(dual.u, dual.lam))
        return nets[idx].tolist()

    def milp(nets: np.ndarray, pair: np.ndarray, inc: list[int]
             ) -> tuple[list[int], bool, float | None]:
        """MILP on the undominated ``nets``: its answer if it beats ``inc``, else ``inc``;
        whether it finished; HiGHS's lower bound when it did not."""
        sub = _subproblem(p, nets, pair)
        keep = _undominated(sub)
        model = _MilpModel(_take(sub, keep))
        try:
            found = model.solve(budget, bound=_limit(_key(p, inc)[0]),
                                presolve=MILP_PRESOLVE, time_limit=sweep.time_limit)
        except MemoryError:  # HiGHS's search tree outgrew memory: keep the incumbent
            return inc, False, None
        if found is not None:
            found = nets[keep][found].tolist()
            if _better(_key(p, found), _key(p, inc)):
                return found, model.proved, model.dual_bound
        return inc, model.proved, model.dual_bound

    solved = False
    if nets.size > CORE_SIZE:
        # Incumbent from the core: the survivors of lowest reduced cost.
        core = np.sort(np.argsort(dual.g[nets], kind="stable")[:CORE_SIZE])
        inside = set(nets[core].tolist())
        inc, proved, _ = milp(nets[core], pair[core], inc)
        nets, pair = reduce(inc)
        # The core MILP was optimal over the core: if nothing outside it survives, its answer
        # is optimal over all networks.
        solved = proved and set(nets.tolist()) <= inside
    if not solved:
        inc, proved, highs_bound = milp(nets, pair, inc)
        if not proved:
            # The proof ran out of time or memory: the incumbent, with the best lower bound
            # proved (the LP's, or HiGHS's over the survivors, which hold every selection
            # better than the incumbent).
            value = _key(p, inc)[0]
            lower = max(dual.bound, highs_bound if highs_bound is not None else -math.inf)
            sweep.lower = min(lower, value)
            pool = nets[np.argsort(dual.g[nets], kind="stable")[:IMPROVE_POOL]]
            return _improve(p, budget, inc, pool)
        nets, pair = reduce(inc)
    # Settle: every selection as good as ``inc`` (ties, and any HiGHS stopped short of)
    # survives the reduction at its objective.
    sub = _subproblem(p, nets, pair)
    keep = _undominated(sub)
    keep[_position(nets, inc)] = True
    nets, sub = nets[keep], _take(sub, keep)
    seed = _position(nets, inc)
    if sub.size <= EXACT_CANON_MAX:
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
    time_limit: float | None = None,
) -> list[Selection | InfeasibleBudget]:
    """Select networks for each budget of a sweep, reusing work across budgets.

    The problem is validated and compiled once; budgets are solved in increasing order, each
    seeded with the previous optimum (it fits a larger budget) and, above ``REDUCE_MIN``
    candidates, with the previous LP's columns (module doc). The cheapest cover is computed at
    most once.

    Args:
        networks: Candidate networks (names unique).
        budgets: Budgets, in any order.
        tasks: Tasks to cover (default: every task any network predicts).
        constraints: Task -> maximum admissible loss.
        weights: Task -> weight of its loss in the total.
        solver: ``"bnb"``, ``"milp"``, ``"brute"`` or ``"auto"`` (bnb for at most
            ``AUTO_BNB_MAX`` candidates, milp above).
        objective: An :class:`Objective` to use instead of ``constraints``/``weights``.
        time_limit: Seconds each MILP of an LP-reduced ``"milp"`` solve may take (None: no
            limit). A proof that runs out of time, or of memory, returns the best selection
            found with its ``gap`` to the best lower bound proved instead of failing.

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
    if time_limit is not None and not (_is_real(time_limit) and float(time_limit) > 0):
        raise ValueError(f"time_limit must be a positive number of seconds or None, got "
                         f"{time_limit!r}")
    p = _compile(networks, tasks, objective)
    name = _resolve_solver(solver, p)
    reduce = name != "brute" and p.size > REDUCE_MIN
    if name != "brute" and not reduce:  # brute force stays the untouched reference
        p = _prune_dominated(p)  # (the reduced path prunes what survives the reduction)
    model = _MilpModel(p) if name == "milp" and not reduce else None
    out: dict[int, Selection | InfeasibleBudget] = {}
    sweep = _Sweep(time_limit=time_limit)
    for k in sorted(range(len(budget_list)), key=lambda k: budget_list[k]):
        budget = budget_list[k]
        sweep.lower = None
        if name == "brute":
            idx = _solve_brute(p, budget)
        elif reduce:
            idx = _solve_reduced(p, budget, name, sweep)
        elif name == "bnb":
            idx = _solve_bnb(p, budget, seeds=[sweep.previous])
        else:
            idx = _solve_milp(p, budget, model)
        if idx is None:
            out[k] = InfeasibleBudget(budget, _cheapest_cover(p))
        else:
            sweep.previous = idx
            out[k] = _to_selection(p, budget, idx, sweep.lower)
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
