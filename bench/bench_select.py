"""Benchmark: exact network selection on a large planted table (30 tasks, 20,000 candidates).

Instance ("as in a planted HOA table"): for each of 30 tasks a full-size (cost 1) and a
half-size (cost 0.5, loss 10% higher) single-task network; then distinct random task sets of
2-4 tasks, cost 1, whose per-task loss is the single-task loss x (1 + N(0, 0.05)) x a planted
affinity factor: tasks belong to 6 hidden families of 5, and each partner from the same family
lowers the loss by 4%, each partner from another family raises it by 2%.

Budgets: 8, 9, ..., 16 (nine budgets). The cheapest cover is 8 (seven disjoint 4-task
networks and a pair, or two half-size singles); 15 buys every task a half-size single network;
16 goes past that, so the sweep spans "barely feasible" to "generous", where the choice is
hardest. Run: ``python bench/bench_select.py [--candidates N] [--bnb-limit N]``.
Writes bench/results/select.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from taskgrouper.grouping.select import (
    InfeasibleBudget,
    Network,
    cheapest_cover,
    select_many,
)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=30)
    ap.add_argument("--candidates", type=int, default=20_000)
    ap.add_argument("--bnb-limit", type=int, default=2_000,
                    help="run bnb only up to this many candidates (default 2000)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "select.json"))
    args = ap.parse_args()

    nets = planted_table(args.tasks, args.candidates)
    budgets = [float(b) for b in range(8, 17)]
    t0 = time.perf_counter()
    cc = cheapest_cover(nets)
    t_cc = time.perf_counter() - t0
    print(f"{len(nets)} candidates, {args.tasks} tasks; cheapest cover {cc:g} ({t_cc:.2f} s)")
    report: dict = {
        "instance": {"tasks": args.tasks, "candidates": len(nets), "seed": 0,
                     "cheapest_cover": cc, "budgets": budgets},
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "solvers": {},
    }
    reference = None
    for solver in ("milp", "bnb"):
        if solver == "bnb" and len(nets) > args.bnb_limit:
            note = (f"skipped: {len(nets)} candidates > --bnb-limit {args.bnb_limit}; "
                    "Algorithm 1's search tree grows too fast at this size")
            print(f"bnb: {note}")
            report["solvers"]["bnb"] = {"skipped": note}
            continue
        t0 = time.perf_counter()
        result = select_many(nets, budgets, solver=solver)
        dt = time.perf_counter() - t0
        totals = [None if isinstance(r, InfeasibleBudget) else r.total for r in result]
        print(f"{solver}: sweep of {len(budgets)} budgets in {dt:.2f} s")
        for b, r in zip(budgets, result, strict=True):
            if isinstance(r, InfeasibleBudget):
                print(f"  budget {b:5g}: infeasible ({r})")
            else:
                print(f"  budget {b:5g}: total {r.total:.4f} cost {r.cost:g} "
                      f"networks {len(r.networks)}")
        if reference is None:
            reference = totals
        else:
            agree = all(
                (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-9)
                for a, b in zip(reference, totals, strict=True)
            )
            print(f"  agrees with milp: {agree}")
        report["solvers"][solver] = {"seconds": dt, "totals": totals}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
