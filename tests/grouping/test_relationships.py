"""Task relationships: Table 1, Table 2 and Figure 2 of Standley et al. (2020)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from taskgrouper.grouping.relationships import (
    affinity_correlation,
    affinity_table,
    order_relative,
    pair_table,
    relative_gain,
    transfer_table,
    transfer_tables,
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


# Transfer relationships (Sec. 5.1, Table 3, Figure 3): a 3-task example worked by hand.
OWN = {"a": 2.0, "b": 4.0, "c": 1.0}  # each task's loss in its own full-width network
TRANSFER = {  # (source i, target j) -> j's loss read out from i's frozen encoder
    ("b", "a"): 1.5, ("c", "a"): 2.2,
    ("a", "b"): 3.4, ("c", "b"): 5.0,
    ("a", "c"): 0.9, ("b", "c"): 1.15,
}


def test_transfer_table_hand_case():
    table = transfer_table(OWN, TRANSFER, TASKS)
    # table[j][i] = (L_j,own - L_j,from i) / |L_j,own|
    expected = {
        "a": {"b": (2.0 - 1.5) / 2.0,     # +0.25: b's encoder serves a better than a's own
              "c": (2.0 - 2.2) / 2.0},    # -0.10
        "b": {"a": (4.0 - 3.4) / 4.0,     # +0.15
              "c": (4.0 - 5.0) / 4.0},    # -0.25
        "c": {"a": (1.0 - 0.9) / 1.0,     # +0.10
              "b": (1.0 - 1.15) / 1.0},   # -0.15
    }
    assert list(table) == TASKS
    for j in TASKS:
        assert table[j][j] is None
        for i, value in expected[j].items():
            assert table[j][i] == pytest.approx(value, abs=1e-12), (i, j)
    # Table 3: the mean of the two directions
    affinity = transfer_tables(OWN, TRANSFER, TASKS)["affinity"]
    assert affinity["a"]["b"] == affinity["b"]["a"] == pytest.approx((0.25 + 0.15) / 2)  # 0.2
    assert affinity["a"]["c"] == pytest.approx((-0.10 + 0.10) / 2, abs=1e-12)  # 0.0
    assert affinity["b"]["c"] == pytest.approx((-0.25 - 0.15) / 2)  # -0.2
    assert affinity["a"]["a"] is None


def test_transfer_table_sign_and_missing_values():
    # negative own loss: the sign follows |L_own|; lower is still better
    table = transfer_table({"a": -2.0, "b": 1.0}, {("b", "a"): -3.0})
    assert table["a"]["b"] == pytest.approx((-2.0 - -3.0) / 2.0)  # +0.5
    # no readout a -> b: None there, and None in the averaged table
    assert table["b"]["a"] is None
    assert transfer_tables({"a": -2.0, "b": 1.0}, {("b", "a"): -3.0})["affinity"]["a"]["b"] \
        is None
    # an own loss of 0 or missing leaves the gain undefined
    assert transfer_table({"a": 0.0, "b": 1.0}, {("b", "a"): 1.0})["a"]["b"] is None
    assert transfer_table({"a": 1.0, "b": None}, {("a", "b"): 1.0})["b"]["a"] is None


def _symmetric(values: dict[tuple[str, str], float]) -> dict[str, dict[str, float | None]]:
    table: dict[str, dict[str, float | None]] = {t: {u: None for u in TASKS} for t in TASKS}
    for (t, u), v in values.items():
        table[t][u] = table[u][t] = v
    return table


def test_affinity_correlation_hand_case():
    transfer = transfer_tables(OWN, TRANSFER, TASKS)["affinity"]  # ab 0.2, ac 0.0, bc -0.2
    multi = _symmetric({("a", "b"): -0.1, ("a", "c"): 0.2, ("b", "c"): 0.05})
    corr = affinity_correlation(multi, transfer)
    assert corr["pairs"] == [["a", "b"], ["a", "c"], ["b", "c"]] and corr["n"] == 3
    assert corr["transfer"] == pytest.approx([0.2, 0.0, -0.2], abs=1e-12)
    assert corr["multi_task"] == [-0.1, 0.2, 0.05]
    # Pearson: x - mean(x) = (0.2, 0, -0.2); y - mean(y) = (-0.15, 0.15, 0)  (mean y = 0.05)
    # Sxy = 0.2 * -0.15 = -0.03; Sxx = 0.08; Syy = 0.045; r = -0.03 / sqrt(0.0036) = -0.5
    assert corr["pearson_r"] == pytest.approx(-0.5)
    # n = 3: under independence r has density 1 / (pi sqrt(1 - r^2)), so
    # p = P(|R| >= 0.5) = 1 - (2 / pi) arcsin(0.5) = 1 - 1/3 = 2/3
    assert corr["pearson_p"] == pytest.approx(1 - 2 / math.pi * math.asin(0.5))
    assert corr["pearson_p"] == pytest.approx(2 / 3)
    # Spearman: ranks of x (3, 2, 1), of y (1, 3, 2): deviations (1, 0, -1) and (-1, 1, 0),
    # Sxy = -1, Sxx = Syy = 2: rho = -0.5
    assert corr["spearman_rho"] == pytest.approx(-0.5)
    # t = rho sqrt((n - 2) / (1 - rho^2)) = -0.5 / sqrt(0.75) = -1/sqrt(3), 1 degree of
    # freedom (Cauchy): p = 1 - (2 / pi) arctan(1/sqrt(3)) = 1 - (2 / pi)(pi / 6) = 2/3
    assert corr["spearman_p"] == pytest.approx(1 - 2 / math.pi * math.atan(1 / math.sqrt(3)))
    assert corr["excluded"] == []


def test_affinity_correlation_skips_missing_and_excluded_pairs():
    transfer = _symmetric({("a", "b"): 0.1, ("a", "c"): 0.2, ("b", "c"): 0.3})
    multi = _symmetric({("a", "b"): 0.3, ("a", "c"): 0.2, ("b", "c"): 0.1})
    assert affinity_correlation(multi, transfer)["pearson_r"] == pytest.approx(-1.0)
    # two points are too few for a correlation: the statistics are None, the points stay
    multi["b"]["c"] = multi["c"]["b"] = None
    corr = affinity_correlation(multi, transfer)
    assert corr["pairs"] == [["a", "b"], ["a", "c"]] and corr["n"] == 2
    assert corr["pearson_r"] is None and corr["spearman_p"] is None
    corr = affinity_correlation(_symmetric({("a", "b"): 0.3, ("a", "c"): 0.2, ("b", "c"): 0.1}),
                                transfer, exclude=[("c", "a")])
    assert corr["excluded"] == [["a", "c"]] and corr["pairs"] == [["a", "b"], ["b", "c"]]
    # a constant side has no correlation
    flat = _symmetric({("a", "b"): 0.1, ("a", "c"): 0.1, ("b", "c"): 0.1})
    assert affinity_correlation(flat, transfer)["pearson_r"] is None
    # an ordered (asymmetric) table counts the mean of its two directions
    ordered = {"a": {"b": 0.0}, "b": {"a": 0.2}}
    assert affinity_correlation(ordered, ordered, ["a", "b"])["transfer"] == [
        pytest.approx(0.1)]


def test_reproduces_paper_figure_3():
    """Table 2 from the released losses against Taskonomy's Table 3 (as printed in the
    paper, percent), the outlier pair SemSeg-Edges removed: r = -0.54, p = 0.13."""
    nets = read_standley(DATA / "results_test.txt")
    cands = [{"id": n.name, "tasks": list(n.losses), "width": n.cost, "test": n.losses}
             for n in nets]
    tasks = list("sdnke")
    multi = affinity_table(pair_table(cands, tasks))
    printed = {("s", "d"): 1.740, ("s", "n"): 1.828, ("d", "n"): 1.915, ("s", "k"): 0.723,
               ("d", "k"): 0.406, ("n", "k"): 0.089, ("s", "e"): 0.700, ("d", "e"): 0.468,
               ("n", "e"): 0.118, ("k", "e"): 0.232}
    transfer: dict[str, dict[str, float | None]] = {t: {} for t in tasks}
    for (t, u), v in printed.items():
        transfer[t][u] = transfer[u][t] = v / 100
    corr = affinity_correlation(multi, transfer, tasks, exclude=[("s", "e")])
    assert corr["n"] == 9 and corr["excluded"] == [["s", "e"]]
    assert round(corr["pearson_r"], 2) == -0.54
    assert round(corr["pearson_p"], 2) == 0.13
    # with the outlier the negative correlation nearly vanishes
    assert round(affinity_correlation(multi, transfer, tasks)["pearson_r"], 2) == -0.12
