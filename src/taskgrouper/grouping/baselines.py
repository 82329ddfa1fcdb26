"""The baselines of Standley et al. (2020), Sec. 4.3, as combinatorics over trained networks.

Every function takes the candidate networks with their validation losses (``val``, used to
choose and to assign each task to a network) and the same networks with their test losses
(``test``, used to score; ``None`` scores on ``val``), and returns one entry per budget in the
shape of ``select --json``: ``{"budget", "networks", "cost", "val_total", "test_total",
"test_total_min", "assignment"}``, or ``{"budget", "networks": [], "error"}`` when nothing
fits.

- :func:`all_in_one`: the traditional multi-task network predicting every task.
- :func:`independent`: single-task networks only (the best widths that fit the budget).
- :func:`random_groupings`: the mean of budget-filling random draws, as the paper's released
  selection code draws them (the paper: 1,000 trials).
- :func:`pessimal`: the worst budget-filling selection, found exactly.

Pure Python and numpy; no torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import numpy as np

from taskgrouper.errors import InputError
from taskgrouper.grouping.select import InfeasibleBudget, Network, cheapest_cover, select_many

__all__ = ["all_in_one", "assign", "independent", "pessimal", "random_groupings"]

_EPS = 1e-9  # budget comparisons, as in select


def _entry(budget: float, chosen: Sequence[str], val: dict[str, Network],
           test: dict[str, Network], tasks: Sequence[str]) -> dict:
    """Score ``chosen`` as ``search`` scores every strategy's choice: each task is served by
    the chosen network with the lowest validation loss, and contributes that network's test
    loss (what a deployed system reports; no peeking at test to pick the server)."""
    assignment = assign(chosen, val, tasks)
    return {"budget": budget, "networks": sorted(chosen),
            "cost": math.fsum(val[n].cost for n in chosen),
            "val_total": math.fsum(val[assignment[t]].losses[t] for t in tasks),
            "test_total": math.fsum(test[assignment[t]].losses[t] for t in tasks),
            "test_total_min": math.fsum(min(test[n].losses[t] for n in chosen
                                            if t in test[n].losses) for t in tasks),
            "assignment": assignment}


def assign(chosen: Sequence[str], val: Mapping[str, Network],
           tasks: Sequence[str]) -> dict[str, str]:
    """Each task served by the network of ``chosen`` with the lowest loss for it in ``val``
    (ties: the cheaper, then the name): how a selection is deployed and scored."""
    return {t: min((n for n in chosen if t in val[n].losses),
                   key=lambda n: (val[n].losses[t], val[n].cost, n)) for t in tasks}


def _infeasible(budget: float, why: str) -> dict:
    return {"budget": budget, "networks": [], "cost": None, "val_total": None,
            "test_total": None, "test_total_min": None, "assignment": {}, "error": why}


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
        if getattr(sel, "stopped", None) == "interrupted":
            raise KeyboardInterrupt  # a baseline is exact or absent, never a partial answer
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


class _FillSampler:
    """Budget-filling random draws, as the paper's released selection code draws them.

    One draw walks the networks in a uniformly random order and adds each one that still fits
    the budget left, and stops as soon as less than the cheapest network's cost is left; a
    draw that leaves a task uncovered, or runs out of networks first, is thrown away and drawn
    again. (The released code draws indices with rejection of used ones and starts over when
    every network was drawn; the same distribution.) Its score: each task served by the drawn
    network with the lowest validation loss (``test_total``) and, as the paper scores it, the
    lowest test loss among the drawn networks (``test_total_min``).

    Vectorised over draws: a block of draws advances one position of its random order at a
    time, with (draws x tasks) arrays of the best validation rank, its test loss and the least
    test loss so far. Small pools take each block's random order from a (draws x networks)
    argsort; pools of more than ``PERMUTE_MAX`` networks draw each next index uniformly and
    redraw the few that repeat an earlier pick.
    """

    PERMUTE_MAX = 4096

    def __init__(self, nets: list[Network], val: dict[str, Network],
                 test: dict[str, Network], tasks: Sequence[str]):
        m, k = len(nets), len(tasks)
        self.m, self.k = m, k
        self.cost = np.array([n.cost for n in nets], dtype=float)
        self.cmin = float(self.cost.min()) if m else math.inf
        # per task, each network's rank by (val loss, cost, name): the server _entry picks
        self.rank = np.full((m, k), np.iinfo(np.int64).max, dtype=np.int64)
        self.test_loss = np.full((m, k), np.inf)
        self.test_by_rank, self.val_by_rank = [], []  # per task, losses of the rank-r server
        for j, t in enumerate(tasks):
            holders = sorted((i for i, n in enumerate(nets) if t in n.losses),
                             key=lambda i: (val[nets[i].name].losses[t], nets[i].cost,
                                            nets[i].name))
            for r, i in enumerate(holders):
                self.rank[i, j] = r
                self.test_loss[i, j] = test[nets[i].name].losses[t]
            self.test_by_rank.append(np.array([test[nets[i].name].losses[t] for i in holders]))
            self.val_by_rank.append(np.array([val[nets[i].name].losses[t] for i in holders]))

    def draw(self, rng: np.random.Generator, budget: float, n: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``n`` draws: for the kept ones, test totals by the validation assignment, their
        validation totals and test totals by the lowest test loss; and which were kept."""
        m, k = self.m, self.k
        left = np.full(n, float(budget))
        active = np.ones(n, dtype=bool)
        best = np.full((n, k), np.iinfo(np.int64).max, dtype=np.int64)
        least = np.full((n, k), np.inf)
        permute = m <= self.PERMUTE_MAX
        order = np.argsort(rng.random((n, m)), axis=1) if permute else None
        picked = None if permute else np.empty((n, 0), dtype=np.int64)
        for pos in range(m):
            if not active.any():
                break
            if permute:
                idx = order[:, pos]
            else:
                idx = rng.integers(m, size=n)
                again = (picked == idx[:, None]).any(axis=1)
                while again.any():
                    idx[again] = rng.integers(m, size=int(again.sum()))
                    again = (picked == idx[:, None]).any(axis=1)
                picked = np.concatenate([picked, idx[:, None]], axis=1)
            add = active & (self.cost[idx] <= left + _EPS)
            left = np.where(add, left - self.cost[idx], left)
            rows = np.flatnonzero(add)
            if rows.size:
                best[rows] = np.minimum(best[rows], self.rank[idx[rows]])
                least[rows] = np.minimum(least[rows], self.test_loss[idx[rows]])
            active &= left >= self.cmin - _EPS  # the released code stops below the cheapest
        keep = ~active & (best < m).all(axis=1)  # filled, and every task covered
        best, least = best[keep], least[keep]
        served = sum((self.test_by_rank[j][best[:, j]] for j in range(k)),
                     np.zeros(len(best)))
        served_val = sum((self.val_by_rank[j][best[:, j]] for j in range(k)),
                         np.zeros(len(best)))
        return served, served_val, least.sum(axis=1), keep


def _fill_random(v: dict[str, Network], t: dict[str, Network], budgets: Sequence[float],
                 tasks: Sequence[str], trials: int, seed: int,
                 time_limit: float | None) -> list[dict]:
    """:func:`random_groupings` with ``fill="budget"``."""
    nets = sorted(v.values(), key=lambda n: n.name)
    sampler = _FillSampler(nets, v, t, tasks)
    out = []
    for b in budgets:
        rng = np.random.default_rng([seed, int(round(b * 1000))])
        served: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        least: list[np.ndarray] = []
        got, thrown, stopped = 0, 0, None
        start = time.perf_counter()
        block = max(1, min(trials, 4_000_000 // max(sampler.m, 1)))
        while got < trials:
            s, sv, mn, keep = sampler.draw(rng, b, block)
            need = trials - got
            if len(s) > need:  # the draws after the last one needed do not count
                keep = keep[:np.flatnonzero(keep)[need - 1] + 1]
                s, sv, mn = s[:need], sv[:need], mn[:need]
            bad = int((~keep).sum())
            served.append(s)
            vals.append(sv)
            least.append(mn)
            got += len(s)
            thrown += bad
            if got == 0 and thrown >= 100 * max(trials, 100):
                break  # nothing fills the budget while covering every task
            if (time_limit is not None and got < trials and got > 0
                    and time.perf_counter() - start > time_limit):
                stopped = "time limit"
                break
        if got == 0:
            out.append(_infeasible(b, f"no random draw fills budget {b:g} to within the "
                                      f"cheapest network's cost ({sampler.cmin:g}) and covers "
                                      f"every task"))
            continue
        arr, arr_min = np.concatenate(served), np.concatenate(least)
        entry = {"budget": b, "networks": [], "cost": None,
                 "val_total": float(np.concatenate(vals).mean()),
                 "test_total": float(arr.mean()), "test_total_min": float(arr_min.mean()),
                 "std": float(arr.std()), "std_min": float(arr_min.std()),
                 "trials": int(got), "rejected": int(thrown), "fill": "budget",
                 "assignment": {}}
        if stopped:
            entry["stopped"] = stopped
        out.append(entry)
    return out


def random_groupings(val: Sequence[Network], test: Sequence[Network] | None,
                     budgets: Sequence[float], tasks: Sequence[str], trials: int = 1000,
                     seed: int = 0, time_limit: float | None = 60.0,
                     fill: str = "budget") -> list[dict]:
    """Mean test total of ``trials`` random selections per budget (deterministic by seed).

    ``fill="budget"`` (default; the procedure of the paper's released code,
    :class:`_FillSampler`): networks drawn in random order are added while they fit, until less
    than the cheapest network's cost is left. ``fill="cover"``: networks are drawn among those
    that cover a task still uncovered and leave enough budget for the rest, until every task
    is covered (:class:`_RandomSampler`; taskgrouper's earlier baseline, weaker at high budgets
    because it stops spending early).

    Entries carry ``test_total`` (mean over the draws, each task served by its drawn network
    with the lowest validation loss), ``test_total_min`` (the paper's score: each task's lowest
    test loss among the drawn networks), ``val_total``, ``std`` and ``std_min`` (of the two
    test totals over draws), ``trials`` (how many were kept) and ``networks: []`` (a
    distribution, not one choice); ``fill="budget"`` entries also count the draws thrown away
    (``rejected``: a task left uncovered, or the networks ran out before the budget filled).
    ``time_limit`` (seconds per budget; None for none) bounds the drawing on very large
    candidate sets: the mean is then over the trials drawn in time (at least one), and the
    entry says so (``"stopped": "time limit"``).
    """
    if fill not in ("budget", "cover"):
        raise InputError(f"random groupings: fill must be 'budget' or 'cover', got {fill!r}")
    v, t = _tables(val, test)
    if fill == "budget":
        return _fill_random(v, t, budgets, tasks, trials, seed, time_limit)
    sampler = _RandomSampler(sorted(v.values(), key=lambda n: n.name), tasks)
    out = []
    for b in budgets:
        rng = np.random.default_rng([seed, int(round(b * 1000))])
        totals, vals, mins = [], [], []
        start = time.perf_counter()
        stopped = None
        for k in range(trials):
            chosen = sampler.draw(rng, b)
            if chosen is None:
                break
            e = _entry(b, chosen, v, t, tasks)
            totals.append(e["test_total"])
            vals.append(e["val_total"])
            mins.append(e["test_total_min"])
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
                 "test_total_min": float(np.mean(mins)), "std": float(arr.std()),
                 "std_min": float(np.std(mins)), "trials": len(totals), "fill": "cover",
                 "assignment": {}}
        if stopped:
            entry["stopped"] = stopped
        out.append(entry)
    return out


def pessimal(val: Sequence[Network], test: Sequence[Network] | None,
             budgets: Sequence[float], tasks: Sequence[str],
             time_limit: float | None = 60.0) -> list[dict]:
    """The worst budget-filling selection, found exactly: the paper's Pessimal row.

    The paper's released code takes the worst of many budget-filling random draws
    (:func:`random_groupings`), scored by each task's lowest test loss among the drawn
    networks. A draw can end in exactly the sets of distinct networks that cover every task
    and cost more than ``budget`` minus the cheapest network's cost and at most ``budget``
    (walk such a set first: each of its networks fits, and no prefix leaves less than the
    cheapest cost). The MILP of :func:`_pessimal_milp` finds, among those sets, the one with
    the highest total of per-task lowest test losses (``test`` when given, else ``val``): at
    least as bad as every draw. Its entry is scored both ways (``test_total`` by the
    validation assignment, ``test_total_min`` the paper's).

    ``time_limit`` (seconds per budget; None for none): tens of tasks and thousands of
    networks can take HiGHS many minutes (20 tasks, 1,370 networks: over 10 min for one
    budget). When it strikes, the entry holds the worst selection found so far, says so
    (``"stopped": "time limit"``) and gives ``upper_bound``, the highest total still possible.
    """
    v, t = _tables(val, test)
    nets = sorted(t.values(), key=lambda n: n.name)
    cmin = min((n.cost for n in nets), default=math.inf)
    out = []
    for b in budgets:
        found = _pessimal_milp(nets, tasks, b, b - cmin, time_limit) if nets else None
        best_set, proved, bound = found if found is not None else (None, True, None)
        if best_set is None:
            try:
                cheapest = cheapest_cover(nets, tasks=tasks)
                why = (f"budget {b:g} is below the cheapest cover of every task (cost "
                       f"{cheapest:g})" if cheapest > b + _EPS else
                       f"no selection covering every task fills budget {b:g} to within the "
                       f"cheapest network's cost ({cmin:g})")
            except ValueError as err:
                why = str(err)
            out.append(_infeasible(b, why))
        else:
            entry = _entry(b, list(best_set), v, t, tasks)
            if not proved:
                entry.update(stopped="time limit", upper_bound=bound)
            out.append(entry)
    return out


#: The MILP asks a budget-filling selection to cost at least budget - cheapest cost + this
#: (HiGHS accepts constraint violations up to 1e-6, so the strict inequality needs a margin;
#: costs are sums of a few widths, far coarser than this).
_FILL_MARGIN = 1e-4


def _pessimal_milp(nets: list[Network], tasks: Sequence[str], budget: float,
                   min_cost: float, time_limit: float | None = None
                   ) -> tuple[tuple[str, ...], bool, float | None] | None:
    """The selection costing more than ``min_cost`` and at most ``budget`` (a budget-filling
    one) that covers ``tasks`` with the highest total: its names, whether it is proved the
    worst, and when not (``time_limit`` struck) the highest total still possible (None if
    HiGHS gave no bound). None when nothing is found.

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
    add_row([(i, n.cost) for i, n in enumerate(nets)], min_cost + _FILL_MARGIN, budget + _EPS)
    n_var = len(obj)
    a = coo_matrix((coef, (rows, cols)), shape=(len(lo), n_var)).tocsr()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unrecognized options", category=Warning)
        options = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0}
        if time_limit is not None:
            options["time_limit"] = float(time_limit)
        res = milp(np.asarray(obj), integrality=np.r_[np.ones(m), np.zeros(n_var - m)],
                   bounds=(0, 1), constraints=LinearConstraint(a, lo, hi), options=options)
    if res.x is None:
        return None
    names = tuple(sorted(nets[i].name for i in np.flatnonzero(res.x[:m] > 0.5)))
    if res.status != 1:
        return names, True, None
    # out of time: the objective is minus the increments above each task's lowest loss
    dual = getattr(res, "mip_dual_bound", None)
    base = math.fsum(min(n.losses[t] for n in nets if t in n.losses) for t in tasks)
    return names, False, (base - float(dual) if dual is not None and np.isfinite(dual)
                          else None)
