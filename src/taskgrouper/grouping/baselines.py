"""The baselines of Standley et al. (2020), Sec. 4.3, as combinatorics over trained networks.

Every function takes the candidate networks with their validation losses (``val``, used to
choose and to assign each task to a network) and the same networks with their test losses
(``test``, used to score; ``None`` scores on ``val``), and returns one entry per budget in the
shape of ``select --json``: ``{"budget", "networks", "cost", "val_total", "test_total",
"assignment"}``, or ``{"budget", "networks": [], "error"}`` when nothing fits.

- :func:`all_in_one`: the traditional multi-task network predicting every task.
- :func:`independent`: single-task networks only (the best widths that fit the budget).
- :func:`random_groupings`: the mean of random valid solutions (the paper: 1,000 trials).
- :func:`pessimal`: the worst valid solution, each task still served by its best chosen
  network.

Pure Python and numpy; no torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from taskgrouper.errors import InputError
from taskgrouper.grouping.select import InfeasibleBudget, Network, cheapest_cover, select_many

__all__ = ["all_in_one", "independent", "pessimal", "random_groupings"]

_EPS = 1e-9  # budget comparisons, as in select


def _entry(budget: float, chosen: Sequence[str], val: dict[str, Network],
           test: dict[str, Network], tasks: Sequence[str]) -> dict:
    """Score ``chosen`` as ``search`` scores every strategy's choice: each task is served by
    the chosen network with the lowest validation loss, and contributes that network's test
    loss (what a deployed system reports; no peeking at test to pick the server)."""
    assignment = {}
    for t in tasks:
        serving = [n for n in chosen if t in val[n].losses]
        assignment[t] = min(serving, key=lambda n: (val[n].losses[t], val[n].cost, n))
    return {"budget": budget, "networks": sorted(chosen),
            "cost": math.fsum(val[n].cost for n in chosen),
            "val_total": math.fsum(val[assignment[t]].losses[t] for t in tasks),
            "test_total": math.fsum(test[assignment[t]].losses[t] for t in tasks),
            "assignment": assignment}


def _infeasible(budget: float, why: str) -> dict:
    return {"budget": budget, "networks": [], "cost": None, "val_total": None,
            "test_total": None, "assignment": {}, "error": why}


def _tables(val: Sequence[Network], test: Sequence[Network] | None):
    v = {n.name: n for n in val}
    t = {n.name: n for n in test} if test is not None else v
    missing = sorted(set(v) - set(t))
    if missing:
        raise InputError(f"test losses missing for network(s) {', '.join(missing)}")
    return v, t


def all_in_one(val: Sequence[Network], test: Sequence[Network] | None,
               budgets: Sequence[float], tasks: Sequence[str]) -> list[dict]:
    """The best network that predicts every task and fits each budget."""
    v, t = _tables(val, test)
    full = [n for n in v.values() if all(task in n.losses for task in tasks)]
    out = []
    for b in budgets:
        fits = [n for n in full if n.cost <= b + _EPS]
        if not fits:
            why = ("no network predicts every task" if not full else
                   f"budget {b:g} is below the all-task network's cost "
                   f"{min(n.cost for n in full):g}")
            out.append(_infeasible(b, why))
            continue
        best = min(fits, key=lambda n: (math.fsum(n.losses[x] for x in tasks), n.cost, n.name))
        out.append(_entry(b, [best.name], v, t, tasks))
    return out


def independent(val: Sequence[Network], test: Sequence[Network] | None,
                budgets: Sequence[float], tasks: Sequence[str]) -> list[dict]:
    """The exact selection restricted to single-task networks."""
    v, t = _tables(val, test)
    singles = [n for n in v.values() if len(n.losses) == 1]
    uncovered = [x for x in tasks if not any(x in n.losses for n in singles)]
    if uncovered:
        return [_infeasible(b, f"no single-task network for {', '.join(uncovered)}")
                for b in budgets]
    out = []
    for b, sel in zip(budgets, select_many(singles, budgets, tasks=tasks), strict=True):
        if isinstance(sel, InfeasibleBudget):
            out.append(_infeasible(b, str(sel)))
        else:
            out.append(_entry(b, list(sel.networks), v, t, tasks))
    return out


class _RandomSampler:
    """Draws random valid solutions: networks picked one at a time, uniformly among those that
    predict an uncovered task and leave enough budget to cover the rest (so no dead end),
    until every task is covered.

    Drawing uniformly among the feasible options is done by drawing among all options in a
    random order and taking the first feasible one, so feasibility is settled only for the
    networks drawn, mostly by two bounds on the cost of covering the rest: at least the sum
    over its tasks of the least cost per task of any network holding the task, at most the sum
    of the cheapest network holding each task. Only between the bounds is the exact cheapest
    cover solved (memoised by the set of tasks left). Vectorised over networks with a
    (networks x tasks) membership matrix, so tens of tasks and 10^5 networks stay cheap.
    """

    def __init__(self, nets: list[Network], tasks: Sequence[str]):
        self.nets, self.tasks = nets, list(tasks)
        col = {x: k for k, x in enumerate(self.tasks)}
        self.member = np.zeros((len(nets), len(self.tasks)), dtype=bool)
        for i, n in enumerate(nets):
            for x in n.losses:
                if x in col:
                    self.member[i, col[x]] = True
        self.cost = np.array([n.cost for n in nets], dtype=float)
        size = self.member.sum(axis=1)
        with np.errstate(divide="ignore"):
            per_task = np.where(self.member, (self.cost / np.maximum(size, 1))[:, None], np.inf)
            own = np.where(self.member, self.cost[:, None], np.inf)
        self.low = per_task.min(axis=0, initial=np.inf)  # least share of a task in a cover
        self.high = own.min(axis=0, initial=np.inf)  # its cheapest network alone
        self.memo: dict[frozenset, float] = {frozenset(): 0.0}

    def _cheapest(self, rest: np.ndarray) -> float:
        key = frozenset(np.flatnonzero(rest).tolist())
        if key not in self.memo:
            names = [self.tasks[k] for k in sorted(key)]
            useful = [Network(n.name, n.cost, {x: n.losses[x] for x in names if x in n.losses})
                      for i, n in enumerate(self.nets) if self.member[i, rest].any()]
            try:
                self.memo[key] = cheapest_cover(useful, tasks=names)
            except ValueError:  # a task no network predicts
                self.memo[key] = math.inf
        return self.memo[key]

    def draw(self, rng: np.random.Generator, budget: float) -> list[str] | None:
        """One random valid solution (network names), or None when none fits the budget."""
        if not np.isfinite(self.low).all():  # a task that no network predicts
            return None
        uncovered = np.ones(len(self.tasks), dtype=bool)
        unused = np.ones(len(self.nets), dtype=bool)
        chosen: list[str] = []
        left = budget
        while uncovered.any():
            hit = self.member[:, uncovered]
            hits = hit.astype(float)
            low_rest = self.low[uncovered].sum() - hits @ self.low[uncovered]
            high_rest = self.high[uncovered].sum() - hits @ self.high[uncovered]
            fits = hit.any(axis=1) & unused & (self.cost + low_rest <= left + _EPS)
            pick = None
            for i in rng.permutation(np.flatnonzero(fits)):
                if (self.cost[i] + high_rest[i] <= left + _EPS or self.cost[i]
                        + self._cheapest(uncovered & ~self.member[i]) <= left + _EPS):
                    pick = int(i)
                    break
            if pick is None:
                return None
            chosen.append(self.nets[pick].name)
            unused[pick] = False
            uncovered &= ~self.member[pick]
            left -= self.cost[pick]
        return chosen


def random_groupings(val: Sequence[Network], test: Sequence[Network] | None,
                     budgets: Sequence[float], tasks: Sequence[str], trials: int = 1000,
                     seed: int = 0, time_limit: float | None = 60.0) -> list[dict]:
    """Mean test total of ``trials`` random valid solutions per budget (deterministic by seed).

    Entries carry ``test_total`` and ``val_total`` (means), ``std`` (of the test totals),
    ``trials`` (how many were drawn) and ``networks: []`` (a distribution, not one choice).
    ``time_limit`` (seconds per budget; None for none) bounds the drawing on very large
    candidate sets: the mean is then over the trials drawn in time (at least one), and the
    entry says so (``"stopped": "time limit"``).
    """
    v, t = _tables(val, test)
    sampler = _RandomSampler(sorted(v.values(), key=lambda n: n.name), tasks)
    out = []
    for b in budgets:
        rng = np.random.default_rng([seed, int(round(b * 1000))])
        totals, vals = [], []
        start = time.perf_counter()
        stopped = None
        for k in range(trials):
            chosen = sampler.draw(rng, b)
            if chosen is None:
                break
            e = _entry(b, chosen, v, t, tasks)
            totals.append(e["test_total"])
            vals.append(e["val_total"])
            if (time_limit is not None and k + 1 < trials
                    and time.perf_counter() - start > time_limit):
                stopped = "time limit"
                break
        if not totals or (len(totals) < trials and stopped is None):
            out.append(_infeasible(b, f"no random valid solution fits budget {b:g}"))
            continue
        arr = np.asarray(totals)
        entry = {"budget": b, "networks": [], "cost": None,
                 "val_total": float(np.mean(vals)), "test_total": float(arr.mean()),
                 "std": float(arr.std()), "trials": len(totals), "assignment": {}}
        if stopped:
            entry["stopped"] = stopped
        out.append(entry)
    return out


def pessimal(val: Sequence[Network], test: Sequence[Network] | None,
             budgets: Sequence[float], tasks: Sequence[str], max_tasks: int = 12) -> list[dict]:
    """The valid solution with the highest validation total, each task served by its best
    chosen network.

    Adding a network never raises any task's best loss, so the worst solution is an
    irredundant cover. Up to ``max_tasks`` tasks they are enumerated by covering the first
    uncovered task with each network that predicts it and fits (at most one network per task,
    so at most ``T`` deep); ties: the higher total, then the lower cost, then fewer networks,
    then names. Beyond ``max_tasks`` tasks, or past ``ENUM_NODES`` enumeration steps, a MILP
    (HiGHS, :func:`_pessimal_milp`) finds the worst total (to HiGHS's 1e-6 tolerance), and
    redundant networks are dropped, dearest first.
    """
    v, t = _tables(val, test)
    nets = sorted(v.values(), key=lambda n: n.name)
    by_task = {x: [n for n in nets if x in n.losses] for x in tasks}
    out = []
    for b in budgets:
        best_set = None
        if len(tasks) <= max_tasks:
            try:
                best_set = _pessimal_enumerate(nets, by_task, tasks, b)
            except _TooMany:
                best_set = _pessimal_milp(nets, tasks, b)
        else:
            best_set = _pessimal_milp(nets, tasks, b)
        if best_set is None:
            try:
                cheapest = cheapest_cover(nets, tasks=tasks)
                why = (f"budget {b:g} is below the cheapest cover of every task (cost "
                       f"{cheapest:g})")
            except ValueError as err:
                why = str(err)
            out.append(_infeasible(b, why))
        else:
            out.append(_entry(b, list(best_set), v, t, tasks))
    return out


#: The pessimal enumeration gives way to the MILP after this many steps.
ENUM_NODES = 200_000


class _TooMany(Exception):
    pass


def _pessimal_enumerate(nets: list[Network], by_task: dict[str, list[Network]],
                        tasks: Sequence[str], budget: float) -> tuple[str, ...] | None:
    """Names of the pessimal selection by enumerating covers; None if nothing fits."""
    best_key, best_set = None, None
    steps = 0

    def visit(chosen: list[Network], left: float) -> None:
        nonlocal best_key, best_set, steps
        steps += 1
        if steps > ENUM_NODES:
            raise _TooMany
        open_tasks = [x for x in tasks if not any(x in n.losses for n in chosen)]
        if not open_tasks:
            total = math.fsum(min(n.losses[x] for n in chosen if x in n.losses)
                              for x in tasks)
            names = tuple(sorted(n.name for n in chosen))
            key = (-total, math.fsum(n.cost for n in chosen), len(names), names)
            if best_key is None or key < best_key:
                best_key, best_set = key, names
            return
        for n in by_task[open_tasks[0]]:
            if n.cost <= left + _EPS and n not in chosen:
                visit(chosen + [n], left - n.cost)

    visit([], budget)
    return best_set


def _pessimal_milp(nets: list[Network], tasks: Sequence[str],
                   budget: float) -> tuple[str, ...] | None:
    """Names of the selection within ``budget`` covering ``tasks`` with the highest total.

    Binary ``x[n]`` (network n chosen). For task t, with the networks predicting it sorted by
    loss ``l_1 <= ... <= l_k``, continuous ``z[t, j]`` (j < k) is 1 when none of the first j is
    chosen: ``z[t, j] <= 1 - x[n_j]`` and ``z[t, j] <= z[t, j-1]``. Task t's served loss is
    ``l_1 + sum_j (l_{j+1} - l_j) z[t, j]``, which the MILP maximises; ``sum_{n predicts t}
    x[n] >= 1`` covers t; ``sum cost x <= budget``.
    """
    import warnings

    from scipy.optimize import LinearConstraint, milp
    from scipy.sparse import coo_matrix

    m = len(nets)
    obj: list[float] = [0.0] * m  # minimised: minus the served losses' increments
    rows: list[int] = []
    cols: list[int] = []
    coef: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def add_row(entries: list[tuple[int, float]], low: float, high: float) -> None:
        r = len(lo)
        for col, val in entries:
            rows.append(r)
            cols.append(col)
            coef.append(val)
        lo.append(low)
        hi.append(high)

    for task in tasks:
        order = sorted((n.losses[task], i) for i, n in enumerate(nets) if task in n.losses)
        add_row([(i, 1.0) for _, i in order], 1.0, np.inf)  # covered
        prev = None
        for j in range(1, len(order)):
            z = len(obj)
            obj.append(-(order[j][0] - order[j - 1][0]))
            add_row([(z, 1.0), (order[j - 1][1], 1.0)], -np.inf, 1.0)
            if prev is not None:
                add_row([(z, 1.0), (prev, -1.0)], -np.inf, 0.0)
            prev = z
    add_row([(i, n.cost) for i, n in enumerate(nets)], -np.inf, budget + _EPS)
    n_var = len(obj)
    a = coo_matrix((coef, (rows, cols)), shape=(len(lo), n_var)).tocsr()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unrecognized options", category=Warning)
        res = milp(np.asarray(obj), integrality=np.r_[np.ones(m), np.zeros(n_var - m)],
                   bounds=(0, 1), constraints=LinearConstraint(a, lo, hi),
                   options={"mip_rel_gap": 0.0, "mip_abs_gap": 0.0})
    if res.x is None:
        return None
    chosen = [nets[i] for i in np.flatnonzero(res.x[:m] > 0.5)]
    # Drop redundant networks, dearest first: the total can only rise, the cost falls.
    for n in sorted(chosen, key=lambda n: (-n.cost, n.name)):
        rest = [k for k in chosen if k is not n]
        if all(any(x in k.losses for k in rest) for x in tasks):
            chosen = rest
    return tuple(sorted(n.name for n in chosen))
