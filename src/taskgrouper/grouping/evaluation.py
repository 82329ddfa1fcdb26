"""How good is a cheap strategy? Its compute, its predictions and its regret against exhaustive.

For a search whose folder holds the exhaustive ground truth (every network selection chooses
among trained to convergence), each strategy gets:

- ``compute_fraction``: the wall seconds (and training samples) of the runs it needed to
  estimate, over the exhaustive search's (the chosen networks' final training, which every
  strategy needs, is left out of both and reported apart);
- ``spearman``: Spearman's rank correlation of its predicted validation losses against the
  fully trained networks' validation losses, over every (network, task) of the multi-task
  networks (pooled, and the mean of the per-task correlations): networks of one task are
  measured by every strategy and would flatter the figure;
- ``regret`` at every budget: the test total of its chosen grouping over the test total of the
  exhaustive search's choice, minus 1 (0 = as good; negative when the cheap strategy's choice
  happens to test better), and its mean over the feasible budgets.

Planted task families also know the right grouping: :func:`adjusted_rand_index` scores a
chosen assignment against it.

This module is pure Python: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from taskgrouper.errors import InputError

__all__ = ["adjusted_rand_index", "evaluate_strategies", "planted_agreement", "spearman"]


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rho (Pearson's r of the ranks, ties averaged); NaN below 3 finite pairs or
    when one side is constant."""
    pairs = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)
             if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return math.nan
    rx, ry = _ranks([p[0] for p in pairs]), _ranks([p[1] for p in pairs])
    n = len(pairs)
    mx, my = math.fsum(rx) / n, math.fsum(ry) / n
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = math.fsum((a - mx) ** 2 for a in rx)
    syy = math.fsum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def adjusted_rand_index(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Adjusted Rand index of two labelings of the same items (Hubert and Arabie, 1985).

    1 when the partitions agree, about 0 for independent ones. Two single-cluster (or two
    all-singleton) labelings agree perfectly: 1.
    """
    if len(a) != len(b):
        raise InputError(f"labelings differ in length: {len(a)} and {len(b)}")
    n = len(a)
    if n < 2:
        return 1.0
    table: dict[tuple, int] = {}
    for x, y in zip(a, b, strict=True):
        table[(x, y)] = table.get((x, y), 0) + 1
    rows: dict[Any, int] = {}
    cols: dict[Any, int] = {}
    for (x, y), c in table.items():
        rows[x] = rows.get(x, 0) + c
        cols[y] = cols.get(y, 0) + c
    index = sum(math.comb(c, 2) for c in table.values())
    sum_a = sum(math.comb(c, 2) for c in rows.values())
    sum_b = sum(math.comb(c, 2) for c in cols.values())
    total = math.comb(n, 2)
    expected = sum_a * sum_b / total
    maximum = (sum_a + sum_b) / 2
    if maximum == expected:
        return 1.0
    return (index - expected) / (maximum - expected)


def planted_agreement(selections: Sequence[Mapping[str, Any]], groups: Sequence[Sequence[str]]
                      ) -> list[dict[str, Any]]:
    """Adjusted Rand index of each selection's assignment (task -> serving network) against
    the planted groups; None for an infeasible budget."""
    label = {t: k for k, g in enumerate(groups) for t in g}
    out = []
    for sel in selections:
        assignment = sel.get("assignment") or {}
        tasks = [t for t in label if t in assignment]
        ari = (adjusted_rand_index([label[t] for t in tasks], [assignment[t] for t in tasks])
               if assignment else None)
        out.append({"budget": sel["budget"], "ari": ari,
                    "networks": len(sel.get("networks") or [])})
    return out


def evaluate_strategies(strategies: Mapping[str, Mapping[str, Any]],
                        estimates: Mapping[str, Mapping[str, Mapping[str, float]]],
                        truth: Mapping[str, Mapping[str, float]]) -> dict[str, Any] | None:
    """The evaluation table (see the module docstring).

    Args:
        strategies: ``results["strategies"]``: name -> {"estimation_compute", "selections"}.
            Must hold ``exhaustive``.
        estimates: Strategy -> network -> {task: predicted validation loss}.
        truth: Network -> {task: validation loss} of the fully trained networks.

    Returns:
        ``{"reference": "exhaustive", "rows": {strategy: {...}}}``, or None without an
        exhaustive search to compare with.
    """
    if "exhaustive" not in strategies:
        return None
    ref = strategies["exhaustive"]
    ref_wall = float(ref["estimation_compute"]["wall_s"])
    ref_samples = float(ref["estimation_compute"]["train_samples"])
    ref_totals = [s.get("test_total") for s in ref["selections"]]
    rows: dict[str, Any] = {}
    for name, entry in strategies.items():
        compute = entry["estimation_compute"]
        pred_all, true_all = [], []
        per_task: dict[str, tuple[list[float], list[float]]] = {}
        for net, losses in (estimates.get(name) or {}).items():
            if len(losses) < 2 or net not in truth:
                continue
            for t, p in losses.items():
                pred_all.append(p)
                true_all.append(truth[net][t])
                per_task.setdefault(t, ([], []))
                per_task[t][0].append(p)
                per_task[t][1].append(truth[net][t])
        task_rho = [r for r in (spearman(*v) for v in per_task.values()) if math.isfinite(r)]
        regrets = []
        for sel, ref_total in zip(entry["selections"], ref_totals, strict=True):
            total = sel.get("test_total")
            regrets.append(total / ref_total - 1.0
                           if total is not None and ref_total not in (None, 0) else None)
        feasible = [r for r in regrets if r is not None]
        rows[name] = {
            "compute_fraction": compute["wall_s"] / ref_wall if ref_wall > 0 else math.nan,
            "samples_fraction": (compute["train_samples"] / ref_samples if ref_samples > 0
                                 else math.nan),
            "runs": compute["runs"],
            "spearman": spearman(pred_all, true_all),
            "spearman_per_task": math.fsum(task_rho) / len(task_rho) if task_rho else math.nan,
            "pairs": len(pred_all),
            "regret": regrets,
            "mean_regret": math.fsum(feasible) / len(feasible) if feasible else math.nan,
            "max_regret": max(feasible) if feasible else math.nan,
        }
    return {"reference": "exhaustive", "rows": rows}
