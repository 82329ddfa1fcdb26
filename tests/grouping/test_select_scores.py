"""The two test scores of a selection, HOA's assignment, and ``select --baselines`` on the
paper's released tables, against a line-by-line reading of the released selection code."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from taskgrouper.cli import main
from taskgrouper.grouping.api import select_networks, select_table
from taskgrouper.grouping.select import Network
from taskgrouper.grouping.tables import read_standley

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "standley2020"  # released, unchanged
BUDGETS = [1.0 + 0.5 * k for k in range(9)]
SETTINGS = {1: ("results.txt", "results_test.txt"), 2: ("results_large.txt",
            "results_large_test.txt"), 3: ("results_small_data.txt",
            "results_small_data_test.txt"), 4: ("results_alt.txt", "results_alt_test.txt")}
# Table 4 of the paper (setting 1)
PAPER_OPTIMAL = [0.503, 0.461, 0.452, 0.446, 0.442, 0.439, 0.436, 0.436, 0.435]
PAPER_PESSIMAL = [0.503, 0.503, 0.503, 0.503, 0.503, 0.502, 0.499, 0.496, 0.495]


def test_the_two_test_scores_worked_by_hand():
    # Budget 1.5 chooses {ab, b} on validation (0.2 + 0.3 = 0.5 against ab alone 0.2 + 0.4):
    #   a -> ab, b -> b (0.3 < 0.4).
    # Test: ab a .5 b .2; b .6. Served by the assignment: a .5 + b .6 = 1.1 (test_total).
    # Lowest test loss among the chosen: a .5, b min(.2, .6) = .2 -> 0.7 (test_total_min).
    val = [Network("ab", 1.0, {"a": 0.2, "b": 0.4}), Network("b", 0.5, {"b": 0.3})]
    test = [Network("ab", 1.0, {"a": 0.5, "b": 0.2}), Network("b", 0.5, {"b": 0.6})]
    (s,) = select_networks(val, test, [1.5])["selections"]
    assert s["networks"] == ["ab", "b"] and s["assignment"] == {"a": "ab", "b": "b"}
    assert s["val_total"] == pytest.approx(0.5)
    assert s["test_total"] == pytest.approx(1.1) and s["test_total_min"] == pytest.approx(0.7)


def test_hoa_assigns_by_the_real_validation_losses():
    # Three tasks. HOA predicts abc's loss on each task as the mean of its pairs' losses:
    #   a: (ab .1 + ac .1) / 2 = .1, b: (ab .5 + bc .5) / 2 = .5, c: (ac .1 + bc .1) / 2 = .1
    # but the table's real abc has a .4, b .2, c .1. Budget 1.5 on HOA's numbers: abc
    # (predicted .7) + b@0.5 (b .3): a .1 + b .3 + c .1 = .5; the real losses then serve
    # a by abc (.4, the only holder), b by abc (.2 < b@0.5's .3), c by abc: 0.7.
    val = [Network("abc", 1.0, {"a": 0.4, "b": 0.2, "c": 0.1}),
           Network("ab", 1.0, {"a": 0.1, "b": 0.5}), Network("ac", 1.0, {"a": 0.1, "c": 0.1}),
           Network("bc", 1.0, {"b": 0.5, "c": 0.1}),
           Network("a", 1.0, {"a": 0.3}), Network("b", 1.0, {"b": 0.35}),
           Network("c", 1.0, {"c": 0.3}), Network("b@0.5", 0.5, {"b": 0.3})]
    out = select_networks(val, val, [1.5], hoa=True)["selections"][0]
    assert out["networks"] == ["abc", "b@0.5"]
    assert out["predicted_total"] == pytest.approx(0.5)
    assert out["assignment"] == {"a": "abc", "b": "abc", "c": "abc"}
    assert out["val_total"] == pytest.approx(0.7) and out["test_total"] == pytest.approx(0.7)


def _released_draw(nets: list[Network], budget: float, rng: random.Random) -> float:
    """One draw of the released code's random baseline, read line by line: indices drawn
    uniformly, used ones redrawn; when every network has been drawn, everything starts over
    (the last one drawn is then considered first); a network is added when it fits; the draw
    ends once less than 0.5 is left; a draw leaving a task uncovered is drawn again. Scored
    by each task's lowest loss among the drawn networks."""
    tasks = sorted({t for n in nets for t in n.losses})
    while True:
        left, sol = budget, []
        used = [False] * len(nets)
        count = 0
        while True:
            i = rng.randrange(len(nets))
            while used[i]:
                i = rng.randrange(len(nets))
            used[i] = True
            count += 1
            if count == len(nets):
                count, used, sol, left = 0, [False] * len(nets), [], budget
            if nets[i].cost <= left:
                sol.append(nets[i])
                left -= nets[i].cost
            if left < 0.5:
                break
        best = [min((n.losses[t] for n in sol if t in n.losses), default=math.inf)
                for t in tasks]
        if all(math.isfinite(b) for b in best):
            return sum(best)


@pytest.mark.parametrize("budget", [2.5, 5.0])
def test_random_baseline_matches_the_released_procedure(budget):
    val = read_standley(DATA / "results.txt")
    test = read_standley(DATA / "results_test.txt")
    rng = random.Random(7)
    draws = [_released_draw(test, budget, rng) for _ in range(3000)]
    ref = sum(draws) / len(draws)
    ref_se = (sum((d - ref) ** 2 for d in draws) / (len(draws) - 1) / len(draws)) ** 0.5
    got = select_networks(val, test, [budget], baselines=True)["baselines"]["random"][0]
    se = got["std_min"] / got["trials"] ** 0.5
    # the two means differ by less than 4 standard errors of their difference
    assert abs(got["test_total_min"] - ref) < 4 * math.hypot(se, ref_se)
    if budget == 5.0:
        assert got["test_total_min"] == pytest.approx(0.456, abs=0.001)  # the figure
    # the exact pessimal selection is at least as bad as every one of the 3000 draws
    worst = select_networks(val, test, [budget], baselines=True)["baselines"]["pessimal"][0]
    assert worst["test_total_min"] >= max(draws) - 1e-12


@pytest.mark.parametrize("setting", [1, 2, 3, 4])
def test_select_baselines_on_the_released_settings(setting, capsys):
    table, test = SETTINGS[setting]
    code = main(["select", "--table", str(DATA / table), "--test", str(DATA / test),
                 "--format", "standley", "--baselines", "--trials", "4000", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    base = result["baselines"]
    assert set(base) == {"random", "pessimal", "all_in_one", "independent"}
    for entries in base.values():
        assert [e["budget"] for e in entries] == BUDGETS
        for e in entries:
            if e.get("error"):
                continue
            # the assigned network's test loss is never below the lowest among the chosen
            assert e["test_total"] >= e["test_total_min"] - 1e-12
    pess = [e["test_total_min"] for e in base["pessimal"]]
    rand = [e["test_total_min"] for e in base["random"]]
    assert all(p >= r - 1e-12 for p, r in zip(pess, rand, strict=True))
    if setting == 1:
        chosen = [round(s["test_total_min"], 3) for s in result["selections"]]
        assert chosen == PAPER_OPTIMAL
        # Pessimal: never better than the paper's sampled worst, and falling with the budget
        assert all(round(p, 3) >= q for p, q in zip(pess, PAPER_PESSIMAL, strict=True))
        assert all(a >= b - 1e-12 for a, b in zip(pess, pess[1:], strict=False))
        assert pess[-1] < pess[0]
        assert base["all_in_one"][0]["networks"] == ["sdnke"]
        assert rand[-1] == pytest.approx(0.456, abs=0.001)


def test_select_baselines_prints_both_tables(capsys):
    assert main(["select", "--table", str(DATA / "results.txt"), "--test",
                 str(DATA / "results_test.txt"), "--format", "standley", "--baselines",
                 "--trials", "500"]) == 0
    out = capsys.readouterr().out
    assert "test_total_min (the paper's Table 4 score" in out
    assert "test_total (each task served by the chosen network with the lowest validation" in out
    for row in ("selected", "random", "pessimal", "all_in_one", "independent"):
        assert sum(line.startswith(row) for line in out.splitlines()) == 2


def test_select_table_passes_the_options():
    r = select_table(DATA / "results.txt", fmt="standley", budgets=[2.0],
                     test_path=DATA / "results_test.txt", baselines=True, trials=300)
    assert r["baselines"]["random"][0]["trials"] == 300
