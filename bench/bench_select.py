"""Benchmark: exact network selection on large planted tables (30 tasks, up to 20,000 candidates).

Instance ("as in a planted HOA table"): for each of 30 tasks a full-size (cost 1) and a
half-size (cost 0.5, loss 10% higher) single-task network; then distinct random task sets of
2-4 tasks, cost 1, whose per-task loss is the single-task loss x (1 + N(0, 0.05)) x a planted
affinity factor: tasks belong to 6 hidden families of 5, and each partner from the same family
lowers the loss by 4%, each partner from another family raises it by 2%. The cheapest cover
costs 8 (seven disjoint 4-task networks and a pair, or two half-size singles).

Two sweeps of nine budgets:

- ``issue``: budgets 1:5:0.5 in SNT, where one SNT is the cheapest cover (eight full-size
  networks; every cost is divided by 8, exactly in binary). Budget 1 is barely feasible, as
  budget 1 is in the paper; from 3.75 SNT every task can have its best network.
- ``tight``: budgets 8, 9, ..., 16 in full-size networks: the whole sweep sits between
  "barely feasible" and "every task a half-size single", where the choice is hardest.

For each candidate count and sweep: the cheapest cover, then ``select_many`` over the nine
budgets with each solver (one call: budgets are solved in increasing order, each warm-started
by the previous one), with the seconds of every budget. ``bnb`` (Algorithm 1 on the LP-reduced
problem) runs only up to ``--bnb-limit`` candidates, one budget per child process, each given
``--bnb-timeout`` seconds (cold: it cannot use the previous budget). Timings start after the
table is built and scipy is imported (importing scipy.optimize costs about 0.6 s once).

Run: ``python bench/bench_select.py [--candidates 2000 5000 20000] [--sweeps issue tight]``.
Prints a table and writes bench/results/select.json.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import multiprocessing
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from taskgrouper.grouping import select as select_module
from taskgrouper.grouping.select import (
    InfeasibleBudget,
    Network,
    Selection,
    cheapest_cover,
    select_many,
)

#: Sweep name -> (budgets, cost divisor): costs are divided by the divisor.
SWEEPS = {
    "issue": ([1.0 + 0.5 * k for k in range(9)], 8.0),
    "tight": ([float(b) for b in range(8, 17)], 1.0),
}


def planted_table(n_tasks: int = 30, n_candidates: int = 20_000, seed: int = 0) -> list[Network]:
    """Random planted-affinity table as described in the module docstring."""
    rng = np.random.default_rng(seed)
    tasks = [f"t{j:02d}" for j in range(n_tasks)]
    family = rng.permutation(np.arange(n_tasks) % max(1, n_tasks // 5))
    single = rng.uniform(0.5, 1.5, size=n_tasks)
    nets = []
    for j, t in enumerate(tasks):
        nets.append(Network(f"{t}", 1.0, {t: float(single[j])}))
        nets.append(Network(f"{t}|half", 0.5, {t: float(single[j] * 1.1)}))
    sets = [c for k in (2, 3, 4) for c in itertools.combinations(range(n_tasks), k)]
    n_multi = min(n_candidates - len(nets), len(sets))
    for s in rng.choice(len(sets), size=n_multi, replace=False):
        group = sets[int(s)]
        losses = {}
        for j in group:
            same = sum(family[i] == family[j] for i in group if i != j)
            other = len(group) - 1 - same
            factor = (1 + rng.normal(0, 0.05)) * (1 - 0.04 * same + 0.02 * other)
            losses[tasks[j]] = float(single[j] * factor)
        nets.append(Network("+".join(tasks[j] for j in group), 1.0, losses))
    return nets


def scaled(nets: list[Network], divisor: float) -> list[Network]:
    """The same networks with every cost divided by ``divisor``."""
    if divisor == 1.0:
        return nets
    return [Network(n.name, n.cost / divisor, n.losses) for n in nets]


@contextlib.contextmanager
def budget_clock(log: list[tuple[float, float]]) -> Iterator[None]:
    """Record (budget, seconds) of every budget ``select_many`` solves on a reduced problem.

    Wraps the module's per-budget step for the duration; the solve itself is untouched.
    """
    inner = select_module._solve_reduced

    def timed(p, budget, method, sweep):
        t0 = time.perf_counter()
        try:
            return inner(p, budget, method, sweep)
        finally:
            log.append((budget, time.perf_counter() - t0))

    select_module._solve_reduced = timed
    try:
        yield
    finally:
        select_module._solve_reduced = inner


def describe(result: Selection | InfeasibleBudget) -> dict:
    if isinstance(result, InfeasibleBudget):
        return {"total": None, "cost": None, "networks": 0, "error": str(result)}
    return {"total": result.total, "cost": result.cost, "networks": len(result.networks)}


def run_milp(nets: list[Network], budgets: list[float]) -> dict:
    log: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    with budget_clock(log):
        results = select_many(nets, budgets, solver="milp")
    seconds = time.perf_counter() - t0
    per = dict(log)
    return {
        "seconds": seconds,
        "setup_seconds": seconds - sum(per.values()),  # validation and compilation
        "per_budget": [{"budget": b, "seconds": per.get(b), **describe(r)}
                       for b, r in zip(budgets, results, strict=True)],
    }


def _bnb_child(nets: list[Network], budget: float, queue) -> None:
    t0 = time.perf_counter()
    (result,) = select_many(nets, [budget], solver="bnb")
    queue.put((time.perf_counter() - t0, describe(result)))


def run_bnb(nets: list[Network], budgets: list[float], timeout: float) -> dict:
    ctx = multiprocessing.get_context("fork")
    rows = []
    for budget in budgets:
        queue = ctx.Queue()
        proc = ctx.Process(target=_bnb_child, args=(nets, budget, queue))
        proc.start()
        proc.join(timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join()
            rows.append({"budget": budget, "seconds": None,
                         "error": f"did not finish in {timeout:g} s"})
        else:
            seconds, desc = queue.get()
            rows.append({"budget": budget, "seconds": seconds, **desc})
    done = [r["seconds"] for r in rows if r["seconds"] is not None]
    return {"seconds": sum(done) if len(done) == len(rows) else None, "per_budget": rows}


def agree(a: dict, b: dict) -> bool | None:
    """Do two solvers' totals agree on every budget both finished? None if none did."""
    pairs = [(x.get("total"), y.get("total")) for x, y in zip(a["per_budget"], b["per_budget"],
                                                               strict=True)
             if x.get("seconds") is not None and y.get("seconds") is not None]
    if not pairs:
        return None
    return all((x is None and y is None) or (x is not None and y is not None
                                               and abs(x - y) < 1e-9) for x, y in pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=30)
    ap.add_argument("--candidates", type=int, nargs="+", default=[2_000, 5_000, 20_000])
    ap.add_argument("--sweeps", nargs="+", choices=sorted(SWEEPS), default=["issue", "tight"])
    ap.add_argument("--bnb-limit", type=int, default=2_000,
                    help="run bnb only up to this many candidates (default 2000)")
    ap.add_argument("--bnb-timeout", type=float, default=20.0,
                    help="seconds allowed to bnb per budget (default 20)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "select.json"))
    args = ap.parse_args()

    import scipy.optimize  # noqa: F401  (imported once here, not inside the first timing)

    report: dict = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "cpus": multiprocessing.cpu_count()},
        "note": "seconds are wall-clock on a shared machine; per_budget seconds are each "
                "budget's share of the one select_many call (milp) or a cold call (bnb)",
        "runs": [],
    }
    for n in args.candidates:
        base = planted_table(args.tasks, n)
        for sweep in args.sweeps:
            budgets, divisor = SWEEPS[sweep]
            nets = scaled(base, divisor)
            t0 = time.perf_counter()
            cc = cheapest_cover(nets)
            t_cc = time.perf_counter() - t0
            print(f"\n{len(nets)} candidates, {args.tasks} tasks, sweep {sweep!r} "
                  f"(budgets {budgets[0]:g}..{budgets[-1]:g}, cost unit 1/{divisor:g}): "
                  f"cheapest cover {cc:g} ({t_cc:.2f} s)")
            run = {"candidates": len(nets), "tasks": args.tasks, "seed": 0, "sweep": sweep,
                   "budgets": budgets, "cost_divisor": divisor, "cheapest_cover": cc,
                   "cheapest_cover_seconds": t_cc, "solvers": {}}
            run["solvers"]["milp"] = run_milp(nets, budgets)
            if n <= args.bnb_limit:
                run["solvers"]["bnb"] = run_bnb(nets, budgets, args.bnb_timeout)
                run["bnb_agrees_with_milp"] = agree(run["solvers"]["milp"],
                                                    run["solvers"]["bnb"])
            else:
                run["solvers"]["bnb"] = {"skipped": f"{len(nets)} candidates > --bnb-limit "
                                                    f"{args.bnb_limit}"}
            for name, res in run["solvers"].items():
                if "skipped" in res:
                    print(f"  {name}: skipped ({res['skipped']})")
                    continue
                total = "-" if res["seconds"] is None else f"{res['seconds']:.2f} s"
                print(f"  {name}: sweep {total}"
                      + (f" (setup {res['setup_seconds']:.2f} s)" if "setup_seconds" in res
                         else ""))
                for row in res["per_budget"]:
                    secs = "   -  " if row["seconds"] is None else f"{row['seconds']:6.2f}"
                    what = (row.get("error") if row.get("total") is None
                            else f"total {row['total']:.4f}, {row['networks']} networks")
                    print(f"    budget {row['budget']:5g}: {secs} s  {what}")
            if "bnb_agrees_with_milp" in run:
                print(f"  bnb agrees with milp: {run['bnb_agrees_with_milp']}")
            report["runs"].append(run)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
