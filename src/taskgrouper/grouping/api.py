"""Selection from loss-table files: the logic behind ``taskgrouper select --table``.

Returns the ``select --json`` object of DESIGN.md; :func:`format_selections` renders it for a
terminal. No torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from taskgrouper.errors import InputError
from taskgrouper.grouping import baselines as bl
from taskgrouper.grouping.select import (
    InfeasibleBudget,
    Network,
    Objective,
    Progress,
    Selection,
    score,
    select_many,
)
from taskgrouper.grouping.tables import higher_order_approximation, read_csv, read_standley

__all__ = ["DEFAULT_TRIALS", "FORMATS", "format_selections", "read_table", "select_networks",
           "select_table", "table_baselines"]

#: Table formats accepted by :func:`read_table`.
FORMATS = ("csv", "standley")

#: Budget-filling random draws per budget for ``select --baselines`` (about 1 s for nine
#: budgets over the paper's 36 networks; the standard error of the mean is then ~1e-4).
DEFAULT_TRIALS = 20_000


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
    solver: str = "auto",
    baselines: bool = False,
    trials: int = DEFAULT_TRIALS,
    time_limit: float | None = None,
    gap: float = 0.0,
    progress: Callable[[Progress], None] | None = None,
) -> dict:
    """Select networks from a table file for each budget; optionally score on a test table.

    Args:
        table_path: The table to select on (validation losses, or ESA losses).
        fmt: ``"csv"`` or ``"standley"`` (both files use it).
        budgets: Budgets of the sweep.
        test_path: A second table with the same networks, to score on: ``test_total`` serves
            each task by its assignment (lowest validation loss among the chosen networks),
            ``test_total_min`` by the paper's protocol (per task, the lowest test loss among
            the chosen networks).
        hoa: Replace, before choosing, the losses of networks with three or more tasks by the
            higher-order approximation.
        constraints: Task -> maximum admissible loss.
        weights: Task -> weight of its loss in the minimised total.
        solver: ``"bnb"``, ``"milp"``, ``"brute"`` or ``"auto"``.
        baselines: Add the baselines the table allows (see :func:`select_networks`).
        trials: Random draws per budget for the random baseline.
        time_limit, gap, progress: Anytime selection, as in
            :func:`~taskgrouper.grouping.select.select_many`: each budget stops at
            ``time_limit`` seconds or once proved within the relative ``gap``, with the best
            selection found; ``progress`` gets reports while a budget is solved.

    Returns:
        ``{"tasks": [...], "selections": [{"budget", "networks", "cost", "val_total",
        "test_total", "test_total_min", "assignment"}, ...]}`` (and ``"baselines"``); an
        infeasible budget gives ``"networks": []``, ``"cost": null``, null totals,
        ``"assignment": {}`` and an ``"error"`` string. Each selection has ``"gap"`` (0 when
        proved optimal, else its relative distance to the lower bound proved; null when none
        was) and ``"stopped"`` (null, or why the proof stopped: "gap", "time limit",
        "memory", "interrupted"); ``"interrupted": true`` at the top when Ctrl-C stopped
        the sweep. ``val_total`` is the unweighted sum of
        the assigned losses on the selection table; under ``hoa`` the selection's
        approximated total is ``predicted_total``.

    Raises:
        ValueError: Unreadable tables, bad options, or a test table lacking a chosen network.
    """
    networks = read_table(table_path, fmt)
    test = read_table(test_path, fmt) if test_path is not None else None
    return select_networks(networks, test, budgets, hoa=hoa, constraints=constraints,
                           weights=weights, solver=solver, source=str(table_path),
                           test_source=str(test_path), baselines=baselines, trials=trials,
                           time_limit=time_limit, gap=gap, progress=progress)


def select_networks(networks: list[Network], test_networks: list[Network] | None,
                    budgets: Iterable[float], *, hoa: bool = False,
                    constraints: Mapping[str, float] | None = None,
                    weights: Mapping[str, float] | None = None, solver: str = "auto",
                    source: str = "table", test_source: str = "test table",
                    baselines: bool = False, trials: int = DEFAULT_TRIALS,
                    seed: int = 0, time_limit: float | None = None, gap: float = 0.0,
                    progress: Callable[[Progress], None] | None = None) -> dict:
    """The ``select --json`` object for networks already in memory (see :func:`select_table`).

    Each selection is scored two ways on the test table: ``test_total``, each task served by
    its ``assignment`` (the chosen network with the lowest validation loss: what a deployed
    system gets), and ``test_total_min``, each task's lowest test loss among the chosen
    networks (Standley et al.'s Table 4 protocol). Under ``hoa`` the networks are chosen on
    the approximated losses (their total is ``predicted_total``), and the assignment and
    ``val_total`` use the table's real validation losses.

    With ``baselines``, a ``"baselines"`` entry holds, per budget, the baselines the table
    allows (:mod:`taskgrouper.grouping.baselines`, on the real losses): ``random``
    (budget-filling draws, ``trials`` of them, seeded by ``seed``) and ``pessimal`` always;
    ``all_in_one`` when a network predicts every task; ``independent`` when single-task
    networks cover every task.
    """
    table_path, test_path = source, test_source
    real = {n.name: n for n in networks}
    chosen_from = higher_order_approximation(networks) if hoa else networks
    test = ({n.name: n for n in test_networks} if test_networks is not None else None)
    objective = Objective(weights=weights, constraints=constraints)
    results = select_many(list(chosen_from), list(budgets), solver=solver, objective=objective,
                          time_limit=time_limit, gap=gap, progress=progress)
    order: dict[str, None] = {}
    for net in networks:
        order.update(dict.fromkeys(net.losses))
    tasks = list(order)
    out = []
    for result in results:
        if isinstance(result, InfeasibleBudget):
            out.append({"budget": result.budget, "networks": [], "cost": None,
                        "val_total": None, "test_total": None, "test_total_min": None,
                        "assignment": {}, "error": str(result)})
            continue
        if test is not None:
            missing = [n for n in result.networks if n not in test]
            if missing:
                raise InputError(
                    f"{test_path}: test table lacks network(s) {', '.join(missing)} chosen "
                    f"from {table_path}; give a test table with the same networks"
                )
        assignment = (bl.assign(result.networks, real, list(result.assignment)) if hoa
                      else dict(result.assignment))
        entry = {
            "budget": result.budget,
            "networks": list(result.networks),
            "cost": result.cost,
            "val_total": (math.fsum(real[n].losses[t] for t, n in assignment.items()) if hoa
                          else result.total),
            "test_total": (math.fsum(test[n].losses[t] for t, n in assignment.items())
                           if test is not None else None),
            "test_total_min": score(result, test) if test is not None else None,
            "assignment": assignment,
            "gap": result.gap if math.isfinite(result.gap) else None,
            "stopped": result.stopped,
        }
        if hoa:
            entry["predicted_total"] = result.total
        out.append(entry)
    answer: dict = {"tasks": tasks, "selections": out}
    if any(isinstance(r, Selection) and r.stopped == "interrupted" for r in results):
        answer["interrupted"] = True
        return answer  # Ctrl-C: what was found, without the baselines
    if baselines:
        answer["baselines"] = table_baselines(networks, test_networks, list(budgets), tasks,
                                              trials=trials, seed=seed)
    return answer


def table_baselines(val: list[Network], test: list[Network] | None, budgets: list[float],
                    tasks: list[str], trials: int = DEFAULT_TRIALS, seed: int = 0) -> dict:
    """The baselines a loss table allows (see :func:`select_networks`), keyed by name."""
    out = {"random": bl.random_groupings(val, test, budgets, tasks, trials=trials, seed=seed),
           "pessimal": bl.pessimal(val, test, budgets, tasks)}
    if any(all(t in n.losses for t in tasks) for n in val):
        out["all_in_one"] = bl.all_in_one(val, test, budgets, tasks)
    singles = [n for n in val if len(n.losses) == 1]
    if all(any(t in n.losses for n in singles) for t in tasks):
        out["independent"] = bl.independent(val, test, budgets, tasks)
    return out


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def format_selections(result: Mapping) -> str:
    """Render a :func:`select_table` result as plain-text tables: one row per budget, then,
    with baselines, the Table 4 layout (methods x budgets) under each test score."""
    rows = [("budget", "cost", "val_total", "test_total", "test_total_min",
             "networks (task -> network)")]
    for sel in result["selections"]:
        if sel.get("error"):
            detail = f"infeasible: {sel['error']}"
        else:
            by_net: dict[str, list[str]] = {name: [] for name in sel["networks"]}
            for task, name in sel["assignment"].items():
                by_net.setdefault(name, []).append(task)
            detail = "  ".join(f"{name}[{','.join(ts)}]" for name, ts in by_net.items())
        rows.append((f"{sel['budget']:g}", _fmt(sel["cost"], 2), _fmt(sel["val_total"]),
                     _fmt(sel.get("test_total")), _fmt(sel.get("test_total_min")), detail))
    header = f"tasks: {', '.join(result['tasks'])}"
    lines = [header, *_columns(rows)]
    for sel in result["selections"]:
        if sel.get("stopped"):
            within = ("an unknown gap" if sel.get("gap") is None
                      else f"{100 * sel['gap']:.3g}%")
            lines.append(f"budget {sel['budget']:g}: not proved optimal ({sel['stopped']}); "
                         f"within {within} of the optimum")
    if result.get("interrupted"):
        lines.append("interrupted (Ctrl-C): the selections found so far")
    if result.get("baselines"):
        methods = [("selected", result["selections"])] + list(result["baselines"].items())
        budgets = [f"{s['budget']:g}" for s in result["selections"]]
        for key, caption in (
                ("test_total_min", "the paper's Table 4 score: each task's lowest test loss "
                                   "among the chosen networks"),
                ("test_total", "each task served by the chosen network with the lowest "
                               "validation loss")):
            lines += ["", f"{key} ({caption}; random: mean of "
                          f"{_trials(result['baselines'])} budget-filling draws)"]
            table = [("method", *budgets)]
            table += [(name, *(_fmt(e.get(key)) for e in entries)) for name, entries in methods]
            lines += _columns(table, left=1)
    return "\n".join(lines)


def _trials(baselines: Mapping) -> str:
    counts = {e.get("trials") for e in baselines.get("random", []) if e.get("trials")}
    return "/".join(str(c) for c in sorted(counts)) or "0"


def _columns(rows: list[tuple[str, ...]], left: int = 0) -> list[str]:
    """Right-aligned columns after the first ``left`` (left-aligned); a free last column when
    ``left`` is 0 (the networks), with a rule under the header."""
    free = left == 0
    fixed = len(rows[0]) - 1 if free else len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(fixed)]
    out = []
    for k, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) if i < left else row[i].rjust(widths[i])
                 for i in range(fixed)]
        out.append("  ".join([*cells, row[-1]] if free else cells).rstrip())
        if k == 0:
            rule = ["-" * w for w in widths] + (["-" * len(row[-1])] if free else [])
            out.append("  ".join(rule))
    return out
