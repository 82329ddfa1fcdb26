"""Intervals over seeds, worked by hand."""

from __future__ import annotations

import math

import pytest

from taskgrouper.errors import TaskgrouperError
from taskgrouper.grouping.intervals import mean_interval, paired_difference

T_975_2 = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom


def test_mean_interval_by_hand():
    # 1, 2, 3: mean 2, sample sd 1, half-width t * 1 / sqrt(3)
    got = mean_interval([1.0, 2.0, 3.0])
    half = T_975_2 / math.sqrt(3)
    assert got["mean"] == 2.0 and got["sd"] == 1.0 and got["n"] == 3
    assert got["half_width"] == pytest.approx(half)
    assert (got["low"], got["high"]) == pytest.approx((2 - half, 2 + half))


def test_one_seed_has_no_interval():
    got = mean_interval([0.5])
    assert got["mean"] == 0.5 and math.isnan(got["low"]) and math.isnan(got["half_width"])


def test_paired_difference_by_hand():
    # differences -0.3, -0.2, -0.25: mean -0.25, sd 0.05, half t * 0.05 / sqrt 3 = 0.1242
    got = paired_difference([1.0, 1.2, 1.1], [1.3, 1.4, 1.35])
    assert got["mean"] == pytest.approx(-0.25)
    assert got["half_width"] == pytest.approx(T_975_2 * 0.05 / math.sqrt(3))
    assert got["high"] < 0 and got["significant"]
    assert got["relative"] == pytest.approx(-0.25 / 1.35)
    # the same means, unpaired noise: -0.25 on average but the signs disagree
    noisy = paired_difference([1.0, 1.6, 0.7], [1.3, 1.4, 1.35])
    assert noisy["mean"] == pytest.approx(-0.25) and not noisy["significant"]


def test_bad_input():
    with pytest.raises(TaskgrouperError):
        mean_interval([])
    with pytest.raises(TaskgrouperError):
        mean_interval([1.0, math.nan])
    with pytest.raises(TaskgrouperError):
        paired_difference([1.0], [1.0, 2.0])


def test_seeds_to_resolve_by_hand():
    from taskgrouper.grouping.intervals import seeds_to_resolve

    # the full demo at budget 4.5 against the independent networks, 3 seeds: mean -0.058,
    # sd 0.0275. n = 3: 4.303 * 0.0275 / sqrt(3) = 0.0683 > 0.058 (the interval holds zero);
    # n = 4: 3.182 * 0.0275 / 2 = 0.0438 < 0.058 -> 4 seeds
    assert seeds_to_resolve(-0.058, 0.0275) == 4
    # the sign does not matter; a wider spread needs more: sd 0.0668, mean 0.0634:
    # n = 6: 2.571 * 0.0668 / 2.449 = 0.0701 > 0.0634; n = 7: 2.447 * 0.0668 / 2.646 = 0.0618
    assert seeds_to_resolve(0.0634, 0.0668) == 7
    # no spread: two seeds already exclude zero
    assert seeds_to_resolve(-0.01, 0.0) == 2
    # nothing to resolve, or nothing to go on
    assert seeds_to_resolve(0.0, 0.01) is None
    assert seeds_to_resolve(-0.01, math.nan) is None
    # an effect of a tenth of the spread needs about (1.96 * 10)^2 = 384 seeds (t is close
    # to the normal's 1.96 there): more than the default 100
    assert seeds_to_resolve(-0.1, 1.0) is None
    assert seeds_to_resolve(-0.1, 1.0, most=1000) == pytest.approx(386, abs=3)
