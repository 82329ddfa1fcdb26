"""Render a bench folder's ``bench.json`` into ``report.md`` and a self-contained ``report.html``.

Vandenhende et al. (2021), Sec. 4: Table V (one row per model: per-task test metrics with the
better direction, FLOPs, parameters, Delta_MTL in %, sorted by Delta_MTL) and a performance
profile in the style of Dolan and More (2002), the survey's tool (Fig. 10) for comparing
methods across tasks and hyperparameters: for each model, the fraction of tasks whose
headline test metric is within a factor tau of the best model's, as tau grows. A curve that
rises to 1 sooner is better; its value at tau = 1 is the fraction of tasks the model wins.

Figures are PNGs in ``DIR/figures/``, embedded as ``data:`` URIs in the HTML (the blocks and
renderers of :mod:`taskgrouper.report.blocks`). No torch; matplotlib only while drawing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from taskgrouper.errors import TaskgrouperError
from taskgrouper.report.blocks import (
    Block,
    Bullets,
    Figure,
    Heading,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)

__all__ = ["BENCH_FILE", "bench_table", "load_and_write_bench", "performance_profile",
           "profile_ratios", "write_bench_report"]

BENCH_FILE = "bench.json"
_PROFILE_PNG = "bench_profile.png"
_TRADEOFF_PNG = "bench_tradeoff.png"
_FIGURES_DIR = "figures"
_DASH = "–"
SINGLE_TASK = "Single task"


class BenchFileError(TaskgrouperError):
    """``bench.json`` is missing, unreadable or malformed; the message names the file."""


_HINT = "run 'taskgrouper bench CONFIG.yaml --out DIR' first to write it"


# ------------------------------------------------------------------------ performance profile


def profile_ratios(scores: Mapping[str, Mapping[str, float | None]],
                   lower: Mapping[str, bool]) -> dict[str, dict[str, float]]:
    """Dolan-More performance ratios: each model's value over the best model's, per problem.

    Args:
        scores: Model -> problem (a task's metric) -> value (None or missing: no result).
        lower: Problem -> True when a lower value is better.

    Returns:
        Model -> problem -> ratio >= 1 (1: the best); ``value / best`` when lower is better,
        ``best / value`` when higher is; ``inf`` for a missing value or one the ratio cannot
        reach (a non-positive value when the best is positive).
    """
    out: dict[str, dict[str, float]] = {m: {} for m in scores}
    for p, low in lower.items():
        values = {m: _finite((scores[m] or {}).get(p)) for m in scores}
        finite = [v for v in values.values() if v is not None]
        best = (min(finite) if low else max(finite)) if finite else None
        for m, v in values.items():
            if v is None or best is None:
                r = math.inf
            elif v == best:
                r = 1.0
            elif low:
                r = v / best if best > 0 else math.inf
            else:
                r = best / v if v > 0 else math.inf
            out[m][p] = r
    return out


def performance_profile(ratios: Mapping[str, Mapping[str, float]],
                        taus: Sequence[float]) -> dict[str, list[float]]:
    """rho_m(tau): the fraction of problems whose ratio is at most tau, for each tau.

    Args:
        ratios: From :func:`profile_ratios`.
        taus: The factors (>= 1).

    Returns:
        Model -> one fraction per tau.
    """
    out = {}
    for m, per_problem in ratios.items():
        rs = list(per_problem.values())
        out[m] = [sum(r <= tau for r in rs) / len(rs) if rs else 0.0 for tau in taus]
    return out


def _taus(ratios: Mapping[str, Mapping[str, float]], n: int = 200) -> list[float]:
    """``n`` factors from 1 to a little past the largest finite ratio, log-spaced."""
    finite = [r for per in ratios.values() for r in per.values() if math.isfinite(r)]
    top = max([*finite, 1.0]) * 1.05
    top = max(top, 1.1)
    return [math.exp(math.log(top) * i / (n - 1)) for i in range(n)]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# ------------------------------------------------------------------------------ the models


def _label(row: Mapping[str, Any]) -> str:
    return f"{row['architecture']} + {row['balancer']}"


def _models(bench: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The single-task row and every model row, in one shape, sorted by Delta_MTL (best
    first; rows without a Delta_MTL last, in bench order)."""
    tasks = list(bench["tasks"])
    single = bench.get("single_task") or {}
    baselines = bench.get("baselines") or {}
    complete = all(t in baselines for t in tasks)

    def total(key):
        values = [(single.get(t) or {}).get(key) for t in tasks]
        return sum(values) if values and None not in values else None

    out = [{"label": SINGLE_TASK, "architecture": "hard_sharing", "balancer": "uniform",
            "metrics": dict(baselines), "flops": total("flops"), "params": total("params"),
            "delta": 0.0 if complete else None, "val_delta": 0.0 if complete else None,
            "error": None if complete else "some single-task baselines have no result",
            "grid": None, "interval": None}]
    for r in bench.get("rows") or []:
        out.append({"label": _label(r), "architecture": r["architecture"],
                    "balancer": r["balancer"], "metrics": r.get("metrics") or {},
                    "flops": r.get("flops"), "params": r.get("params"),
                    "delta": _finite(r.get("delta_mtl")),
                    "val_delta": _finite(r.get("val_delta_mtl")), "error": r.get("error"),
                    "grid": r.get("grid"), "interval": _interval(r)})
    order = sorted(range(len(out)), key=lambda i: (out[i]["delta"] is None,
                                                   -(out[i]["delta"] or 0.0), i))
    return [out[i] for i in order]


def _interval(row: Mapping[str, Any]) -> dict[str, float] | None:
    """The row's 95% interval of Delta_MTL over seeds, when there are two seeds or more."""
    iv = row.get("delta_interval")
    if not isinstance(iv, Mapping) or _finite(iv.get("half_width")) is None:
        return None
    return {k: float(iv[k]) for k in ("low", "high", "half_width")} | {"n": int(iv["n"])}


def _delta_cell(m: Mapping[str, Any]) -> str:
    if m["delta"] is None:
        return _DASH
    iv = m.get("interval")
    return f"{m['delta']:+.2f}" + (f" ± {iv['half_width']:.2f}" if iv else "")


def _unit(values: Sequence[float | None], units: Sequence[tuple[float, str]]
          ) -> tuple[float, str]:
    """The largest unit that the biggest value reaches (the smallest unit otherwise)."""
    top = max([v for v in values if v is not None] or [0.0])
    for scale, name in units:
        if top >= scale:
            return scale, name
    return units[-1]


def _fmt(value: Any, fmt: str = ".4g") -> str:
    v = _finite(value)
    return _DASH if v is None else format(v, fmt)


def _arrow(lower: bool | None) -> str:
    return "↓" if lower else "↑"


def bench_table(bench: Mapping[str, Any]) -> Table:
    """Table V: per model, FLOPs, parameters, each task's test metrics and Delta_MTL (%).

    Rows are sorted by Delta_MTL (best first); the best value of every metric column and of
    Delta_MTL is bold.
    """
    tasks = list(bench["tasks"])
    task_metrics = bench["task_metrics"]
    lower = bench.get("lower_is_better") or {}
    models = _models(bench)
    f_scale, f_unit = _unit([m["flops"] for m in models], [(1e9, "G"), (1e6, "M"), (1.0, "")])
    p_scale, p_unit = _unit([m["params"] for m in models], [(1e6, "M"), (1e3, "k"), (1.0, "")])
    columns = [(t, name) for t in tasks for name in task_metrics[t]]
    header = ("Model", "Balancer", f"FLOPs ({f_unit})".replace(" ()", ""),
              f"Params ({p_unit})".replace(" ()", ""),
              *(f"{t} {name} {_arrow(lower.get(name))}" for t, name in columns),
              "ΔMTL (%) ↑")
    rows, bold = [], set()
    for m in models:
        single = m["label"] == SINGLE_TASK
        cells = [m["label"] if single else m["architecture"], "" if single else m["balancer"],
                 _fmt(None if m["flops"] is None else m["flops"] / f_scale, ".3g"),
                 _fmt(None if m["params"] is None else m["params"] / p_scale, ".3g")]
        cells += [_fmt((m["metrics"].get(t) or {}).get(name)) for t, name in columns]
        cells.append(_delta_cell(m))
        rows.append(tuple(cells))
    for j, (t, name) in enumerate(columns):
        values = [_finite((m["metrics"].get(t) or {}).get(name)) for m in models]
        finite = [v for v in values if v is not None]
        if finite:
            best = min(finite) if lower.get(name) else max(finite)
            bold |= {(i, 4 + j) for i, v in enumerate(values) if v == best}
    deltas = [m["delta"] for m in models]
    if any(d is not None for d in deltas):
        best = max(d for d in deltas if d is not None)
        bold |= {(i, len(header) - 1) for i, d in enumerate(deltas) if d == best}
    headline = (bench.get("delta_metrics") or {}).get("mode") == "headline"
    seeds = len(bench.get("seeds") or [0])
    caption = ("Table V layout: test metrics of each model (its best grid point by validation "
               "ΔMTL"
               + (f"; metrics are means over {seeds} seeds and ΔMTL is the mean of the "
                  f"per-seed values, each against the same seed's single-task networks, ± the "
                  f"half-width of its 95% interval" if seeds > 1 else "")
               + "), FLOPs of one forward pass (two per multiply-add) and parameters; "
               "ΔMTL = (1/T) Σ_i (-1)^l_i (M_m,i - M_b,i) / M_b,i over "
               + ("the headline metric of each task (its first)" if headline
                  else "every task metric listed")
               + ", against the single-task networks (l_i = 1 where lower is better). "
               "The single-task row sums the costs of its networks. Best per column in bold.")
    return Table(header, tuple(rows), frozenset(bold), caption)


def _profile_scores(bench: Mapping[str, Any], models: Sequence[Mapping[str, Any]]
                    ) -> tuple[dict[str, dict[str, float | None]], dict[str, bool]]:
    """Model label -> task -> headline test metric, and task -> lower is better."""
    tasks = list(bench["tasks"])
    heads = {t: bench["task_metrics"][t][0] for t in tasks}
    lower = bench.get("lower_is_better") or {}
    scores = {m["label"]: {t: (m["metrics"].get(t) or {}).get(heads[t]) for t in tasks}
              for m in models}
    return scores, {t: bool(lower.get(heads[t])) for t in tasks}


def _grid_scores(bench: Mapping[str, Any], models: Sequence[Mapping[str, Any]]
                 ) -> dict[str, tuple[str, dict[str, float | None]]]:
    """Every finished grid point of every model: "label @ point" -> (label, task -> value)."""
    tasks = list(bench["tasks"])
    heads = {t: bench["task_metrics"][t][0] for t in tasks}
    out: dict[str, tuple[str, dict[str, float | None]]] = {}
    for m in models:
        points = (m.get("grid") or {}).get("points") or []
        if m["label"] == SINGLE_TASK:
            out[m["label"]] = (m["label"], {t: (m["metrics"].get(t) or {}).get(heads[t])
                                            for t in tasks})
        for p in points:
            if p.get("status") == "done":
                key = f"{m['label']} @ {p['optimizer']} bs{p['batch_size']} lr{p['lr']:g}"
                out[key] = (m["label"], {t: ((p.get("metrics") or {}).get(t) or {})
                                         .get(heads[t]) for t in tasks})
    return out


def plot_profile(bench: Mapping[str, Any], path: Path) -> Path:
    """The performance profile: chosen models (left) and, with a grid, every grid point
    coloured by its model (right)."""
    from taskgrouper.report.figures import _figure, _save

    models = _models(bench)
    scores, lower = _profile_scores(bench, models)
    grid = _grid_scores(bench, models)
    with_grid = len(bench.get("grid") or []) > 1
    with_seeds = any(m.get("interval") for m in models)
    panels = 1 + with_grid + with_seeds
    fig = _figure(4.6 * panels + 1.4 + 2.6, max(4.4, 0.75 + 0.17 * len(models)))
    all_axes = fig.subplots(1, panels, squeeze=False)[0]
    axes = all_axes[:1 + with_grid]
    colors = {m["label"]: f"C{i % 10}" for i, m in enumerate(models)}
    styles = ["-", "--", "-.", ":"]

    ratios = profile_ratios(scores, lower)
    taus = _taus(ratios)
    profile = performance_profile(ratios, taus)
    ax = axes[0]
    for i, m in enumerate(models):
        ax.step(taus, profile[m["label"]], where="post", color=colors[m["label"]],
                linestyle=styles[(i // 10) % len(styles)], linewidth=1.6, label=m["label"])
    ax.set_title("Performance profile (best grid point per model)", fontsize=10)
    if with_grid:
        g_ratios = profile_ratios({k: v for k, (_, v) in grid.items()}, lower)
        g_taus = _taus(g_ratios)
        g_profile = performance_profile(g_ratios, g_taus)
        for key, (label, _) in grid.items():
            axes[1].step(g_taus, g_profile[key], where="post", color=colors[label],
                         linewidth=0.9, alpha=0.7)
        axes[1].set_title("Every grid point, coloured by model", fontsize=10)
    from matplotlib.ticker import NullFormatter

    for a, top in zip(axes, [taus[-1], *([g_taus[-1]] if with_grid else [])], strict=True):
        a.set_xscale("log")
        ticks = [t for t in (1, 1.1, 1.25, 1.5, 2, 3, 5, 10, 20, 50, 100) if t <= top]
        a.set_xticks(ticks, [f"{t:g}" for t in ticks])
        a.xaxis.set_minor_formatter(NullFormatter())
        a.set_xlabel("τ (factor of the best model's headline metric)")
        a.set_ylabel("Fraction of tasks within τ")
        a.set_ylim(-0.03, 1.03)
        a.grid(True, which="both", alpha=0.3)
    if with_seeds:
        _plot_intervals(all_axes[-1], models, colors)
    all_axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                        handles=axes[0].get_legend_handles_labels()[0], frameon=False)
    return _save(fig, path)


def _plot_intervals(ax, models: Sequence[Mapping[str, Any]], colors: Mapping[str, str]) -> None:
    """ΔMTL of each model with its 95% interval over seeds (best at the top); the
    single-task networks at 0."""
    shown = [m for m in models if m["delta"] is not None]
    for y, m in enumerate(reversed(shown)):
        iv = m.get("interval")
        err = [[m["delta"] - iv["low"]], [iv["high"] - m["delta"]]] if iv else None
        ax.errorbar([m["delta"]], [y], xerr=err, fmt="o", color=colors[m["label"]],
                    capsize=3, markersize=4)
    ax.axvline(0.0, color="0.5", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(shown)), [m["label"] for m in reversed(shown)], fontsize=6)
    ax.set_xlabel("ΔMTL (%), mean and 95% interval over seeds")
    ax.set_title("ΔMTL with its interval", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)


# ------------------------------------------------------------------------------ the report


def plot_tradeoff(bench: Mapping[str, Any], path: Path) -> Path:
    """The survey's Figure 10: every finished grid point of every model in the plane of the
    first two tasks' headline test metrics (one colour per model, its chosen point ringed),
    with the single-task networks' point, so the trade-off between the two tasks shows."""
    from taskgrouper.report.figures import _figure, _save

    tasks = list(bench["tasks"])[:2]
    heads = {t: bench["task_metrics"][t][0] for t in tasks}
    lower = bench.get("lower_is_better") or {}
    models = _models(bench)
    fig = _figure(8.6, 5.2)
    ax = fig.subplots()

    def value(metrics: Mapping[str, Any] | None, t: str) -> float | None:
        return _finite(((metrics or {}).get(t) or {}).get(heads[t]))

    for i, m in enumerate(models):
        color = "black" if m["label"] == SINGLE_TASK else f"C{i % 10}"
        points = [p for p in (m.get("grid") or {}).get("points") or []
                  if p.get("status") == "done"]
        xs = [value(p.get("metrics"), tasks[0]) for p in points]
        ys = [value(p.get("metrics"), tasks[1]) for p in points]
        keep = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None]
        if keep and m["label"] != SINGLE_TASK:
            ax.scatter(*zip(*keep, strict=True), s=18, color=color, alpha=0.45)
        x, y = value(m["metrics"], tasks[0]), value(m["metrics"], tasks[1])
        if x is not None and y is not None:
            marker = "*" if m["label"] == SINGLE_TASK else "o"
            ax.scatter([x], [y], s=90 if marker == "*" else 50, marker=marker, color=color,
                       edgecolors="black", linewidths=0.8, label=m["label"], zorder=3)
    for axis, t in ((ax.set_xlabel, tasks[0]), (ax.set_ylabel, tasks[1])):
        axis(f"{t}: {heads[t]} {_arrow(lower.get(heads[t]))}")
    ax.set_title("Two tasks' headline metrics: every grid point (small), chosen (ringed)",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return _save(fig, path)


def _summary(bench: Mapping[str, Any]) -> list[Block]:
    tasks = list(bench["tasks"])
    heads = ", ".join(f"{t}: {', '.join(bench['task_metrics'][t])}" for t in tasks)
    scored = bench.get("delta_metrics") or {"mode": "all", "metrics": bench["task_metrics"]}
    used = ", ".join(f"{t} {', '.join(ms)}" for t, ms in scored["metrics"].items())
    compute = bench.get("compute") or {}
    items = [f"Tasks: {', '.join(tasks)}",
             f"Backbone: {bench.get('backbone', _DASH)} (width {bench.get('width', 1.0):g}); "
             f"single-task baselines: hard_sharing + uniform, one network per task",
             f"Metrics (the first of each task is its headline, used by the performance "
             f"profile): {heads}",
             (f"ΔMTL (Eq. 10) averages over one headline metric per task, as the survey "
              f"reports it: {used}" if scored["mode"] == "headline" else
              f"ΔMTL (Eq. 10) averages over every (task, metric) pair "
              f"(bench.delta_metrics: all): {used}"),
             f"Grid points per model: {len(bench.get('grid') or [])}",
             f"Models: {len(bench.get('rows') or [])} trained, "
             f"{len(bench.get('skipped') or [])} skipped, "
             f"{len(bench.get('failed') or [])} failed runs",
             f"Compute: {compute.get('runs', 0)} runs, "
             f"{int(compute.get('train_samples') or 0):,} training samples, "
             f"{float(compute.get('wall_s') or 0.0):.1f} s of training (summed over runs)"]
    blocks: list[Block] = [Bullets(tuple(items))]
    dataset = bench.get("dataset")
    if isinstance(dataset, Mapping) and dataset:
        blocks.append(Heading("Dataset", 3))
        blocks.append(Bullets(tuple(
            f"{k}: {v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
            for k, v in dataset.items())))
    return blocks


def _single_table(bench: Mapping[str, Any]) -> Table:
    tasks = list(bench["tasks"])
    lower = bench.get("lower_is_better") or {}
    rows = []
    for t in tasks:
        s = (bench.get("single_task") or {}).get(t) or {}
        chosen = (s.get("grid") or {}).get("chosen")
        point = (f"{chosen['optimizer']} bs{chosen['batch_size']} lr{chosen['lr']:g}"
                 if chosen else _DASH)
        metrics = ((s.get("metrics") or {}).get(t)) or {}
        text = ", ".join(f"{name} {_arrow(lower.get(name))} {_fmt(metrics.get(name))}"
                         for name in bench["task_metrics"][t])
        rows.append((t, str(s.get("run_id") or _DASH), point, _fmt(s.get("params"), ",.0f"),
                     text or str(s.get("error") or _DASH)))
    return Table(("Task", "Run", "Grid point", "Params", "Test metrics"), tuple(rows),
                 frozenset(), "The single-task networks (the reference of ΔMTL): per task, "
                              "the grid point with the lowest validation loss.")


def _grid_table(bench: Mapping[str, Any]) -> Table:
    rows, bold = [], set()
    for r in bench.get("rows") or []:
        for p in (r.get("grid") or {}).get("points") or []:
            status = p.get("status")
            rows.append((_label(r), p["optimizer"], str(p["batch_size"]), f"{p['lr']:g}",
                         _fmt(p.get("val_delta_mtl"), "+.2f"), _fmt(p.get("delta_mtl"), "+.2f"),
                         "chosen" if p.get("chosen") else
                         (status if status != "done" else "")))
            if p.get("chosen"):
                bold |= {(len(rows) - 1, 4), (len(rows) - 1, 5)}
    return Table(("Model", "Optimizer", "Batch", "LR", "Val ΔMTL (%)", "Test ΔMTL (%)", ""),
                 tuple(rows), frozenset(bold),
                 "Every grid point (Table IV): a model reports the point with the best "
                 "validation ΔMTL (bold).")


def _policy_table(bench: Mapping[str, Any]) -> Table | None:
    """AdaShare's final policies: per model row and seed, the fraction of the gated blocks
    each task executes, and the policy (x: executed, .: skipped, from the input on)."""
    tasks = list(bench["tasks"])
    rows = []
    for r in bench.get("rows") or []:
        for e in r.get("seeds") or []:
            policy = (e.get("extra") or {}).get("adashare") or {}
            kept = policy.get("blocks_kept") or {}
            if not kept:
                continue
            flags = policy.get("policy") or {}
            rows.append((_label(r), str(e["seed"]),
                         *(f"{kept[t]:.0%}" if t in kept else _DASH for t in tasks),
                         "; ".join(f"{t} " + "".join("x" if f else "." for f in flags[t])
                                   for t in tasks if t in flags)))
    if not rows:
        return None
    return Table(("Model", "Seed", *(f"{t} blocks kept" for t in tasks), "Policy"),
                 tuple(rows), frozenset(),
                 "AdaShare: the fraction of the gated residual blocks each task executes in "
                 "the re-trained network, and the policy per task (x executed, . skipped, "
                 "from the input on).")


def _build(bench: Mapping[str, Any], figs: Path) -> tuple[list[Block], bool]:
    blocks: list[Block] = [Heading(str(bench.get("title") or "taskgrouper bench"), 1)]
    blocks += _summary(bench)
    blocks.append(Heading("Architectures and balancers against single-task networks "
                          "(Table V)"))
    blocks.append(bench_table(bench))
    drew = False
    if bench.get("rows"):
        plot_profile(bench, figs / _PROFILE_PNG)
        drew = True
        blocks.append(Heading("Performance profile"))
        blocks.append(Figure(
            f"{_FIGURES_DIR}/{_PROFILE_PNG}",
            "Performance profile (Dolan and Moré): for each model, the fraction of tasks "
            "whose headline test metric is within a factor τ of the best model's; higher and "
            "further left is better, the value at τ = 1 is the fraction of tasks it wins."
            + (" Next: every grid point (robustness to the hyperparameters)."
               if len(bench.get("grid") or []) > 1 else "")
            + (f" Right: ΔMTL of each model, mean and 95% interval over "
               f"{len(bench.get('seeds') or [])} seeds; an interval that excludes 0 is a "
               f"real difference from the single-task networks."
               if any(_interval(r) for r in bench.get("rows") or []) else "")))
        if len(bench["tasks"]) >= 2:
            plot_tradeoff(bench, figs / _TRADEOFF_PNG)
            first, second = list(bench["tasks"])[:2]
            blocks.append(Heading("Trade-off between two tasks (Figure 10)"))
            blocks.append(Figure(
                f"{_FIGURES_DIR}/{_TRADEOFF_PNG}",
                f"The survey's Figure 10: each model's grid points in the plane of {first}'s "
                f"and {second}'s headline test metrics (small), its chosen point ringed, the "
                f"single-task networks as a star; arrows give the better direction."))
    policies = _policy_table(bench)
    if policies is not None:
        blocks.append(Heading("AdaShare's policies"))
        blocks.append(policies)
    blocks.append(Heading("Single-task baselines"))
    blocks.append(_single_table(bench))
    if len(bench.get("grid") or []) > 1:
        blocks.append(Heading("Grid search"))
        blocks.append(_grid_table(bench))
    skipped = bench.get("skipped") or []
    if skipped:
        blocks.append(Heading("Skipped combinations"))
        blocks.append(Table(("Architecture", "Balancer", "Reason"),
                            tuple((s["architecture"], s["balancer"], s["reason"])
                                  for s in skipped), frozenset(),
                            "Not trained: the table flags forbid the combination."))
    failed = bench.get("failed") or []
    if failed:
        blocks.append(Heading("Failed runs"))
        blocks.append(Paragraph("These runs stopped with an error; their models report their "
                                "other grid points, or no result. Run the bench again to "
                                "retry only them."))
        blocks.append(Table(("Run", "Model", "Grid point", "Error"), tuple(
            (f["run_id"], f"{f['architecture']} + {f['balancer']}"
             + (f" ({f['task']})" if f.get("task") else ""),
             f"{f['grid']['optimizer']} bs{f['grid']['batch_size']} lr{f['grid']['lr']:g}",
             f["error"]) for f in failed), frozenset(), ""))
    return blocks, drew


def write_bench_report(bench: Mapping[str, Any], out_dir: str | Path, *,
                       source: str = BENCH_FILE) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and the figures (``figures/bench_profile.png``,
    ``figures/bench_tradeoff.png``) into ``out_dir``.

    Args:
        bench: The ``bench.json`` object.
        out_dir: The folder to write into.
        source: How to name the input in error messages.

    Returns:
        The paths of ``report.md`` and ``report.html``.

    Raises:
        BenchFileError: ``bench`` is not a bench object or a section has the wrong shape.
    """
    from taskgrouper.io import write_text_atomic
    from taskgrouper.report.blocks import REPORT_HTML, REPORT_MD

    if not isinstance(bench, Mapping) or "tasks" not in bench or "task_metrics" not in bench:
        raise BenchFileError(f"{source}: expected a bench object with 'tasks', 'task_metrics', "
                             f"'rows', ...; {_HINT}")
    out = Path(out_dir)
    figs = out / _FIGURES_DIR
    figs.mkdir(parents=True, exist_ok=True)
    try:
        blocks, drew = _build(bench, figs)
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise BenchFileError(f"{source}: malformed ({type(err).__name__}: {err}); {_HINT}") \
            from err
    if not drew:  # stale figures of an earlier report
        for name in (_PROFILE_PNG, _TRADEOFF_PNG):
            if (figs / name).is_file():
                (figs / name).unlink()
    title = str(bench.get("title") or "taskgrouper bench")
    md_path, html_path = out / REPORT_MD, out / REPORT_HTML
    write_text_atomic(to_markdown(blocks), md_path)
    write_text_atomic(to_html(blocks, title, out), html_path)
    return md_path, html_path


def load_and_write_bench(path: str | Path) -> tuple[Path, Path]:
    """Read a bench folder's ``bench.json`` (or the file itself) and write its report.

    Raises:
        BenchFileError: no such file, not JSON, or not a bench object.
    """
    path = Path(path)
    if path.is_dir():
        path = path / BENCH_FILE
    if not path.is_file():
        raise BenchFileError(f"{path}: no such file; {_HINT}")
    try:
        bench = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BenchFileError(f"{path} is not valid JSON ({err}); {_HINT}") from None
    except OSError as err:
        raise BenchFileError(f"{path}: cannot be read ({err.strerror}); {_HINT}") from None
    return write_bench_report(bench, path.parent, source=str(path))
