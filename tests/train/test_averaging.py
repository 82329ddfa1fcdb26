"""The weight average (``train.ema``): the update worked by hand, the swap in and out, and
through the trainer (best.pt holds the average, resume is exact, the restored best.pt is the
average)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from taskgrouper.config import parse_config
from taskgrouper.data import load_dataset
from taskgrouper.models.checkpoint import load_checkpoint
from taskgrouper.train import train
from taskgrouper.train.averaging import WeightAverage


def _net():
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(0.0)
    return net


def test_update_by_hand():
    net = _net()
    avg = WeightAverage(net, 0.5)  # the warm-up (1 + k) / (10 + k) reaches 0.5 at k = 8
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    avg.update(net)  # k = 1: d = min(0.5, 2/11) = 2/11: 2/11 * 0 + 9/11 * 1
    assert avg.state["0.weight"].item() == pytest.approx(9 / 11)
    avg.update(net)  # k = 2: d = 3/12: 1/4 * 9/11 + 3/4 * 1 = 42/44
    assert avg.state["0.weight"].item() == pytest.approx(42 / 44)
    for _ in range(7):  # k = 3..9
        avg.update(net)
    with torch.no_grad():
        net[0].weight.fill_(-1.0)
    before = avg.state["0.weight"].item()
    avg.update(net)  # k = 10: d = min(0.5, 11/20) = 0.5
    assert avg.state["0.weight"].item() == pytest.approx(0.5 * before - 0.5, abs=1e-6)
    assert avg.updates == 10
    # float buffers are averaged alike; the integer batch counter is not averaged
    assert "1.running_mean" in avg.state and "1.num_batches_tracked" not in avg.state


def test_applied_swaps_in_and_back():
    net = _net()
    avg = WeightAverage(net, 0.5)  # average 0
    with torch.no_grad():
        net[0].weight.fill_(2.0)
    avg.update(net)  # average 9/11 * 2
    with avg.applied(net):
        assert net[0].weight.item() == pytest.approx(18 / 11)
    assert net[0].weight.item() == 2.0  # the optimiser's weights are back


def test_decay_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_net(), 1.0)


def _config(ema):
    train_cfg = {"epochs": 3, "batch_size": 8, "lr": 3e-3, "device": "cpu", "patience": 10,
                 "seed": 0}
    if ema is not None:
        train_cfg["ema"] = ema
    return parse_config({
        "data": {"kind": "synthetic", "n_train": 32, "n_val": 16, "n_test": 16,
                 "resolution": 32, "cache": False},
        "tasks": ["s", "n"],
        "model": {"backbone": "shallow", "scale": 0.25},
        "train": train_cfg,
    })


class _Interrupt(Exception):
    pass


def test_trainer_keeps_the_average_and_resumes_exactly(tmp_path):
    config = _config(0.9)
    data = load_dataset(config.data, config.tasks)
    full = train(config, tmp_path / "full", data=data, progress=False, log=lambda m: None)
    plain = train(_config(None), tmp_path / "plain", data=data, progress=False,
                  log=lambda m: None)
    # same seed, same steps: only the kept weights differ
    assert full.test != plain.test
    last = load_checkpoint(tmp_path / "full" / "last.pt", torch.device("cpu"))
    best = load_checkpoint(tmp_path / "full" / "best.pt", torch.device("cpu"))
    assert full.best_epoch == best["epoch"] == 3  # (this seed improves every epoch)
    # best.pt holds the average, not the optimiser's weights
    average = last["average"]["weights"]
    key = next(k for k, v in average.items() if v.dim() > 1)
    assert torch.equal(best["model"][key], average[key])
    assert not torch.equal(best["model"][key], last["model"][key])

    def stop_after_epoch_2(message: str) -> None:
        if message.startswith("epoch 2:"):
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(config, tmp_path / "cut", data=data, progress=False, log=stop_after_epoch_2)
    resumed = train(config, tmp_path / "cut", data=data, progress=False, log=lambda m: None)
    assert resumed.test == full.test  # the average travelled in last.pt


def test_a_missing_best_pt_is_restored_from_the_average(tmp_path):
    config = _config(0.9)
    data = load_dataset(config.data, config.tasks)

    def stop_after_epoch_1(message: str) -> None:
        if message.startswith("epoch 1:"):
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(config, tmp_path / "run", data=data, progress=False, log=stop_after_epoch_1)
    best = load_checkpoint(tmp_path / "run" / "best.pt", torch.device("cpu"))["model"]
    (tmp_path / "run" / "best.pt").unlink()
    logs = []

    def stop_when_resuming(message: str) -> None:  # best.pt is restored before this line
        logs.append(message)
        if "resuming after epoch 1" in message:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(config, tmp_path / "run", data=data, progress=False, log=stop_when_resuming)
    assert any("restored it from last.pt" in m for m in logs)
    restored = load_checkpoint(tmp_path / "run" / "best.pt", torch.device("cpu"))
    assert restored["epoch"] == 1
    assert all(torch.equal(restored["model"][k], v) for k, v in best.items())
