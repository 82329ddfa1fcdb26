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

``"auto"``, the default of :func:`select`, :func:`select_many` and ``taskgrouper select``,
runs ``"bnb"`` up to ``AUTO_BNB_MAX`` candidates and the LP-reduced ``"milp"`` above: on
thousands of near-tied candidates Algorithm 1 can take minutes per budget (30 tasks, 20,000
candidates of the uniform-factor family of ``bench/bench_select_hard.py``: over 5 minutes for
one budget) where the reduced MILP takes a fraction of a second.

Above ``REDUCE_MIN`` candidates, ``"bnb"`` and ``"milp"`` first shrink the problem without
losing the optimum, by LP reduced-cost fixing (as in facility-location solvers):

1. Incumbent: the previous (smaller) budget's optimum, which fits a larger budget, else a
   greedy selection, else the cheapest cover; a local search improves it.
2. LP bound by column generation: a restricted LP over a few hundred networks (warm-started
   with the previous budget's columns), priced against all of them. Its duals give a
   Lagrangian lower bound ``L`` and, per network and per (network, task) pair, how much the
   bound rises if the network is chosen or serves the task (:class:`.reduce._Dual`).
3. Fixing: a network or pair whose forced bound exceeds the incumbent's objective ``U`` is in
   no selection as good as the incumbent, so it goes (a network left serving no task is never
   in the canonical optimum: dropping it would keep the objective and lower the cost). Then
   networks dominated by a single other network go (:func:`.model._undominated`). Of 20,000
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
6. Anytime (``time_limit``, ``gap``, ``progress``; :mod:`.control`): when many networks tie
   closely with the optimum (e.g. losses predicted by a smooth model for 30 tasks: 174,436
   candidates, an LP bound 0.2% below the incumbent, 32,852 survivors), the MILP over all
   survivors can run for many minutes and outgrow memory. Each budget has a deadline; when it
   strikes, when the proof reaches the requested relative gap, or when HiGHS runs out of
   memory, the best selection found is returned with ``Selection.gap``, its relative
   distance to the best lower bound proved, and ``Selection.stopped`` saying why; ``gap ==
   0`` means proved optimal. Progress reports (incumbent, bound, gap) come at each step and
   every two seconds; Ctrl-C returns what was found so far, marked ``"interrupted"``. HiGHS
   runs in a worker thread so that the interrupt lands at once.

The solvers stay exact: nothing is dropped that could be in the canonical optimum. The
cheapest cover is a greedy cover proved optimal by the LP and a "slot" knapsack bound, or a
set-cover MILP on what LP fixing leaves. ``"brute"`` never reduces.

The paper's ``BETTER()`` is an :class:`Objective`: per-task weights and per-task hard
constraints ``{task: max_loss}``. Selection is deterministic on ties: among selections whose
objective values agree to a relative tolerance of 1e-12, the lower total cost wins (costs
compared to 1e-9), then fewer networks, then the lexicographically smaller sorted tuple of
network names. Every solver returns the same selection.

The package's modules, each importing only those listed before it:

- :mod:`~taskgrouper.grouping.select.model`: :class:`Network`, :class:`Selection`,
  :class:`InfeasibleBudget`, :class:`Objective`, :func:`score`; the compiled problem,
  dominance pruning and the canonical tie-break key.
- :mod:`~taskgrouper.grouping.select.brute`: ``"brute"``.
- :mod:`~taskgrouper.grouping.select.bnb`: ``"bnb"`` (Algorithm 1) and the greedy incumbent.
- :mod:`~taskgrouper.grouping.select.milp`: ``"milp"`` (the HiGHS model) and the local
  search that canonicalises ties.
- :mod:`~taskgrouper.grouping.select.cover`: the cheapest cover, :func:`cheapest_cover`.
- :mod:`~taskgrouper.grouping.select.control`: time limit, gap and progress reports
  (:class:`Progress`); standard library only.
- :mod:`~taskgrouper.grouping.select.reduce`: the LP reduction (steps 1 to 6 above).
- this module: :func:`select` and :func:`select_many` (the budget sweep).

The package imports only numpy, scipy and the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from taskgrouper.errors import InputError
from taskgrouper.grouping.select.bnb import _solve_bnb
from taskgrouper.grouping.select.brute import _solve_brute
from taskgrouper.grouping.select.control import Progress, _Control
from taskgrouper.grouping.select.cover import _cheapest_cover, cheapest_cover
from taskgrouper.grouping.select.milp import _MilpModel, _solve_milp
from taskgrouper.grouping.select.model import (
    COST_TOL,
    REL_TOL,
    InfeasibleBudget,
    Network,
    Objective,
    Selection,
    _compile,
    _finite_cover,
    _is_real,
    _key,
    _Problem,
    _prune_dominated,
    _to_selection,
    score,
)
from taskgrouper.grouping.select.reduce import _solve_reduced, _Sweep

__all__ = [
    "COST_TOL",
    "REL_TOL",
    "SOLVERS",
    "InfeasibleBudget",
    "Network",
    "Objective",
    "Progress",
    "Selection",
    "cheapest_cover",
    "score",
    "select",
    "select_many",
]

#: Solver names accepted by :func:`select` and :func:`select_many`.
SOLVERS = ("bnb", "milp", "brute", "auto")
#: ``solver="auto"`` uses branch and bound up to this many candidates, MILP above.
AUTO_BNB_MAX = 64
#: Above this many candidates "bnb" and "milp" run on the LP-reduced problem (module doc).
REDUCE_MIN = 64


def _resolve_solver(solver: str, p: _Problem) -> str:
    if solver not in SOLVERS:
        raise InputError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if solver == "auto":
        return "bnb" if p.size <= AUTO_BNB_MAX else "milp"
    return solver


def _check_budget(budget: object) -> float:
    if not _is_real(budget) or math.isnan(float(budget)):
        raise InputError(f"budget must be a number, got {budget!r}")
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
    gap: float = 0.0,
    progress: Callable[[Progress], None] | None = None,
) -> list[Selection | InfeasibleBudget]:
    """Select networks for each budget of a sweep, reusing work across budgets.

    The problem is validated and compiled once; budgets are solved in increasing order, each
    seeded with the previous optimum (it fits a larger budget) and, above ``REDUCE_MIN``
    candidates, with the previous LP's columns (module doc). The cheapest cover is computed at
    most once.

    Anytime: with ``time_limit`` or ``gap``, a budget whose proof is not finished when either
    strikes gets the best selection found, with its ``gap`` to the best lower bound proved
    and ``stopped`` saying why. Ctrl-C (KeyboardInterrupt) returns what was found so far:
    the budget being solved gets its incumbent and every later budget the best selection
    found that fits it, all with ``stopped="interrupted"`` (the interrupt is raised only
    when no selection was found yet).

    Args:
        networks: Candidate networks (names unique).
        budgets: Budgets, in any order.
        tasks: Tasks to cover (default: every task any network predicts).
        constraints: Task -> maximum admissible loss.
        weights: Task -> weight of its loss in the total.
        solver: ``"bnb"``, ``"milp"``, ``"brute"`` or ``"auto"`` (bnb for at most
            ``AUTO_BNB_MAX`` candidates, the LP-reduced milp above).
        objective: An :class:`Objective` to use instead of ``constraints``/``weights``.
        time_limit: Seconds each budget may take (None: no limit). A proof that runs out of
            time, or of memory, returns the best selection found with its ``gap`` instead of
            failing.
        gap: Relative gap at which a budget's proof may stop (0: prove optimality; 0.01:
            within 1% of the optimum).
        progress: Called with a :class:`Progress` report at each step of a large budget's
            solve and every two seconds while it runs.

    Returns:
        One entry per budget, in the given order: a :class:`Selection`, or an
        :class:`InfeasibleBudget` (not raised) when no cover fits.

    Raises:
        ValueError: Invalid networks, tasks, constraints or weights, or a task no network
            predicts; a time limit or gap with the ``"bnb"`` or ``"brute"`` solver.
    """
    if objective is None:
        objective = Objective(weights=weights, constraints=constraints)
    elif constraints or weights:
        raise InputError("give either objective or constraints/weights, not both")
    budget_list = [_check_budget(b) for b in budgets]
    if time_limit is not None and not (_is_real(time_limit) and float(time_limit) > 0):
        raise InputError(f"time_limit must be a positive number of seconds or None, got "
                         f"{time_limit!r}")
    if not (_is_real(gap) and 0.0 <= float(gap) < 1.0):
        raise InputError(f"gap must be a relative gap in [0, 1), e.g. 0.01 for 1%, got {gap!r}")
    if solver in ("bnb", "brute") and (time_limit is not None or gap):
        raise InputError(f"time_limit and gap apply to the 'milp' and 'auto' solvers, not "
                         f"{solver!r}; use solver='auto'")
    p = _compile(networks, tasks, objective)
    name = _resolve_solver(solver, p)
    reduce = name != "brute" and p.size > REDUCE_MIN
    if name != "brute" and not reduce:  # brute force stays the untouched reference
        p = _prune_dominated(p)  # (the reduced path prunes what survives the reduction)
    model = _MilpModel(p) if name == "milp" and not reduce else None
    out: dict[int, Selection | InfeasibleBudget] = {}
    control = _Control(time_limit=time_limit, gap=float(gap), progress=progress)
    sweep = _Sweep(control=control)
    order = sorted(range(len(budget_list)), key=lambda k: budget_list[k])
    try:  # around the whole sweep, so that Ctrl-C between two budgets is caught too
        for k in order:
            budget = budget_list[k]
            sweep.stopped = None
            control.begin(budget)
            try:
                if name == "brute":
                    idx = _solve_brute(p, budget)
                elif reduce:
                    idx = _solve_reduced(p, budget, name, sweep)
                elif name == "bnb":
                    idx = _solve_bnb(p, budget, seeds=[sweep.previous])
                else:
                    idx = _solve_milp(p, budget, model)
            finally:
                control.end()
            if idx is None:
                out[k] = InfeasibleBudget(budget, _cheapest_cover(p))
            else:
                sweep.previous = idx
                lower = control.lower if sweep.stopped else None  # None: proved optimal
                out[k] = _to_selection(p, budget, idx, lower, sweep.stopped)
                control.found(idx, out[k].objective, "done")
    except KeyboardInterrupt:
        control.end()
        rest = [j for j in order if j not in out]  # the one being solved, then the later ones
        if rest and not _interrupted(p, [budget_list[j] for j in rest], rest, control, sweep,
                                     out):
            raise
    return [out[k] for k in range(len(budget_list))]


def _interrupted(p: _Problem, budgets: list[float], keys: list[int], control: _Control,
                 sweep: _Sweep, out: dict[int, Selection | InfeasibleBudget]) -> bool:
    """Fill ``out`` for the budgets not finished when Ctrl-C struck (the first is the one
    being solved): each gets the best selection found that fits it, marked "interrupted",
    with the lower bound proved for the first (none, an infinite gap, for the others).
    False when nothing was found that fits the first."""
    found = [idx for idx in (control.incumbent, sweep.previous) if idx is not None]
    first = min((idx for idx in found if _finite_cover(p, idx, budgets[0])),
                key=lambda idx: _key(p, idx), default=None)
    if first is None:
        return False
    # The control's bound is the first budget's only if its solve had begun (an interrupt
    # between two budgets leaves the previous, smaller budget's, which bounds nothing here).
    begun = control.budget == budgets[0] and control.lower is not None
    for n, (budget, k) in enumerate(zip(budgets, keys, strict=True)):
        lower = control.lower if n == 0 and begun else -math.inf
        out[k] = _to_selection(p, budget, first, lower, "interrupted")
    return True


def select(
    networks: Iterable[Network],
    budget: float,
    *,
    tasks: Sequence[str] | None = None,
    constraints: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    solver: str = "auto",
    objective: Objective | None = None,
    time_limit: float | None = None,
    gap: float = 0.0,
) -> Selection:
    """Choose the networks that minimise total loss within a budget (Standley et al., 2020).

    Args:
        networks: Candidate networks (names unique).
        budget: Maximum total cost (compared as ``cost <= budget + 1e-9``).
        tasks: Tasks to cover (default: every task any network predicts).
        constraints: Task -> maximum admissible loss (hard requirement).
        weights: Task -> weight of its loss in the minimised total.
        solver: ``"auto"`` (Algorithm 1 up to ``AUTO_BNB_MAX`` candidates, the LP-reduced
            MILP above), ``"bnb"`` (Algorithm 1 with bounds, reduced above ``REDUCE_MIN``),
            ``"milp"`` (HiGHS) or ``"brute"``.
        objective: An :class:`Objective` to use instead of ``constraints``/``weights``.
        time_limit, gap: Anytime selection, as in :func:`select_many`.

    Returns:
        The canonical optimal selection (ties broken as described in the module doc); with
        ``time_limit`` or ``gap``, possibly the best one found (``stopped`` says why).

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
        time_limit=time_limit,
        gap=gap,
    )
    if isinstance(result, InfeasibleBudget):
        raise result
    return result
