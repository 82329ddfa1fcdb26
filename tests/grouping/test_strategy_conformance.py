"""One conformance suite for every strategy of the table: the lifecycle each must keep."""

from __future__ import annotations

import json
import math

import pytest

from taskgrouper.errors import MissingRunError, TaskgrouperError
from taskgrouper.grouping.strategies import (
    ESA,
    HOA,
    STRATEGY_TABLE,
    Affinity,
    Estimate,
    Exhaustive,
    Strategy,
    get_strategy,
    resolve_strategies,
)

TASKS = ["a", "b", "c", "d"]
BASE = {"a": 1.0, "b": 2.0, "c": 0.5, "d": 4.0}
ROWS = [row.name for row in STRATEGY_TABLE]


def _losses(c) -> dict[str, float]:
    """A made-up measurement: sharing costs 10% a mate, fewer epochs 50% more, half width
    20% more; a through d in task order."""
    scale = (1 + 0.1 * (len(c.tasks) - 1)) * (1.5 if c.epochs else 1.0) / c.width ** 0.25
    return {t: BASE[t] * scale for t in c.tasks}


def _affinity(tasks) -> dict:
    # a and b help each other, c and d too, across the pairs nothing
    close = {frozenset("ab"), frozenset("cd")}
    rows = [[1.0 if u == t else (0.3 if frozenset((u, t)) in close else -0.05) for t in tasks]
            for u in tasks]
    return {"tasks": list(tasks), "lookahead": rows, "gradcos": rows, "steps": 7}


def _measure(strategy: Strategy, tasks):
    """Train (make up) phase 1, then phase 1b, as the search driver does."""
    measured, extras = {}, {}
    for c in strategy.plan(tasks):
        measured[c.run_id] = _losses(c)
        if c.affinity_every:
            extras[c.run_id] = {"affinity": _affinity(tasks)}
    for c in strategy.calibration(tasks, measured, extras):
        measured[c.run_id] = _losses(c)
    return measured, extras


@pytest.fixture(params=ROWS)
def strategy(request) -> Strategy:
    return get_strategy(request.param, fraction=0.5, epochs=1, affinity_every=3)


def test_the_table_names_each_strategy_once_and_builds_it(strategy):
    assert len(set(ROWS)) == len(ROWS)
    row = next(r for r in STRATEGY_TABLE if r.name == strategy.name)
    assert isinstance(strategy, row.cls)
    assert row.needs_shared_parameters == strategy.needs_shared_parameters
    assert row.trains


def test_plan_has_distinct_runs_and_no_network_twice(strategy):
    plan = strategy.plan(TASKS)
    assert plan and len({c.run_id for c in plan}) == len(plan)
    assert {t for c in plan for t in c.tasks} == set(TASKS)


def test_estimate_covers_every_selectable_network(strategy):
    measured, extras = _measure(strategy, TASKS)
    est = strategy.estimate(TASKS, measured, extras)
    assert isinstance(est, Estimate)
    selectable = strategy.selectable(TASKS)
    assert set(est.losses) == {c.name for c in selectable}
    for c in selectable:
        assert set(est.losses[c.name]) == set(c.tasks)
        assert all(math.isfinite(v) and v > 0 for v in est.losses[c.name].values())
    # the estimate names the runs it used, and only measured ones
    assert est.runs and set(est.runs) <= set(measured)
    # a network it trained to convergence keeps its measured loss (the affinity recording run
    # is the loss model's reference, its own losses predicted like the others')
    for c in strategy.plan(TASKS):
        if c.epochs is None and c.fraction == 1.0 and not c.affinity_every:
            assert est.losses[c.name] == measured[c.run_id]


def test_stats_are_json(strategy):
    measured, extras = _measure(strategy, TASKS)
    est = strategy.estimate(TASKS, measured, extras)
    final = {c.name: _losses(c.full()) for c in strategy.selectable(TASKS)}
    stats = strategy.stats(TASKS, est, final, final)
    json.dumps(stats, allow_nan=True)


def test_a_missing_run_is_named(strategy):
    with pytest.raises(MissingRunError) as err:
        strategy.estimate(TASKS, {}, {})
    assert "run '" in str(err.value) and isinstance(err.value, TaskgrouperError)


def test_max_group_size_bounds_what_selection_sees(strategy):
    small = get_strategy(strategy.name, max_group_size=2)
    assert max(len(c.tasks) for c in small.selectable(TASKS)) == 2


def test_hand_worked_estimates():
    measured, _ = _measure(HOA(), TASKS)
    est = HOA().estimate(TASKS, measured)
    # abc, task a: mean of ab.a and ac.a = BASE a * 1.1 = 1.1 (pairs cost 10%)
    assert est.losses["abc"]["a"] == pytest.approx(1.1)
    measured, _ = _measure(ESA(0.5, 1), TASKS)
    # ESA sees the early losses: one pass costs 50% more: b alone 2.0 * 1.5 = 3.0
    assert ESA(0.5, 1).estimate(TASKS, measured).losses["b"] == {"b": pytest.approx(3.0)}


def test_affinity_calibrates_on_the_highest_affinity_pairs():
    s = Affinity("lookahead", every=3, pairs=1)
    measured, extras = _measure(s, TASKS)
    pairs = {c.tasks for c in s.calibration(TASKS, measured, extras)}
    assert pairs == {("a", "b"), ("c", "d")}
    stats = s.stats(TASKS, s.estimate(TASKS, measured, extras), {}, {})
    assert stats["recorded_steps"] == 7 and stats["calibration_pairs"] == [["a", "b"],
                                                                          ["c", "d"]]


def test_names_or_instances():
    mine = ESA(fraction=0.3, epochs=2)
    got = resolve_strategies(["exhaustive", mine, "hoa"], fraction=0.2)
    assert got[0] == Exhaustive() and got[1] is mine and got[2] == HOA()
    assert [s.name for s in resolve_strategies("esa, gradcos")] == ["esa", "gradcos"]
    with pytest.raises(TaskgrouperError, match="did you mean 'esa'"):
        resolve_strategies("eas")
    with pytest.raises(TaskgrouperError, match="repeat"):
        resolve_strategies([ESA(), "esa"])
    with pytest.raises(TaskgrouperError, match="Strategy instance"):
        resolve_strategies([3])
    with pytest.raises(TaskgrouperError, match="fraction"):
        ESA(fraction=1.5)
