"""What the report shows, as data: methods, their totals per budget, and the report's tables.

Reads a ``results.json`` object (DESIGN.md) and builds :class:`~taskgrouper.report.blocks.Table`
blocks; no plotting, no file access. Every optional section may be missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskgrouper.grouping.intervals import seeds_to_resolve
from taskgrouper.report.blocks import Table

__all__ = [
    "BASELINE_LABELS",
    "STRATEGY_LABELS",
    "Grouping",
    "Method",
    "affinity_triangle",
    "budgets_of",
    "candidates_table",
    "collect_methods",
    "compute_table",
    "correlation_text",
    "comparison_verdict",
    "fmt_loss",
    "fmt_pct",
    "groupings",
    "groupings_table",
    "learning_table",
    "noise_table",
    "order_table",
    "own_losses_table",
    "pair_matrix",
    "relationship_table",
    "table4",
    "tasks_of",
    "width_table",
]

#: Display names of strategies, in report order; others follow in results order.
STRATEGY_LABELS: dict[str, str] = {"exhaustive": "Optimal (exhaustive)", "esa": "ESA",
                                   "hoa": "HOA"}
#: Display names of baselines, in report order; others follow in results order.
BASELINE_LABELS: dict[str, str] = {"all_in_one": "All-in-one", "independent": "Independent",
                                   "random": "Random", "pessimal": "Pessimal",
                                   "mgda_ub": "All-in-one (MGDA-UB)"}
#: The strategy that regret and compute fractions are measured against.
REFERENCE = "exhaustive"
DASH = "–"


def _num(value: Any) -> float | None:
    """A finite float, or None (missing, null, NaN, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fmt_loss(value: Any, decimals: int = 4) -> str:
    """A loss with ``decimals`` decimals; ``–`` when missing."""
    v = _num(value)
    return DASH if v is None else f"{v:.{decimals}f}"


def fmt_pct(value: Any, sign: bool = False) -> str:
    """A fraction as a percentage with 2 decimals (``0.0417`` -> ``4.17%``)."""
    v = _num(value)
    if v is None:
        return DASH
    return f"{100 * v:+.2f}%" if sign else f"{100 * v:.2f}%"


def _fmt_int(value: Any) -> str:
    v = _num(value)
    return DASH if v is None else f"{round(v):,}"


def _fmt_float(value: Any, decimals: int = 1) -> str:
    v = _num(value)
    return DASH if v is None else f"{v:.{decimals}f}"


def comparison_verdict(row: Mapping[str, Any]) -> str:
    """``better``/``worse`` for a paired comparison whose interval excludes zero; otherwise
    ``equal`` when the totals agree up to rounding (the same networks on both sides);
    otherwise ``within noise``, with the seeds that would resolve a difference of this mean and
    spread (see :func:`taskgrouper.grouping.intervals.seeds_to_resolve`)."""
    mean = _num(row.get("mean"))
    if row.get("significant") and mean is not None:
        return "better" if mean < 0 else "worse"
    relative = _num(row.get("relative"))
    if relative is not None and abs(relative) < 1e-9:  # the same totals, up to rounding
        return "equal"
    sd = _num(row.get("sd"))
    need = seeds_to_resolve(mean, sd) if mean is not None and sd is not None else None
    return f"within noise ({need} seeds at this spread)" if need else "within noise"


def fmt_budget(budget: float) -> str:
    """``1.0`` -> ``1``, ``1.5`` -> ``1.5``."""
    return f"{budget:g}"


def _bkey(budget: Any) -> float:
    return round(float(budget), 6)


def tasks_of(results: Mapping[str, Any]) -> list[str]:
    """The task order: ``results["tasks"]``, else the candidates' tasks in order of appearance."""
    if results.get("tasks"):
        return [str(t) for t in results["tasks"]]
    seen: dict[str, None] = {}
    for c in results.get("candidates") or []:
        for t in c.get("tasks", []):
            seen.setdefault(str(t), None)
    return list(seen)


@dataclass(frozen=True)
class Method:
    """One row of Table 4: a strategy's selections or a baseline's solutions.

    Attributes:
        key: The name in results.json (``"exhaustive"``, ``"random"``).
        label: The display name.
        kind: ``"strategy"`` or ``"baseline"``.
        entries: Budget (rounded to 1e-6) -> its selection entry.
        compute: The strategy's ``compute`` object (empty for baselines).
        stats: The strategy's ``stats`` object (empty for baselines).
    """

    key: str
    label: str
    kind: str
    entries: dict[float, Mapping[str, Any]]
    compute: Mapping[str, Any]
    stats: Mapping[str, Any]

    def total(self, budget: float, score: str = "test_total") -> float | None:
        """The total test loss at ``budget`` by ``score`` (``test_total``: each task served
        by its assigned network; ``test_total_min``: the paper's lowest test loss among the
        chosen); None when infeasible or missing."""
        entry = self.entries.get(_bkey(budget))
        if entry is None or entry.get("error"):
            return None
        return _num(entry.get(score))

    def std(self, budget: float) -> float | None:
        """The standard deviation of the total (the random baseline), when given."""
        entry = self.entries.get(_bkey(budget))
        return None if entry is None else _num(entry.get("std"))

    def half_width(self, budget: float) -> float | None:
        """Half the 95% interval of the mean total over seeds, when several seeds ran."""
        entry = self.entries.get(_bkey(budget))
        ci = None if entry is None else entry.get("test_total_ci95")
        if not ci or _num(ci[0]) is None or _num(ci[1]) is None:
            return None
        return (ci[1] - ci[0]) / 2


def _ordered(keys: Sequence[str], preferred: Sequence[str]) -> list[str]:
    return [k for k in preferred if k in keys] + [k for k in keys if k not in preferred]


def _entries(items: Any) -> dict[float, Mapping[str, Any]]:
    out: dict[float, Mapping[str, Any]] = {}
    for entry in items or []:
        if _num(entry.get("budget")) is not None:
            out.setdefault(_bkey(entry["budget"]), entry)
    return out


def _random_label(entries: Sequence[Mapping[str, Any]], results: Mapping[str, Any]) -> str:
    trials = next((e["trials"] for e in entries if _num(e.get("trials")) is not None), None)
    if trials is None:
        trials = (results.get("search") or {}).get("random_trials")
    return f"Random (mean of {int(trials)})" if _num(trials) is not None else "Random (mean)"


def collect_methods(results: Mapping[str, Any]) -> list[Method]:
    """The strategies (exhaustive, ESA, HOA, others) then the baselines, in report order.

    Without a ``strategies`` object, the top-level ``strategy``, ``selections`` and
    ``compute`` make the one strategy.
    """
    strategies = dict(results.get("strategies") or {})
    if not strategies and results.get("selections") is not None:
        strategies = {str(results.get("strategy") or "strategy"): {
            "compute": results.get("compute") or {}, "selections": results["selections"],
            "stats": {}}}
    methods = []
    for key in _ordered(list(strategies), list(STRATEGY_LABELS)):
        s = strategies[key] or {}
        methods.append(Method(key, STRATEGY_LABELS.get(key, key), "strategy",
                              _entries(s.get("selections")), s.get("compute") or {},
                              s.get("stats") or {}))
    baselines = dict(results.get("baselines") or {})
    for key in _ordered(list(baselines), list(BASELINE_LABELS)):
        items = baselines[key] or []
        label = (_random_label(items, results) if key == "random"
                 else BASELINE_LABELS.get(key, key.replace("_", " ").capitalize()))
        methods.append(Method(key, label, "baseline", _entries(items), {}, {}))
    return methods


def budgets_of(results: Mapping[str, Any], methods: Sequence[Method]) -> list[float]:
    """``results["budgets"]``, else every budget that some method has, ascending."""
    if results.get("budgets"):
        return [float(b) for b in results["budgets"]]
    return sorted({b for m in methods for b in m.entries})


def _is_best(value: float | None, best: float | None) -> bool:
    return value is not None and best is not None and math.isclose(value, best, rel_tol=1e-12,
                                                                    abs_tol=1e-15)


#: What each test score of Table 4 means, for its caption.
SCORES = {
    "test_total": "each task served by the chosen network with the lowest validation loss "
                  "(what a deployed system gets; `test_total`)",
    "test_total_min": "each task's lowest test loss among the chosen networks (the paper's "
                      "Table 4 protocol; `test_total_min`)",
}


def table4(methods: Sequence[Method], budgets: Sequence[float], n_tasks: int,
           score: str = "test_total") -> Table:
    """Table 4: total test loss per method (rows) and budget (columns) by ``score`` (a key
    of :data:`SCORES`); best in bold. Intervals and spreads are shown with ``test_total``."""
    rows, bold = [], set()
    best = {}
    for j, b in enumerate(budgets):
        values = [v for m in methods if (v := m.total(b, score)) is not None]
        best[j] = min(values) if values else None
    for i, m in enumerate(methods):
        cells = [m.label]
        for j, b in enumerate(budgets):
            v = m.total(b, score)
            text = fmt_loss(v)
            if score == "test_total" and v is not None and m.half_width(b) is not None:
                text += f" ± {fmt_loss(m.half_width(b))}"
            elif score == "test_total" and v is not None and m.std(b) is not None:
                text += f" ± {fmt_loss(m.std(b))}"
            cells.append(text)
            if _is_best(v, best[j]):
                bold.add((i, j + 1))
        rows.append(tuple(cells))
    caption = (f"Total test loss on all {n_tasks} tasks for each method under each "
               f"inference-time budget (SNT), {SCORES[score]}. Lower is better; the best per "
               f"budget is in bold; {DASH}: infeasible or not run. With several seeds: the "
               "mean over seeds"
               + (" ± the half-width of its 95% interval (the random row: ± the standard "
                  "deviation of its draws)." if score == "test_total" else "."))
    return Table(("Method", *(fmt_budget(b) for b in budgets)), tuple(rows), frozenset(bold),
                 caption)


_STAT_LABELS = {"pearson_r": "Pearson r (early vs final)", "fraction": "data fraction",
                "epochs": "epochs", "max_ratio_error": "max-ratio error", "bias": "bias",
                "pairs": "pairs", "count": "networks x tasks",
                "pearson_r_per_task": "per task"}


def _fmt_stat(key: str, value: Any) -> str:
    label = _STAT_LABELS.get(key, key.replace("_", " "))
    if key == "max_ratio_error":
        text = fmt_pct(value)
    elif key == "bias":
        text = fmt_pct(value, sign=True)
    elif isinstance(value, bool) or isinstance(value, str):
        text = str(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = f"{value:.3g}" if math.isfinite(value) else DASH
    elif value is None:
        text = DASH
    elif isinstance(value, Mapping):  # e.g. per-task statistics: "s 0.41, d 0.73"
        text = ", ".join(f"{k} {_fmt_stat('', v).strip()}" for k, v in value.items())
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return f"{label} {text}"


def _fraction(value: Any, reference: Any) -> str:
    v, r = _num(value), _num(reference)
    return DASH if v is None or r is None or r == 0 else f"{v / r:.3f}"


def compute_table(methods: Sequence[Method], budgets: Sequence[float]) -> Table:
    """Compute beside quality, one row per method (strategies first, then baselines).

    Columns: training samples and wall seconds, and their fraction of the exhaustive
    search's; the mean total test loss over the feasible budgets; the mean regret against
    the exhaustive search (``total / exhaustive total - 1``) over budgets where both exist;
    the strategy's own statistics (ESA's Pearson r, HOA's max-ratio error and bias).
    """
    ref = next((m for m in methods if m.key == REFERENCE and m.kind == "strategy"), None)
    header = ("Method", "Training samples", "Wall (s)", "Samples / exhaustive",
              "Wall / exhaustive", "Mean test total", "Feasible budgets",
              "Mean regret vs exhaustive", "Statistics")
    rows = []
    for m in methods:
        totals = [v for b in budgets if (v := m.total(b)) is not None]
        mean = math.fsum(totals) / len(totals) if totals else None
        if ref is None:
            regret = DASH
        elif m is ref:
            regret = "(reference)"
        else:
            pairs = [(v, r) for b in budgets
                     if (v := m.total(b)) is not None and (r := ref.total(b)) is not None
                     and r != 0]
            regret = (fmt_pct(math.fsum(v / r - 1.0 for v, r in pairs) / len(pairs),
                              sign=True) if pairs else DASH)
        ref_compute = ref.compute if ref is not None else {}
        strategy = m.kind == "strategy"
        rows.append((
            m.label,
            _fmt_int(m.compute.get("train_samples")) if strategy else DASH,
            _fmt_float(m.compute.get("wall_s")) if strategy else DASH,
            _fraction(m.compute.get("train_samples"), ref_compute.get("train_samples"))
            if strategy else DASH,
            _fraction(m.compute.get("wall_s"), ref_compute.get("wall_s")) if strategy else DASH,
            fmt_loss(mean),
            f"{len(totals)}/{len(budgets)}",
            regret,
            "; ".join(_fmt_stat(k, v) for k, v in m.stats.items()) or DASH,
        ))
    caption = ("Compute of each strategy (all the training it needed, as if run alone) beside "
               "the quality of its choices. Mean test total: over the feasible budgets. "
               "Regret: total test loss / exhaustive total - 1, averaged over the budgets "
               "where both exist. Baselines have no search compute.")
    return Table(header, tuple(rows), frozenset(), caption)


@dataclass(frozen=True)
class Grouping:
    """A method's choice at one budget: which network serves each task."""

    budget: float
    networks: tuple[str, ...]
    assignment: dict[str, str]
    cost: float | None
    val_total: float | None
    test_total: float | None
    error: str | None


def _derived_assignment(networks: Sequence[str], candidates: Mapping[str, Mapping[str, Any]],
                        tasks: Sequence[str]) -> dict[str, str]:
    """Per task, the chosen network with the lowest validation loss (the paper's protocol)."""
    out = {}
    for t in tasks:
        options = []
        for n in networks:
            c = candidates.get(n) or {}
            loss = _num((c.get("val") or {}).get(t))
            if loss is None:
                loss = _num((c.get("test") or {}).get(t))
            if t in (c.get("tasks") or []) and loss is not None:
                options.append((loss, n))
        if options:
            out[t] = min(options)[1]
    return out


def groupings(method: Method, budgets: Sequence[float], tasks: Sequence[str],
              candidates: Mapping[str, Mapping[str, Any]]) -> list[Grouping] | None:
    """The groupings of a method at each budget; None when it has no groupings to show.

    Strategies give their assignment; for a baseline it is derived from the candidates
    (lowest validation loss among the chosen networks). The random baseline is a mean over
    trials, so it has none.
    """
    if method.key == "random" and method.kind == "baseline":
        return None
    if not any(e.get("networks") for e in method.entries.values()):
        return None
    out = []
    for b in budgets:
        e = method.entries.get(_bkey(b))
        if e is None:
            out.append(Grouping(b, (), {}, None, None, None, "not run at this budget"))
            continue
        networks = tuple(str(n) for n in e.get("networks") or [])
        error = e.get("error") or (None if networks else "no networks chosen")
        assignment = {str(t): str(n) for t, n in (e.get("assignment") or {}).items()}
        if not assignment and networks:
            assignment = _derived_assignment(networks, candidates, tasks)
        cost = _num(e.get("cost"))
        if cost is None and networks and all(n in candidates for n in networks):
            costs = [_num(candidates[n].get("cost")) for n in networks]
            cost = None if None in costs else math.fsum(costs)  # type: ignore[arg-type]
        out.append(Grouping(b, networks, assignment, cost, _num(e.get("val_total")),
                            method.total(b), str(error) if error else None))
    return out


def groupings_table(method: Method, rows: Sequence[Grouping], tasks: Sequence[str]) -> Table:
    """Rows = budgets; columns = tasks, each cell the network serving that task."""
    header = ("Budget", "Cost", *tasks, "Networks", "Val total", "Test total")
    out = []
    for g in rows:
        if g.error:
            out.append((fmt_budget(g.budget), DASH, *([DASH] * len(tasks)),
                        f"infeasible: {g.error}", DASH, DASH))
            continue
        used = set(g.assignment.values())
        nets = ", ".join(n if n in used else f"{n} (unused)" for n in g.networks)
        out.append((fmt_budget(g.budget), _fmt_float(g.cost, 3),
                    *(g.assignment.get(t, DASH) for t in tasks), nets,
                    fmt_loss(g.val_total), fmt_loss(g.test_total)))
    return Table(header, tuple(out), frozenset(),
                 f"{method.label}: the network that serves each task at each budget.")


def candidates_table(candidates: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> Table:
    """One row per trained candidate: tasks, width, cost, parameters, val total, test losses."""
    rows = []
    for c in candidates:
        val = c.get("val") or {}
        test = c.get("test") or {}
        own = [t for t in c.get("tasks") or [] if _num(val.get(t)) is not None]
        val_total = math.fsum(float(val[t]) for t in own) if own else None
        rows.append((str(c.get("id", "")), ", ".join(str(t) for t in c.get("tasks") or []),
                     _fmt_float(c.get("width"), 3), _fmt_float(c.get("cost"), 3),
                     _fmt_int(c.get("params")), fmt_loss(val_total),
                     *(fmt_loss(test.get(t)) for t in tasks)))
    header = ("Network", "Tasks", "Width", "Cost (SNT)", "Params", "Val total",
              *(f"Test {t}" for t in tasks))
    return Table(header, tuple(rows), frozenset(),
                 "Every trained candidate network. Val total: the sum of its validation losses "
                 "over its own tasks; test losses per task (– where it does not predict it).")


def pair_matrix(pair: Mapping[str, Mapping[str, Any]], tasks: Sequence[str]
                ) -> list[list[float | None]]:
    """Table 1 in the paper's layout: ``m[i][j]`` = performance on ``tasks[j]`` when trained
    with ``tasks[i]`` (``pair[tasks[j]][tasks[i]]``)."""
    return [[_num((pair.get(t) or {}).get(u)) for t in tasks] for u in tasks]


def _mean(values: Sequence[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return math.fsum(vs) / len(vs) if vs else None


def relationship_table(matrix: Sequence[Sequence[float | None]], tasks: Sequence[str],
                       corner: str, caption: str, averages: bool) -> Table:
    """A task x task table of percentages; with ``averages``, an Average row and column."""
    header = (corner, *tasks, *(["Average"] if averages else []))
    rows = []
    for u, row in zip(tasks, matrix, strict=True):
        cells = [fmt_pct(v) for v in row]
        if averages:
            cells.append(fmt_pct(_mean(row)))
        rows.append((u, *cells))
    if averages:
        cols = [_mean([row[j] for row in matrix]) for j in range(len(tasks))]
        rows.append(("Average", *(fmt_pct(v) for v in cols),
                     fmt_pct(_mean([v for row in matrix for v in row]))))
    return Table(header, tuple(rows), frozenset(), caption)


def affinity_triangle(affinity: Mapping[str, Mapping[str, Any]], tasks: Sequence[str],
                      caption: str) -> Table:
    """A symmetric task x task table in the paper's Table 3 layout: rows ``tasks[:-1]``,
    columns ``tasks[1:]``, the upper triangle filled (``affinity[t][u]``, percent)."""
    def cell(value: Any) -> str:
        text = fmt_pct(value)
        return "0.00%" if text == "-0.00%" else text  # a mean of opposite gains

    rows = []
    for a, t in enumerate(tasks[:-1]):
        cells = [cell((affinity.get(t) or {}).get(u)) if b > a else ""
                 for b, u in enumerate(tasks[1:], start=1)]
        rows.append((t, *cells))
    return Table(("Task", *tasks[1:]), tuple(rows), frozenset(), caption)


def own_losses_table(own: Mapping[str, Mapping[str, Any]], tasks: Sequence[str]) -> Table:
    """Each task's validation and test loss in its own full-width single-task network (the
    reference of the transfer table)."""
    rows = tuple((t, fmt_loss((own.get(t) or {}).get("val")),
                  fmt_loss((own.get(t) or {}).get("test"))) for t in tasks)
    return Table(("Task", "Val loss", "Test loss"), rows, frozenset(),
                 "Each task in its own full-width single-task network: the reference "
                 "L_j,own of the transfer gains.")


def correlation_text(correlation: Mapping[str, Any] | None) -> str:
    """Figure 3's statistics in words: Pearson's r and Spearman's rho with their p-values
    over the unordered pairs (and which pairs were left out)."""
    if not correlation:
        return ("No multi-task affinity (Table 2) to correlate with: run a search of these "
                "tasks, or give its folder with --search.")
    n = correlation.get("n") or 0
    r, rho = _num(correlation.get("pearson_r")), _num(correlation.get("spearman_rho"))
    if r is None or rho is None:
        return (f"Transfer against multi-task affinity: {n} task pair{'' if n == 1 else 's'}, "
                f"too few (3 needed) or constant for a correlation.")
    text = (f"Transfer against multi-task affinity over {n} task pairs: Pearson's r = "
            f"{r:.2f} (two-sided p = {_num(correlation.get('pearson_p')) or 0.0:.2g}), "
            f"Spearman's rho = {rho:.2f} (p = {_num(correlation.get('spearman_p')) or 0.0:.2g})")
    excluded = correlation.get("excluded") or []
    if excluded:
        text += "; left out: " + ", ".join("-".join(map(str, p)) for p in excluded)
    return text + "."


def order_table(order: Mapping[Any, Mapping[str, Any]]) -> Table:
    """Figure 2 as a table: tasks per network, mean relative performance, networks counted."""
    rows = [(f"{k} tasks", fmt_pct(v.get("mean"), sign=True), _fmt_int(v.get("count")))
            for k, v in sorted(order.items(), key=lambda kv: int(kv[0]))]
    return Table(("Network", "Relative performance", "Networks"), tuple(rows), frozenset(),
                 "Full-width k-task networks against k single-task networks of width 1/k "
                 "(the same total cost), averaged over networks and their tasks; positive: "
                 "the multi-task network is better.")


def estimator_table(rows: Mapping[str, Mapping[str, Any]], budgets: Sequence[float]) -> Table:
    """One row per strategy: compute fractions, rank correlations and regret per budget."""
    header = ("strategy", "runs", "compute (wall)", "compute (samples)", "Spearman",
              "Spearman per task", "mean regret", "max regret",
              *(fmt_budget(b) for b in budgets))
    out = []
    for name, r in rows.items():
        regret = list(r.get("regret") or [])
        out.append((name, _fmt_int(r.get("runs")), fmt_pct(r.get("compute_fraction")),
                    fmt_pct(r.get("samples_fraction")), _fmt_float(r.get("spearman"), 3),
                    _fmt_float(r.get("spearman_per_task"), 3),
                    fmt_pct(r.get("mean_regret"), sign=True),
                    fmt_pct(r.get("max_regret"), sign=True),
                    *(fmt_pct(v, sign=True) for v in regret)))
    return Table(header, tuple(out), caption=(
        "Compute: what a strategy trained to estimate, as a fraction of the exhaustive "
        "search's (the chosen networks' final training, the same for all, left out). "
        "Spearman: predicted against fully trained validation losses over every (network, "
        "task) of multi-task networks. Regret per budget: test total over the exhaustive "
        "choice's, minus 1."))


def planted_table(planted: Mapping[str, Any], budgets: Sequence[float]) -> Table:
    """Adjusted Rand index of each strategy's chosen groups against the planted ones."""
    header = ("strategy", *(fmt_budget(b) for b in budgets))
    out = []
    for name, entries in (planted.get("agreement") or {}).items():
        by_budget = {_bkey(e.get("budget")): e for e in entries}
        out.append((name, *(_fmt_float((by_budget.get(_bkey(b)) or {}).get("ari"), 3)
                            for b in budgets)))
    groups = " | ".join(" ".join(g) for g in planted.get("groups") or [])
    return Table(header, tuple(out), caption=(
        f"Adjusted Rand index (1: the planted groups exactly) of task -> serving network at "
        f"each budget. Planted groups: {groups}."))


def _fraction_text(value: float) -> str:
    """1/5, 1/3, 1/2, 1 for the widths of the candidate set; other values as numbers."""
    from fractions import Fraction

    f = Fraction(value).limit_denominator(12)
    return str(f) if abs(float(f) - value) < 1e-6 else fmt_budget(value)


def width_table(candidates: Sequence[Mapping[str, Any]], seeded: Mapping[str, Mapping[str, Any]],
                tasks: Sequence[str]) -> Table | None:
    """Single-task networks' test loss against width: does a larger network predict better?

    A cell is the mean over seeds ± the 95% half-width where ``seeded`` (``results
    ["single_task_seeds"]``) has the network, else its one run. The last column: the smallest
    width's loss over the full width's, minus 1 (positive: the full width is better). None
    when no task has networks of two widths."""
    by_task: dict[str, dict[float, tuple[float, float | None]]] = {}
    for c in candidates:
        names = c.get("tasks") or []
        if len(names) != 1 or names[0] not in tasks:
            continue
        t, w = names[0], _num(c.get("width"))
        loss = _num((c.get("test") or {}).get(t))
        if w is None or loss is None:
            continue
        seeds = seeded.get(str(c.get("id"))) or {}
        if seeds.get("ci95"):
            low, high = seeds["ci95"]
            by_task.setdefault(t, {})[w] = (float(seeds["mean"]), (high - low) / 2)
        else:
            by_task.setdefault(t, {})[w] = (loss, None)
    widths = sorted({w for v in by_task.values() for w in v})
    if len(widths) < 2:
        return None
    rows = []
    for t in tasks:
        cells = by_task.get(t, {})
        row = [t]
        for w in widths:
            if w not in cells:
                row.append(DASH)
                continue
            mean, half = cells[w]
            row.append(fmt_loss(mean) + (f" ± {fmt_loss(half)}" if half is not None else ""))
        ws = sorted(cells)
        rel = (cells[ws[0]][0] / cells[ws[-1]][0] - 1) if len(ws) > 1 and cells[ws[-1]][0] \
            else None
        row.append(fmt_pct(rel, sign=True) if rel is not None else DASH)
        rows.append(tuple(row))
    header = ("Task", *(f"width {_fraction_text(w)}" for w in widths), "smallest vs full")
    return Table(header, tuple(rows), frozenset(),
                 "Test loss of each task's single-task networks by width (fraction of the SNT "
                 "network's cost); mean ± 95% half-width over seeds where they ran with every "
                 "seed. Last column: the smallest width's loss over the full width's, minus 1 "
                 "(positive: the larger network predicts better).")


def noise_table(seeded: Mapping[str, Mapping[str, Any]], tasks: Sequence[str],
                width: float = 0.5) -> Table | None:
    """Seed-to-seed noise of the single-task networks of ``width`` (Table 1's references):
    the standard deviation of the test loss over seeds, relative to its mean. None without
    seeds."""
    rows = []
    for t in tasks:
        entry = next((v for v in seeded.values() if v.get("task") == t
                      and _num(v.get("width")) is not None
                      and abs(float(v["width"]) - width) < 1e-9), None)
        if entry is None:
            continue
        rows.append((t, str(len(entry.get("test") or [])), fmt_loss(entry.get("mean")),
                     fmt_loss(entry.get("sd")), fmt_pct(entry.get("relative_sd"))))
    if not rows:
        return None
    return Table(("Task", "Seeds", "Mean test loss", "Std over seeds", "Relative std"),
                 tuple(rows), frozenset(),
                 f"Seed-to-seed noise of the width-{fmt_budget(width)} single-task networks "
                 "(Table 1's references): a pair effect within about twice the relative std "
                 "of both tasks is not distinguishable from a different seed.")


def learning_table(test: Mapping[str, Mapping[str, Any]],
                   constant: Mapping[str, Mapping[str, Any]], tasks: Sequence[str]) -> Table:
    """The all-task network against the constant predictor (the training set's majority class
    or mean), per task: test loss, and mIoU where the task has one."""
    rows = []
    for t in tasks:
        mine, base = test.get(t) or {}, constant.get(t) or {}
        miou, base_miou = _num(mine.get("miou")), _num(base.get("miou"))
        ratio = (f"{miou / base_miou:.2f}x" if miou is not None and base_miou else DASH)
        rows.append((t, fmt_loss(mine.get("loss")), fmt_loss(base.get("loss")),
                     fmt_loss(miou) if miou is not None else DASH,
                     fmt_loss(base_miou) if base_miou is not None else DASH, ratio))
    return Table(("Task", "Test loss", "Constant predictor's", "mIoU", "Majority class's",
                  "mIoU ratio"), tuple(rows), frozenset(),
                 "The all-task network against the constant predictor (the majority class for "
                 "segmentation, the training mean for regression): does every task learn?")
