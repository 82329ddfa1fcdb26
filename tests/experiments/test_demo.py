"""The demo's experiment: what it trains, and that its config runs end to end."""

from __future__ import annotations

import pytest

from taskgrouper.config import ExperimentConfig
from taskgrouper.experiments.demo import DEMO, QUICK, demo_config
from taskgrouper.grouping.tables import parse_budgets


def test_demo_configs_are_the_documented_experiment():
    full, quick = demo_config(), demo_config(quick=True)
    assert full.tasks == ["s", "d", "n", "k", "e"] and quick.tasks == ["d", "n", "e"]
    for cfg in (full, quick):
        # three seeds of every scored network; the SNT network is the shallow encoder at 0.4
        assert cfg.search.seeds == 3
        assert (cfg.model.backbone, cfg.model.scale) == ("shallow", 0.4)
        # converged, not capped: the plateau schedule ends a run after three halvings
        # (0.004 -> 0.002 -> 0.001 -> 0.0005) unless early stopping ends it first
        assert cfg.train.lr / cfg.train.min_lr == 8 and cfg.train.epochs >= 40
    # fewer scenes for the quick look; the same network, schedule and seeds
    assert (full.data.n_train, quick.data.n_train) == (600, 400)
    assert parse_budgets(full.search.budgets) == [1 + 0.5 * k for k in range(9)]
    assert parse_budgets(quick.search.budgets) == [1.0, 1.5, 2.0, 2.5, 3.0]
    # the full demo: the all-task baselines at widths 1 and 2, and Table 3's readouts
    assert full.search.baseline_widths == [1.0, 2.0] and full.search.transfer
    assert full.search.mgda_baseline and not quick.search.mgda_baseline
    # demo --seeds N changes the seeds only
    more = demo_config(seeds=8)
    assert more.search.seeds == 8
    assert more.model_dump(exclude={"search"}) == full.model_dump(exclude={"search"})
    assert (more.search.model_dump(exclude={"seeds"})
            == full.search.model_dump(exclude={"seeds"}))


@pytest.mark.slow
def test_quick_demo_config_runs_end_to_end(tmp_path):
    """The quick demo's config on a few scenes and epochs: every phase runs (seeds included),
    every run says why it stopped, and the report is written."""
    from taskgrouper.experiments.search import search

    raw = {**QUICK,
           "data": {**QUICK["data"], "n_train": 32, "n_val": 16, "n_test": 16, "cache": False},
           "train": {**QUICK["train"], "epochs": 2},
           "search": {**QUICK["search"], "budgets": "1:2:1", "seeds": 2, "esa_epochs": 1}}
    results = search(ExperimentConfig.model_validate(raw), tmp_path, workers=1,
                     progress=False, log=lambda _: None)
    assert results["seeds"] == [0, 1]
    assert all(c["stopped"] in {"early_stopping", "schedule", "epoch_cap"}
               for c in results["candidates"])
    for sel in results["selections"]:
        assert len(sel["test_totals"]) == 2
    assert (tmp_path / "report.md").is_file()
    assert DEMO["model"] == QUICK["model"] and DEMO["train"] == QUICK["train"]
    # the quick look leaves out MGDA-UB (search.mgda_baseline: false): no such run or row
    assert "mgda_ub" not in results["baselines"]
    assert not any("mgda" in p.name for p in (tmp_path / "runs").iterdir())
    # both test scores, on every scored selection
    assert all(s["test_total_min"] <= s["test_total"] + 1e-12 for s in results["selections"])
