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

This module is pure Python: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from taskgrouper.grouping.candidates import Candidate, pairs_and_singles, search_candidates
from taskgrouper.tasks import closest

__all__ = [
    "STRATEGIES",
    "Strategy",
    "get_strategy",
    "hoa_errors",
    "hoa_predict",
    "pearson",
]

#: Per-network, per-task losses: network name -> {task: loss}.
Losses = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class Strategy:
    """One way of deciding which networks to train.

    Attributes:
        name: ``exhaustive``, ``esa`` or ``hoa``.
        fraction: For ``esa``: the fraction of the training data of its one early pass.
        epochs: For ``esa``: passes over that fraction (the paper: 1).
    """

    name: str
    fraction: float = 0.2
    epochs: int = 1

    def plan(self, tasks: Sequence[str]) -> list[Candidate]:
        """Phase-1 candidate runs."""
        if self.name == "exhaustive":
            return search_candidates(tasks)
        if self.name == "esa":
            return search_candidates(tasks, fraction=self.fraction, epochs=self.epochs)
        return pairs_and_singles(tasks)

    def selectable(self, tasks: Sequence[str]) -> list[Candidate]:
        """The networks selection chooses among (the same for every strategy): C0 and the
        reduced-width single-task networks, fully trained."""
        return search_candidates(tasks)

    def estimate(self, tasks: Sequence[str], measured: Mapping[str, Losses]) -> dict:
        """Validation losses selection sees, for every network of :meth:`selectable`.

        Args:
            tasks: The tasks of the search.
            measured: Run id -> {task: validation loss} of the phase-1 runs.

        Returns:
            Network name -> {task: loss}.

        Raises:
            KeyError: a phase-1 run is missing (names it).
        """
        nets = self.selectable(tasks)
        if self.name == "exhaustive":
            return {c.name: dict(_get(measured, c.run_id)) for c in nets}
        if self.name == "esa":
            return {c.name: dict(_get(measured, Candidate(c.tasks, c.width, self.fraction,
                                                          self.epochs).run_id)) for c in nets}
        known = {c.name: dict(_get(measured, c.run_id)) for c in pairs_and_singles(tasks)}
        return hoa_predict(known, nets)


STRATEGIES: tuple[str, ...] = ("exhaustive", "esa", "hoa")


def get_strategy(name: str, *, fraction: float = 0.2, epochs: int = 1) -> Strategy:
    """A strategy by name.

    Raises:
        ValueError: an unknown name (suggests the closest) or a fraction outside (0, 1].
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy '{name}'; {closest(name, STRATEGIES)}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"esa fraction must be in (0, 1], got {fraction}")
    if epochs < 1:
        raise ValueError(f"esa epochs must be at least 1, got {epochs}")
    return Strategy(name, fraction, epochs)


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
                pair = Candidate(tuple(x for x in c.tasks if x in (t, u)), 1.0).name
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
