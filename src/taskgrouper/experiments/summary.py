"""Plain-text summaries the command line prints (and scripts may print too)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["format_search", "format_train"]


def format_train(result) -> str:
    """A table of a :class:`~taskgrouper.train.TrainResult`: per task, the headline test
    metric next to the constant predictor's, then when it stopped and what it cost."""
    from taskgrouper.evaluate.metrics import LOWER_IS_BETTER

    lines = [f"{'task':<6} {'metric':<12} {'test':>10} {'constant':>10} {'val loss':>10}"]
    for task in result.tasks:
        metrics = [k for k in result.test[task] if k != "loss"]
        head = metrics[0]
        value, const = result.test[task][head], result.constant_test[task][head]
        arrow = "lower" if LOWER_IS_BETTER.get(head, True) else "higher"
        lines.append(f"{task:<6} {head:<12} {value:>10.4f} {const:>10.4f} "
                     f"{result.val[task]['loss']:>10.4f}   ({arrow} is better)")
    lines.append(f"best epoch {result.best_epoch} of {result.epochs_run}; "
                 f"{result.train_samples} training samples in {result.wall_s:.1f}s; "
                 f"cost {result.cost.get('snt', float('nan')):.3f} SNT, "
                 f"{result.cost.get('params', 0) / 1e6:.2f}M params")
    return "\n".join(lines)


def _comparison_lines(results: Mapping[str, Any]) -> list[str]:
    """With several seeds: the exhaustive choice (else the first strategy) against the
    all-task and the independent networks per budget, paired by seed, with the verdict."""
    from taskgrouper.report.tables import comparison_verdict, fmt_budget

    comparisons = results.get("comparisons") or {}
    if not comparisons:
        return []
    strategy = "exhaustive" if "exhaustive" in comparisons else next(iter(comparisons))
    by_budget: dict[float, dict[str, Mapping[str, Any]]] = {}
    for row in comparisons[strategy]:
        by_budget.setdefault(row["budget"], {})[row["against"]] = row
    lines = [f"{strategy} against the all-task | the independent networks, paired over "
             f"{len(results.get('seeds') or [])} seeds (a verdict needs the 95% interval to "
             f"exclude zero):"]
    for budget, rows in sorted(by_budget.items()):
        cells = [f"{100 * r['relative']:+.1f}% {comparison_verdict(r)}" if r else "-"
                 for r in (rows.get("all_in_one"), rows.get("independent"))]
        lines.append(f"  budget {fmt_budget(budget)}: {cells[0]} | {cells[1]}")
    return lines


def format_search(results: Mapping[str, Any], out: str | None = None) -> str:
    """Total test loss per method and budget (the layout of the paper's Table 4), with
    several seeds the paired comparisons of the chosen grouping against the baselines, and
    each strategy's compute."""
    budgets = results["budgets"]
    rows = [(name, [s.get("test_total") for s in v["selections"]])
            for name, v in results["strategies"].items()]
    rows += [(name, [s.get("test_total") for s in v])
             for name, v in (results.get("baselines") or {}).items()]
    width = max(len(r[0]) for r in rows) + 2
    lines = ["total test loss by budget (SNT)",
             " " * width + "".join(f"{b:>8g}" for b in budgets)]
    for name, values in rows:
        cells = "".join(f"{v:>8.4f}" if v is not None else f"{'-':>8}" for v in values)
        lines.append(f"{name:<{width}}{cells}")
    lines += _comparison_lines(results)
    for name, v in results["strategies"].items():
        c = v["compute"]
        lines.append(f"{name}: {c['train_samples']} training samples, "
                     f"{c['wall_s']:.0f} run-seconds")
    if out is not None:
        lines.append(f"wrote {out}/results.json, report.md, report.html, runs.sqlite")
    return "\n".join(lines)
