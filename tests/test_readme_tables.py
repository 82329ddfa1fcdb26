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
