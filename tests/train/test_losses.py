"""Per-task losses: masking and normalisation, hand-worked."""

import math

import numpy as np
import pytest
import torch

from taskgrouper.tasks import TaskSpec, fit_normalisation, normalise_target
from taskgrouper.train.losses import denormalise, task_loss, task_loss_sum


def test_dense_l1_masks_nan_pixels():
    spec = TaskSpec("d", "dense_regression")
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2)
    target = torch.tensor([[[[0.0, 2.5], [float("nan"), 4.0]]]])
    # valid errors: |1-0| = 1, |2-2.5| = 0.5, |4-4| = 0 -> sum 1.5 over 3 pixels = 0.5
    total, count = task_loss_sum(spec, pred, target)
    assert float(total) == pytest.approx(1.5) and float(count) == 3
    assert float(task_loss(spec, pred, target)) == pytest.approx(0.5)


def test_segmentation_cross_entropy_ignores_minus_one():
    spec = TaskSpec("s", "segmentation", channels=2)
    # two pixels with logits (0, 0) -> CE = log 2 each; the third pixel is ignored
    pred = torch.zeros(1, 2, 1, 3)
    pred[0, 0, 0, 2] = 100.0  # would be a huge loss if not ignored
    target = torch.tensor([[[0, 1, -1]]])
    target[0, 0, 2] = -1
    assert float(task_loss(spec, pred, target)) == pytest.approx(math.log(2))


def test_all_missing_batch_gives_zero_with_a_graph():
    spec = TaskSpec("r", "regression")
    pred = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = task_loss(spec, pred, torch.tensor([float("nan"), float("nan")]))
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert pred.grad is not None and float(pred.grad.abs().sum()) == 0


def test_binary_bce_and_classification():
    spec = TaskSpec("b", "binary")
    # logit 0 -> BCE log 2 for either label; the NaN label is dropped
    loss = task_loss(spec, torch.zeros(3), torch.tensor([1.0, 0.0, float("nan")]))
    assert float(loss) == pytest.approx(math.log(2))
    cls = TaskSpec("c", "classification", channels=3)
    logits = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    loss = task_loss(cls, logits, torch.tensor([2, -1]))
    assert float(loss) == pytest.approx(math.log(3))


def test_normals_cosine_loss():
    spec = TaskSpec("n", "normals", channels=3, loss="cosine")
    pred = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    target = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)
    # orthogonal vectors: 1 - cos 90deg = 1
    assert float(task_loss(spec, pred, target)) == pytest.approx(1.0)


def test_normalisation_round_trip():
    spec = TaskSpec("d", "dense_regression")
    train = np.array([[[[1.0, 3.0]]], [[[np.nan, 5.0]]]], dtype=np.float32)  # (2, 1, 1, 2)
    fitted = fit_normalisation(spec, train)
    # valid values 1, 3, 5: mean 3, population std sqrt(8/3)
    assert fitted.mean[0] == pytest.approx(3.0)
    assert fitted.std[0] == pytest.approx(math.sqrt(8 / 3))
    z = normalise_target(fitted, train)
    assert np.isnan(z[1, 0, 0, 0])
    back = denormalise(fitted, torch.from_numpy(np.nan_to_num(z)))
    assert float(back[0, 0, 0, 1]) == pytest.approx(3.0, abs=1e-5)
    assert float(back[1, 0, 0, 1]) == pytest.approx(5.0, abs=1e-5)


def test_task_spec_errors():
    with pytest.raises(ValueError, match=r"unknown kind 'segmentaton'.*segmentation"):
        TaskSpec("s", "segmentaton")
    with pytest.raises(ValueError, match=r"loss 'l2'"):
        TaskSpec("d", "dense_regression", loss="l2")
