"""``taskgrouper relationships``: transfer affinity against multi-task affinity.

Standley et al. (2020), Sec. 5.1, Table 3 and Figure 3: Taskonomy's transfer affinity (how well
task ``j`` is read out from task ``i``'s frozen encoder) set against the multi-task affinity
of Table 2 (how two tasks fare when trained together), over the unordered task pairs.

For the experiment's tasks this trains

1. the full-width single-task network of every task: the same runs, under the same ids, as a
   search of the same config trains, so a search folder's own are reused;
2. the ``T (T - 1)`` transfer readouts, one per ordered pair ``(i, j)``: a network for ``j``
   on ``i``'s frozen encoder (:mod:`taskgrouper.train.transfer`), trained with the
   experiment's settings.

Runs go through the sweep machinery: ``DIR/runs.sqlite`` records each finished run, its
folder is ``DIR/runs/<id>`` (readouts: ``transfer-<i>-to-<j>``), and a second call trains
only what is missing. A source whose weights were deleted (``search.keep_weights: chosen``)
is trained again in its folder before a readout that still needs it.

``DIR/relationships.json`` holds ``tasks``, ``split``, ``own`` (each task's losses in its own
network), ``readouts`` (every readout's losses), ``pair`` (the ordered table), ``affinity``
(Table 3), ``multi_task`` (Table 2, when a search's ``results.json`` gives it) and
``correlation`` (Figure 3); ``DIR/relationships.md`` shows the tables and the correlation.
``search.transfer: true`` puts the same section in a search's ``results.json`` under
``relationships.transfer``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from taskgrouper.config import ExperimentConfig, parse_config
from taskgrouper.errors import InputError
from taskgrouper.experiments.base import load_data, open_session, run_config, write_results
from taskgrouper.grouping.candidates import Candidate, compact_names
from taskgrouper.grouping.relationships import affinity_correlation, transfer_tables

__all__ = ["RELATIONSHIPS_FILE", "RELATIONSHIPS_MD", "check_transfer", "format_relationships",
           "readout_id", "source_specs", "train_readouts", "transfer_relationships",
           "transfer_section"]

RELATIONSHIPS_FILE = "relationships.json"
RELATIONSHIPS_MD = "relationships.md"
RELATIONSHIPS_VERSION = 1
#: The run group of the readouts in the store.
TRANSFER_GROUP = "transfer"
#: The split the tables compare (the search's Tables 1 and 2 use the test split too).
SPLIT = "test"


def check_transfer(config: ExperimentConfig, tasks: Sequence[str] | None = None,
                   where: str = "the experiment") -> None:
    """Refuse, before anything trains, an experiment whose readouts cannot be trained.

    Raises:
        InputError: an architecture other than hard_sharing (readouts read a shared
            encoder), or fewer than two tasks (``tasks``, else ``config.tasks`` when set).
    """
    if config.model.architecture != "hard_sharing":
        raise InputError(f"transfer readouts read the encoder of each task's single-task "
                         f"hard_sharing network, but {where} has model.architecture "
                         f"'{config.model.architecture}'; set model.architecture: "
                         f"hard_sharing (or set search.transfer: false)")
    names = list(tasks) if tasks is not None else config.tasks
    if names is not None and len(names) < 2:
        raise InputError(f"transfer relationships need at least two tasks, {where} has "
                         f"{len(names)} ({', '.join(names) or 'none'}); list two or more "
                         f"under 'tasks' (or leave 'tasks' out for every task of the dataset)")


def source_specs(config: ExperimentConfig, tasks: Sequence[str]) -> dict[str, Any]:
    """Task -> the run spec of its full-width single-task network (the id and config a
    search of ``config`` gives it)."""
    from taskgrouper.runs.store import RunSpec

    base = config.model_dump(mode="json")
    compact = compact_names(tasks)
    out = {}
    for t in tasks:
        c = Candidate((t,), 1.0, compact=compact)
        cfg = run_config(base, [t])
        cfg["model"]["width"] = 1.0
        out[t] = RunSpec(c.run_id, "single", cfg, {"tasks": [t], "width": 1.0,
                                                    "fraction": 1.0, "network": c.name})
    return out


def readout_id(source_id: str, target_id: str) -> str:
    """The run id (and folder name) of the readout of ``target`` on ``source``'s encoder."""
    return f"transfer-{source_id}-to-{target_id}"


def train_readouts(session, config: ExperimentConfig, tasks: Sequence[str], *,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or find in ``session``'s store) the sources and the readouts of ``tasks``.

    Returns:
        ``{"tasks", "sources": {task: record}, "readouts": {(source, target): record}}``.

    Raises:
        taskgrouper.runs.sweep.SweepError: some runs failed (the others are stored).
    """
    from taskgrouper.runs.store import RunSpec
    from taskgrouper.train.transfer import readout_config

    tasks = list(tasks)
    sources = source_specs(config, tasks)
    session.run(list(sources.values()))
    ids = {(i, j): readout_id(sources[i].id, sources[j].id)
           for i in tasks for j in tasks if i != j}
    done = session.store.done_ids()
    for i in dict.fromkeys(i for (i, _), rid in ids.items() if rid not in done):
        _restore_weights(session, sources[i], log)
    specs = []
    for (i, j), rid in ids.items():
        folder = session.out / "runs" / sources[i].id
        cfg = readout_config(config, folder, j).model_dump(mode="json")
        specs.append(RunSpec(rid, TRANSFER_GROUP, cfg, {
            "tasks": [j], "width": cfg["model"]["width"], "fraction": 1.0, "network": rid,
            "source": i, "target": j, "source_run": sources[i].id}))
    log(f"transfer readouts: {len(specs)} ({session.todo(specs)} to train)")
    session.run(specs)
    records = session.records()
    return {"tasks": tasks, "sources": {t: records[s.id] for t, s in sources.items()},
            "readouts": {pair: records.get(rid) for pair, rid in ids.items()}}


def _restore_weights(session, spec, log: Callable[[str], None]) -> None:
    """Train a stored source again in its folder when its ``best.pt`` is gone (the trainer
    retrains a finished run whose weights are missing, with the same seed)."""
    from taskgrouper.train import train

    folder = session.out / "runs" / spec.id
    if (folder / "best.pt").is_file():
        return
    log(f"run {spec.id}: its weights were deleted (search.keep_weights: chosen); training it "
        f"again to restore them for the transfer readouts")
    train(parse_config(spec.config, source=f"run '{spec.id}'"), folder,
          data=session.sweep.get("data"), progress=False, log=lambda message: None)
    (folder / "last.pt").unlink(missing_ok=True)  # as the sweep does for a stored run


def transfer_section(trained: Mapping[str, Any],
                     multi_task: Mapping[str, Mapping[str, float | None]] | None = None
                     ) -> dict[str, Any]:
    """The transfer relationships of :func:`train_readouts`' runs, as JSON-ready data.

    Args:
        trained: What :func:`train_readouts` returned.
        multi_task: Table 2 (``{t: {u: affinity}}``) to correlate with, or None.

    Returns:
        ``split``, ``own`` (task -> ``run_id``, ``val``, ``test``), ``readouts`` (one per
        ordered pair: ``source``, ``target``, ``run_id``, ``val``, ``test``, ``best_epoch``,
        ``epochs_run``, ``wall_s``; losses None for a readout that did not train), ``pair``
        (``pair[target][source]``), ``affinity`` (Table 3), ``multi_task`` (Table 2 or None),
        ``correlation`` (see
        :func:`~taskgrouper.grouping.relationships.affinity_correlation`, or None) and
        ``compute`` (the readouts' ``runs``, ``train_samples``, ``wall_s``).
    """
    tasks = list(trained["tasks"])
    own = {t: {"run_id": r.id, "val": r.val_losses.get(t), "test": r.test_losses.get(t)}
           for t, r in trained["sources"].items()}
    readouts, losses, used = [], {}, []
    for (i, j), r in trained["readouts"].items():
        entry = {"source": i, "target": j, "run_id": None if r is None else r.id,
                 "val": None, "test": None, "best_epoch": None, "epochs_run": None,
                 "wall_s": None}
        if r is not None:
            used.append(r)
            entry.update(val=r.val_losses.get(j), test=r.test_losses.get(j),
                         best_epoch=r.best_epoch, epochs_run=r.epochs_run, wall_s=r.wall_s)
            losses[(i, j)] = entry[SPLIT]
        readouts.append(entry)
    tables = transfer_tables({t: v[SPLIT] for t, v in own.items()}, losses, tasks)
    correlation = (affinity_correlation(multi_task, tables["affinity"], tasks)
                   if multi_task else None)
    return {"split": SPLIT, "own": own, "readouts": readouts, **tables,
            "multi_task": {t: dict(row) for t, row in multi_task.items()} if multi_task
            else None,
            "correlation": correlation,
            "compute": {"runs": len(used),
                        "train_samples": int(sum(r.train_samples for r in used)),
                        "wall_s": float(math.fsum(r.wall_s for r in used))}}


def _multi_task_affinity(out: Path, search_dir: str | Path | None
                         ) -> tuple[dict | None, str | None]:
    """Table 2 of a search's ``results.json``: from ``search_dir`` (required there), else
    from ``out`` when it is a search folder; with the file it came from."""
    folder = Path(search_dir) if search_dir is not None else out
    path = folder / "results.json"
    hint = (f"run `taskgrouper search CONFIG --out {folder}` first, or leave --search out "
            f"to skip the correlation")
    if not path.is_file():
        if search_dir is None:
            return None, None
        raise InputError(f"--search {folder}: no results.json there; {hint}")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        affinity = results["relationships"]["affinity"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        if search_dir is None:
            return None, None
        raise InputError(f"{path} holds no relationships.affinity (Table 2) "
                         f"({type(err).__name__}: {err}); {hint}") from None
    if not isinstance(affinity, Mapping) or not all(isinstance(r, Mapping)
                                                    for r in affinity.values()):
        raise InputError(f"{path}: relationships.affinity is not a table of task -> task -> "
                         f"value; {hint}")
    return {str(t): dict(row) for t, row in affinity.items()}, str(path)


def transfer_relationships(config: ExperimentConfig, out_dir: str | Path, *,
                           search_dir: str | Path | None = None, workers: int = 1,
                           executor=None, progress: bool = True,
                           log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the sources and readouts of ``config``'s tasks into ``out_dir``; write
    ``relationships.json`` and ``relationships.md`` there; return the JSON object.

    Args:
        config: The experiment (architecture hard_sharing, at least two tasks).
        out_dir: The folder (a search folder of the same config reuses its single-task
            networks, and gives Table 2 for the correlation). Resumed when it holds runs.
        search_dir: A search folder whose ``results.json`` gives Table 2 (default: ``out_dir``
            when it holds one; else no correlation).
        workers: Parallel training processes on this machine.
        executor: An executor instance (e.g. Ray's) instead of the local pool.
        progress: Progress bars.
        log: Where status lines go.

    Raises:
        InputError: a bad architecture, fewer than two tasks, a ``search_dir`` without
            Table 2.
        taskgrouper.runs.sweep.SweepError: some runs failed (the others are stored).
    """
    from taskgrouper.data import load_dataset
    from taskgrouper.train.compat import check_compatible

    check_compatible(config)
    check_transfer(config)
    out = Path(out_dir)
    multi, multi_path = _multi_task_affinity(out, search_dir)
    data = load_dataset(config.data, config.tasks)
    tasks = list(data.tasks)
    check_transfer(config, tasks)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(config, log, data=data)
    with open_session(out, data, workers=workers, executor=executor, progress=progress,
                      log=log) as session:
        trained = train_readouts(session, config, tasks, log=log)
    section = transfer_section(trained, multi)
    results = write_results({"tasks": tasks, **section, "multi_task_source": multi_path},
                            out / RELATIONSHIPS_FILE, version=RELATIONSHIPS_VERSION,
                            required=("tasks", "own", "readouts", "pair", "affinity",
                                      "correlation"))
    from taskgrouper.io import write_text_atomic
    from taskgrouper.report.blocks import to_markdown
    from taskgrouper.report.writer import transfer_blocks

    write_text_atomic(to_markdown(transfer_blocks(results, tasks, title=True)),
                      out / RELATIONSHIPS_MD)
    return results


def format_relationships(results: Mapping[str, Any], out: str | None = None) -> str:
    """Table 3 as text (upper triangle, percent) and the correlation, for the terminal."""
    tasks = list(results["tasks"])
    width = max(len(t) for t in tasks) + 2
    lines = ["transfer affinity (Table 3: mean of the gains i -> j and j -> i, test split)",
             " " * width + "".join(f"{t:>9}" for t in tasks[1:])]
    for a, t in enumerate(tasks[:-1]):
        cells = []
        for b, u in enumerate(tasks[1:], start=1):
            v = (results["affinity"].get(t) or {}).get(u)
            cells.append(f"{'':>9}" if b <= a else f"{'-':>9}" if v is None
                         else f"{100 * v:>8.2f}%")
        lines.append(f"{t:<{width}}{''.join(cells)}")
    corr = results.get("correlation")
    if corr and corr.get("pearson_r") is not None:
        lines.append(f"against multi-task affinity (Table 2), {corr['n']} pairs: Pearson r = "
                     f"{corr['pearson_r']:.2f} (p = {corr['pearson_p']:.2g}), Spearman rho = "
                     f"{corr['spearman_rho']:.2f} (p = {corr['spearman_p']:.2g})")
    elif corr:
        lines.append(f"against multi-task affinity (Table 2): {corr['n']} pairs, too few or "
                     f"constant for a correlation")
    else:
        lines.append("no multi-task affinity to correlate with (give --search DIR of a "
                     "search of these tasks)")
    if out is not None:
        lines.append(f"wrote {out}/relationships.json, relationships.md, runs.sqlite")
    return "\n".join(lines)
