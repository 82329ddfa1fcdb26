"""``taskgrouper search``: the framework of Standley et al. (2020) end to end.

For each strategy (a :class:`~taskgrouper.grouping.strategies.Strategy`: exhaustive, esa,
hoa, lookahead, gradcos, or an instance of one's own): train its phase-1 runs (and the runs it
chooses from them, phase 1b), estimate the validation loss of every candidate network, select
at every budget with the exact solver, train the chosen networks to convergence (phase 2),
train every scored network with the other seeds (phase 3, ``search.seeds``), and score the
choice on the test split. Then the baselines (all-in-one, independent, random, pessimal,
MGDA-UB), the task-relationship tables, ``results.json`` and the report.

Every run is recorded in ``DIR/runs.sqlite`` when it finishes, so a second call on the same
folder trains only what is missing; runs are shared between strategies (ESA's chosen networks
are the exhaustive search's fully trained ones), while each strategy's compute counts every run
it needed, as if it had run alone.

Final scoring, the same for every strategy: the chosen networks are the fully trained ones;
each task is served by the chosen network with the lowest (final) validation loss for it, and
the reported total is the sum of those networks' test losses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from taskgrouper.config import ExperimentConfig, SearchConfig, run_identity
from taskgrouper.errors import InputError
from taskgrouper.experiments.base import load_data, open_session, run_config, write_results
from taskgrouper.grouping.candidates import (
    Candidate,
    baseline_candidates,
    fully_trained,
    independent_widths,
    search_candidates,
)
from taskgrouper.grouping.select import InfeasibleBudget, Network, cheapest_cover, select_many
from taskgrouper.grouping.strategies import Estimate, Strategy, resolve_strategies
from taskgrouper.grouping.tables import parse_budgets

__all__ = ["RESULTS_VERSION", "search", "strategies_of"]

RESULTS_VERSION = 1
#: Keys every results.json holds (DESIGN.md, "results.json").
RESULTS_KEYS = ("title", "tasks", "budgets", "strategy", "compute", "candidates", "selections",
                "strategies", "relationships")


def strategies_of(config: ExperimentConfig,
                  names: Sequence[str | Strategy] | str | None = None) -> list[Strategy]:
    """The strategies to run: ``names`` (names, a comma-separated string, or
    :class:`~taskgrouper.grouping.strategies.Strategy` instances), else the config's
    ``search.strategy``; names are built with the config's search options."""
    sc = config.search if config.search is not None else SearchConfig()
    return resolve_strategies(sc.strategy if names is None else names,
                              fraction=sc.esa_fraction, epochs=sc.esa_epochs,
                              max_group_size=sc.max_group_size,
                              affinity_every=sc.affinity_every,
                              calibration_pairs=sc.calibration_pairs,
                              selection_widths=sc.selection_widths)


def _check_strategies(config: ExperimentConfig, strategies: Sequence[Strategy]) -> None:
    """A strategy that measures on shared parameters needs an architecture that has some
    (before anything trains)."""
    from taskgrouper.models.arch import arch_info

    arch = arch_info(config.model.architecture)
    for s in strategies:
        if s.needs_shared_parameters and not arch.shared_parameters:
            raise InputError(
                f"strategy '{s.name}' measures task affinity on parameters every task shares, "
                f"but architecture '{arch.name}' (model.architecture) has none: each task has "
                f"its own network. Search with an architecture that shares an encoder "
                f"(hard_sharing, mtan, padnet, papnet, mtinet), or with strategy hoa or esa")


def _run_config(base: dict[str, Any], c: Candidate) -> dict:
    """A candidate's run: the experiment (architecture, its options, balancer and all) with
    the candidate's tasks, width and schedule; balancer weights of other tasks are dropped."""
    cfg = run_config(base, c.tasks)
    cfg["model"]["width"] = c.width
    if c.fraction < 1.0:
        cfg["train"]["train_fraction"] = c.fraction
    if c.epochs is not None:
        cfg["train"]["epochs"] = c.epochs
    if c.affinity_every:
        cfg["train"]["affinity_every"] = c.affinity_every
    if c.seed is not None:
        cfg["train"]["seed"] = c.seed
    return cfg


def _specs(base: dict[str, Any], candidates: Sequence[tuple[Candidate, Strategy | None, str]]):
    from taskgrouper.runs.store import RunSpec

    specs: dict[str, Any] = {}
    for c, _, group in candidates:
        if c.run_id in specs:
            continue
        specs[c.run_id] = RunSpec(c.run_id, group, _run_config(base, c),
                                  {"tasks": list(c.tasks), "width": c.width,
                                   "fraction": c.fraction, "network": c.name})
    return list(specs.values())


#: The balancer of the other baseline of Standley et al. (2020), Sec. 4.3: the all-task
#: network trained with the method of Sener and Koltun (2018), MGDA-UB.
MGDA_BALANCER = "mgda_ub"


def _mgda_specs(base: dict[str, Any], config: ExperimentConfig, tasks: Sequence[str],
                spatial: bool, widths: Sequence[float], log: Callable[[str], None]) -> list:
    """The all-task network trained with ``mgda_ub`` (everything else as the experiment) at
    each of ``widths``, as run specs; none when the balancer table has no ``mgda_ub`` row or
    the architecture cannot take it (then the baseline is left out, with a log line)."""
    from taskgrouper import balancing
    from taskgrouper.models.arch import arch_info
    from taskgrouper.runs.store import RunSpec
    from taskgrouper.train.compat import incompatibility

    rows = {b.name: b for b in balancing.BALANCERS}
    if MGDA_BALANCER not in rows:
        return []
    why = incompatibility(arch_info(config.model.architecture), rows[MGDA_BALANCER],
                          len(tasks), spatial)
    if why is not None:
        log(f"no {MGDA_BALANCER} baseline: {why}")
        return []
    specs = []
    for width in widths:
        c = Candidate(tuple(tasks), width)
        cfg = _run_config(base, c)
        cfg["balancer"] = {"name": MGDA_BALANCER, "weights": None, "options": {}}
        run_id = f"{c.run_id}-{MGDA_BALANCER}"
        specs.append(RunSpec(run_id, "baseline", cfg, {
            "tasks": list(c.tasks), "width": width, "fraction": 1.0, "network": run_id,
            "balancer": MGDA_BALANCER}))
    return specs


def all_task_widths(config: ExperimentConfig, budgets: Sequence[float]) -> list[float]:
    """Widths of the all-task baselines (uniform and MGDA-UB): ``search.baseline_widths``, or
    by default 1 and every whole-number budget above it (the paper evaluated each baseline
    "with multiple encoder sizes")."""
    chosen = config.search.baseline_widths if config.search is not None else None
    if chosen:
        return sorted({float(w) for w in chosen})
    whole = {float(b) for b in budgets if b > 1 and float(b).is_integer()}
    return sorted({1.0} | whole)


#: Search settings that change no trained run, only what is selected or reported from the
#: runs (``transfer`` adds the readouts beside them): a folder searched with other values
#: resumes (and re-selects without training).
_NOT_IDENTITY = ("budgets", "select_time_limit", "random_trials", "seeds", "keep_weights",
                 "transfer")


def _searched(search: dict | None) -> dict | None:
    """The part of a search section (JSON form) that says which runs a search trains."""
    if search is None:
        return None
    searched = dict(search)
    # settings added later count only when set (older folders resume)
    for key, default in (("max_group_size", None), ("affinity_every", 5),
                         ("calibration_pairs", 1), ("selection_widths", []),
                         ("baseline_widths", None), ("mgda_baseline", True)):
        if searched.get(key, default) == default:
            searched.pop(key, None)
    for key in _NOT_IDENTITY:
        searched.pop(key, None)
    return searched


def _identity_check(out: Path, config: ExperimentConfig, write: bool = True) -> None:
    """Refuse a folder that holds a search of another config (results would mix); record
    the config's identity in a new folder when ``write``."""
    identity = {**run_identity(config),
                "search": _searched(config.model_dump(mode="json")["search"])}
    path = out / "search.json"
    if path.exists():
        try:
            previous = json.loads(path.read_text())
            previous["search"] = _searched(previous.get("search"))
        except (OSError, ValueError, TypeError, AttributeError) as err:
            raise InputError(f"{path} is unreadable ({type(err).__name__}: {err}); it records "
                             f"which config the folder was searched with: restore it, or "
                             f"pass a new --out") from None
        if previous != identity:
            changed = sorted(k for k in set(previous) | set(identity)
                             if previous.get(k) != identity.get(k))
            raise InputError(f"'{out}' holds a search of a different config (differs in: "
                             f"{', '.join(changed)}); pass a new --out, or delete the folder "
                             f"to start over. Budgets alone may change: re-selecting trains "
                             f"nothing (or run 'taskgrouper select --runs {out} --budgets "
                             f"START:STOP:STEP')")
    elif write:
        from taskgrouper.io import write_json_atomic

        write_json_atomic(identity, path)


def _check_feasible(tasks: Sequence[str], c0: Sequence[Candidate], budgets: Sequence[float],
                    text: str, log: Callable[[str], None]) -> None:
    """Before anything trains: every budget below the cheapest cover of the tasks is
    infeasible whatever the losses turn out to be. All infeasible: refuse; some: say which."""
    cheapest = cheapest_cover([Network(c.name, c.width, dict.fromkeys(c.tasks, 0.0))
                               for c in c0], tasks=tasks)
    below = [b for b in budgets if b < cheapest - 1e-9]
    if len(below) == len(budgets):
        raise InputError(
            f"search.budgets '{text}': every budget is below {cheapest:g} SNT, the cheapest "
            f"set of candidate networks that covers all {len(tasks)} tasks; raise the budgets "
            f"to at least {cheapest:g} (e.g. budgets: \"{cheapest:g}:{max(cheapest, 5):g}:0.5\")"
            f" or search fewer tasks. Nothing was trained")
    if below:
        log(f"budgets {', '.join(f'{b:g}' for b in below)} are below {cheapest:g} SNT, the "
            f"cheapest cover of every task: reported as infeasible; the others are searched")


def _measured_snt(config: ExperimentConfig, in_shape, widths) -> dict[float, float]:
    """Measured SNT of an encoder at each width: its MACs over the full-width encoder's.

    Selection uses the nominal cost (the width, to which the channel multiplier is
    calibrated: see ``bench/bench_flops.py``); the measured value is reported beside it. The
    two differ by under 3%, but a measured 0.503 would make two half-width networks miss a
    budget of 1 that the paper's protocol gives them.
    """
    from taskgrouper.evaluate.cost import encoder_cost

    hidden = config.model.hidden
    scale = config.model.scale
    ref = encoder_cost(config.model.backbone, tuple(in_shape), 1.0, hidden, scale)
    return {w: encoder_cost(config.model.backbone, tuple(in_shape), w, hidden, scale) / ref
            for w in sorted(set(widths))}


def search(config: ExperimentConfig, out_dir: str | Path, *,
           strategies: Sequence[str | Strategy] | str | None = None, workers: int = 1,
           executor=None, baselines: bool = True, progress: bool = True,
           log: Callable[[str], None] = print) -> dict:
    """Run a task-grouping search; write ``results.json`` and the report; return the results.

    Args:
        config: The experiment; ``search.budgets`` and the ``search`` options apply.
        out_dir: The sweep folder (store, run folders, results, report). An existing one is
            resumed: finished runs are not repeated.
        strategies: Strategy names or instances (default: ``search.strategy`` of the config).
        workers: Parallel training processes on this machine.
        executor: An executor instance (e.g. Ray's) instead of the local pool.
        baselines: Also train and report the baselines.
        progress: Progress bars.
        log: Where status lines go.

    Raises:
        ValueError: a bad strategy, budget range, or a folder of another config.
        taskgrouper.runs.sweep.SweepError: some runs failed (the others are stored).
    """
    from taskgrouper.data import load_dataset
    from taskgrouper.train.compat import check_compatible

    check_compatible(config)
    chosen_strategies = strategies_of(config, strategies)
    _check_strategies(config, chosen_strategies)
    budget_text = config.search.budgets if config.search else "1:5:0.5"
    budgets = parse_budgets(budget_text)
    out = Path(out_dir)
    _identity_check(out, config, write=False)  # before loading data: refuse early

    data = load_dataset(config.data, config.tasks)  # read once; decoded after the checks
    tasks = list(data.tasks)
    transfer = None
    if config.search is not None and config.search.transfer:  # refuse before training
        from taskgrouper.experiments import relationships as transfer

        transfer.check_transfer(config, tasks, where="this search (search.transfer: true)")
    max_size = config.search.max_group_size if config.search else None
    extra_widths = config.search.selection_widths if config.search else []
    c0 = search_candidates(tasks, max_size=max_size, widths=extra_widths)  # selection's pool
    wide = all_task_widths(config, budgets)
    own = baseline_candidates(tasks, independent_widths(len(tasks)), wide)  # baselines' nets
    _check_feasible(tasks, c0, budgets, budget_text, log)
    out.mkdir(parents=True, exist_ok=True)
    _identity_check(out, config)
    data = load_data(config, log, data=data)
    base = config.model_dump(mode="json")

    # Phase 1: every strategy's plan, plus the baselines' networks.
    phase1: list[tuple[Candidate, Strategy | None, str]] = []
    for s in chosen_strategies:
        phase1 += [(c, s, "affinity" if c.affinity_every else s.run_group)
                   for c in s.plan(tasks)]
    if baselines:
        phase1 += [(c, None, "baseline") for c in own]
    with_mgda = baselines and (config.search is None or config.search.mgda_baseline)
    mgda = (_mgda_specs(base, config, tasks, len(data.input_shape) == 3, wide, log)
            if with_mgda else [])
    with open_session(out, data, workers=workers, executor=executor, progress=progress,
                      log=log) as session:
        specs = _specs(base, phase1) + mgda
        log(f"phase 1: {len(specs)} runs ({session.todo(specs)} to train)")
        session.run(specs)
        records = session.records()
        measured = {rid: r.val_losses for rid, r in records.items()}
        extras = {rid: r.extra for rid, r in records.items() if r.extra}

        # Phase 1b: runs a strategy chooses from phase 1's results (affinity calibration).
        calibration = [(c, s, "candidate") for s in chosen_strategies
                       for c in s.calibration(tasks, measured, extras)]
        specs1b = [sp for sp in _specs(base, calibration) if sp.id not in records]
        if calibration:
            log(f"calibration pairs: {len({c.run_id for c, _, _ in calibration})} "
                f"({len(specs1b)} to train)")
        if specs1b:
            session.run(specs1b)
            records = session.records()
            measured = {rid: r.val_losses for rid, r in records.items()}

        widths = {c.width for c in c0} | {c.width for c, _, _ in phase1}
        measured_snt = _measured_snt(config, data.input_shape, widths)
        estimates: dict[str, Estimate] = {}
        raw_selections = {}
        for s in chosen_strategies:
            estimates[s.name] = est = s.estimate(tasks, measured, extras)
            # nominal SNT (see _measured_snt)
            nets = [Network(c.name, c.width, est.losses[c.name]) for c in s.selectable(tasks)]
            raw_selections[s.name] = select_many(
                nets, budgets, tasks=tasks,
                time_limit=config.search.select_time_limit if config.search else 60.0)
            if any(getattr(sel, "stopped", None) == "interrupted"
                   for sel in raw_selections[s.name]):
                raise KeyboardInterrupt  # Ctrl-C during selection stops the search (resumable)
            for sel in raw_selections[s.name]:
                if not isinstance(sel, InfeasibleBudget) and sel.gap > 0:
                    log(f"{s.name}, budget {sel.budget:g}: selection not proved optimal within "
                        f"search.select_time_limit; it is within {100 * sel.gap:.3g}% of the "
                        f"optimum (raise the limit, or null for none, to prove it)")

        # Phase 2: the chosen networks, trained to convergence.
        by_name = {c.name: c for c in c0 + own}
        phase2 = []
        for s in chosen_strategies:
            for sel in raw_selections[s.name]:
                if not isinstance(sel, InfeasibleBudget):
                    phase2 += [(by_name[n].full(), s, "candidate") for n in sel.networks]
        specs2 = [sp for sp in _specs(base, phase2) if sp.id not in records]
        if specs2:
            log(f"phase 2: {len(specs2)} chosen networks to train to convergence")
            session.run(specs2)

        # Phase 3: every scored network again with the other seeds (error bars).
        seeds = _extra_seeds(config)
        # Table 1's references (the half-width single-task networks) too: their spread over
        # seeds is the noise a pair effect must exceed
        scored = [c for c, _, _ in phase2] + (
            _baseline_networks(tasks, budgets, records, by_name) if baselines else []) + [
            by_name[n] for n in by_name if len(by_name[n].tasks) == 1
            and by_name[n].width == 0.5]
        phase3 = [(c.with_seed(seed), None, "seed") for seed in seeds for c in scored]
        fielded = _fielded_mgda(mgda, records, budgets, tasks)
        specs3 = _specs(base, phase3) + [_seeded(m, seed) for seed in seeds for m in fielded]
        specs3 = [sp for sp in specs3 if sp.id not in records]
        if seeds:
            log(f"seeds {', '.join(map(str, seeds))}: {len(specs3)} runs to train")
            session.run(specs3)
        # Table 3, Figure 3: readouts on the frozen encoders of the full-width single-task runs
        readouts = (transfer.train_readouts(session, config, tasks, log=log)
                    if transfer is not None else None)
        records = session.records()

    full = fully_trained(records.values())
    results = _results(config, tasks, budgets, chosen_strategies, records, full, estimates,
                       raw_selections, c0, baselines,
                       [records[m.id] for m in mgda if m.id in records])
    if seeds:
        _score_seeds(results, config, records, by_name, mgda, seeds)
    if readouts is not None:
        results["relationships"]["transfer"] = transfer.transfer_section(
            readouts, results["relationships"].get("affinity"))
    for cand in results["candidates"]:
        cand["cost_measured"] = measured_snt.get(cand["width"])
    results = write_results(results, out / "results.json", version=RESULTS_VERSION,
                            required=RESULTS_KEYS)
    if config.search is None or config.search.keep_weights == "chosen":
        _keep_chosen_weights(out, results, log)
    from taskgrouper.report import write_report

    write_report(results, out)
    return results


def _keep_chosen_weights(out: Path, results: dict, log: Callable[[str], None]) -> None:
    """Delete ``best.pt`` of every run no strategy chose at any budget (``search.keep_weights:
    chosen``); the store keeps their results, so nothing is retrained."""
    names = {n for v in results["strategies"].values() for sel in v["selections"]
             for n in sel.get("networks") or []}
    keep = {c["run_id"] for c in results["candidates"] if c["id"] in names}
    freed = 0
    for weights in (out / "runs").glob("*/best.pt"):
        if weights.parent.name not in keep:
            freed += weights.stat().st_size
            weights.unlink()
    if freed:
        log(f"kept the weights of the {len(keep)} chosen networks; deleted the others' "
            f"({freed / 1e6:.0f} MB; search.keep_weights: all keeps them)")


def _baseline_networks(tasks: Sequence[str], budgets: Sequence[float], records,
                       by_name: Mapping[str, Candidate]) -> list[Candidate]:
    """The networks the all-in-one and independent baselines field at ``budgets`` (chosen on
    the first seed's validation losses, as they are scored): what the seeds phase repeats.
    Widths no budget uses are not trained again."""
    from taskgrouper.grouping import baselines as bl

    full = fully_trained(records.values())
    singles = [Network(n, r.width, r.val_losses) for n, r in full.items() if len(r.tasks) == 1]
    names = set()
    for entry in bl.independent(singles, None, budgets, tasks):
        names.update(entry.get("networks") or [])
    everything = [Network(n, r.width, r.val_losses) for n, r in full.items()
                  if len(r.tasks) == len(tasks)]
    for entry in bl.all_in_one(everything, None, budgets, tasks):
        names.update(entry.get("networks") or [])
    return [by_name[n] for n in sorted(names) if n in by_name]


def _extra_seeds(config: ExperimentConfig) -> list[int]:
    """The seeds after ``train.seed`` that scored networks train with (search.seeds - 1)."""
    n = config.search.seeds if config.search is not None else 1
    return [config.train.seed + k for k in range(1, n)]


def _seeded(spec, seed: int):
    """The MGDA-UB baseline's run with another seed."""
    from taskgrouper.runs.store import RunSpec

    cfg = json.loads(json.dumps(spec.config))
    cfg["train"]["seed"] = seed
    return RunSpec(f"{spec.id}-s{seed}", "seed", cfg, {**spec.tags, "seed": seed})


def _fielded_mgda(specs, records, budgets, tasks) -> list:
    """The MGDA-UB runs the baseline fields at some budget (on the first seed's validation
    losses, as it is scored): what the seeds phase repeats."""
    from taskgrouper.grouping import baselines as bl

    done = [records[m.id] for m in specs if m.id in records]
    nets = [Network(r.id, r.width, r.val_losses) for r in done]
    used = {n for e in bl.all_in_one(nets, None, budgets, tasks) for n in e.get("networks")}
    return [m for m in specs if m.id in used]


def _score_seeds(results: dict, config: ExperimentConfig, records, by_name, mgda,
                 seeds: Sequence[int]) -> None:
    """Add ``test_totals`` (seed ``train.seed`` first, then ``seeds``), their mean as
    ``test_total`` and its 95% interval to every selection and to the all-in-one, independent
    and MGDA-UB baselines (and the paper's score alike: ``test_totals_min``, mean
    ``test_total_min``), then the paired comparisons of each strategy with those baselines.

    Each seed is scored as the first: every task served by the entry's network with the lowest
    validation loss *of that seed*. Random and pessimal groupings stay on the first seed (their
    networks are the whole candidate pool)."""
    from taskgrouper.grouping.intervals import mean_interval, paired_difference

    mgda_ids = {m.id for m in mgda}

    def record(name: str, seed: int):
        if name in mgda_ids:
            return records.get(f"{name}-s{seed}")
        c = by_name.get(name)
        return None if c is None else records.get(c.full().with_seed(seed).run_id)

    def score(entry: dict) -> None:
        if not entry.get("networks") or entry.get("test_total") is None:
            return
        totals, mins = [entry["test_total"]], [entry.get("test_total_min")]
        for seed in seeds:
            runs = {n: record(n, seed) for n in entry["networks"]}
            if any(r is None for r in runs.values()):
                return  # a run failed or was not trained: no error bar for this entry
            _, _, total, least = _serve(runs, results["tasks"])
            totals.append(total)
            mins.append(least)
        interval = mean_interval(totals)
        entry.update(test_total_seed0=totals[0], test_totals=totals,
                     test_total=interval["mean"],
                     test_total_ci95=[interval["low"], interval["high"]])
        if mins[0] is not None:
            entry.update(test_totals_min=mins, test_total_min=sum(mins) / len(mins))

    for v in results["strategies"].values():
        for entry in v["selections"]:
            score(entry)
    baselines = results.get("baselines") or {}
    for name in ("all_in_one", "independent", MGDA_BALANCER):
        for entry in baselines.get(name, []):
            score(entry)
    comparisons: dict[str, list] = {}
    for strategy, v in results["strategies"].items():
        rows = []
        for k, entry in enumerate(v["selections"]):
            for against in ("all_in_one", "independent"):
                other = (baselines.get(against) or [{}] * (k + 1))[k]
                if entry.get("test_totals") and other.get("test_totals"):
                    rows.append({"budget": entry["budget"], "against": against,
                                 **paired_difference(entry["test_totals"],
                                                     other["test_totals"])})
        comparisons[strategy] = rows
    results["seeds"] = [config.train.seed, *seeds]
    results["comparisons"] = comparisons
    results["single_task_seeds"] = _single_task_seeds(results, records, seeds)


def _single_task_seeds(results: dict, records, seeds: Sequence[int]) -> dict:
    """Every single-task network trained with every seed: its test losses by seed, their mean,
    standard deviation and the deviation relative to the mean (the seed-to-seed noise a pair
    or width effect is measured against)."""
    from taskgrouper.grouping.intervals import mean_interval

    out = {}
    for c in results["candidates"]:
        if len(c["tasks"]) != 1:
            continue
        task = c["tasks"][0]
        runs = [records.get(f"{c['run_id']}-s{seed}") for seed in seeds]
        if any(r is None for r in runs):
            continue
        losses = [c["test"][task], *(r.test[task]["loss"] for r in runs)]
        stats = mean_interval(losses)
        mean, sd = stats["mean"], stats["sd"]
        out[c["id"]] = {"task": task, "width": c["width"], "test": losses, "mean": mean,
                        "sd": sd, "relative_sd": sd / mean if mean else None,
                        "ci95": [stats["low"], stats["high"]]}
    return out


def _serve(runs, tasks) -> tuple[dict[str, str], float, float, float]:
    """Each task served by the network of ``runs`` (name -> record) with the lowest validation
    loss for it (ties by name): the assignment, the validation and test totals, and the
    paper's test score (each task's lowest test loss among ``runs``)."""
    assignment, val_total, test_total, test_min = {}, 0.0, 0.0, 0.0
    for t in tasks:
        serving = [n for n in runs if t in runs[n].val]
        best = min(serving, key=lambda n: (runs[n].val[t]["loss"], n))
        assignment[t] = best
        val_total += runs[best].val[t]["loss"]
        test_total += runs[best].test[t]["loss"]
        test_min += min(runs[n].test[t]["loss"] for n in serving)
    return assignment, val_total, test_total, test_min


def _final_selection(budget: float, sel, full, tasks, estimate_total=None) -> dict:
    """Score a choice with its fully trained networks: assign by final validation loss."""
    if isinstance(sel, InfeasibleBudget):
        return {"budget": budget, "networks": [], "cost": None, "val_total": None,
                "test_total": None, "test_total_min": None, "assignment": {},
                "error": str(sel)}
    assignment, val_total, test_total, test_min = _serve({n: full[n] for n in sel.networks},
                                                         tasks)
    entry = {"budget": budget, "networks": list(sel.networks), "cost": sel.cost,
             "val_total": val_total, "test_total": test_total, "test_total_min": test_min,
             "assignment": assignment}
    if estimate_total is not None:
        entry["estimated_val_total"] = estimate_total
    entry["optimality_gap"] = sel.gap  # 0: proved optimal on the estimates it was chosen by
    return entry


def _compute(records, run_ids) -> dict[str, float]:
    used = [records[i] for i in sorted(set(run_ids)) if i in records]
    return {"train_samples": int(sum(r.train_samples for r in used)),
            "wall_s": float(math.fsum(r.wall_s for r in used)), "runs": len(used)}


def _results(config, tasks, budgets, strategies, records, full, estimates, raw_selections,
             c0, with_baselines, mgda=()) -> dict:
    candidates = []
    for name, r in sorted(full.items(), key=lambda kv: (len(kv[1].tasks), -kv[1].width,
                                                         kv[0])):
        candidates.append({
            "id": name, "run_id": r.id, "tasks": list(r.tasks), "width": r.width,
            "cost": r.width, "flops": 2 * r.cost.get("macs", 0),
            "params": r.cost.get("params"), "val": r.val_losses, "test": r.test_losses,
            "val_metrics": r.val, "test_metrics": r.test, "train_samples": r.train_samples,
            "wall_s": r.wall_s, "best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
            "stopped": r.extra.get("stopped")})
    by_name = {c.name: c for c in c0}
    final_val = {n: r.val_losses for n, r in full.items()}
    final_test = {n: r.test_losses for n, r in full.items()}
    out_strategies = {}
    for s in strategies:
        est = estimates[s.name]
        sels = [_final_selection(b, sel, full, tasks,
                                 None if isinstance(sel, InfeasibleBudget) else sel.total)
                for b, sel in zip(budgets, raw_selections[s.name], strict=True)]
        chosen = {n for sel in raw_selections[s.name] if not isinstance(sel, InfeasibleBudget)
                  for n in sel.networks}
        run_ids = list(est.runs) + [by_name[n].full().run_id for n in chosen]
        out_strategies[s.name] = {
            "compute": _compute(records, run_ids),
            "estimation_compute": _compute(records, est.runs),
            "selections": sels, "stats": s.stats(tasks, est, final_val, final_test)}
    main = strategies[0].name
    results: dict[str, Any] = {
        "title": f"taskgrouper search: {', '.join(tasks)}",
        "dataset": config.data.model_dump(mode="json"),
        "tasks": tasks, "budgets": budgets, "strategy": main,
        "compute": out_strategies[main]["compute"],
        "candidates": candidates,
        "selections": out_strategies[main]["selections"],
        "strategies": out_strategies,
    }
    if all(c.name in full for c in c0) and "exhaustive" in out_strategies:
        from taskgrouper.grouping.evaluation import evaluate_strategies

        truth = {c.name: full[c.name].val_losses for c in c0}
        results["evaluation"] = evaluate_strategies(
            out_strategies, {name: e.losses for name, e in estimates.items()}, truth)
    planted = _planted_groups(config)
    if planted is not None:
        from taskgrouper.grouping.evaluation import planted_agreement

        results["planted"] = {
            "groups": planted,
            "agreement": {name: planted_agreement(v["selections"], planted)
                          for name, v in out_strategies.items()}}
    if with_baselines:
        sc = config.search or SearchConfig()
        results["baselines"] = _baselines(tasks, budgets, full, c0, sc.random_trials, mgda,
                                          time_limit=sc.select_time_limit)
    results["relationships"] = _relationships(candidates, tasks)
    results["convergence"] = _convergence(config, tasks, full)
    return results


def _convergence(config: ExperimentConfig, tasks, full) -> dict:
    """How the fully trained networks ended: how many stopped early, by the schedule, or at
    the epoch cap, the all-task network's validation curve, and its test metrics beside the
    constant predictor's."""
    stops: dict[str, int] = {}
    for r in full.values():
        reason = r.extra.get("stopped") or "unknown"
        stops[reason] = stops.get(reason, 0) + 1
    everything = next((r for r in full.values() if len(r.tasks) == len(tasks)
                       and abs(r.width - 1.0) < 1e-9), None)
    return {"networks": len(full), "stopped": stops, "epochs": config.train.epochs,
            "all_task_curve": everything.extra.get("val_curve") if everything else None,
            "all_task_best_epoch": everything.best_epoch if everything else None,
            # does each task learn? the all-task network's test metrics beside those of the
            # constant predictor (the majority class, the training mean)
            "all_task_test": everything.test if everything else None,
            "constant_test": getattr(everything, "constant_test", None) if everything else None}


def _planted_groups(config: ExperimentConfig) -> list[list[str]] | None:
    """The groups of a planted task family (``planted.json`` beside an array dataset), kept
    to the searched tasks; None for any other dataset."""
    if config.data.kind != "arrays" or not config.data.path:
        return None
    path = Path(config.data.path) / "planted.json"
    if not path.is_file():
        return None
    try:
        groups = json.loads(path.read_text())["groups"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    tasks = set(config.tasks or [t for g in groups for t in g])
    kept = [[t for t in g if t in tasks] for g in groups]
    return [g for g in kept if g]


def _baselines(tasks, budgets, full, c0, trials, mgda=(), time_limit=60.0) -> dict:
    from taskgrouper.grouping import baselines as bl

    def nets(names, split):
        return [Network(n, full[n].width, getattr(full[n], f"{split}_losses"))
                for n in names if n in full]

    singles = [n for n in full if len(full[n].tasks) == 1]
    everything = [n for n in full if len(full[n].tasks) == len(tasks)]
    pool = [c.name for c in c0 if c.name in full]
    out = {
        "all_in_one": bl.all_in_one(nets(everything, "val"), nets(everything, "test"),
                                    budgets, tasks),
        "independent": bl.independent(nets(singles, "val"), nets(singles, "test"), budgets,
                                      tasks),
        "random": bl.random_groupings(nets(pool, "val"), nets(pool, "test"), budgets, tasks,
                                      trials=trials),
        "pessimal": bl.pessimal(nets(pool, "val"), nets(pool, "test"), budgets, tasks,
                                time_limit=time_limit),
    }
    if mgda:  # the all-task network trained with MGDA-UB, the best width that fits
        out[MGDA_BALANCER] = bl.all_in_one([Network(m.id, m.width, m.val_losses) for m in mgda],
                                           [Network(m.id, m.width, m.test_losses) for m in mgda],
                                           budgets, tasks)
    return out


def _relationships(candidates, tasks) -> dict:
    from taskgrouper.grouping.relationships import relationships

    return relationships(candidates, tasks, "test")
