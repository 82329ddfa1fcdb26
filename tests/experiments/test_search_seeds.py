"""``search.seeds``: every scored network trained with more seeds, totals paired by seed."""

from __future__ import annotations

import math
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bad_inputs"))
from bad_input_helpers import search_config, write_named_tasks  # noqa: E402

from taskgrouper.config import parse_config  # noqa: E402
from taskgrouper.experiments.search import search  # noqa: E402


@pytest.mark.slow
def test_three_seeds_pair_every_method(tmp_path):
    data = write_named_tasks(tmp_path / "data", ["a", "b", "c"], n=48)
    raw = search_config(data, "1:2:0.5", seeds=3)
    config = parse_config(raw)
    out = tmp_path / "sweep"
    results = search(config, out, progress=False, log=lambda _: None)
    assert results["seeds"] == [0, 1, 2]
    with sqlite3.connect(out / "runs.sqlite") as db:
        ids = {row[0] for row in db.execute("SELECT id FROM runs")}
    for sel in results["selections"]:
        assert len(sel["test_totals"]) == 3
        # seed 0 is the total selection was scored with; the reported total is the mean
        assert sel["test_totals"][0] == sel["test_total_seed0"]
        assert sel["test_total"] == pytest.approx(sum(sel["test_totals"]) / 3)
        low, high = sel["test_total_ci95"]
        assert low < sel["test_total"] < high
        for name in sel["networks"]:  # each chosen network ran with seeds 1 and 2
            rid = next(c["run_id"] for c in results["candidates"] if c["id"] == name)
            assert {f"{rid}-s1", f"{rid}-s2"} <= ids
    for name in ("all_in_one", "independent"):
        for entry in results["baselines"][name]:
            if entry["networks"]:
                assert len(entry["test_totals"]) == 3
    rows = results["comparisons"]["exhaustive"]
    assert {r["against"] for r in rows} == {"all_in_one", "independent"}
    for r in rows:
        entry = next(s for s in results["selections"] if s["budget"] == r["budget"])
        other = next(b for b in results["baselines"][r["against"]] if b["budget"] == r["budget"])
        diffs = [x - y for x, y in zip(entry["test_totals"], other["test_totals"], strict=True)]
        assert r["mean"] == pytest.approx(sum(diffs) / 3) and r["n"] == 3
        assert r["significant"] == (r["high"] < 0 or r["low"] > 0)
        assert math.isfinite(r["half_width"])

    # seeds repeat what is scored and nothing else: the chosen networks, the all-task network,
    # the single-task networks the independent baseline fields at some budget, and Table 1's
    # references (the half-width single-task networks)
    run_id = {c["id"]: c["run_id"] for c in results["candidates"]}
    scored = {n for v in results["strategies"].values() for sel in v["selections"]
              for n in sel["networks"]}
    scored |= {n for name in ("all_in_one", "independent")
               for e in results["baselines"][name] for n in e["networks"]}
    scored |= {c["id"] for c in results["candidates"]
               if len(c["tasks"]) == 1 and c["width"] == 0.5}
    # each of them has its losses by seed, their mean and spread
    noise = results["single_task_seeds"]
    for c in results["candidates"]:
        if len(c["tasks"]) == 1 and c["width"] == 0.5:
            entry = noise[c["id"]]
            assert entry["test"][0] == c["test"][c["tasks"][0]] and len(entry["test"]) == 3
            assert entry["mean"] == pytest.approx(sum(entry["test"]) / 3)
            assert entry["relative_sd"] == pytest.approx(entry["sd"] / entry["mean"])
    seeded = {i[:-3] for i in ids if i.endswith("-s1") and "mgda" not in i}
    assert seeded == {run_id[n] for n in scored}

    # the report: Table 4 as mean ± half-width, the paired comparisons and their verdicts
    report = (out / "report.md").read_text()
    first = results["selections"][0]
    half = (first["test_total_ci95"][1] - first["test_total_ci95"][0]) / 2
    assert f"{first['test_total']:.4f} ± {half:.4f}" in report
    assert "Paired comparisons over seeds" in report and "3 seeds: 0, 1, 2" in report
    assert "Beats both the all-task and the independent networks" in report
    # test loss against width, Table 1's seed noise, the all-task network against the
    # constant predictor
    assert "Larger networks against smaller ones" in report
    assert "Seed-to-seed noise of the width-0.5 single-task networks" in report
    assert "does every task learn?" in report

    # the folder keeps the weights of the chosen networks only (the store keeps every result)
    chosen = {n for v in results["strategies"].values() for sel in v["selections"]
              for n in sel["networks"]}
    kept = {p.parent.name for p in (out / "runs").glob("*/best.pt")}
    assert kept == {c["run_id"] for c in results["candidates"] if c["id"] in chosen}
    assert len(ids) > len(kept)

    # why each network stopped, and the all-task network's curve, in results and report
    conv = results["convergence"]
    assert sum(conv["stopped"].values()) == conv["networks"] == len(results["candidates"])
    assert set(conv["stopped"]) <= {"early_stopping", "schedule", "epoch_cap"}
    assert len(conv["all_task_curve"]) >= conv["all_task_best_epoch"] >= 1
    assert all(c["stopped"] and 1 <= c["best_epoch"] <= c["epochs_run"]
               for c in results["candidates"])
    assert "## Convergence" in report and "all_task_learning_curve.png" in report

    # the seeds are not part of what a run is: the same folder with 2 seeds trains nothing
    again = search(parse_config({**raw, "search": {**raw["search"], "seeds": 2}}), out,
                   progress=False, log=lambda _: None)
    with sqlite3.connect(out / "runs.sqlite") as db:
        assert {row[0] for row in db.execute("SELECT id FROM runs")} == ids
    assert all(len(s["test_totals"]) == 2 for s in again["selections"])

    # more seeds on the finished folder train the new seed only (what `demo --seeds 8` does
    # to a finished demo), and the earlier seeds' totals stay as they were
    more = search(parse_config({**raw, "search": {**raw["search"], "seeds": 4}}), out,
                  progress=False, log=lambda _: None)
    with sqlite3.connect(out / "runs.sqlite") as db:
        new = {row[0] for row in db.execute("SELECT id FROM runs")} - ids
    assert new and all(i.endswith("-s3") for i in new)
    assert {i[:-3] for i in new} == {i[:-3] for i in ids if i.endswith("-s1")}
    for before, after in zip(results["selections"], more["selections"], strict=True):
        assert after["test_totals"][:3] == before["test_totals"]
        assert len(after["test_totals"]) == 4
