"""The report's figures, drawn with matplotlib's Agg canvas (imported here, lazily).

No pyplot and no global backend switch: each function builds a ``matplotlib.figure.Figure``,
renders it on an Agg canvas and writes a PNG without metadata, so the same input gives the
same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from taskgrouper.report.tables import Grouping, Method, fmt_budget

__all__ = ["plot_affinity_scatter", "plot_budget_loss", "plot_compute_regret",
           "plot_groupings", "plot_heatmap", "plot_order"]

_DPI = 110


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI, metadata={"Software": None})
    return path


def plot_budget_loss(methods: Sequence[Method], budgets: Sequence[float], path: Path) -> Path:
    """Figure 4: total test loss against the inference-time budget, one line per method."""
    fig = _figure(7.5, 4.6)
    ax = fig.add_subplot()
    for i, m in enumerate(methods):
        ys = [m.total(b) for b in budgets]
        y = [math.nan if v is None else v for v in ys]
        style = ("-", "o") if m.kind == "strategy" else ("--", "s")
        (line,) = ax.plot(budgets, y, linestyle=style[0], marker=style[1], markersize=4,
                          label=m.label, color=f"C{i % 10}")
        stds = [m.std(b) for b in budgets]
        if any(s is not None for s in stds):
            lo = [v - s if v is not None and s is not None else math.nan
                  for v, s in zip(ys, stds, strict=True)]
            hi = [v + s if v is not None and s is not None else math.nan
                  for v, s in zip(ys, stds, strict=True)]
            ax.fill_between(budgets, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        halves = [m.half_width(b) for b in budgets]
        if any(h is not None for h in halves):  # 95% interval of the mean over seeds
            ax.errorbar(budgets, y, yerr=[math.nan if h is None else h for h in halves],
                        fmt="none", ecolor=line.get_color(), elinewidth=1, capsize=3)
    ax.set_xlabel("Inference-time budget (SNT)")
    ax.set_ylabel("Total test loss (lower is better)")
    ax.set_title("Performance vs compute")
    ax.set_xticks(list(budgets), [fmt_budget(b) for b in budgets])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _palette(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct colours (60 before they repeat): tab20 saturated, tab20 light, tab20b,
    tab20c."""
    from matplotlib import colormaps

    colors = [colormaps["tab20"](i) for i in [*range(0, 20, 2), *range(1, 20, 2)]]
    colors += [colormaps[name](i) for name in ("tab20b", "tab20c") for i in range(20)]
    return [colors[i % len(colors)] for i in range(n)]


def plot_groupings(panels: Sequence[tuple[str, Sequence[Grouping]]], tasks: Sequence[str],
                   network_order: Sequence[str], path: Path) -> Path:
    """Figure 5: for each method, a grid of budgets (rows) by tasks (columns).

    Each cell is coloured by the network that serves the task at that budget (the same
    colour for a network in every panel) and labelled with its id; the total test loss is on
    the right. An infeasible budget is a grey row.
    """
    import numpy as np

    used = {n for _, rows in panels for g in rows for n in g.assignment.values()}
    names = [n for n in dict.fromkeys(network_order) if n in used]
    names += sorted(used - set(names))
    colors = dict(zip(names, _palette(len(names)), strict=True))
    n_tasks, n_rows = max(len(tasks), 1), max((len(r) for _, r in panels), default=1)
    ncols = max(1, min(len(panels), 3, 24 // (n_tasks + 3)))
    nrows = math.ceil(len(panels) / ncols)
    cell_w, cell_h = 0.75, 0.4
    fig = _figure(ncols * (n_tasks * cell_w + 2.2), nrows * (n_rows * cell_h + 1.3))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (label, rows) in zip(axes.flat, panels, strict=False):
        img = np.ones((len(rows), n_tasks, 4))
        for i, g in enumerate(rows):
            for j, t in enumerate(tasks):
                if g.error:
                    img[i, j] = (0.85, 0.85, 0.85, 1.0)
                elif t in g.assignment:
                    img[i, j] = colors[g.assignment[t]]
        ax.imshow(img, aspect="auto", interpolation="nearest")
        for i, g in enumerate(rows):
            if g.error:
                ax.text((n_tasks - 1) / 2, i, "infeasible", ha="center", va="center",
                        fontsize=7, color="#555")
                continue
            for j, t in enumerate(tasks):
                name = g.assignment.get(t, "–")
                size = max(4.5, min(8.0, 48.0 / max(len(name), 1)))
                r, gr, b, _ = img[i, j]
                dark = 0.299 * r + 0.587 * gr + 0.114 * b < 0.5
                ax.text(j, i, name, ha="center", va="center", fontsize=size,
                        color="white" if dark else "black")
        ax.set_xticks(range(n_tasks), list(tasks), fontsize=8)
        ax.xaxis.tick_top()
        ax.set_yticks(range(len(rows)), [fmt_budget(g.budget) for g in rows], fontsize=8)
        ax.set_ylabel("Budget (SNT)", fontsize=8)
        ax.set_xticks(np.arange(-0.5, n_tasks, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, len(rows), 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        right = ax.twinx()
        right.set_ylim(ax.get_ylim())
        right.set_yticks(range(len(rows)), [_total_label(g) for g in rows], fontsize=8)
        right.set_ylabel("Total test loss", fontsize=8)
        ax.set_title(label, fontsize=10)
    return _save(fig, path)


def _total_label(g: Grouping) -> str:
    """The total test loss, and how many chosen networks serve no task (unused)."""
    text = "–" if g.test_total is None else f"{g.test_total:.4f}"
    unused = len(set(g.networks) - set(g.assignment.values()))
    return f"{text}\n+{unused} unused" if unused and not g.error else text


def plot_heatmap(matrix: Sequence[Sequence[float | None]], row_labels: Sequence[str],
                 col_labels: Sequence[str], title: str, xlabel: str, ylabel: str,
                 path: Path) -> Path:
    """Tables 1 and 2: a diverging heat map of fractions, annotated in percent."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.ticker import PercentFormatter

    data = np.array([[math.nan if v is None else 100.0 * v for v in row] for row in matrix],
                    dtype=float).reshape(len(row_labels), len(col_labels))
    finite = data[np.isfinite(data)]
    span = float(np.max(np.abs(finite))) if finite.size else 1.0
    span = span if span > 0 else 1.0
    cmap = colormaps["RdBu"].with_extremes(bad="#e6e6e6")
    n = max(len(row_labels), len(col_labels))
    fig = _figure(1.2 + 0.85 * n, 0.9 + 0.7 * n)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap,
                      norm=TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span))
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            v = data[i, j]
            text = "–" if not math.isfinite(v) else f"{v:.2f}%"
            strong = math.isfinite(v) and abs(v) > 0.6 * span
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if strong else "black")
    ax.set_xticks(range(len(col_labels)), list(col_labels))
    ax.set_yticks(range(len(row_labels)), list(row_labels))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, format=PercentFormatter(decimals=1), shrink=0.8)
    return _save(fig, path)


def plot_curve(curve: Sequence[float], best_epoch: int | None, cap: int | None,
               path: Path) -> Path:
    """The all-task network's total validation loss per epoch, its best epoch marked."""
    fig = _figure(5.5, 3.4)
    ax = fig.add_subplot()
    epochs = list(range(1, len(curve) + 1))
    ax.plot(epochs, curve, marker="o", markersize=3, color="C0", label="validation loss")
    if best_epoch:
        ax.axvline(best_epoch, color="C2", linestyle="--", linewidth=1,
                   label=f"best epoch {best_epoch}")
    if cap:
        ax.axvline(cap, color="C3", linestyle=":", linewidth=1, label=f"epoch cap {cap}")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Total validation loss")
    ax.set_title("Learning curve of the all-task network")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_order(order: Mapping[Any, Mapping[str, Any]], path: Path) -> Path:
    """Figure 2: mean relative performance of k-task networks, one bar per k."""
    items = sorted(order.items(), key=lambda kv: int(kv[0]))
    ks = [int(k) for k, _ in items]
    means = [100.0 * float(v.get("mean") or 0.0) for _, v in items]
    fig = _figure(max(4.0, 1.2 + 1.1 * len(ks)), 3.8)
    ax = fig.add_subplot()
    colors = ["#2166ac" if m >= 0 else "#b2182b" for m in means]
    bars = ax.bar([f"{k} tasks" for k in ks], means, color=colors)
    for bar, (_, v), m in zip(bars, items, means, strict=True):
        count = v.get("count", "?")
        ax.annotate(f"{m:+.2f}%\n({count} network{'' if count == 1 else 's'})",
                    (bar.get_x() + bar.get_width() / 2, m), ha="center",
                    va="bottom" if m >= 0 else "top", fontsize=8,
                    xytext=(0, 3 if m >= 0 else -3), textcoords="offset points")
    ax.axhline(0.0, color="black", linewidth=0.8)
    low, high = min(means + [0.0]), max(means + [0.0])
    pad = 0.25 * (high - low or 1.0)
    ax.set_ylim(low - pad, high + pad)
    ax.set_ylabel("Relative performance (%)")
    ax.set_xlabel("Tasks in the multi-task network")
    ax.set_title("Multi-task vs single-task networks\n(the same total cost)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def plot_compute_regret(rows: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Each strategy as a point: estimation compute (fraction of exhaustive, log x) against
    mean regret."""
    fig = _figure(6.0, 4.2)
    ax = fig.add_subplot()
    for i, (name, r) in enumerate(rows.items()):
        x, y = r.get("compute_fraction"), r.get("mean_regret")
        if not isinstance(x, (int, float)) or not isinstance(y, (int, float)) or \
                not (math.isfinite(x) and math.isfinite(y)) or x <= 0:
            continue
        ax.scatter([x], [100 * y], color=f"C{i % 10}", label=name, zorder=3)
        ax.annotate(name, (x, 100 * y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    # percent labels on the log axis (0.05 -> "5%"), at 1, 2 and 5 of each decade
    from matplotlib.ticker import FuncFormatter, LogLocator

    percent = FuncFormatter(lambda v, _: f"{100 * v:.3g}%")
    ax.xaxis.set_major_formatter(percent)
    ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.xaxis.set_minor_formatter(percent)
    ax.axvline(0.05, color="0.6", linestyle=":", linewidth=1)  # the 5% compute mark
    ax.set_xlabel("Compute to estimate (% of exhaustive, wall seconds)")
    ax.set_ylabel("Mean regret over budgets (%)")
    ax.set_title("Compute against regret")
    ax.grid(True, alpha=0.3, which="both")
    return _save(fig, path)


def plot_affinity_scatter(correlation: Mapping[str, Any], path: Path) -> Path:
    """Figure 3: one point per unordered task pair, transfer affinity (x) against
    multi-task affinity (y), both in percent, each point labelled with its pair."""
    xs = [100.0 * float(v) for v in correlation.get("transfer") or []]
    ys = [100.0 * float(v) for v in correlation.get("multi_task") or []]
    pairs = ["-".join(map(str, p)) for p in correlation.get("pairs") or []]
    fig = _figure(5.6, 4.2)
    ax = fig.add_subplot()
    ax.scatter(xs, ys, color="C0", zorder=3)
    for x, y, label in zip(xs, ys, pairs, strict=True):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if len(set(xs)) > 1:  # the least-squares line, to show the correlation's direction
        import numpy as np

        slope, intercept = np.polyfit(xs, ys, 1)
        line = np.array([min(xs), max(xs)])
        ax.plot(line, slope * line + intercept, color="0.5", linestyle="--", linewidth=1)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("Transfer affinity (%)")
    ax.set_ylabel("Multi-task affinity (%)")
    ax.set_title("Multi-task vs transfer affinity", fontsize=10)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)
