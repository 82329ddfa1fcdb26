"""What the command line prints after a search."""

from __future__ import annotations

from taskgrouper.experiments.summary import format_search

RESULTS = {
    "budgets": [1.0, 2.0], "seeds": [0, 1, 2],
    "strategies": {"exhaustive": {
        "selections": [{"test_total": 1.0}, {"test_total": 0.9}],
        "compute": {"train_samples": 10, "wall_s": 3.0}}},
    "baselines": {"all_in_one": [{"test_total": 1.0}, {"test_total": 1.0}],
                  "independent": [{"test_total": 1.1}, {"test_total": 0.95}]},
}


def test_one_seed_prints_no_comparisons():
    text = format_search(RESULTS)
    assert "paired" not in text and "exhaustive: 10 training samples, 3 run-seconds" in text


def test_seeds_print_the_paired_comparisons_with_their_verdicts():
    comparisons = {"exhaustive": [
        # budget 1: the all-task network itself; budget 2: 10% better, interval below zero,
        # and against the independent networks -0.05 with sd 0.025: 3 seeds give
        # t * sd / sqrt(3) = 4.303 * 0.025 / 1.732 = 0.062 > 0.05, 4 give 3.182 * 0.025 / 2 =
        # 0.040 < 0.05: 4 seeds at this spread
        {"budget": 1.0, "against": "all_in_one", "mean": 0.0, "sd": 0.0, "relative": 0.0,
         "significant": False},
        {"budget": 2.0, "against": "all_in_one", "mean": -0.1, "sd": 0.01, "relative": -0.1,
         "significant": True},
        {"budget": 2.0, "against": "independent", "mean": -0.05, "sd": 0.025,
         "relative": -0.0526, "significant": False}]}
    text = format_search({**RESULTS, "comparisons": comparisons})
    assert "paired over 3 seeds" in text
    assert "  budget 1: +0.0% equal | -" in text
    assert "  budget 2: -10.0% better | -5.3% within noise (4 seeds at this spread)" in text
