"""AdaShare through the real trainer: policy search, the switch to retraining (fresh optimiser,
early stopping restarted), the final policy in the checkpoints, and an exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from taskgrouper.config import parse_config
from taskgrouper.data import load_dataset
from taskgrouper.train import train


class _Interrupt(Exception):
    pass


def _config():
    return parse_config({
        "data": {"kind": "synthetic", "n_train": 32, "n_val": 16, "n_test": 16,
                 "resolution": 32, "cache": False},
        "tasks": ["s", "d"],
        "model": {"backbone": "xception", "width": 0.1, "architecture": "adashare",
                  "options": {"search_epochs": 2}},
        "train": {"epochs": 4, "batch_size": 16, "lr": 3e-3, "device": "cpu",
                  "patience": 10, "seed": 0},
    })


@pytest.mark.slow
def test_search_then_retrain_and_resume(tmp_path):
    config = _config()
    data = load_dataset(config.data, config.tasks)
    messages: list[str] = []
    full = train(config, tmp_path / "full", data=data, progress=False, log=messages.append)

    # the switch happened before epoch 3, and only then
    switches = [m for m in messages if "starts a new training phase" in m]
    assert len(switches) == 1 and "epoch 3 " in switches[0]
    log = json.loads((tmp_path / "full" / "log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2, 3, 4]

    # the kept weights come from the retraining phase (early stopping restarted at epoch 3)
    assert full.best_epoch in (3, 4)
    best = torch.load(tmp_path / "full" / "best.pt", weights_only=False)
    last = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    assert best["epoch"] == full.best_epoch
    assert int(best["model"]["encoder.phase"]) == 1
    policy = best["model"]["encoder.policy"]  # (tasks, blocks) execute flags of the fixed policy
    assert policy.dtype == torch.bool and tuple(policy.shape) == (2, 6)
    assert torch.equal(policy, last["model"]["encoder.policy"])

    # interrupted right after epoch 3 was saved, then resumed: the same final numbers
    def stop_after_epoch_3(message: str) -> None:
        if message.startswith("epoch 3:"):
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(config, tmp_path / "resumed", data=data, progress=False, log=stop_after_epoch_3)
    saved = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    assert saved["epoch"] == 3 and int(saved["model"]["encoder.phase"]) == 1
    resumed_messages: list[str] = []
    resumed = train(config, tmp_path / "resumed", data=data, progress=False,
                    log=resumed_messages.append)
    assert any("resuming after epoch 3" in m for m in resumed_messages)
    assert not any("starts a new training phase" in m for m in resumed_messages)
    assert resumed.best_epoch == full.best_epoch
    assert resumed.val == full.val
    assert resumed.test == full.test
