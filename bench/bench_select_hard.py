"""Benchmark: exact selection on hard instances, against HiGHS and OR-Tools CP-SAT.

Families (every loss positive, costs in SNT):

- ``uniform-T`` (T = 20, 30, 40 tasks; 2,000 / 20,000 / 100,000 candidates): per task a
  single-task network of cost 1 and loss s_t ~ U(0.5, 1.5), and a half-size one of cost 0.5
  and loss 1.1 s_t; then distinct random 2-4-task networks of cost 1 (the size drawn in
  proportion to how many sets of that size exist) whose loss for task t is s_t times an
  independent U(0.85, 1.15) factor. No structure: thousands of near-ties. Budgets
  T/2 .. T/2 + 4 in steps of 0.5 (15:19:0.5 for 30 tasks).
- ``near-tie-30``: 30 tasks, every group of up to 5 tasks (174,436 networks, cost 1 each, as
  a search with ``max_group_size: 5`` selects among), losses from a smooth affinity model as
  an estimator predicts them: s_t times (1 + the mean over t's partners of a pairwise
  affinity a[t, u] ~ N(0, 0.05)) times (1 + 0.001 N(0, 1)). Budgets 6 .. 14 (6 is the
  cheapest cover: an exact partition into six groups of five).
- ``planted-30``: the planted table of ``bench/bench_select.py`` (20,000 candidates, six
  hidden families), budgets 8 .. 16: the easy case, for comparison.

Solvers, each budget on its own with a limit of ``--limit`` seconds:

- ``taskgrouper``: ``select_many`` over the whole sweep (solver ``auto``: the LP-reduced MILP,
  one core), time limit per budget; from its progress reports, the seconds to a proved 1% gap
  and to the proved optimum.
- ``highs``: the textbook assignment MILP (binary x[n], continuous y[n, t] <= x[n], each task
  served once, the budget), HiGHS through scipy, default presolve, one core; run twice per
  budget, with ``mip_rel_gap`` 0.01 (time to 1%) and 0 (time to optimum).
- ``cpsat``: the same model in CP-SAT (``--cpsat-workers`` workers, both cores by default),
  losses scaled to integers (1e-6 resolution; the chosen selection is re-scored exactly);
  one run per budget, the times to 1% and to optimum read from its solution and bound
  callbacks.

The generic solvers run on ``--generic-budgets`` of each sweep (first, middle and last by
default: each costs up to 2-3 x ``--limit``). Model building is timed apart. Requires
``ortools`` for CP-SAT (``make install`` has it); without it CP-SAT is reported as skipped.

Run: ``python bench/bench_select_hard.py [--families uniform-30 ...] [--limit 60]``.
Prints a table per family and writes bench/results/select_hard.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_select import planted_table  # noqa: E402
from taskgrouper.grouping.select import Network, Progress, select_many  # noqa: E402


def uniform_table(n_tasks: int, n_candidates: int, seed: int = 0) -> list[Network]:
    """The uniform-factor family (module doc)."""
    rng = np.random.default_rng(seed)
    tasks = [f"t{j:02d}" for j in range(n_tasks)]
    single = rng.uniform(0.5, 1.5, size=n_tasks)
    nets = [Network(t, 1.0, {t: float(single[j])}) for j, t in enumerate(tasks)]
    nets += [Network(f"{t}|half", 0.5, {t: float(1.1 * single[j])}) for j, t in enumerate(tasks)]
    sizes = np.array([math.comb(n_tasks, k) for k in (2, 3, 4)], dtype=float)
    want = min(n_candidates - len(nets), int(sizes.sum()))
    seen: set[tuple[int, ...]] = set()
    while len(seen) < want:
        k = int(rng.choice([2, 3, 4], p=sizes / sizes.sum()))
        group = tuple(sorted(rng.choice(n_tasks, size=k, replace=False).tolist()))
        if group in seen:
            continue
        seen.add(group)
        nets.append(Network("+".join(tasks[j] for j in group), 1.0,
                            {tasks[j]: float(single[j] * rng.uniform(0.85, 1.15))
                             for j in group}))
    return nets


def near_tie_table(n_tasks: int = 30, max_size: int = 5, seed: int = 0) -> list[Network]:
    """The near-tie family (module doc): every group of up to ``max_size`` tasks."""
    rng = np.random.default_rng(seed)
    tasks = [f"t{j:02d}" for j in range(n_tasks)]
    single = rng.uniform(0.5, 1.5, size=n_tasks)
    affinity = rng.normal(0.0, 0.05, size=(n_tasks, n_tasks))
    nets = []
    for k in range(1, max_size + 1):
        for group in itertools.combinations(range(n_tasks), k):
            losses = {}
            for j in group:
                effect = 0.0 if k == 1 else (affinity[j, list(group)].sum() - affinity[j, j]) / (
                    k - 1)
                losses[tasks[j]] = float(single[j] * (1 + effect)
                                         * (1 + 1e-3 * rng.standard_normal()))
            nets.append(Network("+".join(tasks[j] for j in group), 1.0, losses))
    return nets


def _steps(start: float, n: int = 9, step: float = 0.5) -> list[float]:
    return [start + step * k for k in range(n)]


FAMILIES = {
    "uniform-20": (lambda: uniform_table(20, 2_000), _steps(10.0)),
    "uniform-30": (lambda: uniform_table(30, 20_000), _steps(15.0)),
    "uniform-40": (lambda: uniform_table(40, 100_000), _steps(20.0)),
    "near-tie-30": (lambda: near_tie_table(30, 5), _steps(6.0, step=1.0)),
    "planted-30": (lambda: planted_table(30, 20_000), _steps(8.0, step=1.0)),
}


def _arrays(nets: list[Network]):
    tasks = sorted({t for n in nets for t in n.losses})
    index = {t: i for i, t in enumerate(tasks)}
    net_idx, task_idx, loss = [], [], []
    for k, n in enumerate(nets):
        for t, value in n.losses.items():
            net_idx.append(k)
            task_idx.append(index[t])
            loss.append(value)
    return (len(tasks), np.array([n.cost for n in nets]), np.array(net_idx),
            np.array(task_idx), np.array(loss))


class HighsModel:
    """The textbook assignment MILP, built once per table."""

    def __init__(self, nets: list[Network]):
        from scipy.sparse import coo_matrix, csr_matrix, hstack, identity, vstack

        T, cost, ni, tj, loss = _arrays(nets)
        M, P = len(nets), len(loss)
        self.M, self.loss = M, loss
        self.c = np.concatenate([np.zeros(M), loss])
        a_eq = hstack([csr_matrix((T, M)), coo_matrix((np.ones(P), (tj, np.arange(P))),
                                                      shape=(T, P))])
        a_link = hstack([coo_matrix((-np.ones(P), (np.arange(P), ni)), shape=(P, M)),
                         identity(P)])
        a_cost = csr_matrix(np.concatenate([cost, np.zeros(P)])[None, :])
        self.A = vstack([a_eq, a_link, a_cost]).tocsr()
        self.lb = np.concatenate([np.ones(T), np.full(P, -np.inf), [-np.inf]])
        self.ub = np.concatenate([np.ones(T), np.zeros(P), [0.0]])
        self.integrality = np.concatenate([np.ones(M), np.zeros(P)])

    def solve(self, budget: float, limit: float, gap: float) -> dict:
        from scipy.optimize import LinearConstraint, milp

        ub = self.ub.copy()
        ub[-1] = budget + 1e-9
        t0 = time.perf_counter()
        res = milp(self.c, integrality=self.integrality, bounds=(0, 1),
                   constraints=LinearConstraint(self.A, self.lb, ub),
                   options={"time_limit": limit, "mip_rel_gap": gap})
        seconds = time.perf_counter() - t0
        value = None if res.x is None else float(res.fun)
        bound = getattr(res, "mip_dual_bound", None)
        return {"seconds": seconds, "value": value,
                "bound": None if bound is None or not np.isfinite(bound) else float(bound),
                "finished": res.status == 0}


def run_highs(model: HighsModel, budget: float, limit: float) -> dict:
    at1 = model.solve(budget, limit, 0.01)
    opt = model.solve(budget, limit, 0.0)
    return {"to_1pct": at1["seconds"] if at1["finished"] else None,
            "to_optimum": opt["seconds"] if opt["finished"] else None,
            "value": opt["value"], "bound": opt["bound"],
            "gap": _gap(opt["value"], opt["bound"])}


def run_cpsat(nets: list[Network], budget: float, limit: float, workers: int) -> dict:
    from ortools.sat.python import cp_model

    T, cost, ni, tj, loss = _arrays(nets)
    scale = 1e6
    t0 = time.perf_counter()
    m = cp_model.CpModel()
    x = [m.NewBoolVar(f"x{k}") for k in range(len(nets))]
    y = [m.NewBoolVar(f"y{p}") for p in range(len(loss))]
    for p in range(len(loss)):
        m.AddImplication(y[p], x[int(ni[p])])
    for t in range(T):
        m.AddExactlyOne([y[p] for p in np.flatnonzero(tj == t)])
    unit = 1024  # costs are multiples of 1/1024 here
    m.Add(sum(int(round(c * unit)) * x[k] for k, c in enumerate(cost))
          <= int(math.floor(budget * unit + 1e-6)))
    m.Minimize(sum(int(round(v * scale)) * y[p] for p, v in enumerate(loss)))
    build = time.perf_counter() - t0
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = limit
    solver.parameters.num_workers = workers
    marks: dict[str, float | None] = {"to_1pct": None}
    state = {"value": math.inf, "bound": -math.inf}
    start = time.perf_counter()

    def check() -> None:
        if marks["to_1pct"] is None and state["value"] - state["bound"] <= 0.01 * max(
                state["bound"], 1e-12):
            marks["to_1pct"] = time.perf_counter() - start

    class Seen(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            state["value"] = min(state["value"], self.ObjectiveValue())
            state["bound"] = max(state["bound"], self.BestObjectiveBound())
            check()

    def on_bound(bound: float) -> None:
        state["bound"] = max(state["bound"], bound)
        check()

    if hasattr(solver, "best_bound_callback"):
        solver.best_bound_callback = on_bound
    status = solver.Solve(m, Seen())
    seconds = time.perf_counter() - start
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    value = (math.fsum(float(loss[p]) for p in range(len(loss)) if solver.Value(y[p]))
             if found else None)
    bound = solver.BestObjectiveBound() / scale
    proved = status == cp_model.OPTIMAL
    if proved and marks["to_1pct"] is None:
        marks["to_1pct"] = seconds
    return {"build_seconds": build, "to_1pct": marks["to_1pct"],
            "to_optimum": seconds if proved else None, "value": value, "bound": bound,
            "gap": 0.0 if proved else _gap(value, bound)}


def _gap(value: float | None, bound: float | None) -> float | None:
    if value is None or bound is None or not math.isfinite(bound):
        return None
    return max(0.0, value - bound) / max(abs(bound), 1e-12)


def run_taskgrouper(nets: list[Network], budgets: list[float], limit: float) -> dict:
    marks: dict[float, dict] = {b: {"to_1pct": None} for b in budgets}

    def seen(r: Progress) -> None:
        mark = marks[r.budget]
        if mark["to_1pct"] is None and r.gap is not None and r.gap <= 0.01:
            mark["to_1pct"] = r.seconds
        if r.stage == "done":
            mark["seconds"] = r.seconds

    t0 = time.perf_counter()
    results = select_many(nets, budgets, time_limit=limit, progress=seen)
    total = time.perf_counter() - t0
    rows = []
    for b, sel in zip(budgets, results, strict=True):
        proved = getattr(sel, "stopped", "x") is None
        rows.append({"budget": b, "to_1pct": marks[b]["to_1pct"],
                     "to_optimum": marks[b].get("seconds") if proved else None,
                     "seconds": marks[b].get("seconds"),
                     "value": getattr(sel, "objective", None), "gap": getattr(sel, "gap", None),
                     "stopped": getattr(sel, "stopped", "infeasible")})
    return {"sweep_seconds": total, "per_budget": rows}


def _fmt(seconds: float | None, limit: float) -> str:
    return f">{limit:g}" if seconds is None else f"{seconds:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    ap.add_argument("--limit", type=float, default=60.0, help="seconds per budget and solver")
    ap.add_argument("--generic", nargs="*", choices=["highs", "cpsat"],
                    default=["highs", "cpsat"])
    ap.add_argument("--generic-budgets", type=int, default=3,
                    help="budgets per sweep given to the generic solvers (first, middle, last)")
    ap.add_argument("--cpsat-workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "select_hard.json"))
    args = ap.parse_args()
    import scipy.optimize  # noqa: F401  (imported once, outside every timing)

    report: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                "python": sys.version.split()[0]},
                    "limit_s": args.limit, "cpsat_workers": args.cpsat_workers,
                    "families": []}
    generic = list(args.generic)
    if "cpsat" in generic:
        try:
            import ortools  # noqa: F401
        except ImportError:
            print("CP-SAT skipped: ortools is not installed (make install has it)")
            generic.remove("cpsat")
    for name in args.families:
        make, budgets = FAMILIES[name]
        t0 = time.perf_counter()
        nets = make()
        built = time.perf_counter() - t0
        n_tasks = len({t for n in nets for t in n.losses})
        print(f"\n{name}: {n_tasks} tasks, {len(nets):,} networks (built in {built:.1f} s), "
              f"budgets {budgets[0]:g}..{budgets[-1]:g}, limit {args.limit:g} s per budget")
        ours = run_taskgrouper(nets, budgets, args.limit)
        print(f"  taskgrouper: {ours['sweep_seconds']:.2f} s for the sweep; per budget, "
              "seconds to 1% and to the optimum: " + ", ".join(
                  f"{r['budget']:g}: {_fmt(r['to_1pct'], args.limit)}/"
                  f"{_fmt(r['to_optimum'], args.limit)}" for r in ours["per_budget"]),
              flush=True)
        fam = {"family": name, "tasks": n_tasks, "networks": len(nets), "budgets": budgets,
               "taskgrouper": ours, "highs": [], "cpsat": []}
        k = args.generic_budgets
        picks = sorted({0, len(budgets) // 2, len(budgets) - 1}) if k == 3 else \
            list(range(min(k, len(budgets))))
        highs_model = None
        if "highs" in generic:
            t0 = time.perf_counter()
            highs_model = HighsModel(nets)
            fam["highs_build_seconds"] = time.perf_counter() - t0
        for i in picks:
            b = budgets[i]
            if highs_model is not None:
                fam["highs"].append({"budget": b, **run_highs(highs_model, b, args.limit)})
            if "cpsat" in generic:
                fam["cpsat"].append({"budget": b, **run_cpsat(nets, b, args.limit,
                                                                args.cpsat_workers)})
        by_budget = {s: {r["budget"]: r for r in fam[s]} for s in ("highs", "cpsat")}
        print("  budget | taskgrouper: to 1%, to optimum, gap | highs: to 1%, to optimum, gap"
              " | cp-sat: to 1%, to optimum, gap")
        for row in ours["per_budget"]:
            b = row["budget"]
            ours_gap = "-" if row["gap"] is None else f"{100 * row['gap']:.3g}%"
            line = (f"  {b:6g} | {_fmt(row['to_1pct'], args.limit)}, "
                    f"{_fmt(row['to_optimum'], args.limit)}, {ours_gap}")
            for solver in ("highs", "cpsat"):
                r = by_budget[solver].get(b)
                if r is None:
                    line += " | -"
                    continue
                agree = ("" if r["value"] is None or row["value"] is None
                         or abs(r["value"] - row["value"]) > 1e-6 * abs(row["value"])
                         or r["to_optimum"] is None else " (same optimum)")
                gap = "-" if r["gap"] is None else f"{100 * r['gap']:.3g}%"
                line += (f" | {_fmt(r['to_1pct'], args.limit)}, "
                         f"{_fmt(r['to_optimum'], args.limit)}, {gap}{agree}")
            print(line, flush=True)
        report["families"].append(fam)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
