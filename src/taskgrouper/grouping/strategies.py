"""Search strategies: which networks to train, and the losses selection sees.

A strategy is an object with one lifecycle (Standley et al., 2020, Sec. 3.3), which the search
driver (:mod:`taskgrouper.experiments.search`) walks for every strategy it runs:

1. :meth:`Strategy.plan`: the candidate runs to train first (phase 1);
2. :meth:`Strategy.calibration`: more runs chosen from what phase 1 measured (phase 1b; none
   for most strategies);
3. :meth:`Strategy.estimate`: from the measured validation losses, an :class:`Estimate`: a
   per-network, per-task loss for every network of :meth:`Strategy.selectable` (measured or
   predicted), the runs it was made from, and what the strategy fitted on the way;
4. selection chooses at every budget from those losses, and the chosen networks are trained to
   convergence (phase 2, the same for every strategy) and scored on the test split;
5. :meth:`Strategy.stats`: what the strategy reports about its estimate once the chosen and
   baseline networks are trained (e.g. ESA's correlation with the final losses).

- :class:`Exhaustive`: every candidate trained to convergence; selection on the real losses.
- :class:`ESA` (early stopping approximation, Sec. 3.3.1): every candidate trained for
  ``epochs`` passes through ``fraction`` of the training data; selection on those early losses.
- :class:`HOA` (higher-order approximation, Sec. 3.3.2): all networks of one and two tasks
  trained to convergence; the loss of a network with three or more tasks on task ``t`` is
  predicted as the mean of ``t``'s loss over the two-task networks it contains.
- :class:`Affinity` (``lookahead`` and ``gradcos``, beyond the paper): one all-task network
  trained to convergence while it records task affinities (:mod:`taskgrouper.train.affinity`),
  plus the single-task networks at every width; then the calibration pairs (each task with its
  ``pairs`` highest-affinity partners) to fit the loss model; every other multi-task network's
  losses are predicted from the affinities (:mod:`taskgrouper.grouping.affinity`).

:data:`STRATEGY_TABLE` lists them, one row each, with their capability flags; a new strategy is
one class and one row. With ``max_group_size`` the networks selection chooses among (and the
exhaustive and ESA plans) hold at most that many tasks; that is how tens of tasks are searched.

This module is pure Python: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from taskgrouper.errors import InputError, MissingRunError
from taskgrouper.grouping.candidates import (
    Candidate,
    compact_names,
    pairs_and_singles,
    search_candidates,
    singles,
)
from taskgrouper.tasks import closest, table_row

__all__ = [
    "ESA",
    "HOA",
    "STRATEGIES",
    "STRATEGY_TABLE",
    "Affinity",
    "Estimate",
    "Exhaustive",
    "Strategy",
    "StrategyInfo",
    "get_strategy",
    "hoa_errors",
    "hoa_predict",
    "pearson",
    "resolve_strategies",
    "strategy_info",
]

#: Per-network, per-task losses: network name -> {task: loss}.
Losses = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class Estimate:
    """What a strategy makes of its measured runs.

    Attributes:
        losses: Network name -> {task: validation loss} for every selectable network
            (measured, or predicted).
        runs: Run ids the estimate needed (its compute).
        details: What the strategy fitted on the way, for :meth:`Strategy.stats`.
    """

    losses: dict[str, dict[str, float]]
    runs: tuple[str, ...]
    details: Mapping[str, Any] = field(default_factory=dict)


class Strategy:
    """Base of the search strategies (see the module doc for the lifecycle).

    Subclasses are frozen dataclasses with a ``max_group_size`` field (most tasks a network
    selection may choose holds; None: any) and a ``selection_widths`` field (widths of
    further single-task networks selection may choose, beyond C0's full and half widths), and
    implement :meth:`plan` and :meth:`estimate`.
    """

    #: The strategy's name in configs, results and reports.
    NAME: ClassVar[str] = ""
    #: Store group of its phase-1 runs.
    run_group: ClassVar[str] = "candidate"
    #: It measures something on parameters every task shares, so the architecture must have
    #: some (``ArchInfo.shared_parameters``).
    needs_shared_parameters: ClassVar[bool] = False
    max_group_size: int | None
    selection_widths: tuple[float, ...]

    @property
    def name(self) -> str:
        return self.NAME

    def plan(self, tasks: Sequence[str]) -> list[Candidate]:
        """Phase-1 candidate runs."""
        raise NotImplementedError

    def calibration(self, tasks: Sequence[str], measured: Mapping[str, Losses],
                    extras: Mapping[str, Mapping]) -> list[Candidate]:
        """Runs chosen from phase 1's results, trained before :meth:`estimate` (phase 1b)."""
        return []

    def selectable(self, tasks: Sequence[str]) -> list[Candidate]:
        """The networks selection chooses among (the same for every strategy): C0 (and
        single-task networks at ``selection_widths``), fully trained."""
        return search_candidates(tasks, max_size=self.max_group_size,
                                 widths=self.selection_widths)

    def estimate(self, tasks: Sequence[str], measured: Mapping[str, Losses],
                 extras: Mapping[str, Mapping] | None = None) -> Estimate:
        """Validation losses selection sees, for every network of :meth:`selectable`.

        Args:
            tasks: The tasks of the search.
            measured: Run id -> {task: validation loss} of the phase-1 (and 1b) runs.
            extras: Run id -> the run's ``extra`` (the affinity strategies read the recording).

        Raises:
            KeyError: a run it needs is missing (names it).
            ValueError: a run recorded something unusable (names it).
        """
        raise NotImplementedError

    def stats(self, tasks: Sequence[str], estimate: Estimate, final_val: Losses,
              final_test: Losses) -> dict[str, Any]:
        """What the strategy reports about its estimate, given the fully trained networks'
        validation and test losses (network name -> {task: loss}; those trained so far)."""
        return {}


@dataclass(frozen=True)
class Exhaustive(Strategy):
    """Every candidate network trained to convergence (the paper's "optimal")."""

    max_group_size: int | None = None
    selection_widths: tuple[float, ...] = ()
    NAME: ClassVar[str] = "exhaustive"

    def plan(self, tasks):
        return search_candidates(tasks, max_size=self.max_group_size,
                                 widths=self.selection_widths)

    def estimate(self, tasks, measured, extras=None):
        nets = self.plan(tasks)
        return Estimate({c.name: dict(_get(measured, c.run_id)) for c in nets},
                        tuple(c.run_id for c in nets))


@dataclass(frozen=True)
class ESA(Strategy):
    """The early stopping approximation: every candidate trained for ``epochs`` passes over
    ``fraction`` of the training data (Standley et al., 2020, Sec. 3.3.1)."""

    fraction: float = 0.2
    epochs: int = 1
    max_group_size: int | None = None
    selection_widths: tuple[float, ...] = ()
    NAME: ClassVar[str] = "esa"
    run_group: ClassVar[str] = "esa"

    def __post_init__(self):
        if not 0.0 < self.fraction <= 1.0:
            raise InputError(f"esa fraction must be in (0, 1], got {self.fraction}")
        if self.epochs < 1:
            raise InputError(f"esa epochs must be at least 1, got {self.epochs}")

    def plan(self, tasks):
        return search_candidates(tasks, fraction=self.fraction, epochs=self.epochs,
                                 max_size=self.max_group_size, widths=self.selection_widths)

    def estimate(self, tasks, measured, extras=None):
        runs = {c.name: c.run_id for c in self.plan(tasks)}
        losses = {c.name: dict(_get(measured, runs[c.name])) for c in self.selectable(tasks)}
        return Estimate(losses, tuple(runs.values()))

    def stats(self, tasks, estimate, final_val, final_test):
        # Pooled over (network, task) as the paper reports it, and within each task (the
        # pooled r also rewards the tasks' different loss scales).
        pairs: dict[str, tuple[list, list]] = {t: ([], []) for t in tasks}
        for c in self.selectable(tasks):
            if c.name in final_test:
                for t in c.tasks:
                    pairs[t][0].append(estimate.losses[c.name][t])
                    pairs[t][1].append(final_test[c.name][t])
        early = [x for t in tasks for x in pairs[t][0]]
        final = [y for t in tasks for y in pairs[t][1]]
        return {"fraction": self.fraction, "epochs": self.epochs,
                "pearson_r": pearson(early, final), "pairs": len(early),
                "pearson_r_per_task": {t: pearson(*pairs[t]) for t in tasks}}


@dataclass(frozen=True)
class HOA(Strategy):
    """The higher-order approximation: networks of one and two tasks trained, larger ones
    predicted from their pairs (Standley et al., 2020, Sec. 3.3.2)."""

    max_group_size: int | None = None
    selection_widths: tuple[float, ...] = ()
    NAME: ClassVar[str] = "hoa"

    def plan(self, tasks):
        return pairs_and_singles(tasks, widths=self.selection_widths)

    def estimate(self, tasks, measured, extras=None):
        plan = self.plan(tasks)
        known = {c.name: dict(_get(measured, c.run_id)) for c in plan}
        return Estimate(hoa_predict(known, self.selectable(tasks)),
                        tuple(c.run_id for c in plan))

    def stats(self, tasks, estimate, final_val, final_test):
        return hoa_errors(estimate.losses, final_val)


#: Affinity measures of :class:`Affinity` (see :mod:`taskgrouper.train.affinity`).
AFFINITY_METHODS: tuple[str, ...] = ("lookahead", "gradcos")


@dataclass(frozen=True)
class Affinity(Strategy):
    """Task affinities recorded in one all-task run (``lookahead``: the change of each task's
    loss after a step on another's gradient; ``gradcos``: the cosine of their gradients) and
    a loss model fitted on the single-task networks, the all-task network and ``pairs``
    calibration pairs per task predict every other network's losses.

    Attributes:
        method: ``lookahead`` or ``gradcos`` (also the strategy's name).
        every: The all-task run records affinities at every this many steps.
        pairs: Each task's this many highest-affinity partners are trained as pairs to fit
            the loss model (0: fit on the all-task network alone).
    """

    method: str = "lookahead"
    every: int = 5
    pairs: int = 1
    max_group_size: int | None = None
    selection_widths: tuple[float, ...] = ()
    needs_shared_parameters: ClassVar[bool] = True

    def __post_init__(self):
        if self.method not in AFFINITY_METHODS:
            raise InputError(f"unknown affinity method '{self.method}'; "
                             + closest(self.method, AFFINITY_METHODS))
        if self.every < 1:
            raise InputError(f"search.affinity_every must be at least 1, got {self.every}")
        if self.pairs < 0:
            raise InputError(f"search.calibration_pairs must be 0 or more, got {self.pairs}")

    @property
    def name(self) -> str:
        return self.method

    def affinity_run(self, tasks: Sequence[str]) -> Candidate:
        """The all-task network that records affinities."""
        return Candidate(tuple(tasks), 1.0, affinity_every=self.every)

    def plan(self, tasks):
        return singles(tasks, self.selection_widths) + [self.affinity_run(tasks)]

    def calibration(self, tasks, measured, extras):
        return self._pairs(tasks, self._matrix(tasks, measured, extras))

    def _calibrates(self, tasks: Sequence[str]) -> bool:
        # with two tasks the one pair is the recording run's network
        return (self.pairs > 0 and len(tasks) > 2
                and (self.max_group_size is None or self.max_group_size >= 2))

    def _pairs(self, tasks: Sequence[str], matrix) -> list[Candidate]:
        if not self._calibrates(tasks):
            return []
        from taskgrouper.grouping.affinity import calibration_pairs

        compact = compact_names(tasks)
        return [Candidate(p, compact=compact)
                for p in calibration_pairs(matrix, tasks, self.pairs)]

    def _matrix(self, tasks, measured, extras):
        from taskgrouper.grouping.affinity import affinity_matrix

        run = self.affinity_run(tasks).run_id
        _get(measured, run)
        recorded = (extras.get(run) or {}).get("affinity")
        if recorded is None:
            raise MissingRunError(f"run '{run}' recorded no affinities; delete its folder and run "
                           f"the search again")
        return affinity_matrix(recorded, self.method, tasks, run)

    def estimate(self, tasks, measured, extras=None):
        from taskgrouper.grouping.affinity import fit_affinity_model, predict_losses

        extras = extras or {}
        run = self.affinity_run(tasks)
        all_task = _get(measured, run.run_id)
        matrix = self._matrix(tasks, measured, extras)
        pairs = self._pairs(tasks, matrix)
        own = singles(tasks, self.selection_widths)
        known = {c.name: dict(_get(measured, c.run_id)) for c in own + pairs}
        single = {t: known[Candidate((t,)).name][t] for t in tasks}
        fit = fit_affinity_model(matrix, single, all_task,
                                 [(c.tasks, known[c.name]) for c in pairs])
        losses = predict_losses(matrix, fit, single, self.selectable(tasks), known)
        runs = tuple(c.run_id for c in self.plan(tasks) + pairs)
        steps = (extras.get(run.run_id) or {}).get("affinity", {}).get("steps")
        return Estimate(losses, runs, {"fit": fit, "matrix": matrix, "pairs": pairs,
                                       "run": run.run_id, "steps": steps})

    def stats(self, tasks, estimate, final_val, final_test):
        fit = estimate.details["fit"]
        return {"model": "L_t(N) = L_t(1) * (1 + c + b (|N|-1)/(T-1) - s * mean "
                         "affinity onto t from its mates)",
                "s": fit.s, "c": fit.c, "b": fit.b, "fit_rmse": fit.residual,
                "calibration_pairs": [list(c.tasks) for c in estimate.details["pairs"]],
                "affinity": estimate.details["matrix"], "affinity_run": estimate.details["run"],
                "recorded_steps": estimate.details["steps"]}


@dataclass(frozen=True)
class StrategyInfo:
    """One row of :data:`STRATEGY_TABLE`.

    Attributes:
        name: The name configs and ``--strategy`` use.
        cls: Its class (capability flags: :attr:`Strategy.needs_shared_parameters`).
        make: Builds the strategy from the search options (``fraction``, ``epochs``,
            ``max_group_size``, ``affinity_every``, ``calibration_pairs``).
        trains: One line on what it trains, for help texts and reports.
    """

    name: str
    cls: type[Strategy]
    make: Callable[[Mapping[str, Any]], Strategy]
    trains: str

    @property
    def needs_shared_parameters(self) -> bool:
        return self.cls.needs_shared_parameters


STRATEGY_TABLE: tuple[StrategyInfo, ...] = (
    StrategyInfo("exhaustive", Exhaustive, lambda o: Exhaustive(o["max_group_size"], o["widths"]),
                 "every candidate network, to convergence"),
    StrategyInfo("esa", ESA, lambda o: ESA(o["fraction"], o["epochs"], o["max_group_size"],
                                     o["widths"]),
                 "every candidate network, for a fraction of an epoch"),
    StrategyInfo("hoa", HOA, lambda o: HOA(o["max_group_size"], o["widths"]),
                 "the networks of one and two tasks, to convergence"),
    *(StrategyInfo(m, Affinity,
                   lambda o, m=m: Affinity(m, o["affinity_every"], o["calibration_pairs"],
                                           o["max_group_size"], o["widths"]),
                   "one all-task network recording affinities, the single-task networks "
                   "and a few calibration pairs")
      for m in AFFINITY_METHODS),
)

#: Strategy names, in table order.
STRATEGIES: tuple[str, ...] = tuple(row.name for row in STRATEGY_TABLE)


def strategy_info(name: str) -> StrategyInfo:
    """The table row of ``name``.

    Raises:
        ValueError: an unknown name (suggests the closest).
    """
    return table_row(STRATEGY_TABLE, name, "strategy")


def get_strategy(name: str, *, fraction: float = 0.2, epochs: int = 1,
                 max_group_size: int | None = None, affinity_every: int = 5,
                 calibration_pairs: int = 1,
                 selection_widths: Sequence[float] = ()) -> Strategy:
    """A strategy by name, built from the search options.

    Raises:
        ValueError: an unknown name (suggests the closest), a fraction outside (0, 1], or a
            group size or recording interval below 1.
    """
    row = strategy_info(name)
    if max_group_size is not None and max_group_size < 1:
        raise InputError(f"search.max_group_size must be at least 1, got {max_group_size}")
    return row.make({"fraction": fraction, "epochs": epochs, "max_group_size": max_group_size,
                     "affinity_every": affinity_every, "calibration_pairs": calibration_pairs,
                     "widths": tuple(sorted(set(selection_widths)))})


def resolve_strategies(items: Sequence[str | Strategy] | str, **options) -> list[Strategy]:
    """Strategies from names (a list, or one comma-separated string) or instances.

    Args:
        items: Names or :class:`Strategy` instances.
        options: The search options names are built with (see :func:`get_strategy`).

    Raises:
        ValueError: an unknown name, an item of another type, or no strategy at all.
    """
    if isinstance(items, str):
        items = [n.strip() for n in items.split(",") if n.strip()]
    out = []
    for item in items:
        if isinstance(item, Strategy):
            out.append(item)
        elif isinstance(item, str):
            out.append(get_strategy(item, **options))
        else:
            raise InputError(f"strategy {item!r}: give a name ({', '.join(STRATEGIES)}) or a "
                             f"Strategy instance")
    if not out:
        raise InputError("no strategy given; choose from " + ", ".join(STRATEGIES))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise InputError(f"strategies repeat: {', '.join(names)}; give each once")
    return out


def _get(measured: Mapping[str, Losses], run_id: str) -> Mapping[str, float]:
    if run_id not in measured:
        raise MissingRunError(f"run '{run_id}' has no result in the store; run the search again to "
                       "train it")
    return measured[run_id]


def hoa_predict(known: Losses, networks: Sequence[Candidate]) -> dict[str, dict[str, float]]:
    """The higher-order approximation (Sec. 3.3.2).

    Networks of one or two tasks (and reduced-width ones) keep their measured losses; a
    full-width network ``N`` of three or more tasks gets, for each of its tasks ``t``, the mean
    of ``t``'s loss over the two-task networks ``{t, u}``, ``u`` in ``N``.

    Raises:
        KeyError: a network of one or two tasks, or a needed pair, is missing.
    """
    out: dict[str, dict[str, float]] = {}
    for c in networks:
        if len(c.tasks) <= 2 or abs(c.width - 1.0) > 1e-9:
            if c.name not in known:
                raise MissingRunError(f"network '{c.name}' has no measured loss")
            out[c.name] = dict(known[c.name])
            continue
        losses = {}
        for t in c.tasks:
            vals = []
            for u in c.tasks:
                if u == t:
                    continue
                pair = Candidate(tuple(x for x in c.tasks if x in (t, u)), 1.0,
                                 compact=c.compact).name
                if pair not in known:
                    raise MissingRunError(f"HOA for '{c.name}' needs the pair network '{pair}'")
                vals.append(float(known[pair][t]))
            losses[t] = math.fsum(vals) / len(vals)
        out[c.name] = losses
    return out


def hoa_errors(predicted: Losses, actual: Losses) -> dict[str, float]:
    """How good the higher-order predictions were, over networks of three or more tasks.

    For each (network, task): the max-ratio error ``max(p / a, a / p) - 1`` and the relative
    optimism ``(a - p) / a`` (positive when the prediction is lower, i.e. it overestimates the
    network's performance; the paper reports 5.2% and +1.4%).

    Returns:
        ``{"max_ratio_error": mean, "bias": mean, "count": n}``; NaN means with no pair.
    """
    ratios, bias = [], []
    for name, pred in predicted.items():
        if len(pred) < 3 or name not in actual:
            continue
        for t, p in pred.items():
            a = float(actual[name].get(t, math.nan))
            if not (math.isfinite(a) and math.isfinite(p) and a > 0 and p > 0):
                continue
            ratios.append(max(p / a, a / p) - 1.0)
            bias.append((a - p) / a)
    n = len(ratios)
    return {"max_ratio_error": math.fsum(ratios) / n if n else math.nan,
            "bias": math.fsum(bias) / n if n else math.nan, "count": n}


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson's r of two equally long sequences (NaN when undefined)."""
    pairs = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)
             if math.isfinite(x) and math.isfinite(y)]
    n = len(pairs)
    if n < 3:
        return math.nan
    mx = math.fsum(p[0] for p in pairs) / n
    my = math.fsum(p[1] for p in pairs) / n
    sxy = math.fsum((x - mx) * (y - my) for x, y in pairs)
    sxx = math.fsum((x - mx) ** 2 for x, _ in pairs)
    syy = math.fsum((y - my) ** 2 for _, y in pairs)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)
