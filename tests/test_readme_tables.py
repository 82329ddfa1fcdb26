"""``bench/readme_tables.py``: the README's result tables come from a results.json."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from readme_tables import render, replace  # noqa: E402

RESULTS = {"tasks": ["a", "b"], "budgets": [1.0, 2.0],
           "strategies": {"exhaustive": {"selections": [
               {"budget": 1.0, "networks": ["ab"], "test_total": 0.5},
               {"budget": 2.0, "networks": ["a", "b"], "test_total": 0.4,
                "test_totals": [0.4, 0.42, 0.38], "test_total_ci95": [0.35, 0.45]}]}},
           "baselines": {"all_in_one": [{"budget": 1.0, "networks": ["ab"], "test_total": 0.5},
                                        {"budget": 2.0, "networks": ["ab"],
                                         "test_total": 0.5}]},
           "seeds": [0, 1, 2]}


def test_the_table_is_rendered_from_the_results():
    table = render(RESULTS, "results.json")
    assert "| Optimal (exhaustive) | **0.5000** | **0.4000 ± 0.0500** |" in table
    assert "| All-in-one | **0.5000** | 0.5000 |" in table
    assert "3 seeds" in table


def test_only_the_marked_block_changes():
    readme = "intro\n<!-- results:demo start -->\nold\n<!-- results:demo end -->\noutro\n"
    new = replace(readme, "demo", "NEW")
    assert new == "intro\n<!-- results:demo start -->\nNEW\n<!-- results:demo end -->\noutro\n"
    with pytest.raises(SystemExit, match="results:other"):
        replace(readme, "other", "x")


def test_the_evidence_is_rendered_from_the_results():
    from readme_tables import render_evidence

    results = {**RESULTS, "comparisons": {"exhaustive": [
        # paired differences -0.05 on a baseline mean of 1.0: -5.00%, interval below zero
        {"budget": 2.0, "against": "all_in_one", "mean": -0.05, "low": -0.1, "high": -0.01,
         "relative": -0.05, "significant": True},
        {"budget": 2.0, "against": "independent", "mean": -0.01, "low": -0.04, "high": 0.02,
         "relative": -0.01, "significant": False}]},
        "convergence": {"networks": 3, "stopped": {"early_stopping": 2, "schedule": 1},
                        "epochs": 60, "all_task_best_epoch": 12}}
    text = render_evidence(results, "results.json")
    assert "| 2 | -5.00% [-0.1000, -0.0100] better | -1.00% [-0.0400, +0.0200] within noise |" \
        in text
    assert "of 3 fully trained networks, 2 by early stopping, 1 by schedule (epoch cap 60)" \
        in text


def test_verdicts_say_better_worse_equal_or_how_many_seeds_would_tell():
    from taskgrouper.report.tables import comparison_verdict

    assert comparison_verdict({"mean": -0.05, "significant": True, "relative": -0.04}) == \
        "better"
    assert comparison_verdict({"mean": 0.05, "significant": True, "relative": 0.04}) == "worse"
    # the same networks on both sides: totals equal up to rounding
    assert comparison_verdict({"mean": -7e-17, "sd": 1e-16, "relative": -5e-17,
                               "significant": False}) == "equal"
    # mean -0.058, sd 0.0275 over 3 seeds: 4 seeds would exclude zero (worked by hand in
    # tests/grouping/test_intervals.py)
    assert comparison_verdict({"mean": -0.058, "sd": 0.0275, "relative": -0.041,
                               "significant": False}) == "within noise (4 seeds at this spread)"
    # an effect far below its spread: no estimate up to 100 seeds
    assert comparison_verdict({"mean": -0.001, "sd": 0.1, "relative": -0.001,
                               "significant": False}) == "within noise"


def test_a_comparisons_block_gets_the_paired_comparisons_only():
    from readme_tables import rewrite

    results = {**RESULTS, "seeds": list(range(8)), "comparisons": {"exhaustive": [
        # 8 seeds; the difference's interval [-0.09, -0.01] excludes zero: better
        {"budget": 2.0, "against": "independent", "mean": -0.05, "low": -0.09, "high": -0.01,
         "relative": -0.04, "significant": True}]}}
    readme = ("<!-- results:x start -->\n<!-- results:x end -->\n"
              "<!-- results:x-comparisons start -->\nold\n<!-- results:x-comparisons end -->\n")
    new = rewrite(readme, "x", results, "r.json")
    block = new.split("<!-- results:x-comparisons start -->")[1]
    assert "| 2 | – | -4.00% [-0.0900, -0.0100] better |" in block
    assert "paired by seed (8 seeds)" in block
    assert "Optimal" not in block  # the Table 4 layout stays in its own block
    with pytest.raises(SystemExit, match="no paired comparisons"):
        rewrite(readme, "x", RESULTS, "r.json")


@pytest.mark.parametrize("name,recorded", [("demo", "demo_full_results.json"),
                                           ("quick", "demo_quick_results.json"),
                                           ("demo-seeds", "demo_seeds_results.json"),
                                           ("quick-seeds", "demo_quick_seeds_results.json"),
                                           ("bench", "bench_synthetic.json")])
def test_the_readme_is_what_the_recorded_demo_runs_give(name, recorded):
    """The README's demo and bench tables are generated from the results of the measured runs
    (kept in bench/recorded/): editing one without the other fails here."""
    import json

    from readme_tables import README, rewrite

    path = Path(__file__).resolve().parents[1] / "bench" / "recorded" / recorded
    text = README.read_text()
    assert rewrite(text, name, json.loads(path.read_text()), recorded) == text
