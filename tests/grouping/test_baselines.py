"""Baselines on a three-task instance whose answers are worked out by hand."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from taskgrouper.grouping.baselines import all_in_one, independent, pessimal, random_groupings
from taskgrouper.grouping.select import Network

TASKS = ["a", "b", "c"]
# name: (cost, val losses); test losses are val + 0.1 except abc's, which are 0.4 each
VAL = {
    "abc": (1.0, {"a": 0.3, "b": 0.3, "c": 0.3}),
    "ab": (1.0, {"a": 0.45, "b": 0.5}),
    "a": (1.0, {"a": 0.3}), "b": (1.0, {"b": 0.4}), "c": (1.0, {"c": 0.2}),
    "a@0.5": (0.5, {"a": 0.35}), "b@0.5": (0.5, {"b": 0.45}), "c@0.5": (0.5, {"c": 0.32}),
}


def nets(split: str) -> list[Network]:
    out = []
    for name, (cost, losses) in VAL.items():
        if split == "test":
            losses = {t: (0.4 if name == "abc" else v + 0.1) for t, v in losses.items()}
        out.append(Network(name, cost, losses))
    return out


BUDGETS = [1.0, 1.5, 3.0]


def test_all_in_one():
    # abc fits every budget: val 0.3 * 3 = 0.9, test 0.4 * 3 = 1.2
    out = all_in_one(nets("val"), nets("test"), BUDGETS, TASKS)
    assert [e["networks"] for e in out] == [["abc"]] * 3
    assert [e["test_total"] for e in out] == pytest.approx([1.2] * 3)
    assert "below" in all_in_one(nets("val"), None, [0.5], TASKS)[0]["error"]


def test_independent():
    out = independent(nets("val"), nets("test"), BUDGETS, TASKS)
    # 1.0: three single-task networks cost at least 3 * 0.5 = 1.5 -> infeasible
    assert out[0]["networks"] == [] and "1.5" in out[0]["error"]
    # 1.5: the three halves: val 0.35 + 0.45 + 0.32 = 1.12, test 1.12 + 0.3 = 1.42
    assert out[1]["networks"] == ["a@0.5", "b@0.5", "c@0.5"]
    assert out[1]["val_total"] == pytest.approx(1.12) and out[1]["test_total"] == \
        pytest.approx(1.42)
    # 3.0: the full singles: 0.3 + 0.4 + 0.2 = 0.9 (test 1.2)
    assert out[2]["networks"] == ["a", "b", "c"] and out[2]["val_total"] == pytest.approx(0.9)


# Two tasks a, b and three networks; the released procedure's draws are worked by hand below.
#            cost  val           test
# ab         1.0   a .30 b .50   a .40 b .70
# a          0.5   a .35         a .50
# b          0.5   b .55         b .60
FILL_VAL = [Network("ab", 1.0, {"a": 0.30, "b": 0.50}), Network("a", 0.5, {"a": 0.35}),
            Network("b", 0.5, {"b": 0.55})]
FILL_TEST = [Network("ab", 1.0, {"a": 0.40, "b": 0.70}), Network("a", 0.5, {"a": 0.50}),
             Network("b", 0.5, {"b": 0.60})]


def test_budget_filling_draws_worked_by_hand():
    # Budget 1.5, cheapest cost 0.5: walk a random order of the three networks (6 orders, each
    # 1/6), adding each that fits, stopping once less than 0.5 is left.
    #   ab,a,b -> ab (0.5 left), a (0 left): {ab, a}      ab,b,a -> {ab, b}
    #   a,ab,b -> a (1.0 left), ab (0 left): {a, ab}      b,ab,a -> {b, ab}
    #   a,b,ab -> a, b (0.5 left), ab does not fit, the order runs out: thrown away
    #   b,a,ab -> thrown away likewise
    # Kept: {ab, a} and {ab, b}, 1/2 each; 2 of 6 draws thrown away.
    # Paper's score (lowest test loss per task): {ab, a}: a min(.4, .5) = .4, b .7 -> 1.1;
    #   {ab, b}: a .4, b min(.7, .6) = .6 -> 1.0; mean 1.05, sd 0.05.
    # Validation assignment: {ab, a}: a -> ab (.30 < .35), b -> ab: test .4 + .7 = 1.1;
    #   {ab, b}: a -> ab, b -> ab (.50 < .55): 1.1 too; mean 1.1. Validation totals 0.8 both.
    # 8000 draws: the mean of the min score has standard error 0.05 / sqrt(8000) = 0.0006.
    e = random_groupings(FILL_VAL, FILL_TEST, [1.5], ["a", "b"], trials=8000, seed=2)[0]
    assert e["fill"] == "budget" and e["trials"] == 8000
    assert e["test_total_min"] == pytest.approx(1.05, abs=0.003)
    assert e["std_min"] == pytest.approx(0.05, abs=0.003)
    assert e["test_total"] == pytest.approx(1.1) and e["std"] == pytest.approx(0.0, abs=1e-12)
    assert e["val_total"] == pytest.approx(0.8)
    # thrown away: 1/3 of all draws, so about 4000 for 8000 kept (sd of the count ~ 65)
    assert 3700 < e["rejected"] < 4300
    # Budget 1: ab first (1/3) -> {ab} (0 left); a or b first -> then the other single fits
    # whatever comes between -> {a, b}. Min score: {ab} .4 + .7 = 1.1, {a, b} .5 + .6 = 1.1.
    # Assignment: the same networks serve -> 1.1 always; no draw is thrown away.
    e1 = random_groupings(FILL_VAL, FILL_TEST, [1.0], ["a", "b"], trials=500, seed=2)[0]
    assert e1["test_total_min"] == pytest.approx(1.1) and e1["rejected"] == 0
    # The earlier covering sampler stops once a and b are covered: at 1.5 it keeps {ab} alone
    # (1/3: ab first) and {a, b} or {a, ab}... so it differs; it stays available.
    cover = random_groupings(FILL_VAL, FILL_TEST, [1.5], ["a", "b"], trials=500, seed=2,
                             fill="cover")[0]
    assert cover["fill"] == "cover" and cover["test_total_min"] != pytest.approx(1.05, abs=0.01)


def test_budget_filling_is_reproducible_and_names_what_cannot_fill():
    a = random_groupings(FILL_VAL, FILL_TEST, [1.5, 2.0], ["a", "b"], trials=300, seed=5)
    b = random_groupings(FILL_VAL, FILL_TEST, [1.5, 2.0], ["a", "b"], trials=300, seed=5)
    assert a == b
    # Budget 2: every order takes all three networks (cost 2, 0 left): a .4, b .6 -> 1.0
    assert a[1]["test_total_min"] == pytest.approx(1.0) and a[1]["std_min"] == 0
    # Budget 3: all three cost 2, leaving 1.0 >= 0.5: no draw ever fills the budget
    none = random_groupings(FILL_VAL, FILL_TEST, [3.0], ["a", "b"], trials=10)[0]
    assert none["networks"] == [] and "fills budget 3" in none["error"]
    with pytest.raises(ValueError, match="fill"):
        random_groupings(FILL_VAL, FILL_TEST, [1.0], ["a", "b"], fill="greedy")


def test_pessimal_worked_by_hand():
    # Budget-filling sets cost more than budget - 0.5 and at most budget, and cover a and b.
    # 1.0: {ab} (min score 1.1) and {a, b} (1.1): tie on the score -> the cheaper, then fewer
    #      networks: both cost 1 -> {ab} (one network). Either way 1.1.
    # 1.5: {ab, a} (1.1) and {ab, b} (1.0); {a, b} costs 1.0, not above 1.0 -> {ab, a}, 1.1;
    #      its validation assignment serves a and b by ab: test .4 + .7 = 1.1.
    # 2.0: only {ab, a, b}: a .4, b .6 -> 1.0 (assignment: a -> ab .4, b -> ab .7 -> 1.1).
    # 3.0: nothing costs more than 2.5 -> infeasible, saying why.
    out = pessimal(FILL_VAL, FILL_TEST, [1.0, 1.5, 2.0, 3.0], ["a", "b"])
    assert out[0]["test_total_min"] == pytest.approx(1.1)
    assert out[1]["networks"] == ["a", "ab"] and out[1]["test_total_min"] == pytest.approx(1.1)
    assert out[1]["test_total"] == pytest.approx(1.1)
    assert out[2]["networks"] == ["a", "ab", "b"]
    assert out[2]["test_total_min"] == pytest.approx(1.0)
    assert out[2]["test_total"] == pytest.approx(1.1)
    assert out[3]["networks"] == [] and "fills budget 3" in out[3]["error"]
    # below the cheapest cover (0.5 + 0.5 = 1.0 or ab's 1.0): says so
    low = pessimal(FILL_VAL, FILL_TEST, [0.5], ["a", "b"])[0]
    assert low["networks"] == [] and "cheapest cover" in low["error"]


def test_pessimal_matches_brute_force_on_random_instances():
    rng = np.random.default_rng(1)
    for _ in range(60):
        tasks = ["p", "q", "r", "s"][: int(rng.integers(2, 5))]
        pool = []
        for k in range(1, len(tasks) + 1):
            for combo in itertools.combinations(tasks, k):
                if rng.random() < 0.7 or k == 1:
                    cost = float(rng.choice([0.5, 1.0]))
                    # ties on purpose: losses on a coarse grid
                    pool.append(Network("".join(combo) + f"@{cost}", cost,
                                        {t: float(rng.integers(1, 6)) / 10 for t in combo}))
        budget = float(rng.choice([1.0, 1.5, 2.0, 3.0]))
        cmin = min(n.cost for n in pool)
        worst = None
        for r in range(1, len(pool) + 1):
            for subset in itertools.combinations(pool, r):
                cost = sum(n.cost for n in subset)
                if cost > budget + 1e-9 or cost <= budget - cmin + 1e-9:
                    continue  # not a set a budget-filling draw can end in
                if not all(any(t in n.losses for n in subset) for t in tasks):
                    continue
                total = sum(min(n.losses[t] for n in subset if t in n.losses) for t in tasks)
                worst = total if worst is None else max(worst, total)
        got = pessimal(pool, None, [budget], tasks)[0]
        if worst is None:
            assert got["networks"] == [] and "error" in got
            continue
        assert got["test_total_min"] == pytest.approx(worst)
        chosen = [n for n in pool if n.name in got["networks"]]
        assert budget - cmin < sum(n.cost for n in chosen) <= budget + 1e-9
        # and no random draw is worse
        for e in random_groupings(pool, None, [budget], tasks, trials=50, seed=3):
            if e.get("trials"):
                assert e["test_total_min"] <= worst + 1e-9


def test_random_groupings_covering():
    # At budget 1.0 the only valid solution is {abc}: every trial scores test 1.2.
    out = random_groupings(nets("val"), nets("test"), [1.0, 3.0], TASKS, trials=200, seed=0,
                           fill="cover")
    assert out[0]["test_total"] == pytest.approx(1.2) and out[0]["std"] == pytest.approx(0)
    assert out[0]["trials"] == 200
    # At 3.0 the mean lies between the best and the worst valid solutions, and is
    # reproducible by seed.
    assert 0.9 + 0.3 - 1e-9 <= out[1]["test_total"] <= 1.57 + 1e-9
    again = random_groupings(nets("val"), nets("test"), [3.0], TASKS, trials=200, seed=0,
                             fill="cover")
    assert again[0]["test_total"] == out[1]["test_total"]
    assert random_groupings(nets("val"), None, [0.4], TASKS, trials=5,
                            fill="cover")[0]["networks"] == []


def test_pessimal_beyond_the_enumeration():
    # 14 tasks (more than the enumeration's 12): each has a full single (cost 1, loss 0.2) and
    # a half-size one (cost 0.5, loss 0.3); one pair network "t0+t1" (cost 1, loss 0.5 each).
    # Covers within 7: the 14 halves (14 * 0.5 = 7.0; total 14 * 0.3 = 4.2) and the pair + the
    # 12 other halves (1 + 6 = 7.0; total 2 * 0.5 + 12 * 0.3 = 4.6); any full single or any
    # extra network pushes the cost past 7. Pessimal: 4.6. The cheapest cover costs 7, so 6.5
    # is infeasible.
    tasks = [f"t{j}" for j in range(14)]
    pool = [Network(t, 1.0, {t: 0.2}) for t in tasks]
    pool += [Network(t + "@0.5", 0.5, {t: 0.3}) for t in tasks]
    pool.append(Network("t0+t1", 1.0, {"t0": 0.5, "t1": 0.5}))
    worst, none = pessimal(pool, None, [7.0, 6.5], tasks)
    assert worst["networks"] == sorted(["t0+t1"] + [t + "@0.5" for t in tasks[2:]])
    assert worst["val_total"] == pytest.approx(4.6)
    assert worst["assignment"]["t0"] == "t0+t1" and worst["assignment"]["t5"] == "t5@0.5"
    assert none["networks"] == [] and "cost 7" in none["error"]


def test_entries_score_test_by_the_validation_assignment():
    # Chosen {ab, a}; validation assigns a -> ab (0.2 < 0.3) and b -> ab: val 0.2 + 0.5 = 0.7.
    # As search scores every strategy: validation picks each task's server (a: ab 0.2 < a 0.3),
    # and the server's test loss counts: a 0.6 (not the lower 0.3 of the unused a), b 0.5 -> 1.1
    from taskgrouper.grouping.baselines import _entry

    val = {"ab": Network("ab", 1.0, {"a": 0.2, "b": 0.5}), "a": Network("a", 0.5, {"a": 0.3})}
    test = {"ab": Network("ab", 1.0, {"a": 0.6, "b": 0.5}), "a": Network("a", 0.5, {"a": 0.3})}
    e = _entry(1.5, ["ab", "a"], val, test, ["a", "b"])
    assert e["networks"] == ["a", "ab"] and e["cost"] == pytest.approx(1.5)
    assert e["assignment"] == {"a": "ab", "b": "ab"}
    assert e["val_total"] == pytest.approx(0.7) and e["test_total"] == pytest.approx(1.1)


def test_random_groupings_draw_uniformly_among_feasible_networks():
    # Tasks a, b; networks ab (cost 1), a and b (cost 0.5 each); budget 1. First pick: all
    # three leave enough budget (ab: 1 + 0; a: 0.5 + cheapest cover of {b} = 0.5), each with
    # probability 1/3. After a (or b) only the other single fits (ab would cost 1 > 0.5 left).
    # Solutions: {ab} with p = 1/3 (test 0.4 + 0.4 = 0.8), {a, b} with p = 2/3 (0.5 + 0.6 =
    # 1.1): mean 0.8/3 + 2.2/3 = 1.0; the test totals' sd is 0.3 * sqrt(2/9) = 0.141, so the
    # mean of 4000 trials has a standard error of 0.0022.
    val = [Network("ab", 1.0, {"a": 0.4, "b": 0.4}), Network("a", 0.5, {"a": 0.5}),
           Network("b", 0.5, {"b": 0.6})]
    out = random_groupings(val, val, [1.0], ["a", "b"], trials=4000, seed=1, fill="cover")[0]
    assert out["test_total"] == pytest.approx(1.0, abs=0.01)
    assert out["std"] == pytest.approx(0.3 * (2 / 9) ** 0.5, abs=0.01)


def test_random_groupings_at_a_tight_budget_on_many_tasks():
    # 12 tasks; every group of 1 to 3 tasks at cost 1, plus half-size singles (cost 0.5). At
    # budget 4 the only valid solutions are partitions into four triples: each of the 20
    # trials must be one (no dead end), and each task's loss is its triple's.
    tasks = [f"t{j:02d}" for j in range(12)]
    pool = [Network(t + "@0.5", 0.5, {t: 1.0}) for t in tasks]
    for size in (1, 2, 3):
        for group in itertools.combinations(tasks, size):
            pool.append(Network("+".join(group), 1.0, {t: 0.1 * size for t in group}))
    out = random_groupings(pool, pool, [4.0], tasks, trials=20, seed=0, fill="cover")[0]
    assert out["trials"] == 20 and "stopped" not in out
    assert out["test_total"] == pytest.approx(12 * 0.3) and out["std"] == pytest.approx(0)
    # a time limit of 0 s stops after the first trial, and says so
    quick = random_groupings(pool, pool, [4.0], tasks, trials=20, seed=0, time_limit=0,
                             fill="cover")[0]
    assert quick["trials"] == 1 and quick["stopped"] == "time limit"


def test_random_groupings_with_a_task_no_network_predicts():
    # Task c has no network: no valid solution at any budget, and no numpy warning on the way
    # (an unreachable task's cover bound is infinite; it must not meet a 0 weight).
    pool = [Network("ab", 1.0, {"a": 0.4, "b": 0.4}), Network("a", 0.5, {"a": 0.5})]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = random_groupings(pool, pool, [1.0, 10.0], ["a", "b", "c"], trials=10)
    assert [e["networks"] for e in out] == [[], []]


@pytest.mark.slow  # HiGHS spends about 16 s at the root before the limit can strike
def test_pessimal_time_limit_returns_a_valid_selection_and_its_bound():
    # 20 tasks, every group of up to 3 at cost 1 (losses: a base loss per task times a factor
    # in [0.85, 1.15]) and half-width singles: HiGHS takes over 10 minutes to prove the worst
    # budget-filling selection at budget 10. With a limit the entry is the worst found:
    # budget-filling (cost in (9.5, 10]), covering, marked, with a bound no lower than it.
    rng = np.random.default_rng(0)
    tasks = [f"t{i:02d}" for i in range(20)]
    base = {t: rng.uniform(0.5, 1.5) for t in tasks}
    pool = [Network(t + "@0.5", 0.5, {t: base[t] * 1.1}) for t in tasks]
    for k in (1, 2, 3):
        for g in itertools.combinations(tasks, k):
            pool.append(Network("+".join(g), 1.0,
                                {t: base[t] * rng.uniform(0.85, 1.15) for t in g}))
    (e,) = pessimal(pool, None, [10.0], tasks, time_limit=1.0)
    chosen = [n for n in pool if n.name in e["networks"]]
    assert 9.5 < sum(n.cost for n in chosen) <= 10.0 + 1e-9
    assert all(any(t in n.losses for n in chosen) for t in tasks)
    assert e["stopped"] == "time limit"
    assert e["upper_bound"] is None or e["upper_bound"] >= e["test_total_min"] - 1e-9
