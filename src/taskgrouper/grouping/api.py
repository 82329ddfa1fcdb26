"""Selection from loss-table files: the logic behind ``taskgrouper select --table``.

Returns the ``select --json`` object of DESIGN.md; :func:`format_selections` renders it for a
terminal. No torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from taskgrouper.errors import InputError
from taskgrouper.grouping.select import (
    InfeasibleBudget,
    Network,
    Objective,
    score,
    select_many,
)
from taskgrouper.grouping.tables import higher_order_approximation, read_csv, read_standley

__all__ = ["FORMATS", "format_selections", "read_table", "select_networks", "select_table"]

#: Table formats accepted by :func:`read_table`.
FORMATS = ("csv", "standley")


def read_table(path: str | Path, fmt: str = "csv") -> list[Network]:
    """Read a loss table in ``fmt`` (``"csv"`` or ``"standley"``)."""
    if fmt == "csv":
        return read_csv(path)
    if fmt == "standley":
        return read_standley(path)
    raise InputError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")


def select_table(
    table_path: str | Path,
    fmt: str = "csv",
    budgets: Iterable[float] = (1.0,),
    test_path: str | Path | None = None,
    hoa: bool = False,
    constraints: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    solver: str = "bnb",
) -> dict:
    """Select networks from a table file for each budget; optionally score on a test table.

    Args:
        table_path: The table to select on (validation losses, or ESA losses).
        fmt: ``"csv"`` or ``"standley"`` (both files use it).
        budgets: Budgets of the sweep.
        test_path: A second table with the same networks; ``test_total`` is computed on it by
            the paper's protocol (per task, the lowest test loss among the chosen networks).
        hoa: Replace, before choosing, the losses of networks with three or more tasks by the
            higher-order approximation.
        constraints: Task -> maximum admissible loss.
        weights: Task -> weight of its loss in the minimised total.
        solver: ``"bnb"``, ``"milp"``, ``"brute"`` or ``"auto"``.

    Returns:
        ``{"tasks": [...], "selections": [{"budget", "networks", "cost", "val_total",
        "test_total", "assignment"}, ...]}``; an infeasible budget gives ``"networks": []``,
        ``"cost": null``, ``"val_total": null``, ``"test_total": null``, ``"assignment": {}``
        and an ``"error"`` string. ``val_total`` is the unweighted sum of the assigned losses
        on the selection table (HOA-approximated when ``hoa``).

    Raises:
        ValueError: Unreadable tables, bad options, or a test table lacking a chosen network.
    """
    networks = read_table(table_path, fmt)
    test = read_table(test_path, fmt) if test_path is not None else None
    return select_networks(networks, test, budgets, hoa=hoa, constraints=constraints,
                           weights=weights, solver=solver, source=str(table_path),
                           test_source=str(test_path))


def select_networks(networks: list[Network], test_networks: list[Network] | None,
                    budgets: Iterable[float], *, hoa: bool = False,
                    constraints: Mapping[str, float] | None = None,
                    weights: Mapping[str, float] | None = None, solver: str = "auto",
                    source: str = "table", test_source: str = "test table") -> dict:
    """The ``select --json`` object for networks already in memory (see :func:`select_table`)."""
    table_path, test_path = source, test_source
    if hoa:
        networks = higher_order_approximation(networks)
    test = ({n.name: n for n in test_networks} if test_networks is not None else None)
    objective = Objective(weights=weights, constraints=constraints)
    results = select_many(list(networks), list(budgets), solver=solver, objective=objective)
    order: dict[str, None] = {}
    for net in networks:
        order.update(dict.fromkeys(net.losses))
    out = []
    for result in results:
        if isinstance(result, InfeasibleBudget):
            out.append(
                {
                    "budget": result.budget,
                    "networks": [],
                    "cost": None,
                    "val_total": None,
                    "test_total": None,
                    "assignment": {},
                    "error": str(result),
                }
            )
            continue
        if test is not None:
            missing = [n for n in result.networks if n not in test]
            if missing:
                raise InputError(
                    f"{test_path}: test table lacks network(s) {', '.join(missing)} chosen "
                    f"from {table_path}; give a test table with the same networks"
                )
        out.append(
            {
                "budget": result.budget,
                "networks": list(result.networks),
                "cost": result.cost,
                "val_total": result.total,
                "test_total": score(result, test) if test is not None else None,
                "assignment": dict(result.assignment),
            }
        )
    return {"tasks": list(order), "selections": out}


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def format_selections(result: Mapping) -> str:
    """Render a :func:`select_table` result as a plain-text table, one row per budget."""
    rows = [("budget", "cost", "val_total", "test_total", "networks (task -> network)")]
    for sel in result["selections"]:
        if sel.get("error"):
            detail = f"infeasible: {sel['error']}"
        else:
            by_net: dict[str, list[str]] = {name: [] for name in sel["networks"]}
            for task, name in sel["assignment"].items():
                by_net.setdefault(name, []).append(task)
            detail = "  ".join(f"{name}[{','.join(ts)}]" for name, ts in by_net.items())
        rows.append(
            (
                f"{sel['budget']:g}",
                _fmt(sel["cost"], 2),
                _fmt(sel["val_total"]),
                _fmt(sel["test_total"]),
                detail,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for k, row in enumerate(rows):
        cells = [row[i].rjust(widths[i]) for i in range(4)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(row[4]))
    header = f"tasks: {', '.join(result['tasks'])}"
    return "\n".join([header, *lines])
