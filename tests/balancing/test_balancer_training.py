"""Every balancer inside the real training loop: a run interrupted after epoch 2 resumes from
its checkpoint (balancer state included) to exactly the numbers of an uninterrupted run, and
the logged weights are finite."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from taskgrouper.balancing import BALANCERS
from taskgrouper.config import parse_config
from taskgrouper.data.base import MultiTaskData, Split
from taskgrouper.tasks import TaskSpec
from taskgrouper.train import train
from taskgrouper.train import trainer as trainer_mod


def _data(seed: int = 0) -> MultiTaskData:
    """Two learnable tasks over 8 features: y = x0 - x1 (regression), c = [x2 > 0]."""
    rng = np.random.default_rng(seed)

    def split(size):
        x = rng.normal(size=(size, 8)).astype(np.float32)
        y = (x[:, 0] - x[:, 1]).astype(np.float32)
        c = (x[:, 2] > 0).astype(np.int64)
        return Split(x, {"y": y, "c": c})

    tasks = {"y": TaskSpec("y", "regression"), "c": TaskSpec("c", "classification", 2)}
    return MultiTaskData(tasks, split(96), split(32), split(32), name="tabular")


def _config(name: str):
    return parse_config({
        "data": {"kind": "arrays", "path": "unused"},
        "model": {"backbone": "mlp", "width": 0.25}, "balancer": {"name": name},
        "train": {"epochs": 3, "batch_size": 32, "lr": 3e-3, "device": "cpu",
                  "patience": 10, "optimizer": "adam"}})


@pytest.mark.parametrize("name", [info.name for info in BALANCERS])
def test_interrupted_run_resumes_exactly(name, tmp_path, monkeypatch):
    quiet = {"progress": False, "log": lambda m: None}
    reference = train(_config(name), tmp_path / "ref", data=_data(), **quiet)
    log = json.loads((tmp_path / "ref" / "log.json").read_text())
    weights = [w for epoch in log["epochs"] for w in epoch["weights"].values()]
    assert len(weights) == 6 and all(math.isfinite(w) for w in weights)

    original = trainer_mod.evaluate_split
    calls = {"n": 0}

    def interrupt_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "evaluate_split", interrupt_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(_config(name), tmp_path / "run", data=_data(), **quiet)
    monkeypatch.setattr(trainer_mod, "evaluate_split", original)
    resumed = train(_config(name), tmp_path / "run", data=_data(), **quiet)
    assert resumed.val == reference.val and resumed.test == reference.test
