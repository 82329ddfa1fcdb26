"""Render a search's ``results.json`` into ``report.md`` and a self-contained ``report.html``.

Layout (Standley et al. 2020, Sec. 5 and 6):

1. Summary: tasks, budgets, main strategy, dataset, compute.
2. Table 4 (total test loss per method and budget, best in bold) and Figure 4 (loss vs
   budget).
3. Compute beside quality, per strategy (and baseline).
4. Figure 5 (which network serves which task at each budget) and one table per method.
5. Task relationships: Table 1, Table 2 (heat maps and tables), Figure 2 (bars and table),
   and, when the search trained transfer readouts (``search.transfer``), Table 3 (transfer
   affinity) and Figure 3 (multi-task against transfer affinity).
6. The candidate networks.

Figures are PNGs in ``DIR/figures/``: ``report.md`` links them, ``report.html`` embeds them as
``data:`` URIs (no external file, style sheet or script). The output depends only on the
input: no timestamps are added.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from taskgrouper.errors import TaskgrouperError
from taskgrouper.io import write_text_atomic
from taskgrouper.report import figures
from taskgrouper.report.blocks import (
    REPORT_HTML,
    REPORT_MD,
    Block,
    Bullets,
    Figure,
    Heading,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from taskgrouper.report.tables import (
    DASH,
    affinity_triangle,
    budgets_of,
    candidates_table,
    collect_methods,
    comparison_verdict,
    compute_table,
    correlation_text,
    estimator_table,
    fmt_budget,
    groupings,
    groupings_table,
    learning_table,
    noise_table,
    order_table,
    own_losses_table,
    pair_matrix,
    planted_table,
    relationship_table,
    table4,
    tasks_of,
    width_table,
)

__all__ = ["FIGURES_DIR", "RESULTS_FILE", "ResultsFileError", "load_and_write",
           "transfer_blocks", "write_report"]

RESULTS_FILE = "results.json"
FIGURES_DIR = "figures"
#: Every figure this module may write; ones not written this time are removed (stale).
_FIGURES = {"fig4": "fig4_loss_vs_budget.png", "fig5": "fig5_groupings.png",
            "table1": "table1_pair.png", "table2": "table2_affinity.png",
            "fig2": "fig2_order.png", "regret": "estimators_compute_regret.png",
            "curve": "all_task_learning_curve.png",
            "fig3": "fig3_transfer_vs_multitask.png"}


class ResultsFileError(TaskgrouperError):
    """``results.json`` is missing, unreadable or malformed; the message names the file."""


_HINT = ("run 'taskgrouper search CONFIG.yaml --out DIR' or 'taskgrouper demo --out DIR' "
         "first to write it")


def load_and_write(directory: str | Path) -> tuple[Path, Path]:
    """Read ``DIRECTORY/results.json`` and write the report next to it.

    Args:
        directory: A search or demo output folder (or the ``results.json`` file itself); a
            bench folder (``bench.json``, no ``results.json``) gets the bench report.

    Returns:
        The paths of ``report.md`` and ``report.html``.

    Raises:
        ResultsFileError: No ``results.json``, not JSON, or not a results object.
    """
    path = Path(directory)
    bench = path / "bench.json" if path.is_dir() else path
    if bench.name == "bench.json" and bench.is_file() and not (path / RESULTS_FILE).is_file():
        from taskgrouper.report.bench import load_and_write_bench  # a bench folder

        return load_and_write_bench(bench)
    if path.suffix != ".json" or path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise ResultsFileError(f"{path}: no such file; {_HINT}")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ResultsFileError(f"{path} is not a UTF-8 text file ({err.reason}); {_HINT}") \
            from None
    except json.JSONDecodeError as err:
        raise ResultsFileError(f"{path} is not valid JSON (line {err.lineno}, column "
                               f"{err.colno}: {err.msg}); {_HINT}") from None
    except OSError as err:
        raise ResultsFileError(f"{path}: cannot be read ({err.strerror}); {_HINT}") from None
    if isinstance(results, Mapping):
        with _section(str(path), "tasks"):
            named = tasks_of(results)
    if isinstance(results, Mapping) and not named:
        raise ResultsFileError(f"{path} names no task and no candidate network, so it holds "
                               f"no search results; nothing was written. {_HINT}")
    return write_report(results, path.parent, source=str(path))


def write_report(results: Mapping[str, Any], out_dir: str | Path, *,
                 source: str = "results") -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into ``out_dir``.

    Args:
        results: The ``results.json`` object (DESIGN.md); optional sections may be missing.
        out_dir: The folder to write into (created if needed).
        source: How to name the input in error messages.

    Returns:
        The paths of ``report.md`` and ``report.html``.

    Raises:
        ResultsFileError: ``results`` is not an object, or a section has the wrong shape.
    """
    if not isinstance(results, Mapping):
        raise ResultsFileError(f"{source}: expected a JSON object with 'tasks', 'candidates', "
                               f"'selections', ..., got {type(results).__name__}; {_HINT}")
    out = Path(out_dir)
    figs = out / FIGURES_DIR
    figs.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    # figures are drawn aside and moved in only once every section has rendered, so a
    # malformed results object leaves the previous report whole
    drawn = Path(tempfile.mkdtemp(prefix=".figures.", dir=out))
    try:
        blocks = _build(results, drawn, written, source)
        for name in _FIGURES.values():
            if name in written:
                os.replace(drawn / name, figs / name)
            elif (figs / name).is_file():
                (figs / name).unlink()
    finally:
        shutil.rmtree(drawn, ignore_errors=True)
    title = str(results.get("title") or "taskgrouper report")
    md_path, html_path = out / REPORT_MD, out / REPORT_HTML
    write_text_atomic(to_markdown(blocks), md_path)
    write_text_atomic(to_html(blocks, title, out), html_path)
    return md_path, html_path


def _convergence(results: Mapping[str, Any], cands: list[Mapping[str, Any]],
                 figure: Callable[..., Figure]) -> list[Block]:
    """Why each fully trained network stopped, and the all-task network's learning curve."""
    conv = results["convergence"]
    cap = conv.get("epochs")
    rows = tuple((str(c.get("id")), fmt_budget(c.get("width", 1.0)), str(c.get("best_epoch")),
                  str(c.get("epochs_run")), str(c.get("stopped") or DASH))
                 for c in cands if c.get("best_epoch") is not None)
    stops = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in
                      sorted((conv.get("stopped") or {}).items()))
    blocks: list[Block] = [Heading("Convergence"), Paragraph(
        f"{conv.get('networks', len(rows))} fully trained networks: {stops or DASH} (epoch cap "
        f"{cap}). A network stopped by the epoch cap may not have converged.")]
    if rows:
        blocks.append(Table(("Network", "Width", "Best epoch", "Epochs run", "Stopped by"),
                            rows, frozenset(),
                            "Per network: the epoch of its lowest validation loss (the "
                            "weights kept), the epochs it trained and why it stopped."))
    if conv.get("all_task_test") and conv.get("constant_test"):
        blocks.append(learning_table(conv["all_task_test"], conv["constant_test"],
                                     tasks_of(results)))
    width = width_table(cands, results.get("single_task_seeds") or {}, tasks_of(results))
    if width is not None:
        blocks.append(Heading("Larger networks against smaller ones", 3))
        blocks.append(width)
    curve = conv.get("all_task_curve")
    if curve:
        blocks.append(figure("curve", lambda p: figures.plot_curve(
            curve, conv.get("all_task_best_epoch"), cap, p),
            "The all-task network's total validation loss per epoch."))
    return blocks


def _comparisons(results: Mapping[str, Any]) -> list[Block]:
    """Each strategy against the all-task and the independent networks, paired by seed."""
    seeds = results.get("seeds") or []
    rows, wins = [], []
    for strategy, items in results["comparisons"].items():
        for r in items:
            sig = bool(r.get("significant"))
            rows.append((strategy, fmt_budget(r["budget"]), r["against"].replace("_", " "),
                         f"{100 * r['relative']:+.2f}%",
                         f"[{r['low']:+.4f}, {r['high']:+.4f}]", comparison_verdict(r)))
            if sig and r["mean"] < 0:
                wins.append((strategy, r["budget"], r["against"]))
    blocks: list[Block] = [Heading("Paired comparisons over seeds", 3), Table(
        ("Strategy", "Budget", "Against", "Mean difference", "95% interval", "Verdict"),
        tuple(rows), frozenset(),
        f"Total test loss of the strategy's choice minus the baseline's, paired by seed "
        f"({len(seeds)} seeds: {', '.join(map(str, seeds))}); negative is better. A verdict "
        f"needs the interval to exclude zero; within noise, the seeds at which a difference "
        f"of this mean and spread would exclude it (a planning figure). Selection used the "
        f"first seed's validation losses only, as in the paper; every seed's total serves "
        f"each task by that seed's lowest validation loss among the chosen networks.")]
    both = sorted({(s, b) for s, b, a in wins if (s, b, "all_in_one") in wins
                   and (s, b, "independent") in wins})
    text = ("; ".join(f"{s} at budget {fmt_budget(b)}" for s, b in both) if both
            else "no strategy at any budget")
    blocks.append(Paragraph(f"Beats both the all-task and the independent networks with a "
                            f"paired 95% interval below zero: {text}."))
    return blocks


@contextmanager
def _section(source: str, name: str) -> Iterator[None]:
    """Turn a shape error inside one section into a message naming the file and section."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        if isinstance(err, ResultsFileError):
            raise
        raise ResultsFileError(f"{source}: section {name!r} is malformed "
                               f"({type(err).__name__}: {err})") from err


def _build(results: Mapping[str, Any], figs: Path, written: set[str],
           source: str) -> list[Block]:
    rel = f"{FIGURES_DIR}/"

    def figure(key: str, draw: Callable[[Path], Path], caption: str) -> Figure:
        name = _FIGURES[key]
        draw(figs / name)
        written.add(name)
        return Figure(rel + name, caption)

    with _section(source, "tasks"):
        tasks = tasks_of(results)
    with _section(source, "strategies/selections/baselines"):
        methods = collect_methods(results)
        budgets = budgets_of(results, methods)
    blocks: list[Block] = [Heading(str(results.get("title") or "taskgrouper report"), 1)]

    # 1. summary
    with _section(source, "summary"):
        blocks += _summary(results, tasks, budgets)

    # 2. Table 4 and Figure 4
    blocks.append(Heading("Total test loss per budget (Table 4, Figure 4)"))
    if methods and budgets:
        with _section(source, "selections/baselines"):
            blocks.append(table4(methods, budgets, len(tasks)))
            if any(m.total(b, "test_total_min") is not None for m in methods for b in budgets):
                blocks.append(table4(methods, budgets, len(tasks), score="test_total_min"))
            band = any(m.std(b) is not None for m in methods for b in budgets)
            bars = any(m.half_width(b) is not None for m in methods for b in budgets)
            blocks.append(figure("fig4", lambda p: figures.plot_budget_loss(methods, budgets, p),
                                 "Figure 4: total test loss against the inference-time "
                                 "budget, one line per method"
                                 + (" (shaded: ±1 std over the random groupings)"
                                    if band else "")
                                 + ("; bars: 95% interval of the mean over seeds." if bars
                                    else ".")))
        if results.get("comparisons"):
            with _section(source, "comparisons"):
                blocks += _comparisons(results)
    else:
        blocks.append(Paragraph("No selections or baselines in the results."))

    # 3. compute beside quality
    if methods and budgets:
        blocks.append(Heading("Compute and quality"))
        with _section(source, "strategies"):
            blocks.append(compute_table(methods, budgets))

    # 3a. how the networks ended training
    if results.get("convergence"):
        with _section(source, "convergence"):
            blocks += _convergence(results, [c for c in results.get("candidates") or []
                                             if isinstance(c, Mapping)], figure)

    # 3b. cheap strategies against the exhaustive ground truth; planted groups
    evaluation = results.get("evaluation")
    if isinstance(evaluation, Mapping) and evaluation.get("rows"):
        with _section(source, "evaluation"):
            rows = evaluation["rows"]
            blocks.append(Heading("Estimators against the exhaustive search"))
            blocks.append(estimator_table(rows, budgets))
            blocks.append(figure(
                "regret", lambda p: figures.plot_compute_regret(rows, p),
                "Compute used to estimate (fraction of the exhaustive search's, log scale) "
                "against mean regret over the budgets (test total of the choice over the "
                "exhaustive choice's, minus 1)."))
    planted = results.get("planted")
    if isinstance(planted, Mapping) and planted.get("agreement"):
        with _section(source, "planted"):
            blocks.append(Heading("Agreement with the planted groups"))
            blocks.append(planted_table(planted, budgets))

    # 4. Figure 5 and the grouping tables
    with _section(source, "candidates"):
        cands = [c for c in results.get("candidates") or [] if isinstance(c, Mapping)]
        by_id = {str(c.get("id")): c for c in cands}
    with _section(source, "selections"):
        chosen = [(m, rows) for m in methods
                  if (rows := groupings(m, budgets, tasks, by_id)) is not None]
        panels = [(m.label, rows) for m, rows in chosen]
    if panels and tasks:
        blocks.append(Heading("Chosen task groupings (Figure 5)"))
        blocks.append(figure(
            "fig5", lambda p: figures.plot_groupings(panels, tasks, list(by_id), p),
            "Figure 5: for each method and budget (rows), the network that serves each task "
            "(columns), coloured and labelled by network; the total test loss on the right. "
            "Baselines without an assignment are served, per task, by their chosen network "
            "with the lowest validation loss."))
        for m, rows in chosen:
            blocks.append(Heading(m.label, 3))
            blocks.append(groupings_table(m, rows, tasks))

    # 5. relationships
    with _section(source, "relationships"):
        blocks += _relationships(results, cands, tasks, figure)

    # 6. candidates
    if cands:
        blocks.append(Heading("Candidate networks"))
        with _section(source, "candidates"):
            blocks.append(candidates_table(cands, tasks))
    return blocks


def _summary(results: Mapping[str, Any], tasks: list[str], budgets: list[float]) -> list[Block]:
    items = [f"Tasks: {', '.join(tasks) if tasks else '–'}",
             f"Budgets (SNT): {', '.join(fmt_budget(b) for b in budgets) or '–'}"]
    if results.get("strategy"):
        items.append(f"Main strategy: {results['strategy']}")
    compute = results.get("compute") or {}
    if compute:
        parts = []
        if compute.get("train_samples") is not None:
            parts.append(f"{int(compute['train_samples']):,} training samples")
        if compute.get("wall_s") is not None:
            parts.append(f"{float(compute['wall_s']):.1f} s of training (summed over runs)")
        if compute.get("runs") is not None:
            parts.append(f"{compute['runs']} runs")
        if parts:
            items.append("Compute of the main strategy: " + ", ".join(parts))
    for key in ("created", "timestamp", "version"):
        if results.get(key) is not None:
            items.append(f"{key.capitalize()}: {results[key]}")
    blocks: list[Block] = [Bullets(tuple(items))]
    dataset = results.get("dataset")
    if dataset:
        blocks.append(Heading("Dataset", 3))
        if isinstance(dataset, Mapping):
            blocks.append(Bullets(tuple(
                f"{k}: {v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
                for k, v in dataset.items())))
        else:
            blocks.append(Paragraph(str(dataset)))
    return blocks


def _relationships(results: Mapping[str, Any], cands: list[Mapping[str, Any]],
                   tasks: list[str], figure: Callable[..., Figure]) -> list[Block]:
    rel = results.get("relationships")
    note = ""
    if not rel and cands and tasks:
        from taskgrouper.grouping.relationships import relationships

        rel = relationships(cands, tasks, "test")
        note = " (computed from the candidates' test losses)"
    if not rel:
        return []
    pair, affinity, order = rel.get("pair"), rel.get("affinity"), rel.get("order")
    has_pair = bool(pair) and any(v is not None for row in pair.values() for v in row.values())
    has_aff = bool(affinity) and any(v is not None for row in affinity.values()
                                     for v in row.values())
    transfer = (transfer_blocks(rel["transfer"], tasks, figure)
                if isinstance(rel.get("transfer"), Mapping) else [])
    if not (has_pair or has_aff or order):
        return transfer
    blocks: list[Block] = [Heading("Task relationships (Tables 1 and 2, Figure 2)"),
                           Paragraph("Relative performance: (loss of the reference - loss of "
                                     "the multi-task network) / loss of the reference, on the "
                                     f"test split{note}; positive: training together helps.")]
    if has_pair:
        m1 = pair_matrix(pair, tasks)
        blocks.append(Heading("Table 1: pairs against half-width single-task networks", 3))
        blocks.append(relationship_table(
            m1, tasks, "Trained with ↓ / performance on →",
            "Table 1: the performance of each task (column) when trained in a full-width pair "
            "network with another task (row), relative to the task alone in a half-width "
            "network.", averages=True))
        noise = noise_table(results.get("single_task_seeds") or {}, tasks)
        if noise is not None:
            blocks.append(noise)
        blocks.append(figure("table1", lambda p: figures.plot_heatmap(
            m1, tasks, tasks, "Table 1: performance on a task\nwhen trained with another",
            "Relative performance on", "Trained with", p),
            "Table 1 as a heat map; blue where the pair helps, grey where missing."))
    if has_aff:
        m2 = [[(affinity.get(t) or {}).get(u) for u in tasks] for t in tasks]
        blocks.append(Heading("Table 2: multi-task affinity", 3))
        blocks.append(relationship_table(
            m2, tasks, "Task", "Table 2: the mean of Table 1 and its transpose: the average "
            "change of two tasks trained as a pair, relative to half-width single-task "
            "networks.", averages=False))
        blocks.append(figure("table2", lambda p: figures.plot_heatmap(
            m2, tasks, tasks, "Table 2: first-order\nmulti-task affinity", "Task", "Task", p),
            "Table 2 as a heat map."))
    if order:
        blocks.append(Heading("Figure 2: multi-task networks by number of tasks", 3))
        blocks.append(figure("fig2", lambda p: figures.plot_order(order, p),
                             "Figure 2: full-width k-task networks against k single-task "
                             "networks of width 1/k (same total cost)."))
        blocks.append(order_table(order))
    return blocks + transfer


def transfer_blocks(transfer: Mapping[str, Any], tasks: list[str],
                    figure: Callable[..., Figure] | None = None,
                    title: bool = False) -> list[Block]:
    """Table 3 (transfer affinity), the ordered transfer table, the reference losses and
    Figure 3 (drawn when ``figure`` is given and the correlation has points) with its
    statistics.

    Args:
        transfer: ``results["relationships"]["transfer"]``, or a ``relationships.json``
            object (the same keys).
        tasks: Row and column order.
        figure: The report's figure writer; None: no figure (``relationships.md``).
        title: Open with a document title (a page of its own) instead of a section heading.
    """
    split = str(transfer.get("split") or "test")
    blocks: list[Block] = [
        Heading(f"Transfer and multi-task affinity: {', '.join(tasks)}", 1) if title
        else Heading("Transfer relationships (Table 3, Figure 3)"),
        Paragraph(f"A transfer readout trains a head for task j on the frozen encoder of task "
                  f"i's full-width single-task network (Taskonomy's measure). Gain: (loss of j "
                  f"in its own network - loss of j on i's encoder) / loss of j in its own "
                  f"network, on the {split} split; positive: i's encoder serves j better than "
                  f"j's own.")]
    affinity = transfer.get("affinity") or {}
    if any(v is not None for row in affinity.values() for v in (row or {}).values()):
        blocks.append(Heading("Table 3: transfer affinity", 3))
        blocks.append(affinity_triangle(
            affinity, tasks, "Table 3: the mean of the gains i -> j and j -> i (the averaged "
            "forward and backward transfer affinity)."))
    pair = transfer.get("pair") or {}
    if any(v is not None for row in pair.values() for v in (row or {}).values()):
        blocks.append(relationship_table(
            pair_matrix(pair, tasks), tasks, "Encoder of ↓ / readout of →",
            "The gain of each task (column) read out from another task's frozen encoder "
            "(row), relative to the task's own network.", averages=True))
    if transfer.get("own"):
        blocks.append(own_losses_table(transfer["own"], tasks))
    corr = transfer.get("correlation")
    text = correlation_text(corr)
    if figure is not None and corr and corr.get("pairs"):
        blocks.append(Heading("Figure 3: multi-task against transfer affinity", 3))
        blocks.append(figure("fig3", lambda p: figures.plot_affinity_scatter(corr, p),
                             f"Figure 3: one point per task pair. {text}"))
    else:
        blocks.append(Paragraph(text))
    compute = transfer.get("compute") or {}
    if compute.get("runs"):
        blocks.append(Paragraph(f"{compute['runs']} readouts, "
                                f"{float(compute.get('wall_s') or 0.0):.1f} s of training"
                                + ("." if title else " (not counted in any strategy's "
                                   "compute).")))
    return blocks
