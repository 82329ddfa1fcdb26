"""The ``dense_binary`` kind in the loss, the label conventions, the constant baseline and the
balancers, hand-worked."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from taskgrouper.balancing.dtp import DTP
from taskgrouper.balancing.uncertainty import CLASSIFICATION_KINDS
from taskgrouper.tasks import TaskSpec, fit_normalisation
from taskgrouper.tasks import valid_mask as np_valid_mask
from taskgrouper.train.evaluation import constant_outputs as _constant_outputs
from taskgrouper.train.losses import denormalise, task_loss, task_loss_sum, valid_mask

NAN = math.nan
EDGE = TaskSpec("edge", "dense_binary", options=(("pos_weight", 0.95),))
PLAIN = TaskSpec("sal", "dense_binary")

# Four pixels (1, 1, 1, 4): logits 0, 0, ln 3, 50 against labels 1, 0, 1, NaN (ignored: its
# huge logit would cost 50 as a negative, it must not count).
LOGITS = torch.tensor([0.0, 0.0, math.log(3.0), 50.0]).view(1, 1, 1, 4)
LABELS = torch.tensor([1.0, 0.0, 1.0, NAN]).view(1, 1, 1, 4)


def test_dense_binary_bce_with_pos_weight_hand_worked():
    # w = 0.95: positives -w log(sigmoid(x)), negatives -(1 - w) log(1 - sigmoid(x)).
    # pixel 1 (y 1, x 0): 0.95 ln 2;  pixel 2 (y 0, x 0): 0.05 ln 2;
    # pixel 3 (y 1, sigmoid(ln 3) = 3/4): -0.95 ln(3/4) = 0.95 ln(4/3);  pixel 4 ignored.
    # sum = ln 2 + 0.95 ln(4/3) over 3 valid pixels.
    total, count = task_loss_sum(EDGE, LOGITS, LABELS)
    assert float(count) == 3
    assert float(total) == pytest.approx(math.log(2) + 0.95 * math.log(4 / 3), rel=1e-6)
    assert float(task_loss(EDGE, LOGITS, LABELS)) == pytest.approx(
        (math.log(2) + 0.95 * math.log(4 / 3)) / 3, rel=1e-6)


def test_dense_binary_plain_bce_and_nan_gradient():
    # No pos_weight: ln 2 + ln 2 + ln(4/3) over 3 pixels.
    pred = LOGITS.clone().requires_grad_(True)
    loss = task_loss(PLAIN, pred, LABELS)
    assert float(loss.detach()) == pytest.approx((2 * math.log(2) + math.log(4 / 3)) / 3, rel=1e-6)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert float(pred.grad[0, 0, 0, 3]) == 0.0  # the ignored pixel gets no gradient
    # d/dx of BCE = (sigmoid(x) - y) / 3: pixel 1 -> (1/2 - 1) / 3
    assert float(pred.grad[0, 0, 0, 0]) == pytest.approx(-0.5 / 3)


def test_dense_binary_loss_upsamples_and_checks_shapes():
    # a smaller (deeply supervised) logit map is upsampled bilinearly: a constant 0 stays 0
    total, count = task_loss_sum(PLAIN, torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 4, 4))
    assert float(count) == 16 and float(total) == pytest.approx(16 * math.log(2))
    with pytest.raises(ValueError, match="pos_weight must lie in"):
        task_loss(TaskSpec("e", "dense_binary", options=(("pos_weight", 1.5),)),
                  LOGITS, LABELS)
    with pytest.raises(ValueError, match="does not match target"):
        task_loss(PLAIN, torch.zeros(1, 2, 1, 4), LABELS)


def test_dense_binary_conventions():
    # valid masks drop the channel axis; no normalisation; denormalise is the identity
    assert valid_mask(PLAIN, LABELS).tolist() == [[[True, True, True, False]]]
    assert np_valid_mask(PLAIN, LABELS.numpy()).tolist() == [[[True, True, True, False]]]
    assert not PLAIN.normalised and PLAIN.dense
    assert fit_normalisation(PLAIN, LABELS.numpy()) is PLAIN
    assert torch.equal(denormalise(EDGE, LOGITS), LOGITS)
    assert PLAIN.metrics == ("f1", "pixel_acc")
    with pytest.raises(ValueError, match="1 channel"):
        TaskSpec("e", "dense_binary", channels=2)


def test_constant_baseline_predicts_the_majority_label():
    # training labels: 3 of 4 valid pixels are 0 (the NaN is left out) -> logit -10
    train = torch.tensor([0.0, 0.0, 1.0, 0.0, NAN]).view(1, 1, 1, 5)
    out = _constant_outputs(PLAIN, train, 2, (3, 4))
    assert out.shape == (2, 1, 3, 4) and bool((out == -10.0).all())
    # 2 of 3 are 1 -> +10
    out = _constant_outputs(PLAIN, torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 1, 3), 1, (2, 2))
    assert bool((out == 10.0).all())


def test_balancers_treat_dense_binary_as_classification():
    assert "dense_binary" in CLASSIFICATION_KINDS
    # DTP's KPI for a dense_binary task is its headline metric
    specs = {"edge": TaskSpec("edge", "dense_binary", metrics=("odsf", "oisf")),
             "sal": PLAIN}
    dtp = DTP()
    dtp.setup(list(specs), SimpleNamespace(specs=specs))
    assert dtp.kpi_metric("edge") == "odsf" and dtp.kpi_metric("sal") == "f1"
    dtp.epoch_end({}, val_metrics={"edge": {"odsf": 0.5}, "sal": {"f1": 0.25}})
    assert dtp.kpis == {"edge": 0.5, "sal": 0.25}
    w = dtp.weights()
    assert w["edge"] == pytest.approx(-(0.5 ** 2) * np.log(0.5))
