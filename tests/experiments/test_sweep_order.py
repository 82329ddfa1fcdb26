"""Runs go to the workers longest first, so a sweep does not end on one long run."""

from __future__ import annotations

from taskgrouper.experiments.base import expected_cost, longest_first
from taskgrouper.runs.store import RunSpec


def _spec(rid, tasks, epochs=40, fraction=1.0, balancer="uniform"):
    return RunSpec(rid, "candidate", {"tasks": tasks, "balancer": {"name": balancer},
                                      "train": {"epochs": epochs, "train_fraction": fraction}},
                   {})


def test_expected_cost_by_hand():
    # (tasks + 1) * min(epochs, 20) * fraction * (2 for per-task-gradient balancers)
    assert expected_cost(_spec("a", ["a"])) == 2 * 20
    assert expected_cost(_spec("ab-e4", ["a", "b"], epochs=4)) == 3 * 4
    assert expected_cost(_spec("ab-f", ["a", "b"], fraction=0.25)) == 3 * 20 * 0.25
    assert expected_cost(_spec("ab-m", ["a", "b"], balancer="mgda_ub")) == 3 * 20 * 2
    # an unknown balancer name (the run will refuse it) counts as a plain one
    assert expected_cost(_spec("ab-x", ["a", "b"], balancer="nope")) == 3 * 20


def test_longest_first_keeps_ties_in_order():
    specs = [_spec("a", ["a"]), _spec("b", ["b"]), _spec("abc", ["a", "b", "c"]),
             _spec("abc-e1", ["a", "b", "c"], epochs=1), _spec("abc-mgda", ["a", "b", "c"],
                                                           balancer="mgda_ub")]
    assert [s.id for s in longest_first(specs)] == ["abc-mgda", "abc", "a", "b", "abc-e1"]
