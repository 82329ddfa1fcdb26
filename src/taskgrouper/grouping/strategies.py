"""Search strategies: which networks to train, and the losses selection sees.

A strategy answers three questions (Standley et al., 2020, Sec. 3.3):

1. ``plan(tasks)``: which candidate runs to train first (phase 1);
2. ``estimate(tasks, measured)``: from the phase-1 validation losses, a per-network, per-task
   loss for every network selection may choose (measured or predicted);
3. the networks selection then chooses are trained to convergence (phase 2, the same for every
   strategy, done by :mod:`taskgrouper.grouping.search`), and scored on the test split.

- ``exhaustive``: every candidate trained to convergence; selection on the real losses.
- ``esa`` (early stopping approximation, Sec. 3.3.1): every candidate trained for ``epochs``
  passes through ``fraction`` of the training data; selection on those early losses.
- ``hoa`` (higher-order approximation, Sec. 3.3.2): all networks of one and two tasks trained
  to convergence; the loss of a network with three or more tasks on task ``t`` is predicted as
  the mean of ``t``'s loss over the two-task networks it contains.
- ``lookahead`` and ``gradcos`` (beyond the paper): one all-task network trained to
  convergence while it records task affinities (:mod:`taskgrouper.train.affinity`), plus the
  single-task networks at every width; then the calibration pairs (each task with its
  ``calibration_pairs`` highest-affinity partners) to fit the loss model; every other
  multi-task network's losses are predicted from the affinities
  (:mod:`taskgrouper.grouping.affinity`). One recording run serves both.

With ``max_group_size`` the networks selection chooses among (and the exhaustive and ESA
plans) hold at most that many tasks; that is how tens of tasks are searched.

This module is pure Python: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from taskgrouper.grouping.candidates import (
    Candidate,
    compact_names,
    pairs_and_singles,
    search_candidates,
    singles,
)
from taskgrouper.tasks import closest

__all__ = [
    "AFFINITY_STRATEGIES",
    "STRATEGIES",
    "Strategy",
    "get_strategy",
    "hoa_errors",
    "hoa_predict",
    "pearson",
]

#: Per-network, per-task losses: network name -> {task: loss}.
Losses = Mapping[str, Mapping[str, float]]


#: Strategies that measure affinities in one all-task run (they need shared parameters).
AFFINITY_STRATEGIES: tuple[str, ...] = ("lookahead", "gradcos")


@dataclass(frozen=True)
class Strategy:
    """One way of deciding which networks to train.

    Attributes:
        name: ``exhaustive``, ``esa``, ``hoa``, ``lookahead`` or ``gradcos``.
        fraction: For ``esa``: the fraction of the training data of its one early pass.
        epochs: For ``esa``: passes over that fraction (the paper: 1).
        max_group_size: Most tasks in one network selection may choose (None: any).
        affinity_every: For ``lookahead`` and ``gradcos``: record every this many steps.
        calibration_pairs: For ``lookahead`` and ``gradcos``: each task's this many
            highest-affinity partners are trained as pairs to fit the loss model (0: fit on
            the all-task network alone).
    """

    name: str
    fraction: float = 0.2
    epochs: int = 1
    max_group_size: int | None = None
    affinity_every: int = 5
    calibration_pairs: int = 1

    def affinity_run(self, tasks: Sequence[str]) -> Candidate:
        """The all-task network that records affinities (``lookahead``, ``gradcos``)."""
        return Candidate(tuple(tasks), 1.0, affinity_every=self.affinity_every)

    def calibration(self, tasks: Sequence[str], measured: Mapping[str, Losses],
                    extras: Mapping[str, Mapping]) -> list[Candidate]:
        """The pairs an affinity strategy trains after its recording run (phase 1b), chosen
        from the recorded affinities; [] for the other strategies."""
        if not self._calibrates(tasks):
            return []
        return self._pairs(tasks, self._matrix(tasks, measured, extras))

    def _calibrates(self, tasks: Sequence[str]) -> bool:
        # with two tasks the one pair is the recording run's network
        return (self.name in AFFINITY_STRATEGIES and self.calibration_pairs > 0
                and len(tasks) > 2
                and (self.max_group_size is None or self.max_group_size >= 2))

    def _pairs(self, tasks: Sequence[str], matrix) -> list[Candidate]:
        if not self._calibrates(tasks):
            return []
        from taskgrouper.grouping.affinity import calibration_pairs

        compact = compact_names(tasks)
        return [Candidate(p, compact=compact)
                for p in calibration_pairs(matrix, tasks, self.calibration_pairs)]

    def _matrix(self, tasks, measured, extras):
        from taskgrouper.grouping.affinity import affinity_matrix

        run = self.affinity_run(tasks).run_id
        _get(measured, run)
        recorded = (extras.get(run) or {}).get("affinity")
        if recorded is None:
            raise KeyError(f"run '{run}' recorded no affinities; delete its folder and run "
                           f"the search again")
        return affinity_matrix(recorded, self.name, tasks, run)

    def plan(self, tasks: Sequence[str]) -> list[Candidate]:
        """Phase-1 candidate runs (an affinity strategy adds :meth:`calibration` after)."""
        if self.name == "exhaustive":
            return search_candidates(tasks, max_size=self.max_group_size)
        if self.name == "esa":
            return search_candidates(tasks, fraction=self.fraction, epochs=self.epochs,
                                     max_size=self.max_group_size)
        if self.name in AFFINITY_STRATEGIES:
            return singles(tasks) + [self.affinity_run(tasks)]
        return pairs_and_singles(tasks)

    def selectable(self, tasks: Sequence[str]) -> list[Candidate]:
        """The networks selection chooses among (the same for every strategy): C0 and the
        reduced-width single-task networks, fully trained."""
        return search_candidates(tasks, max_size=self.max_group_size)

    def estimate(self, tasks: Sequence[str], measured: Mapping[str, Losses],
                 extras: Mapping[str, Mapping] | None = None) -> dict:
        """Validation losses selection sees, for every network of :meth:`selectable`.

        Args:
            tasks: The tasks of the search.
            measured: Run id -> {task: validation loss} of the phase-1 runs.
            extras: Run id -> the run's ``extra`` (the affinity strategies read the recording
                run's ``extra["affinity"]``).

        Returns:
            Network name -> {task: loss}.

        Raises:
            KeyError: a phase-1 run is missing (names it).
            ValueError: the affinity run recorded a non-finite affinity (names it).
        """
        nets = self.selectable(tasks)
        if self.name == "exhaustive":
            return {c.name: dict(_get(measured, c.run_id)) for c in nets}
        if self.name == "esa":
            return {c.name: dict(_get(measured, Candidate(c.tasks, c.width, self.fraction,
                                                          self.epochs, compact=c.compact
                                                          ).run_id)) for c in nets}
        if self.name in AFFINITY_STRATEGIES:
            return self.affinity_estimate(tasks, measured, extras or {})[0]
        known = {c.name: dict(_get(measured, c.run_id)) for c in pairs_and_singles(tasks)}
        return hoa_predict(known, nets)

    def affinity_estimate(self, tasks: Sequence[str], measured: Mapping[str, Losses],
                          extras: Mapping[str, Mapping]):
        """``(losses, fit, matrix, pairs)`` of an affinity strategy (see :meth:`estimate`;
        ``pairs``: the calibration pairs, which must be in ``measured``)."""
        from taskgrouper.grouping.affinity import fit_affinity_model, predict_losses

        all_task = _get(measured, self.affinity_run(tasks).run_id)
        matrix = self._matrix(tasks, measured, extras)
        pairs = self._pairs(tasks, matrix)
        known = {c.name: dict(_get(measured, c.run_id)) for c in singles(tasks) + pairs}
        single = {t: known[Candidate((t,)).name][t] for t in tasks}
        fit = fit_affinity_model(matrix, single, all_task,
                                 [(c.tasks, known[c.name]) for c in pairs])
        losses = predict_losses(matrix, fit, single, self.selectable(tasks), known)
        return losses, fit, matrix, pairs


STRATEGIES: tuple[str, ...] = ("exhaustive", "esa", "hoa", *AFFINITY_STRATEGIES)


def get_strategy(name: str, *, fraction: float = 0.2, epochs: int = 1,
                 max_group_size: int | None = None, affinity_every: int = 5,
                 calibration_pairs: int = 1) -> Strategy:
    """A strategy by name.

    Raises:
        ValueError: an unknown name (suggests the closest), a fraction outside (0, 1], or a
            group size or recording interval below 1.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy '{name}'; {closest(name, STRATEGIES)}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"esa fraction must be in (0, 1], got {fraction}")
    if epochs < 1:
        raise ValueError(f"esa epochs must be at least 1, got {epochs}")
    if max_group_size is not None and max_group_size < 1:
        raise ValueError(f"search.max_group_size must be at least 1, got {max_group_size}")
    if affinity_every < 1:
        raise ValueError(f"search.affinity_every must be at least 1, got {affinity_every}")
    if calibration_pairs < 0:
        raise ValueError(f"search.calibration_pairs must be 0 or more, got {calibration_pairs}")
    return Strategy(name, fraction, epochs, max_group_size, affinity_every, calibration_pairs)


def _get(measured: Mapping[str, Losses], run_id: str) -> Mapping[str, float]:
    if run_id not in measured:
        raise KeyError(f"run '{run_id}' has no result in the store; run the search again to "
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
                raise KeyError(f"network '{c.name}' has no measured loss")
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
                    raise KeyError(f"HOA for '{c.name}' needs the pair network '{pair}'")
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
