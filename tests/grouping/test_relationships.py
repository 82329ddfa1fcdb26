"""Task relationships: Table 1, Table 2 and Figure 2 of Standley et al. (2020)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskgrouper.grouping.relationships import (
    affinity_table,
    order_relative,
    pair_table,
    relative_gain,
)
from taskgrouper.grouping.tables import read_standley

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "standley2020"  # released, unchanged
TASKS = ["a", "b", "c"]


def _cand(tasks: str, width: float, test: dict[str, float], val: dict[str, float] | None = None):
    return {"id": tasks if width == 1.0 else f"{tasks}@{width:g}", "tasks": list(tasks),
            "width": width, "cost": width, "val": val or {}, "test": test}


def _hand_case() -> list[dict]:
    return [
        _cand("a", 0.5, {"a": 2.0}, val={"a": 1.0}),
        _cand("b", 0.5, {"b": 4.0}),
        _cand("c", 0.5, {"c": 1.0}),
        _cand("a", 0.333, {"a": 2.4}),  # 0.333 matches 1/3 within 1e-3
        _cand("b", 0.333, {"b": 5.0}),
        _cand("c", 0.333, {"c": 1.2}),
        _cand("a", 1.0, {"a": 0.1}),  # full-width singles play no part
        _cand("ab", 1.0, {"a": 1.5, "b": 5.0}, val={"a": 0.5, "b": 1.0}),
        _cand("ac", 1.0, {"a": 2.5, "c": 0.8}),
        _cand("bc", 1.0, {"b": 3.0, "c": 1.1}),
        _cand("abc", 1.0, {"a": 1.8, "b": 4.0, "c": 0.9}),
    ]


def test_pair_table_hand_case():
    table = pair_table(_hand_case(), TASKS)
    # (L_t(t@0.5) - L_t({t,u})) / L_t(t@0.5)
    expected = {
        "a": {"a": None, "b": (2.0 - 1.5) / 2.0,   # +0.25: b helps a
              "c": (2.0 - 2.5) / 2.0},             # -0.25
        "b": {"a": (4.0 - 5.0) / 4.0,              # -0.25
              "b": None, "c": (4.0 - 3.0) / 4.0},  # +0.25
        "c": {"a": (1.0 - 0.8) / 1.0,              # +0.20
              "b": (1.0 - 1.1) / 1.0,              # -0.10
              "c": None},
    }
    assert table.keys() == expected.keys()
    for t in TASKS:
        for u in TASKS:
            if expected[t][u] is None:
                assert table[t][u] is None
            else:
                assert table[t][u] == pytest.approx(expected[t][u], abs=1e-12)


def test_pair_table_val_split_and_missing_networks():
    table = pair_table(_hand_case(), TASKS, split="val")
    # val: a@0.5 = 1.0, ab gives a 0.5 -> (1.0 - 0.5) / 1.0 = 0.5
    assert table["a"]["b"] == pytest.approx(0.5)
    # b@0.5 has no val loss, ac has no val losses
    assert table["b"]["a"] is None
    assert table["a"]["c"] is None
    # A network that is missing altogether: drop the bc pair.
    cands = [c for c in _hand_case() if c["id"] != "bc"]
    table = pair_table(cands, TASKS)
    assert table["b"]["c"] is None and table["c"]["b"] is None
    assert table["c"]["a"] == pytest.approx(0.2)


def test_affinity_is_mean_of_table_and_transpose():
    aff = affinity_table(pair_table(_hand_case(), TASKS))
    # a-b: (+0.25 + -0.25) / 2 = 0;  a-c: (-0.25 + 0.20) / 2 = -0.025;
    # b-c: (+0.25 + -0.10) / 2 = 0.075
    assert aff["a"]["b"] == pytest.approx(0.0, abs=1e-12)
    assert aff["a"]["c"] == pytest.approx(-0.025)
    assert aff["b"]["c"] == pytest.approx(0.075)
    for t in TASKS:
        assert aff[t][t] is None
        for u in TASKS:
            assert aff[t][u] == aff[u][t]
    half = {"a": {"a": None, "b": 0.1}, "b": {"a": None, "b": None}}
    assert affinity_table(half)["a"]["b"] is None


def test_order_relative_hand_case():
    order = order_relative(_hand_case(), TASKS)
    # k = 2 against the 0.5-wide singles (a 2.0, b 4.0, c 1.0):
    #   ab: a +0.25, b -0.25;  ac: a -0.25, c +0.20;  bc: b +0.25, c -0.10
    #   mean = (0.25 - 0.25 - 0.25 + 0.20 + 0.25 - 0.10) / 6 = 0.10 / 6
    # k = 3 against the 0.333-wide singles (a 2.4, b 5.0, c 1.2):
    #   abc: a (2.4-1.8)/2.4 = 0.25, b (5-4)/5 = 0.20, c (1.2-0.9)/1.2 = 0.25 -> 0.70 / 3
    assert sorted(order) == [2, 3]
    assert order[2]["count"] == 3
    assert order[2]["mean"] == pytest.approx(0.10 / 6)
    assert order[3]["count"] == 1
    assert order[3]["mean"] == pytest.approx(0.70 / 3)


def test_order_relative_skips_k_without_singles():
    # No 1/3-wide singles (0.33 is outside the 1e-3 tolerance): k = 3 is left out.
    cands = [c for c in _hand_case() if c["width"] != 0.333]
    cands += [_cand("a", 0.33, {"a": 2.4}), _cand("b", 0.33, {"b": 5.0}),
              _cand("c", 0.33, {"c": 1.2})]
    order = order_relative(cands, TASKS)
    assert sorted(order) == [2]
    # Only the single of c missing at 0.5: networks with c do not count, ab alone does.
    cands = [c for c in _hand_case() if c["id"] != "c@0.5"]
    order = order_relative(cands, TASKS)
    assert order[2]["count"] == 1
    assert order[2]["mean"] == pytest.approx((0.25 - 0.25) / 2, abs=1e-12)
    assert order_relative([], TASKS) == {}


def test_relative_gain_undefined():
    assert relative_gain(None, 1.0) is None
    assert relative_gain(1.0, None) is None
    assert relative_gain(0.0, 1.0) is None
    assert relative_gain(float("nan"), 1.0) is None
    # Negative losses: the sign still says "shared is better" when shared is lower.
    assert relative_gain(-1.0, -1.5) == pytest.approx(0.5)


def test_reproduces_paper_tables_1_2_and_figure_2():
    nets = read_standley(DATA / "results_test.txt")
    cands = [{"id": n.name, "tasks": list(n.losses), "width": n.cost, "test": n.losses}
             for n in nets]
    tasks = list("sdnke")
    pair = pair_table(cands, tasks)
    # Table 1, rows "trained with" u, columns "performance on" t: pair[t][u].
    paper_rows = {  # percent, as printed
        "s": {"d": -5.41, "n": -11.29, "k": -4.32, "e": -34.64},
        "d": {"s": 4.17, "n": -3.55, "k": 3.49, "e": 3.76},
        "n": {"s": 8.50, "d": 2.48, "k": 1.37, "e": 12.33},
        "k": {"s": 4.82, "d": 1.38, "n": -0.02, "e": -5.26},
        "e": {"s": 3.07, "d": -0.92, "n": -4.42, "k": 1.37},
    }
    for u, row in paper_rows.items():
        for t, value in row.items():
            assert round(100 * pair[t][u], 2) == value, (t, u)
    # Table 2 (upper triangle as printed)
    aff = affinity_table(pair)
    paper_aff = {("s", "d"): -0.62, ("s", "n"): -1.39, ("s", "k"): 0.25, ("s", "e"): -15.78,
                 ("d", "n"): -0.54, ("d", "k"): 2.43, ("d", "e"): 1.42, ("n", "k"): 0.67,
                 ("n", "e"): 3.95, ("k", "e"): -1.95}
    for (t, u), value in paper_aff.items():
        assert round(100 * aff[t][u], 2) == value, (t, u)
    # Figure 2, two tasks: -1.15% (the released tables hold no 1/3, 1/4, 1/5 singles)
    order = order_relative(cands, tasks)
    assert sorted(order) == [2]
    assert order[2]["count"] == 10
    assert round(100 * order[2]["mean"], 2) == -1.15
