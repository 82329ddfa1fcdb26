"""Means over seeds with 95% intervals, and paired differences between methods.

Every method of a search is scored on the same seeds (seed k of every network, for every
method), so two methods' totals pair by seed: the interval of their mean difference is the
one that says whether one beats the other (Student's t over the per-seed differences).
Pure Python and scipy: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from taskgrouper.errors import InputError

__all__ = ["mean_interval", "paired_difference", "seeds_to_resolve"]


def _t(level: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, dof))


def mean_interval(values: Sequence[float], level: float = 0.95) -> dict[str, float | int]:
    """Mean and two-sided ``level`` Student-t interval of ``values`` (one per seed).

    Returns:
        ``{"mean", "sd", "low", "high", "half_width", "n"}`` (``sd``: the sample standard
        deviation); with one value the spread and the interval are NaN.

    Raises:
        InputError: no value, or a value that is not finite.
    """
    xs = [float(v) for v in values]
    if not xs or not all(math.isfinite(x) for x in xs):
        raise InputError(f"an interval needs finite values, got {list(values)}")
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return {"mean": mean, "sd": math.nan, "low": math.nan, "high": math.nan,
                "half_width": math.nan, "n": n}
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = _t(level, n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "low": mean - half, "high": mean + half, "half_width": half,
            "n": n}


def paired_difference(a: Sequence[float], b: Sequence[float],
                      level: float = 0.95) -> dict[str, float | int | bool]:
    """The per-seed difference ``a - b`` (lower total loss is better, so negative means ``a``
    is better), its mean, interval, the mean relative to ``b``'s mean, and whether the
    interval excludes zero.

    Raises:
        InputError: the two lists differ in length.
    """
    if len(a) != len(b):
        raise InputError(f"paired totals need one value per seed on both sides, got {len(a)} "
                         f"and {len(b)}")
    diff = mean_interval([x - y for x, y in zip(a, b, strict=True)], level)
    base = math.fsum(b) / len(b)
    excludes = diff["n"] > 1 and (diff["high"] < 0 or diff["low"] > 0)
    return {**diff, "relative": diff["mean"] / base if base else math.nan,
            "significant": bool(excludes)}


def seeds_to_resolve(mean: float, sd: float, level: float = 0.95, most: int = 100) -> int | None:
    """The fewest seeds whose ``level`` interval would exclude zero if the per-seed
    differences kept this ``mean`` and standard deviation ``sd``: the smallest n >= 2 with
    t(level, n - 1) * sd / sqrt(n) < |mean|.

    A planning figure for a difference that is still within noise, not a promise: the mean and
    spread of a few seeds are themselves uncertain. ``None`` when no number of seeds up to
    ``most`` would do (a zero mean, a spread that is not finite, or too small an effect).
    """
    if not (math.isfinite(mean) and math.isfinite(sd)) or mean == 0:
        return None
    for n in range(2, most + 1):
        if _t(level, n - 1) * sd / math.sqrt(n) < abs(mean):
            return n
    return None
