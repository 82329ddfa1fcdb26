"""Report tables (no plotting): Table 4, compute beside quality, groupings, relationships."""

from __future__ import annotations

import pytest
from report_helpers import fresh_results

from taskgrouper.report.blocks import Table, to_markdown
from taskgrouper.report.tables import (
    budgets_of,
    candidates_table,
    collect_methods,
    compute_table,
    fmt_pct,
    groupings,
    groupings_table,
    order_table,
    pair_matrix,
    relationship_table,
    table4,
)


def _row(table: Table, label: str) -> tuple[str, ...]:
    return next(r for r in table.rows if r[0] == label)


def test_methods_in_report_order_with_labels():
    methods = collect_methods(fresh_results())
    assert [m.label for m in methods] == [
        "Optimal (exhaustive)", "ESA", "All-in-one", "Independent", "Random (mean of 100)",
        "Pessimal"]
    assert [m.kind for m in methods] == ["strategy"] * 2 + ["baseline"] * 4
    esa = methods[1]
    assert esa.total(1.0) is None  # infeasible
    assert esa.total(2.0) == 1.15
    assert esa.total(3.0) is None  # not run


def test_table4_values_and_bold_best():
    results = fresh_results()
    methods = collect_methods(results)
    t4 = table4(methods, budgets_of(results, methods), 3)
    assert t4.header == ("Method", "1", "2")
    assert _row(t4, "Optimal (exhaustive)") == ("Optimal (exhaustive)", "1.1700", "1.1200")
    assert _row(t4, "ESA") == ("ESA", "–", "1.1500")
    assert _row(t4, "Independent") == ("Independent", "–", "1.2000")
    assert _row(t4, "Random (mean of 100)")[2] == "1.1412 ± 0.0123"
    # Budget 1: four methods tie at 1.17 (bold); budget 2: the exhaustive 1.12 alone.
    labels = [r[0] for r in t4.rows]
    bold_1 = {labels[i] for i, j in t4.bold if j == 1}
    bold_2 = {labels[i] for i, j in t4.bold if j == 2}
    assert bold_1 == {"Optimal (exhaustive)", "All-in-one", "Random (mean of 100)", "Pessimal"}
    assert bold_2 == {"Optimal (exhaustive)"}


def test_strategy_from_top_level_selections_only():
    results = fresh_results()
    del results["strategies"], results["baselines"]
    methods = collect_methods(results)
    assert [(m.key, m.label) for m in methods] == [("exhaustive", "Optimal (exhaustive)")]
    assert methods[0].compute["train_samples"] == 10000
    del results["budgets"]
    assert budgets_of(results, methods) == [1.0, 2.0]


def test_compute_table_fractions_regret_and_stats():
    results = fresh_results()
    methods = collect_methods(results)
    table = compute_table(methods, [1.0, 2.0])
    ex, esa = _row(table, "Optimal (exhaustive)"), _row(table, "ESA")
    # samples 3000 / 10000 = 0.300, wall 25 / 100 = 0.250
    assert esa[1:5] == ("3,000", "25.0", "0.300", "0.250")
    # ESA feasible only at 2: mean 1.15; regret there 1.15 / 1.12 - 1 = +2.68%
    assert esa[5:8] == ("1.1500", "1/2", "+2.68%")
    assert "Pearson r (early vs final) 0.49" in esa[8] and "data fraction 0.2" in esa[8]
    # exhaustive: (1.17 + 1.12) / 2 = 1.1450
    assert ex[5:8] == ("1.1450", "2/2", "(reference)")
    # random: ((1.17/1.17 - 1) + (1.1412/1.12 - 1)) / 2 = 0.0189286 / 2 = +0.95%
    assert _row(table, "Random (mean of 100)")[1] == "–"
    assert _row(table, "Random (mean of 100)")[7] == "+0.95%"


def test_compute_table_hoa_stats_and_no_reference():
    results = fresh_results()
    results["strategies"]["hoa"] = {
        "compute": {"train_samples": 5000, "wall_s": 50.0},
        "selections": results["selections"],
        "stats": {"max_ratio_error": 0.052, "bias": 0.014, "count": float("nan")}}
    del results["strategies"]["exhaustive"]
    table = compute_table(collect_methods(results), [1.0, 2.0])
    hoa = _row(table, "HOA")
    assert hoa[3] == "–" and hoa[7] == "–"  # no exhaustive to compare with
    assert hoa[8] == "max-ratio error 5.20%; bias +1.40%; networks x tasks –"


def test_groupings_strategy_baseline_and_infeasible():
    results = fresh_results()
    methods = {m.key: m for m in collect_methods(results)}
    cands = {c["id"]: c for c in results["candidates"]}
    tasks = results["tasks"]
    ex = groupings(methods["exhaustive"], [1.0, 2.0], tasks, cands)
    assert ex[1].assignment == {"a": "ab", "b": "ab", "c": "c"}
    esa = groupings(methods["esa"], [1.0, 2.0], tasks, cands)
    assert esa[0].error.startswith("no choice")
    # Pessimal has no assignment: per task the lowest validation loss among abc and c@0.5:
    # a: abc (0.45); b: abc (0.38); c: c@0.5 0.30 < abc 0.31
    pess = groupings(methods["pessimal"], [1.0, 2.0], tasks, cands)
    assert pess[1].assignment == {"a": "abc", "b": "abc", "c": "c@0.5"}
    assert pess[1].cost == pytest.approx(1.5)  # 1.0 + 0.5 from the candidates
    assert groupings(methods["random"], [1.0, 2.0], tasks, cands) is None
    table = groupings_table(methods["esa"], esa, tasks)
    assert table.rows[0][5].startswith("infeasible: no choice")
    assert table.rows[1] == ("2", "1.500", "abc", "abc", "c@0.5", "abc, c@0.5", "1.1300",
                             "1.1500")


def test_unused_network_is_marked():
    results = fresh_results()
    sel = results["strategies"]["exhaustive"]["selections"][1]
    sel["networks"] = ["ab", "c", "a@0.5"]
    m = next(m for m in collect_methods(results) if m.key == "exhaustive")
    rows = groupings(m, [2.0], results["tasks"], {})
    assert groupings_table(m, rows, results["tasks"]).rows[0][5] == "ab, c, a@0.5 (unused)"


def test_relationship_tables_percent_and_averages():
    results = fresh_results()
    tasks = results["tasks"]
    m = pair_matrix(results["relationships"]["pair"], tasks)
    # row = trained with, column = performance on: pair["a"]["b"] = 0.0417 is row b, col a
    assert m[1][0] == 0.0417
    t1 = relationship_table(m, tasks, "corner", "", averages=True)
    assert t1.rows[1] == ("b", "4.17%", "–", "-34.64%", "-15.23%")  # (4.17 - 34.64) / 2
    # column a: (4.17 - 5.00) / 2 = -0.415 -> -0.42%
    assert t1.rows[3][:2] == ("Average", "-0.42%")
    t2 = relationship_table([[None, 0.03085], [0.03085, None]], ["a", "b"], "Task", "",
                            averages=False)
    assert t2.header == ("Task", "a", "b")
    assert t2.rows == (("a", "–", "3.08%"), ("b", "3.08%", "–"))
    order = order_table({"3": {"mean": 0.0423, "count": 1}, "2": {"mean": -0.0115, "count": 3}})
    assert order.rows == (("2 tasks", "-1.15%", "3"), ("3 tasks", "+4.23%", "1"))
    assert fmt_pct(None) == "–" and fmt_pct(float("nan")) == "–"


def test_candidates_table():
    results = fresh_results()
    table = candidates_table(results["candidates"], results["tasks"])
    assert table.header[-3:] == ("Test a", "Test b", "Test c")
    # abc: val 0.45 + 0.38 + 0.31 = 1.14
    assert table.rows[0] == ("abc", "a, b, c", "1.000", "1.000", "1,234,567", "1.1400",
                             "0.4700", "0.4000", "0.3000")
    assert table.rows[1][-1] == "–"


def test_markdown_table_bold_and_escaping():
    table = Table(("Method", "1"), (("a|b", "0.5"), ("c", "–")), frozenset({(0, 1)}), "cap")
    md = to_markdown([table])
    assert "| a\\|b | **0.5** |" in md
    assert "| --- | ---: |" in md
    assert "*cap*" in md


def test_width_table_means_over_seeds_and_the_width_effect():
    from taskgrouper.report.tables import width_table

    cands = [{"id": "a", "tasks": ["a"], "width": 1.0, "test": {"a": 0.40}},
             {"id": "a@0.2", "tasks": ["a"], "width": 0.2, "test": {"a": 0.52}},
             {"id": "b", "tasks": ["b"], "width": 1.0, "test": {"b": 1.00}},
             {"id": "ab", "tasks": ["a", "b"], "width": 1.0, "test": {"a": 0.3, "b": 0.9}}]
    # a at width 1 ran three seeds: mean 0.42, interval [0.38, 0.46] -> ± 0.04
    seeded = {"a": {"task": "a", "width": 1.0, "mean": 0.42, "ci95": [0.38, 0.46]}}
    table = width_table(cands, seeded, ["a", "b"])
    assert table.header == ("Task", "width 1/5", "width 1", "smallest vs full")
    # a: 0.52 / 0.42 - 1 = +23.81%; b has one width: no effect to show
    assert table.rows[0] == ("a", "0.5200", "0.4200 ± 0.0400", "+23.81%")
    assert table.rows[1] == ("b", "–", "1.0000", "–")
    assert width_table(cands[2:], {}, ["a", "b"]) is None  # one width only


def test_noise_table_and_learning_table():
    from taskgrouper.report.tables import learning_table, noise_table

    # losses 0.9, 1.0, 1.1: mean 1.0, sd 0.1, relative 10%
    seeded = {"a@0.5": {"task": "a", "width": 0.5, "test": [0.9, 1.0, 1.1], "mean": 1.0,
                        "sd": 0.1, "relative_sd": 0.1}}
    table = noise_table(seeded, ["a", "b"])
    assert table.rows == (("a", "3", "1.0000", "0.1000", "10.00%"),)
    assert noise_table({}, ["a"]) is None
    # mIoU 0.40 against the majority class's 0.19: 2.11x
    table = learning_table({"s": {"loss": 0.5, "miou": 0.40}, "d": {"loss": 0.3}},
                           {"s": {"loss": 4.0, "miou": 0.19}, "d": {"loss": 0.9}}, ["s", "d"])
    assert table.rows[0] == ("s", "0.5000", "4.0000", "0.4000", "0.1900", "2.11x")
    assert table.rows[1] == ("d", "0.3000", "0.9000", "–", "–", "–")
