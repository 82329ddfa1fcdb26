"""The bench report: Table V layout and the Dolan-More performance profile, on a fake
bench.json with hand-worked numbers."""

from __future__ import annotations

import json
import math

import pytest

from taskgrouper.cli import main
from taskgrouper.report.bench import (
    bench_table,
    performance_profile,
    profile_ratios,
    write_bench_report,
)


def test_profile_ratios_and_fractions_by_hand():
    scores = {"A": {"t1": 1.0, "t2": 0.5}, "B": {"t1": 2.0, "t2": 1.0},
              "C": {"t1": None, "t2": 0.25}}
    lower = {"t1": True, "t2": False}
    ratios = profile_ratios(scores, lower)
    # t1 (lower is better), best 1.0: A 1/1, B 2/1, C missing -> inf
    # t2 (higher is better), best 1.0: A 1.0/0.5 = 2, B 1, C 1.0/0.25 = 4
    assert ratios == {"A": {"t1": 1.0, "t2": 2.0}, "B": {"t1": 2.0, "t2": 1.0},
                      "C": {"t1": math.inf, "t2": 4.0}}
    profile = performance_profile(ratios, [1.0, 1.9, 2.0, 4.0])
    assert profile == {"A": [0.5, 0.5, 1.0, 1.0], "B": [0.5, 0.5, 1.0, 1.0],
                       "C": [0.0, 0.0, 0.0, 0.5]}


def test_profile_ratio_edge_cases():
    # A perfect 0 error is the best; any other error is infinitely far from it. A higher-is-
    # better score of 0 cannot reach a positive best.
    ratios = profile_ratios({"A": {"e": 0.0, "acc": 0.0}, "B": {"e": 0.5, "acc": 0.8}},
                            {"e": True, "acc": False})
    assert ratios == {"A": {"e": 1.0, "acc": math.inf}, "B": {"e": math.inf, "acc": 1.0}}


def fake_bench() -> dict:
    def row(arch, bal, delta, s, d, params):
        return {"architecture": arch, "balancer": bal, "backbone": "xception",
                "flops": None if params is None else 2 * params, "params": params,
                "metrics": None if s is None else {"s": {"miou": s}, "d": {"rmse": d}},
                "delta_mtl": delta, "val_delta_mtl": delta, "run_id": f"{arch}.{bal}",
                "error": None if s is not None else "RuntimeError: diverged",
                "grid": {"chosen": None, "points": [], "train_samples": 0, "wall_s": 0.0}}

    return {
        "version": 1, "title": "Fake bench", "tasks": ["s", "d"], "backbone": "xception",
        "width": 1.0, "dataset": {"kind": "synthetic"},
        "task_metrics": {"s": ["miou"], "d": ["rmse"]},
        "lower_is_better": {"miou": False, "rmse": True},
        "grid": [{"optimizer": "adam", "batch_size": 8, "lr": 0.001}],
        "baselines": {"s": {"miou": 0.40}, "d": {"rmse": 2.0}},
        "single_task": {t: {"run_id": f"single-{t}", "params": 1_000_000,
                            "flops": 2_000_000_000,
                            "metrics": {t: {"miou": 0.40} if t == "s" else {"rmse": 2.0}},
                            "grid": {"chosen": {"optimizer": "adam", "batch_size": 8,
                                                "lr": 0.001}}} for t in ("s", "d")},
        "rows": [row("mtan", "uniform", -2.0, 0.42, 2.5, 1_500_000),
                 row("hard_sharing", "uniform", 1.5, 0.41, 1.9, 600_000),
                 row("hard_sharing", "mgda", None, None, None, None)],
        "skipped": [{"architecture": "jtrl", "balancer": "uniform",
                     "reason": "architecture 'jtrl' takes at most 2 tasks; the bench has 4"}],
        "failed": [{"run_id": "hard_sharing.mgda", "architecture": "hard_sharing",
                    "balancer": "mgda", "task": None,
                    "grid": {"optimizer": "adam", "batch_size": 8, "lr": 0.001},
                    "error": "TrainingDiverged: loss became NaN"}],
        "compute": {"runs": 4, "train_samples": 1000, "wall_s": 12.0},
    }


def test_table_v_sorted_by_delta_with_arrows_and_bold_best():
    table = bench_table(fake_bench())
    assert table.header == ("Model", "Balancer", "FLOPs (G)", "Params (M)", "s miou ↑",
                            "d rmse ↓", "ΔMTL (%) ↑")
    # +1.5 > +0.00 (single task) > -2.0 > no result
    assert [r[0] for r in table.rows] == ["hard_sharing", "Single task", "mtan", "hard_sharing"]
    assert table.rows[0][1:] == ("uniform", "0.0012", "0.6", "0.41", "1.9", "+1.50")
    # single task: the sum of its two networks, 2 x 1M params and 2 x 2 GFLOPs
    assert table.rows[1][2:4] == ("4", "2")
    assert table.rows[3][4:] == ("–", "–", "–")
    # best miou 0.42 (mtan, row 2), best rmse 1.9 (row 0), best delta (row 0)
    assert table.bold == frozenset({(2, 4), (0, 5), (0, 6)})


def test_bench_report_files_and_cli(tmp_path, capsys):
    bench = fake_bench()
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    assert main(["report", str(tmp_path)]) == 0
    assert "report.md" in capsys.readouterr().out
    md = (tmp_path / "report.md").read_text()
    assert "| hard_sharing | uniform | 0.0012 | 0.6 | 0.41 | **1.9** | **+1.50** |" in md
    assert "takes at most 2 tasks" in md and "TrainingDiverged" in md
    html = (tmp_path / "report.html").read_text()
    # the performance profile and Figure 10 (s against d)
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html
    assert "Trade-off between two tasks (Figure 10)" in md
    assert "the plane of s's and d's headline test metrics" in md
    assert (tmp_path / "figures" / "bench_tradeoff.png").is_file()
    # no model row: no figures, and old ones are removed
    md_path, _ = write_bench_report({**bench, "rows": []}, tmp_path)
    assert not (tmp_path / "figures" / "bench_profile.png").exists()
    assert not (tmp_path / "figures" / "bench_tradeoff.png").exists()
    assert "Single task" in md_path.read_text()


def test_bad_bench_file_exits_2(tmp_path, capsys):
    (tmp_path / "bench.json").write_text("{not json")
    assert main(["report", str(tmp_path)]) == 2
    assert "bench.json" in capsys.readouterr().err
    with pytest.raises(ValueError, match="expected a bench object"):
        write_bench_report({"rows": []}, tmp_path)


def seeded_bench() -> dict:
    """fake_bench with three seeds: hard sharing's per-seed Delta_MTL +1, +2, +3 (mean +2,
    sd 1, half-width t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321 = 2.484) and an AdaShare
    row whose seed 0 keeps 3 of 4 blocks for s and 1 of 4 for d."""
    bench = fake_bench()
    bench["seeds"] = [0, 1, 2]
    hard = bench["rows"][1]
    hard["seeds"] = [{"seed": k, "run_id": f"h{k}", "metrics": {}, "delta_mtl": 1.0 + k}
                     for k in range(3)]
    hard["delta_mtl"] = 2.0
    hard["delta_interval"] = {"mean": 2.0, "sd": 1.0, "low": 2.0 - 2.484, "high": 2.0 + 2.484,
                              "half_width": 2.484, "n": 3}
    ada = {"architecture": "adashare", "balancer": "uniform", "backbone": "xception",
           "flops": 1000, "params": 1000, "metrics": {"s": {"miou": 0.3}, "d": {"rmse": 2.2}},
           "delta_mtl": -17.5, "val_delta_mtl": -17.5, "run_id": "a0", "error": None,
           "delta_interval": {"mean": -17.5, "sd": 0.5, "low": -18.7, "high": -16.3,
                              "half_width": 1.2, "n": 3},
           "extra": {"stopped": "early_stopping", "adashare": {
               "blocks_kept": {"s": 0.75, "d": 0.25}}},
           "seeds": [{"seed": 0, "run_id": "a0", "metrics": {}, "delta_mtl": -17.0,
                      "extra": {"adashare": {
                          "blocks_kept": {"s": 0.75, "d": 0.25},
                          "policy": {"s": [True, True, False, True],
                                     "d": [False, False, True, False]}}}}],
           "grid": {"chosen": None, "points": [], "train_samples": 0, "wall_s": 0.0}}
    bench["rows"].append(ada)
    return bench


def test_table_v_shows_the_interval_and_the_policies(tmp_path):
    bench = seeded_bench()
    table = bench_table(bench)
    cells = {(row[0], row[1]): row[-1] for row in table.rows}
    assert cells[("hard_sharing", "uniform")] == "+2.00 ± 2.48"
    assert cells[("adashare", "uniform")] == "-17.50 ± 1.20"
    assert cells[("hard_sharing", "mgda")] == "–"  # no result, no interval
    assert "means over 3 seeds" in table.caption
    md_path, _ = write_bench_report(bench, tmp_path)
    md = md_path.read_text()
    # the policy table: 75% / 25% and the flags from the input on
    assert "| adashare + uniform | 0 | 75% | 25% | s xx.x; d ..x. |" in md
    assert "mean and 95% interval over 3 seeds" in md


def test_readme_bench_table_by_hand():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from readme_tables import render_bench

    text = render_bench(seeded_bench(), "bench.json")
    # hard sharing: +2.0 ± 2.5, interval [-0.5, +4.5] holds 0: not a real difference;
    # AdaShare: [-18.7, -16.3] excludes 0 on the worse side
    assert "| hard_sharing + uniform | +2.0 ± 2.5 | [-0.5, +4.5] | no |" in text
    assert ("| adashare + uniform (blocks kept: s 75%, d 25%) | -17.5 ± 1.2 | [-18.7, -16.3] "
            "| worse |") in text
    assert "3 seeds" in text
