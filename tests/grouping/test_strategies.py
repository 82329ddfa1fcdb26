"""Candidate sets and strategy estimates, with the arithmetic worked by hand."""

from __future__ import annotations

import math

import pytest

from taskgrouper.grouping.candidates import (
    Candidate,
    baseline_candidates,
    fully_trained,
    independent_widths,
    network_name,
    pairs_and_singles,
    paper_candidates,
    search_candidates,
)
from taskgrouper.grouping.strategies import get_strategy, hoa_errors, hoa_predict, pearson


def test_paper_candidate_set_c0():
    c0 = paper_candidates("sdnke")
    names = [c.name for c in c0]
    # 2^5 - 1 = 31 full-width subsets + 5 half-width singles, as in the released tables
    assert len(c0) == 36 and len(set(names)) == 36
    assert names[:5] == ["s", "d", "n", "k", "e"]
    assert names[5] == "sd" and names[30] == "sdnke"
    assert names[31:] == ["s@0.5", "d@0.5", "n@0.5", "k@0.5", "e@0.5"]


def test_names_widths_and_fractions():
    assert network_name(("s", "d")) == "sd"
    assert network_name(("depth", "normals"), 1 / 3) == "depth+normals@0.333"
    c = Candidate(("s",), 0.5, 0.2)
    assert c.name == "s@0.5" and c.run_id == "s-w0.5-f0.2" and c.full().run_id == "s-w0.5"
    base = [c.name for c in baseline_candidates("sd")]
    assert base == ["s@0.2", "d@0.2", "s@0.25", "d@0.25", "s@0.333", "d@0.333",
                    "s@0.5", "d@0.5", "s", "d", "sd"]
    # HOA: 3 singles + 3 pairs + the 3 singles at half width (C0's); selection widths add
    hoa = [c.name for c in pairs_and_singles("abc")]
    assert hoa[:6] == ["a", "b", "c", "ab", "ac", "bc"] and len(hoa) == 6 + 3
    assert len(pairs_and_singles("abc", widths=(0.2,))) == 6 + 3 + 3
    # the independent baseline's widths: 1/k for k up to the number of tasks (at most 5)
    assert independent_widths(2) == (0.5, 1.0)
    assert independent_widths(5) == (0.2, 0.25, 1 / 3, 0.5, 1.0)
    assert independent_widths(9) == independent_widths(5)
    assert hoa[6:9] == ["a@0.5", "b@0.5", "c@0.5"]
    # The search's candidate set is C0 (7 + 3 halves), as in the paper ...
    full = search_candidates("abc")
    assert {c.name for c in full} == {c.name for c in paper_candidates("abc")}
    # ... plus search.selection_widths' singles when asked
    more = search_candidates("abc", widths=(1 / 3,))
    assert len(more) == 13 and more[-1].name == "c@0.333"
    esa = search_candidates("abc", fraction=0.2, epochs=1, widths=(1 / 3,))
    assert esa[0].run_id == "a-f0.2-e1" and esa[-1].run_id == "c-w0.333-f0.2-e1"


def test_fully_trained_ignores_esa_runs_of_the_same_network():
    from types import SimpleNamespace as Rec

    runs = [Rec(id="s", tasks=["s"], width=1.0), Rec(id="s-e1", tasks=["s"], width=1.0),
            Rec(id="s-w0.5-f0.2-e1", tasks=["s"], width=0.5),
            Rec(id="s-w0.5", tasks=["s"], width=0.5), Rec(id="sd-e1", tasks=["s", "d"], width=1.0)]
    # ESA over all of the data (fraction 1) for one epoch has the network of "s" but not its
    # run id; whatever the order the store returns them in, "s" stays the full run.
    for order in (runs, runs[::-1]):
        full = fully_trained(order)
        assert {n: r.id for n, r in full.items()} == {"s": "s", "s@0.5": "s-w0.5"}


def test_too_many_tasks_for_exhaustive():
    with pytest.raises(ValueError, match="hoa"):
        paper_candidates([f"t{i}" for i in range(21)])


def test_hoa_prediction_by_hand():
    known = {"a": {"a": 1.0}, "b": {"b": 2.0}, "c": {"c": 3.0},
             "ab": {"a": 0.8, "b": 2.2}, "ac": {"a": 0.6, "c": 2.7}, "bc": {"b": 1.8, "c": 3.3},
             "a@0.5": {"a": 1.2}, "b@0.5": {"b": 2.4}, "c@0.5": {"c": 3.6}}
    pred = hoa_predict(known, paper_candidates("abc"))
    # abc: a = mean(ab.a, ac.a) = (0.8 + 0.6) / 2 = 0.7; b = (2.2 + 1.8) / 2 = 2.0;
    # c = (2.7 + 3.3) / 2 = 3.0
    assert pred["abc"] == pytest.approx({"a": 0.7, "b": 2.0, "c": 3.0})
    assert pred["ab"] == known["ab"] and pred["c@0.5"] == known["c@0.5"]
    # errors against an actual abc of a=0.5, b=2.0, c=4.0:
    # max-ratio: 0.7/0.5 - 1 = 0.4; 0; 4/3 - 1 = 1/3 -> mean (0.4 + 0 + 1/3) / 3
    # optimism (a - p) / a: (0.5-0.7)/0.5 = -0.4; 0; (4-3)/4 = 0.25 -> mean -0.05
    err = hoa_errors(pred, {"abc": {"a": 0.5, "b": 2.0, "c": 4.0}})
    assert err["count"] == 3
    assert err["max_ratio_error"] == pytest.approx((0.4 + 1 / 3) / 3)
    assert err["bias"] == pytest.approx(-0.05)


def test_hoa_missing_pair_is_named():
    with pytest.raises(KeyError, match="'ab'"):
        hoa_predict({"a": {"a": 1.0}, "b": {"b": 1.0}, "c": {"c": 1.0}},
                    [Candidate(("a", "b", "c"))])


def test_strategy_plans_and_estimates():
    tasks = ["a", "b", "c"]
    esa = get_strategy("esa", fraction=0.25)
    assert [c.run_id for c in esa.plan(tasks)][:2] == ["a-f0.25-e1", "b-f0.25-e1"]
    # every early run's loss is its position in the plan: a -> 1, ..., abc (7th) -> 7
    measured = {c.run_id: {t: 1.0 + i for t in c.tasks} for i, c in enumerate(esa.plan(tasks))}
    est = esa.estimate(tasks, measured).losses
    assert est["a"] == {"a": 1.0} and est["abc"] == {"a": 7.0, "b": 7.0, "c": 7.0}
    assert set(est) == {c.name for c in esa.selectable(tasks)}
    hoa = get_strategy("hoa")
    assert len(hoa.plan(tasks)) == 9  # 3 singles, 3 pairs, 3 half-width singles
    wide = get_strategy("hoa", selection_widths=[0.25, 0.2, 0.25])
    assert wide.selection_widths == (0.2, 0.25) and len(wide.plan(tasks)) == 15
    with pytest.raises(KeyError, match="'a'"):
        hoa.estimate(tasks, {})
    with pytest.raises(ValueError, match="did you mean 'esa'"):
        get_strategy("eas")


def test_pearson_by_hand():
    # x = 1,2,3; y = 2,4,7: mx 2, my 13/3; sxy = (-1)(-7/3) + 0 + (1)(8/3) = 5;
    # sxx = 2; syy = 49/9 + 1/9 + 64/9 = 114/9 -> r = 5 / sqrt(2 * 114 / 9)
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(228 / 9))
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
