"""A small fake results.json: 3 tasks, 2 budgets, two strategies, baselines, one infeasible."""

from __future__ import annotations

import copy


def _cand(cid, tasks, width, val, test, params=1000):
    return {"id": cid, "tasks": list(tasks), "width": width, "cost": width,
            "flops": 2 * params, "params": params, "val": val, "test": test}


def make_results() -> dict:
    """Budgets 1 and 2 SNT; ESA is infeasible at 1 SNT."""
    candidates = [
        _cand("abc", "abc", 1.0, {"a": 0.45, "b": 0.38, "c": 0.31},
              {"a": 0.47, "b": 0.40, "c": 0.30}, params=1_234_567),
        _cand("ab", "ab", 1.0, {"a": 0.44, "b": 0.36}, {"a": 0.46, "b": 0.37}),
        _cand("c", "c", 1.0, {"c": 0.28}, {"c": 0.29}),
        _cand("a@0.5", "a", 0.5, {"a": 0.50}, {"a": 0.48}),
        _cand("b@0.5", "b", 0.5, {"b": 0.40}, {"b": 0.40}),
        _cand("c@0.5", "c", 0.5, {"c": 0.30}, {"c": 0.32}),
    ]
    exhaustive = [
        {"budget": 1.0, "networks": ["abc"], "cost": 1.0, "val_total": 1.14,
         "test_total": 1.17, "assignment": {"a": "abc", "b": "abc", "c": "abc"}},
        {"budget": 2.0, "networks": ["ab", "c"], "cost": 2.0, "val_total": 1.08,
         "test_total": 1.12, "assignment": {"a": "ab", "b": "ab", "c": "c"}},
    ]
    esa = [
        {"budget": 1.0, "networks": [], "cost": None, "val_total": None, "test_total": None,
         "assignment": {}, "error": "no choice of networks covers every task within 1 SNT"},
        {"budget": 2.0, "networks": ["abc", "c@0.5"], "cost": 1.5, "val_total": 1.13,
         "test_total": 1.15, "assignment": {"a": "abc", "b": "abc", "c": "c@0.5"}},
    ]
    return {
        "version": 1,
        "title": "Fake search: a, b, c",
        "dataset": {"kind": "synthetic", "size": 64},
        "tasks": ["a", "b", "c"],
        "budgets": [1.0, 2.0],
        "strategy": "exhaustive",
        "compute": {"train_samples": 10000, "wall_s": 100.0},
        "candidates": candidates,
        "selections": exhaustive,
        "strategies": {
            "exhaustive": {"compute": {"train_samples": 10000, "wall_s": 100.0},
                           "selections": exhaustive, "stats": {}},
            "esa": {"compute": {"train_samples": 3000, "wall_s": 25.0}, "selections": esa,
                    "stats": {"fraction": 0.2, "pearson_r": 0.49}},
        },
        "baselines": {
            "all_in_one": [{"budget": 1.0, "test_total": 1.17, "networks": ["abc"]},
                           {"budget": 2.0, "test_total": 1.17, "networks": ["abc"]}],
            "independent": [{"budget": 1.0, "test_total": None, "networks": [],
                             "error": "no single-task networks of width 1/3"},
                            {"budget": 2.0, "test_total": 1.20,
                             "networks": ["a@0.5", "b@0.5", "c@0.5"]}],
            "random": [{"budget": 1.0, "test_total": 1.17, "std": 0.0, "trials": 100,
                        "networks": []},
                       {"budget": 2.0, "test_total": 1.1412, "std": 0.0123, "trials": 100,
                        "networks": []}],
            "pessimal": [{"budget": 1.0, "test_total": 1.17, "networks": ["abc"]},
                         {"budget": 2.0, "test_total": 1.19, "networks": ["abc", "c@0.5"]}],
        },
        "relationships": {
            "pair": {"a": {"a": None, "b": 0.0417, "c": -0.05},
                     "b": {"a": 0.02, "b": None, "c": None},
                     "c": {"a": 0.1, "b": -0.3464, "c": None}},
            "affinity": {"a": {"a": None, "b": 0.03085, "c": 0.025},
                         "b": {"a": 0.03085, "b": None, "c": None},
                         "c": {"a": 0.025, "b": None, "c": None}},
            "order": {"2": {"mean": -0.0115, "count": 3}, "3": {"mean": 0.0423, "count": 1}},
        },
    }


def fresh_results() -> dict:
    """A deep copy of :func:`make_results`, safe to edit."""
    return copy.deepcopy(make_results())
