"""The ``dense_binary`` kind in the models: a one-channel logit map, and a tiny network learns a
per-pixel binary target."""

from __future__ import annotations

import torch

from taskgrouper.evaluate.metrics import MetricAccumulator
from taskgrouper.models import build_backbone, build_head, build_model
from taskgrouper.tasks import TaskSpec
from taskgrouper.train.losses import task_loss

EDGE = TaskSpec("edge", "dense_binary", options=(("pos_weight", 0.7),))


def test_head_gives_a_one_channel_logit_map():
    bb = build_backbone("xception", (3, 32, 32), width=0.1)
    head = build_head(EDGE, bb)
    out = head(bb(torch.randn(2, 3, 32, 32)), (32, 32))
    assert tuple(out.shape) == (2, 1, 32, 32)
    # odd input sizes are resized to the input like the other dense kinds
    bb = build_backbone("resnet", (3, 33, 47), width=0.25).eval()
    out = build_head(EDGE, bb)(bb(torch.randn(1, 3, 33, 47)), (33, 47))
    assert tuple(out.shape) == (1, 1, 33, 47)


def test_dense_binary_task_trains():
    # Target: pixel (i, j) is 1 where input channel 0 is positive, a per-pixel function of
    # the input; a few Adam steps on one batch lower the (class-balanced) BCE.
    torch.manual_seed(0)
    model = build_model({"edge": EDGE}, (3, 32, 32), backbone="xception", width=0.1)
    x = torch.randn(2, 3, 32, 32)
    target = (x[:, :1] > 0).float()  # (2, 1, 32, 32)
    target[:, :, :2] = float("nan")  # two ignored rows
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = task_loss(EDGE, model(x)["edge"], target)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    out = model(x)["edge"].detach()
    assert tuple(out.shape) == (2, 1, 32, 32)
    last = float(task_loss(EDGE, out, target))
    assert last < 0.9 * losses[0], losses + [last]
    # the metrics take the head's output as it is (logits)
    acc = MetricAccumulator(TaskSpec("edge", "dense_binary", metrics=("f1", "maxf")))
    acc.update(out, target)
    scores = acc.compute()
    assert 0.0 <= scores["f1"] <= 1.0 and 0.0 <= scores["maxf"] <= 1.0
