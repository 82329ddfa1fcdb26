"""Per-group learning-rate scales (``MultiTaskModel.lr_scales``): the groups, and each
schedule keeping the ratio, worked by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from taskgrouper.config import TrainConfig
from taskgrouper.train.schedule import Schedule, model_optimizer


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(2, 2)
        self.mix = nn.Linear(2, 2, bias=False)

    def lr_scales(self):
        return {"mix": 10.0}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_scaled_group_and_schedules_keep_the_ratio(optimizer):
    net, extra = _Net(), [nn.Parameter(torch.zeros(1))]
    cfg = TrainConfig(lr=0.01, optimizer=optimizer)
    opt = model_optimizer(net, extra, cfg)
    plain, fast = opt.param_groups
    # the model's own parameters first, then the extra (balancer) ones, as checkpoints hold them
    assert plain["params"] == [net.body.weight, net.body.bias, extra[0]]
    assert fast["params"] == [net.mix.weight]
    assert plain["lr"] == 0.01 and fast["lr"] == pytest.approx(0.1)
    # plateau: a training loss that does not improve halves both: 0.005 and 0.05
    sched = Schedule(opt, "plateau", 0.01, 100, 0.9)
    sched.after_epoch(1.0)
    sched.after_epoch(2.0)
    assert plain["lr"] == pytest.approx(0.005) and fast["lr"] == pytest.approx(0.05)
    assert sched.lr == pytest.approx(0.005)  # the schedule's rate, not the fast group's
    # poly after 50 of 100 steps, power 1: 0.01 * 0.5 and 0.1 * 0.5
    poly = Schedule(model_optimizer(net, [], cfg), "poly", 0.01, 100, 1.0)
    for _ in range(50):
        poly.after_step()
    g0, g1 = poly.optimizer.param_groups
    assert g0["lr"] == pytest.approx(0.005) and g1["lr"] == pytest.approx(0.05)


def test_without_scales_one_group_as_before():
    net = nn.Linear(2, 1)
    opt = model_optimizer(net, [], TrainConfig(lr=0.02))
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["lr"] == 0.02
