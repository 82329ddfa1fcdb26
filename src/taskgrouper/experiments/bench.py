"""``taskgrouper bench``: the benchmark protocol of Vandenhende et al. (2021), Sec. 4.

The protocol (Sec. 4.1), over whatever rows :data:`~taskgrouper.models.arch.ARCH_TABLE` and
:data:`~taskgrouper.balancing.BALANCERS` hold when it runs:

1. **Single-task baselines**: one network per task with the same backbone and width
   (``hard_sharing`` with one task, ``uniform``): the reference ``b`` of Delta_MTL.
2. **Models**: every architecture x balancer pair the ``bench`` section names (default: the
   whole of both tables; ``pairs`` with ``"*"`` gives the survey's Table V layout), each
   trained on all the tasks. A pair that a table flag forbids (a gradient balancer on an
   architecture without shared parameters, a representation balancer on one without a shared
   representation, ``jtrl`` with more than two tasks, an image-only architecture on vectors)
   is not trained and is listed under ``skipped`` with the reason.
3. **Grid** (optional, Table IV): every model and every baseline trains at every grid point
   (optimiser x batch size x learning rate). A model reports the point with the best
   *validation* Delta_MTL (against the baselines' validation metrics); a baseline the point
   with the lowest validation loss of its task. Every point is kept in ``bench.json``.
4. **Seeds** (``bench.seeds: N``): the grid point is chosen on the first seed
   (``train.seed``); the chosen point of every model and baseline then trains with the next
   ``N - 1`` seeds. Seed k of a model is scored against seed k of the single-task networks,
   and a row reports the mean of its per-seed Delta_MTL with the 95% Student-t interval.
5. **Initialisation**: an architecture with a ``pretrained`` option (cross-stitch, NDDR-CNN)
   starts from the bench's own single-task networks of the same seed and grid point, as
   their papers initialise them (``bench.single_task_init: false``: from scratch); those
   models train once their single-task networks have finished.
6. **Scores** (Eq. 10, Table V): per-task test metrics (the metrics each task spec lists),
   FLOPs and parameters, and Delta_MTL on the test split over every (task, metric) pair::

       Delta_MTL = (1/T) sum_i (-1)^{l_i} (M_m,i - M_b,i) / M_b,i     (in %)

Runs go through :func:`taskgrouper.runs.run_sweep`, so the store is ``DIR/runs.sqlite`` and a
second call on the same folder trains nothing (run ids hash each run's config, so changing the
``bench`` section adds runs and keeps the finished ones). A run that fails (a NaN loss) is
listed under ``failed`` with its message, its model row keeps its other grid points (or
reports the error), and every other run completes; calling again retries only the failures.

``DIR/bench.json`` (strict JSON; undefined numbers are ``null``)::

    {"version", "title", "tasks", "dataset", "backbone", "width",
     "task_metrics": {task: [metric, ...]}, "delta_metrics": {"mode": "headline" | "all",
     "metrics": {task: [metric, ...]}} (what Delta_MTL averages over),
     "lower_is_better": {metric: bool},
     "grid": [{"optimizer", "batch_size", "lr"}, ...], "seeds": [seed, ...],
     "baselines": {task: {metric: value}},   # test metrics of the single-task nets (seed mean)
     "single_task": {task: {"run_id", "flops", "params", "metrics", "val_metrics",
                            "train_samples", "wall_s", "grid": {...},
                            "seeds": [{"seed", "run_id", "metrics", "val_metrics"}]}},
     "rows": [{"architecture", "balancer", "backbone", "flops", "params",
               "metrics": {task: {metric: value}} (seed means), "val_metrics",
               "delta_mtl" (mean over seeds), "delta_interval": {"mean", "sd", "low", "high",
               "half_width", "n"}, "val_delta_mtl" (first seed), "train_samples", "wall_s",
               "run_id", "error", "extra": {"stopped", "adashare"?} (first seed's run),
               "seeds": [{"seed", "run_id", "metrics", "delta_mtl", "extra"}],
               "grid": {"chosen": point, "points": [...], "train_samples", "wall_s"}}],
     "skipped": [{"architecture", "balancer", "reason"}],
     "failed": [{"run_id", "architecture", "balancer", "task", "grid", "seed", "error"}],
     "compute": {"runs", "train_samples", "wall_s"}}

``flops`` counts two per multiply-add (as :class:`torch.utils.flop_counter.FlopCounterMode`
does) for one sample at the real input size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskgrouper.config import BenchConfig, ExperimentConfig, GridConfig, TrainConfig
from taskgrouper.errors import InputError
from taskgrouper.experiments.base import load_data, open_session, run_config, write_results

__all__ = ["BENCH_FILE", "BENCH_VERSION", "GridPoint", "format_bench", "grid_points",
           "plan_models", "run_bench"]

#: The benchmark's output file inside its folder.
BENCH_FILE = "bench.json"
#: Version of the ``bench.json`` layout.
BENCH_VERSION = 1
#: Keys every bench.json holds (the layout in the module doc).
BENCH_KEYS = ("title", "tasks", "task_metrics", "baselines", "single_task", "rows", "skipped",
              "failed", "compute")
#: The single-task baselines' architecture and balancer (the survey's "single task" row).
BASELINE_ARCH = "hard_sharing"
BASELINE_BALANCER = "uniform"
#: ``"*"`` in ``bench.pairs``: every name of the corresponding list.
ANY = "*"


@dataclass(frozen=True)
class GridPoint:
    """One hyperparameter setting of the grid (Vandenhende et al. 2021, Table IV)."""

    optimizer: str
    batch_size: int
    lr: float

    def as_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "batch_size": self.batch_size, "lr": self.lr}

    @property
    def label(self) -> str:
        """``adam bs16 lr0.002``."""
        return f"{self.optimizer} bs{self.batch_size} lr{self.lr:g}"


def grid_points(train: TrainConfig, grid: GridConfig | None) -> list[GridPoint]:
    """Every grid point, in the order optimizer x batch size x learning rate.

    A list the grid leaves out keeps the ``train`` section's value; a per-optimiser ``lr``
    mapping gives each optimiser its own rates (an optimiser it does not name keeps
    ``train.lr``). Without a grid, the one point of the ``train`` section.
    """
    grid = grid or GridConfig()
    optimizers = grid.optimizer or [train.optimizer]
    batches = grid.batch_size or [train.batch_size]
    points: list[GridPoint] = []
    for opt in dict.fromkeys(optimizers):
        if isinstance(grid.lr, Mapping):
            rates = grid.lr.get(opt) or [train.lr]
        else:
            rates = grid.lr or [train.lr]
        for bs, lr in itertools.product(dict.fromkeys(batches), dict.fromkeys(rates)):
            points.append(GridPoint(str(opt), int(bs), float(lr)))
    return points


def _tables() -> tuple[dict[str, Any], dict[str, Any]]:
    """The architecture and balancer rows as they are now (read at call time, not import)."""
    from taskgrouper import balancing
    from taskgrouper.models import arch

    return ({a.name: a for a in arch.ARCH_TABLE}, {b.name: b for b in balancing.BALANCERS})


def _check_names(bench: BenchConfig, archs: Mapping[str, Any],
                 bals: Mapping[str, Any]) -> None:
    """Every name the bench section uses is a table row (or ``"*"`` in ``pairs``)."""
    from taskgrouper.tasks import closest

    def check(key: str, name: str, known: Mapping[str, Any], what: str, wildcard: bool = False):
        if name in known or (wildcard and name == ANY):
            return
        choices = [*known, ANY] if wildcard else list(known)
        raise InputError(f"{key}: unknown {what} '{name}'; {closest(name, choices)}")

    for name in bench.architectures or []:
        check("bench.architectures", name, archs, "architecture")
    for name in bench.balancers or []:
        check("bench.balancers", name, bals, "balancer")
    for i, (a, b) in enumerate(bench.pairs or []):
        check(f"bench.pairs[{i}]", a, archs, "architecture", wildcard=True)
        check(f"bench.pairs[{i}]", b, bals, "balancer", wildcard=True)
    for name in bench.model_options:
        check("bench.model_options", name, archs, "architecture")
    for name in bench.balancer_options:
        check("bench.balancer_options", name, bals, "balancer")


def plan_models(bench: BenchConfig, n_tasks: int, spatial: bool
                ) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """The (architecture, balancer) models to train, and the skipped ones with reasons.

    Args:
        bench: The ``bench`` section.
        n_tasks: Number of tasks.
        spatial: Whether the inputs are images.

    Returns:
        ``(models, skipped)``: models in table order (pairs: in the order given, ``"*"``
        expanded in list order, repeats dropped); ``skipped`` entries are
        ``{"architecture", "balancer", "reason"}``.

    Raises:
        ValueError: a name that is not a row of its table (with the closest name).
    """
    from taskgrouper.train.compat import incompatibility

    archs, bals = _tables()
    _check_names(bench, archs, bals)
    arch_names = list(dict.fromkeys(bench.architectures or archs))
    bal_names = list(dict.fromkeys(bench.balancers or bals))
    if bench.pairs:
        wanted: list[tuple[str, str]] = []
        for a, b in bench.pairs:
            for a2 in (arch_names if a == ANY else [a]):
                wanted += [(a2, b2) for b2 in (bal_names if b == ANY else [b])]
    else:
        wanted = list(itertools.product(arch_names, bal_names))
    models, skipped = [], []
    for a, b in dict.fromkeys(wanted):
        why = incompatibility(archs[a], bals[b], n_tasks, spatial)
        if why is None:
            models.append((a, b))
        else:
            skipped.append({"architecture": a, "balancer": b, "reason": why})
    return models, skipped


def _run_config(base: Mapping[str, Any], config: ExperimentConfig, tasks: Sequence[str],
                arch: str, bal: str, point: GridPoint) -> dict[str, Any]:
    """One run's config: the experiment with this model, these tasks and this grid point."""
    from taskgrouper.balancing import balancer_info

    bench = config.bench or BenchConfig()
    cfg = run_config(base, tasks)
    model_options = dict(config.model.options) if arch == config.model.architecture else {}
    model_options.update(bench.model_options.get(arch, {}))
    cfg["model"]["architecture"] = arch
    cfg["model"]["options"] = model_options
    bal_options = dict(config.balancer.options) if bal == config.balancer.name else {}
    bal_options.update(bench.balancer_options.get(bal, {}))
    weights = cfg["balancer"]["weights"] if "weights" in balancer_info(bal).params else None
    cfg["balancer"] = {"name": bal, "weights": weights, "options": bal_options}
    cfg["train"].update(point.as_dict())
    return cfg


@dataclass(frozen=True)
class _Planned:
    """A spec of the bench and what it is for."""

    spec: Any  # RunSpec
    role: str  # "model" or "single_task"
    architecture: str
    balancer: str
    task: str | None
    point: GridPoint
    seed: int


def _seeds(config: ExperimentConfig) -> list[int]:
    """The seeds every scored run trains with: ``train.seed`` and the next ``bench.seeds - 1``."""
    n = config.bench.seeds if config.bench is not None else 1
    return [config.train.seed + k for k in range(n)]


def _inits_from_single_task(config: ExperimentConfig, arch: str) -> bool:
    """Whether ``arch`` starts from the bench's single-task networks (it has a ``pretrained``
    option, the bench asks for it, and the config does not name checkpoints itself)."""
    from taskgrouper.models.arch import arch_info

    bench = config.bench or BenchConfig()
    given = dict(config.model.options) if arch == config.model.architecture else {}
    given.update(bench.model_options.get(arch, {}))
    return (bench.single_task_init and "pretrained" in arch_info(arch).options
            and given.get("pretrained") is None)


class _Planner:
    """Builds the bench's specs: single-task baselines and models at a grid point and seed."""

    def __init__(self, config: ExperimentConfig, tasks: Sequence[str], out: Path):
        self.config, self.tasks, self.out = config, list(tasks), out
        self.base = config.model_dump(mode="json")

    def _add(self, role, arch, bal, run_tasks, task, point, seed, group,
             options: Mapping[str, Any] | None = None) -> _Planned:
        from taskgrouper.config import parse_config
        from taskgrouper.runs.store import RunSpec, make_run_id
        from taskgrouper.train.compat import check_compatible

        cfg = _run_config(self.base, self.config, run_tasks, arch, bal, point)
        cfg["train"]["seed"] = seed
        cfg["model"]["options"].update(options or {})
        where = (f"single-task baseline '{task}'" if role == "single_task"
                 else f"bench model {arch} + {bal}")
        try:
            check_compatible(parse_config(cfg, source=where))
        except ValueError as err:
            raise InputError(f"{where}: {err}") from None
        tags = {"role": role, "architecture": arch, "balancer": bal, "grid": point.as_dict(),
                "seed": seed}
        spec = RunSpec(make_run_id(group, cfg), "bench" if role == "model" else "single_task",
                       cfg, tags)
        return _Planned(spec, role, arch, bal, task, point, seed)

    def single(self, task: str, point: GridPoint, seed: int) -> _Planned:
        return self._add("single_task", BASELINE_ARCH, BASELINE_BALANCER, [task], task, point,
                         seed, "single")

    def model(self, arch: str, bal: str, point: GridPoint, seed: int) -> tuple[
            _Planned, list[_Planned]]:
        """The model's spec and the single-task specs it starts from (none for most)."""
        if not _inits_from_single_task(self.config, arch):
            return self._add("model", arch, bal, self.tasks, None, point, seed,
                             f"{arch}.{bal}"), []
        sources = [self.single(t, point, seed) for t in self.tasks]
        folders = {p.task: str(self.out / "runs" / p.spec.id) for p in sources}
        return self._add("model", arch, bal, self.tasks, None, point, seed, f"{arch}.{bal}",
                         {"pretrained": folders}), sources


def _run_in_order(session, planned: Sequence[_Planned], sources: Sequence[_Planned]
                  ) -> dict[str, str]:
    """Train ``planned`` (and the single-task ``sources`` models start from): first every run
    that starts from scratch, then the models that start from trained single-task networks;
    returns run id -> error of the runs that failed."""
    from taskgrouper.runs.sweep import SweepError

    def later(p: _Planned) -> bool:
        return p.role == "model" and "pretrained" in p.spec.config["model"]["options"] \
            and any(s.seed == p.seed for s in sources)

    first = list({p.spec.id: p.spec for p in [*planned, *sources] if not later(p)}.values())
    second = list({p.spec.id: p.spec for p in planned if later(p)}.values())
    failures: dict[str, str] = {}
    for phase in (first, second):
        try:
            session.run(phase)
        except SweepError as err:
            failures.update(err.failures)
    return failures


def run_bench(config: ExperimentConfig, out_dir: str | Path, *, workers: int = 1,
              executor=None, progress: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark; write ``bench.json``, ``report.md`` and ``report.html``.

    Args:
        config: The experiment; its ``bench`` section picks the models and the grid (none:
            every architecture x every balancer at the ``train`` section's settings).
        out_dir: The bench folder (store, run folders, bench.json, report). An existing one is
            resumed: finished runs are not repeated.
        workers: Parallel training processes on this machine.
        executor: An executor instance instead of the local pool.
        progress: Progress bars.
        log: Where status lines go.

    Returns:
        The ``bench.json`` object.

    Raises:
        ValueError: an unknown architecture or balancer name (with the closest one), bad
            options, fewer than two tasks, or a bad config (before anything trains).
    """
    bench = config.bench or BenchConfig()
    _check_names(bench, *_tables())  # before any data is loaded
    data = load_data(config, log)
    tasks = list(data.tasks)
    if len(tasks) < 2:
        raise InputError(f"tasks: a bench compares multi-task networks with single-task ones; "
                         f"give at least two tasks (got {', '.join(tasks) or 'none'})")
    spatial = len(data.input_shape) == 3
    models, skipped = plan_models(bench, len(tasks), spatial)
    points = grid_points(config.train, bench.grid)
    seeds = _seeds(config)
    out = Path(out_dir)
    planner = _Planner(config, tasks, out)
    # Phase 1: every grid point with the first seed (the choice is made on its validation).
    planned = [planner.single(t, point, seeds[0]) for t in tasks for point in points]
    sources: list[_Planned] = []
    for arch, bal in models:
        for point in points:
            spec, srcs = planner.model(arch, bal, point, seeds[0])
            planned.append(spec)
            sources += srcs
    planned_ids = {p.spec.id for p in planned}
    for s in skipped:
        log(f"skipped {s['architecture']} + {s['balancer']}: {s['reason']}")

    with open_session(out, data, workers=workers, executor=executor, progress=progress,
                      log=log) as session:
        log(f"bench: {len(models)} models x {len(points)} grid point(s) and {len(tasks)} "
            f"single-task baselines, seed {seeds[0]}: {len(planned)} runs "
            f"({session.todo([p.spec for p in planned])} to train)")
        failures = _run_in_order(session, planned, sources)
        records = {p.spec.id: session.store.get(p.spec.id) for p in planned}
        if len(seeds) > 1:  # Phase 2: the chosen points with the other seeds
            chosen = _chosen_points(config, data, tasks, planned, records, failures)
            more: list[_Planned] = []
            more_sources: list[_Planned] = []
            for seed in seeds[1:]:
                more += [planner.single(t, chosen[t], seed) for t in tasks if t in chosen]
                for arch, bal in models:
                    if (arch, bal) in chosen:
                        spec, srcs = planner.model(arch, bal, chosen[(arch, bal)], seed)
                        more.append(spec)
                        more_sources += srcs
            log(f"seeds {', '.join(map(str, seeds[1:]))}: {len(more)} runs at the chosen "
                f"grid points ({session.todo([p.spec for p in more])} to train)")
            failures.update(_run_in_order(session, more, more_sources))
            planned += more
            records.update({p.spec.id: session.store.get(p.spec.id) for p in more})
        extra = [p for p in [*sources] if p.spec.id not in planned_ids]
        records.update({p.spec.id: session.store.get(p.spec.id) for p in extra})

    results = write_results(_results(config, data, tasks, planned, records, failures, skipped,
                                     points, seeds), out / BENCH_FILE,
                            version=BENCH_VERSION, required=BENCH_KEYS)
    from taskgrouper.report.bench import write_bench_report

    write_bench_report(results, out)
    return results


# --------------------------------------------------------------------------------- scoring


def _metrics_of(values: Mapping[str, Mapping[str, float]],
                task_metrics: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """The standard metrics of each task (the loss and anything else dropped)."""
    return {t: {m: values[t][m] for m in names if m in values.get(t, {})}
            for t, names in task_metrics.items() if t in values}


def delta_metrics(task_metrics: Mapping[str, Sequence[str]],
                  mode: str = "headline") -> dict[str, list[str]]:
    """The (task, metric) pairs Delta_MTL averages over: each task's headline metric (its
    first) for ``headline``, every metric for ``all``."""
    if mode not in ("headline", "all"):
        raise InputError(f"bench.delta_metrics must be 'headline' or 'all', got {mode!r}")
    return {t: list(ms[:1] if mode == "headline" else ms) for t, ms in task_metrics.items()}


def _delta(model, baseline, task_metrics) -> tuple[float | None, str | None]:
    """Delta_MTL (%) over ``task_metrics`` and None, or None and why it is undefined."""
    from taskgrouper.evaluate.metrics import delta_mtl

    if model is None or baseline is None:
        return None, "single-task baselines missing" if baseline is None else "no result"
    try:
        return delta_mtl(model, baseline, metrics=task_metrics), None
    except ValueError as err:
        return None, str(err)


def _point_entry(p: _Planned, record, failures: Mapping[str, str], task_metrics,
                 base_val, base_test, scored=None) -> dict[str, Any]:
    entry: dict[str, Any] = {**p.point.as_dict(), "run_id": p.spec.id}
    if record is None:
        entry.update(status="failed",
                     error=failures.get(p.spec.id, "not trained (interrupted)"))
        return entry
    val = _metrics_of(record.val, task_metrics)
    test = _metrics_of(record.test, task_metrics)
    entry.update(status="done", metrics=test, val_metrics=val,
                 losses=record.test_losses, val_losses=record.val_losses,
                 flops=2 * int(record.cost.get("macs", 0)), params=record.cost.get("params"),
                 train_samples=record.train_samples, wall_s=record.wall_s)
    if p.role == "model":
        scored = scored or task_metrics
        entry["val_delta_mtl"], why_val = _delta(val, base_val, scored)
        entry["delta_mtl"], why_test = _delta(test, base_test, scored)
        if why_val or why_test:
            entry["delta_error"] = why_test or why_val
    return entry


def choose_point(points: Sequence[Mapping[str, Any]], key: Callable[[Mapping], float | None],
                 higher: bool) -> int | None:
    """Index of the finished point with the best ``key`` (first on ties), else of the first
    finished point when no key is defined, else None."""
    done = [i for i, p in enumerate(points) if p.get("status") == "done"]
    scored = [(key(points[i]), i) for i in done]
    scored = [(v, i) for v, i in scored if v is not None and math.isfinite(v)]
    if scored:
        best = max(v for v, _ in scored) if higher else min(v for v, _ in scored)
        return next(i for v, i in scored if v == best)
    return done[0] if done else None


def _grid_summary(entries: list[dict[str, Any]], chosen: int | None) -> dict[str, Any]:
    for i, e in enumerate(entries):
        e["chosen"] = i == chosen
    done = [e for e in entries if e["status"] == "done"]
    return {"chosen": None if chosen is None else {k: entries[chosen][k] for k in
                                                   ("optimizer", "batch_size", "lr")},
            "points": entries,
            "train_samples": int(sum(e["train_samples"] for e in done)),
            "wall_s": float(math.fsum(e["wall_s"] for e in done))}


def _index(planned: Sequence[_Planned]) -> dict[tuple, _Planned]:
    """(role, architecture, balancer, task, point, seed) -> the planned run."""
    return {(p.role, p.architecture, p.balancer, p.task, p.point, p.seed): p for p in planned}


def _first_seed_grid(config, data, tasks, planned, records, failures) -> dict[Any, tuple]:
    """The first seed's grid: task or (architecture, balancer) -> (planned runs, entries,
    index of the chosen point or None), chosen as the survey chooses (module doc)."""
    task_metrics = {t: list(data.tasks[t].metrics) for t in tasks}
    mode = config.bench.delta_metrics if config.bench is not None else "headline"
    scored = delta_metrics(task_metrics, mode)
    first = _seeds(config)[0]
    out: dict[Any, tuple] = {}
    for task in tasks:
        mine = [p for p in _index(planned).values() if p.role == "single_task"
                and p.task == task and p.seed == first]
        entries = [_point_entry(p, records.get(p.spec.id), failures, task_metrics, None, None)
                   for p in mine]
        out[task] = (mine, entries, choose_point(
            entries, lambda e, t=task: (e.get("val_losses") or {}).get(t), higher=False))
    complete = all(out[t][2] is not None for t in tasks)
    base_test = {t: out[t][1][out[t][2]]["metrics"][t] for t in tasks} if complete else None
    base_val = ({t: out[t][1][out[t][2]]["val_metrics"][t] for t in tasks}
                if complete else None)
    keys = list(dict.fromkeys((p.architecture, p.balancer) for p in planned
                              if p.role == "model"))
    for key in keys:
        mine = [p for p in planned if p.role == "model" and (p.architecture, p.balancer) == key
                and p.seed == first]
        entries = [_point_entry(p, records.get(p.spec.id), failures, task_metrics, base_val,
                                base_test, scored) for p in mine]
        out[key] = (mine, entries,
                    choose_point(entries, lambda e: e.get("val_delta_mtl"), higher=True))
    return out


def _chosen_points(config, data, tasks, planned, records, failures) -> dict[Any, GridPoint]:
    """Task or (architecture, balancer) -> the grid point chosen on the first seed."""
    grid = _first_seed_grid(config, data, tasks, planned, records, failures)
    return {k: mine[i].point for k, (mine, _, i) in grid.items() if i is not None}


def _mean_metrics(runs: Sequence[Mapping[str, Mapping[str, float]]]
                  ) -> dict[str, dict[str, float]]:
    """Each (task, metric)'s mean over the runs that have it."""
    out: dict[str, dict[str, float]] = {}
    for t in dict.fromkeys(t for r in runs for t in r):
        names = dict.fromkeys(m for r in runs for m in r.get(t, {}))
        for m in names:
            values = [r[t][m] for r in runs if r.get(t, {}).get(m) is not None]
            values = [v for v in values if math.isfinite(v)]
            if values:
                out.setdefault(t, {})[m] = math.fsum(values) / len(values)
    return out


def _interval(values: Sequence[float]) -> dict[str, Any] | None:
    """Mean and 95% interval over seeds (None without a value)."""
    from taskgrouper.grouping.intervals import mean_interval

    values = [v for v in values if v is not None and math.isfinite(v)]
    return None if not values else mean_interval(values)


def _results(config, data, tasks, planned, records, failures, skipped, points, seeds) -> dict:
    from taskgrouper.evaluate.metrics import LOWER_IS_BETTER

    task_metrics = {t: list(data.tasks[t].metrics) for t in tasks}
    names = sorted({m for ms in task_metrics.values() for m in ms})
    mode = config.bench.delta_metrics if config.bench is not None else "headline"
    scored = delta_metrics(task_metrics, mode)
    grid = _first_seed_grid(config, data, tasks, planned, records, failures)
    index = _index(planned)

    def seed_run(role, arch, bal, task, point, seed) -> tuple[_Planned | None, Any]:
        p = index.get((role, arch, bal, task, point, seed))
        return p, (records.get(p.spec.id) if p is not None else None)

    # Single-task baselines: per task, the grid point with the lowest validation loss of the
    # first seed; every seed at that point.
    single: dict[str, dict[str, Any]] = {}
    base_by_seed: dict[int, dict[str, dict[str, float]]] = {}
    for task in tasks:
        mine, entries, chosen = grid[task]
        summary = _grid_summary(entries, chosen)
        best = entries[chosen] if chosen is not None else {}
        per_seed = []
        for seed in seeds if chosen is not None else []:
            p, record = seed_run("single_task", BASELINE_ARCH, BASELINE_BALANCER, task,
                                 mine[chosen].point, seed)
            if record is None:
                continue
            metrics = _metrics_of(record.test, task_metrics)
            per_seed.append({"seed": seed, "run_id": p.spec.id, "metrics": metrics,
                             "val_metrics": _metrics_of(record.val, task_metrics)})
            base_by_seed.setdefault(seed, {})[task] = metrics[task]
        mean = _mean_metrics([e["metrics"] for e in per_seed])
        single[task] = {"run_id": best.get("run_id"), "flops": best.get("flops"),
                        "params": best.get("params"),
                        "metrics": mean or best.get("metrics"),
                        "val_metrics": best.get("val_metrics"),
                        "train_samples": best.get("train_samples"),
                        "wall_s": best.get("wall_s"), "grid": summary, "seeds": per_seed,
                        "error": None if chosen is not None else entries[0].get("error")}
    complete_seeds = [s for s in seeds if len(base_by_seed.get(s, {})) == len(tasks)]

    rows, failed = [], []
    for key in (k for k in grid if isinstance(k, tuple)):
        arch, bal = key
        mine, entries, chosen = grid[key]
        summary = _grid_summary(entries, chosen)
        best = entries[chosen] if chosen is not None else {}
        per_seed, deltas = [], []
        for seed in seeds if chosen is not None else []:
            p, record = seed_run("model", arch, bal, None, mine[chosen].point, seed)
            if record is None:
                continue
            metrics = _metrics_of(record.test, task_metrics)
            delta, why = (_delta(metrics, base_by_seed[seed], scored)
                          if seed in complete_seeds else (None, "single-task baselines missing"))
            per_seed.append({"seed": seed, "run_id": p.spec.id, "metrics": metrics,
                             "delta_mtl": delta, "extra": _run_extra(record),
                             **({"delta_error": why} if why else {})})
            if delta is not None:
                deltas.append(delta)
        interval = _interval(deltas)
        rows.append({
            "architecture": arch, "balancer": bal, "backbone": config.model.backbone,
            "flops": best.get("flops"), "params": best.get("params"),
            "metrics": _mean_metrics([e["metrics"] for e in per_seed]) or best.get("metrics"),
            "val_metrics": best.get("val_metrics"),
            "delta_mtl": interval["mean"] if interval else best.get("delta_mtl"),
            "delta_interval": interval,
            "val_delta_mtl": best.get("val_delta_mtl"),
            "train_samples": best.get("train_samples"), "wall_s": best.get("wall_s"),
            "run_id": best.get("run_id"), "seeds": per_seed,
            "extra": _run_extra(records.get(best.get("run_id"))),
            "error": (entries[0].get("error") if chosen is None
                      else best.get("delta_error")),
            "grid": summary})
    for p in index.values():
        if records.get(p.spec.id) is None:
            failed.append({"run_id": p.spec.id, "architecture": p.architecture,
                           "balancer": p.balancer, "task": p.task, "grid": p.point.as_dict(),
                           "seed": p.seed,
                           "error": failures.get(p.spec.id, "not trained (interrupted)")})

    done = [r for r in records.values() if r is not None]
    return {
        "title": f"taskgrouper bench: {', '.join(tasks)}",
        "tasks": list(tasks),
        "dataset": config.data.model_dump(mode="json"),
        "backbone": config.model.backbone,
        "width": config.model.width,
        "task_metrics": task_metrics,
        "delta_metrics": {"mode": mode, "metrics": scored},
        "lower_is_better": {m: LOWER_IS_BETTER[m] for m in names if m in LOWER_IS_BETTER},
        "grid": [p.as_dict() for p in points],
        "seeds": list(seeds),
        "baselines": {t: single[t]["metrics"][t] for t in tasks
                      if single[t]["metrics"] is not None},
        "single_task": single,
        "rows": rows,
        "skipped": list(skipped),
        "failed": failed,
        "compute": {"runs": len(done), "train_samples": int(sum(r.train_samples for r in done)),
                    "wall_s": float(math.fsum(r.wall_s for r in done))},
    }


def _run_extra(record) -> dict[str, Any]:
    """What a run reports beside its metrics that a bench reader wants (AdaShare's policy,
    why training stopped)."""
    if record is None:
        return {}
    extra = getattr(record, "extra", None) or {}
    return {k: extra[k] for k in ("stopped", "adashare") if k in extra}


# --------------------------------------------------------------------------------- summary


def format_bench(results: Mapping[str, Any], out: str | Path | None = None) -> str:
    """A plain-text Table V: one line per model, sorted by Delta_MTL (best first)."""
    tasks = results["tasks"]
    heads = {t: results["task_metrics"][t][0] for t in tasks}
    lower = results.get("lower_is_better", {})
    lines = []
    cols = [f"{t} {heads[t]}{'↓' if lower.get(heads[t]) else '↑'}" for t in tasks]
    lines.append(f"{'model':<34}" + "".join(f"{c:>14}" for c in cols)
                 + f"{'params(M)':>11}{'ΔMTL %':>9}")

    def line(name, metrics, params, delta):
        cells = "".join(f"{_num(metrics, t, heads[t]):>14}" for t in tasks)
        p = f"{params / 1e6:.3g}" if params is not None else "-"
        d = f"{delta:+.2f}" if delta is not None else "-"
        return f"{name:<34}{cells}{p:>11}{d:>9}"

    single = results.get("single_task", {})
    base_params = [single[t].get("params") for t in tasks]
    base = {t: results["baselines"].get(t) for t in tasks}
    entries = [(line("single task (" + BASELINE_ARCH + ")", base,
                     sum(base_params) if None not in base_params else None,
                     0.0 if len(results["baselines"]) == len(tasks) else None), 0.0)]
    for r in results["rows"]:
        entries.append((line(f"{r['architecture']} + {r['balancer']}", r.get("metrics") or {},
                             r.get("params"), r.get("delta_mtl")),
                        r.get("delta_mtl") if r.get("delta_mtl") is not None else -math.inf))
    lines += [text for text, _ in sorted(entries, key=lambda e: -e[1])]
    for s in results.get("skipped", []):
        lines.append(f"skipped {s['architecture']} + {s['balancer']}: {s['reason']}")
    for f in results.get("failed", []):
        lines.append(f"failed {f['run_id']}: {f['error']}")
    c = results.get("compute", {})
    lines.append(f"{c.get('runs', 0)} runs, {c.get('train_samples', 0)} training samples, "
                 f"{c.get('wall_s', 0.0):.0f} run-seconds")
    if out is not None:
        lines.append(f"wrote {out}/{BENCH_FILE}, report.md, report.html, runs.sqlite")
    return "\n".join(lines)


def _num(metrics: Mapping[str, Any], task: str, name: str) -> str:
    value = (metrics.get(task) or {}).get(name)
    return "-" if value is None else f"{value:.4g}"
