"""``search`` with the affinity strategies: bad input fails clearly and loses nothing."""

from __future__ import annotations

import math

import pytest

from taskgrouper.cli import main
from taskgrouper.config import ExperimentConfig
from taskgrouper.experiments.search import search
from taskgrouper.runs.store import RunStore

TINY = {
    "data": {"kind": "synthetic", "n_train": 16, "n_val": 8, "n_test": 8, "resolution": 32,
             "cache": False},
    "tasks": ["s", "d"],
    "model": {"backbone": "xception", "width": 1.0},
    "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "threads": 1},
    "search": {"strategy": "lookahead", "budgets": "1:2:1", "affinity_every": 1,
               "random_trials": 10},
}


def test_affinity_strategy_needs_a_shared_encoder(tmp_path, capsys):
    cfg = {**TINY, "model": {**TINY["model"], "architecture": "cross_stitch"}}
    with pytest.raises(ValueError, match="strategy 'lookahead' measures task affinity on "
                                         "parameters every task shares, but architecture "
                                         "'cross_stitch'.*hard_sharing.*hoa or esa"):
        search(ExperimentConfig.model_validate(cfg), tmp_path / "out", progress=False,
               log=lambda *_: None)
    assert not (tmp_path / "out").exists()  # refused before anything was written
    path = tmp_path / "c.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path), "--out", str(tmp_path / "o2"), "--strategy", "gradcos",
                 "--quiet"]) == 2
    assert "architecture 'cross_stitch'" in capsys.readouterr().err


@pytest.mark.slow
def test_nan_affinity_stops_with_a_clear_error_and_keeps_every_run(tmp_path, monkeypatch,
                                                                    capsys):
    from taskgrouper.train import affinity

    real = affinity.AffinityRecorder.result

    def poisoned(self):
        out = real(self)
        out["lookahead"][0][1] = math.nan  # as if L_d were 0 at every recorded step
        return out

    monkeypatch.setattr(affinity.AffinityRecorder, "result", poisoned)
    config = ExperimentConfig.model_validate(TINY)
    with pytest.raises(ValueError, match=r"affinity run 'sd-a1' produced a non-finite "
                                         r"lookahead affinity for s->d.*kept in the store"):
        search(config, tmp_path, progress=False, log=lambda *_: None, baselines=False)
    with RunStore(tmp_path) as store:
        done = store.done_ids()
    # the phase-1 runs are all stored: 2 tasks x the 2 widths selection chooses among (C0's
    # full and half) + the recording run
    assert len(done) == 5 and "sd-a1" in done
    # from the command line: exit status 2 and the same message; the stored runs are kept
    # (the command line also trains the baselines' networks, which the call above left out)
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert main(["search", str(path), "--out", str(tmp_path), "--strategy", "lookahead",
                 "--quiet"]) == 2
    assert "non-finite lookahead affinity for s->d" in capsys.readouterr().err
    with RunStore(tmp_path) as store:
        assert done <= store.done_ids()
    # gradcos reads the same recording run (its matrix is finite): no phase-1 run again
    monkeypatch.undo()
    results = search(config, tmp_path, strategies="gradcos", progress=False,
                     log=lambda *_: None, baselines=False)
    assert results["strategies"]["gradcos"]["estimation_compute"]["runs"] == 5
    stats = results["strategies"]["gradcos"]["stats"]
    assert stats["affinity_run"] == "sd-a1" and stats["recorded_steps"] == 2
    assert stats["affinity"]["s"]["d"] == pytest.approx(stats["affinity"]["d"]["s"])
