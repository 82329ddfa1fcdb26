"""Hand-worked checks of the streaming metrics and Delta_MTL."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from taskgrouper.evaluate.metrics import (
    LOWER_IS_BETTER,
    MetricAccumulator,
    delta_mtl,
    evaluate_predictions,
)
from taskgrouper.tasks import TaskSpec, default_metrics

NAN = math.nan


def seg_logits(labels: list, k: int) -> torch.Tensor:
    """One-hot logits (B, K, H, W) whose argmax is ``labels`` (B, H, W)."""
    ids = torch.tensor(labels)
    return F.one_hot(ids, k).permute(0, 3, 1, 2).float()


def tilted(degrees: list[float], length: float = 2.0) -> torch.Tensor:
    """Vectors (1, 3, 1, P) at the given angles from +z, rotated about x, not unit length."""
    a = torch.deg2rad(torch.tensor(degrees, dtype=torch.float64))
    v = torch.stack([torch.zeros_like(a), torch.sin(a), torch.cos(a)]) * length  # (3, P)
    return v[None, :, None, :].float()


# ---------------------------------------------------------------- segmentation

SEG2 = TaskSpec("s", "segmentation", channels=2)
SEG3 = TaskSpec("s", "segmentation", channels=3)


def test_segmentation_hand_worked():
    # target [[0,1],[1,1]], prediction [[0,1],[0,1]]
    # class 0: TP 1, FP 1 (bottom-left), FN 0 -> IoU 1/2
    # class 1: TP 2, FP 0, FN 1 (bottom-left) -> IoU 2/3
    # mIoU = (1/2 + 2/3) / 2 = 7/12; pixel acc = 3/4
    out = evaluate_predictions(SEG2, seg_logits([[[0, 1], [0, 1]]], 2),
                               torch.tensor([[[0, 1], [1, 1]]]))
    assert list(out) == ["miou", "pixel_acc"]
    assert out["miou"] == pytest.approx(7 / 12)
    assert out["pixel_acc"] == pytest.approx(3 / 4)


def test_segmentation_ignores_minus_one():
    # Same 2x2 case plus a third column whose targets are -1: the (wrong) predictions there
    # must not count, so the numbers stay 7/12 and 3/4.
    target = torch.tensor([[[0, 1, -1], [1, 1, -1]]])
    pred = seg_logits([[[0, 1, 1], [0, 1, 0]]], 2)
    out = evaluate_predictions(SEG2, pred, target)
    assert out["miou"] == pytest.approx(7 / 12)
    assert out["pixel_acc"] == pytest.approx(3 / 4)
    # Class ids are accepted instead of logits.
    ids = evaluate_predictions(SEG2, pred.argmax(1), target)
    assert ids == out


def test_segmentation_absent_class_skip_vs_zero():
    # Same case with K = 3: class 2 is in neither prediction nor target (TP+FP+FN = 0).
    # skip: (1/2 + 2/3) / 2 = 7/12;  zero: (1/2 + 2/3 + 0) / 3 = 7/18.
    pred, target = seg_logits([[[0, 1], [0, 1]]], 3), torch.tensor([[[0, 1], [1, 1]]])
    skip = evaluate_predictions(SEG3, pred, target)
    zero = evaluate_predictions(SEG3, pred, target, miou_absent="zero")
    assert skip["miou"] == pytest.approx(7 / 12)
    assert zero["miou"] == pytest.approx(7 / 18)
    assert skip["pixel_acc"] == zero["pixel_acc"] == pytest.approx(3 / 4)


def test_segmentation_class_only_predicted_is_not_absent():
    # target [[0,1],[1,1]], prediction [[0,1],[2,1]] with K = 3:
    # class 0: TP1 FP0 FN0 -> 1; class 1: TP2 FP0 FN1 -> 2/3; class 2: TP0 FP1 FN0 -> 0
    # even under "skip" class 2 counts: mIoU = (1 + 2/3 + 0) / 3 = 5/9.
    out = evaluate_predictions(SEG3, seg_logits([[[0, 1], [2, 1]]], 3),
                               torch.tensor([[[0, 1], [1, 1]]]))
    assert out["miou"] == pytest.approx(5 / 9)


def test_segmentation_streaming_equals_concatenation():
    # batch A: target [0,0], pred [0,0] -> class 0 IoU 1, class 1 absent -> mIoU 1
    # batch B: target [1,1], pred [0,1] -> class 0: TP0 FP1 -> 0; class 1: TP1 FN1 -> 1/2
    #          -> mIoU 1/4; the mean of per-batch mIoUs is (1 + 1/4) / 2 = 5/8.
    # whole split: target [0,0,1,1], pred [0,0,0,1]
    #   class 0: TP2 FP1 FN0 -> 2/3; class 1: TP1 FP0 FN1 -> 1/2 -> mIoU 7/12 != 5/8.
    ta, pa = torch.tensor([[[0, 0]]]), seg_logits([[[0, 0]]], 2)
    tb, pb = torch.tensor([[[1, 1]]]), seg_logits([[[0, 1]]], 2)
    acc = MetricAccumulator(SEG2)
    acc.update(pa, ta)
    acc.update(pb, tb)
    streamed = acc.compute()
    whole = evaluate_predictions(SEG2, torch.cat([pa, pb], dim=3), torch.cat([ta, tb], dim=2))
    per_batch = [evaluate_predictions(SEG2, pa, ta)["miou"],
                 evaluate_predictions(SEG2, pb, tb)["miou"]]
    assert per_batch == pytest.approx([1.0, 1 / 4])
    assert streamed["miou"] == pytest.approx(whole["miou"]) == pytest.approx(7 / 12)
    assert sum(per_batch) / 2 == pytest.approx(5 / 8)
    assert streamed["pixel_acc"] == pytest.approx(3 / 4)
    acc.reset()
    assert all(math.isnan(v) for v in acc.compute().values())


def test_segmentation_errors():
    with pytest.raises(ValueError, match="class id 2"):
        evaluate_predictions(SEG2, seg_logits([[[0, 1]]], 2), torch.tensor([[[0, 2]]]))
    with pytest.raises(ValueError, match="shape"):
        evaluate_predictions(SEG2, seg_logits([[[0, 1]]], 2), torch.tensor([[[0, 1, 1]]]))
    with pytest.raises(ValueError, match="miou_absent"):
        MetricAccumulator(SEG2, miou_absent="nan")


# ---------------------------------------------------------------- dense regression

DEPTH = TaskSpec("d", "dense_regression")


def test_depth_hand_worked():
    # valid (target, prediction): (2, 3), (4, 4), (1, 0.5); the NaN pixel is dropped.
    # errors 1, 0, -0.5 -> l1 = 1.5/3 = 0.5; mse = (1 + 0 + 0.25)/3 = 5/12; rmse = sqrt(5/12)
    # abs_rel = (1/2 + 0/4 + 0.5/1) / 3 = 1/3
    # ratios max(p/t, t/p): 1.5, 1.0, 2.0 -> only 1.0 < 1.25 -> delta1 = 1/3
    target = torch.tensor([[[[2.0, 4.0], [NAN, 1.0]]]])  # (1, 1, 2, 2)
    pred = torch.tensor([[[[3.0, 4.0], [100.0, 0.5]]]])
    out = evaluate_predictions(DEPTH, pred, target)
    assert list(out) == list(default_metrics("dense_regression"))
    assert out["l1"] == pytest.approx(0.5)
    assert out["rmse"] == pytest.approx(math.sqrt(5 / 12))
    assert out["abs_rel"] == pytest.approx(1 / 3)
    assert out["delta1"] == pytest.approx(1 / 3)


def test_depth_nonpositive_targets_and_predictions():
    # t = 0 is a valid label for l1/rmse but has no ratio: abs_rel/delta1 are NaN.
    out = evaluate_predictions(DEPTH, torch.tensor([[[[1.0, 1.0]]]]),
                               torch.tensor([[[[0.0, NAN]]]]))
    assert out["l1"] == pytest.approx(1.0) and out["rmse"] == pytest.approx(1.0)
    assert math.isnan(out["abs_rel"]) and math.isnan(out["delta1"])
    # A negative prediction is clamped to eps: ratio 1/eps, no crash, delta1 = 0.
    # abs_rel uses the unclamped error: |-1 - 1| / 1 = 2.
    out = evaluate_predictions(DEPTH, torch.tensor([[[[-1.0]]]]), torch.tensor([[[[1.0]]]]))
    assert out["delta1"] == 0.0 and out["abs_rel"] == pytest.approx(2.0)
    # No valid pixel at all: every metric NaN.
    out = evaluate_predictions(DEPTH, torch.tensor([[[[1.0]]]]), torch.tensor([[[[NAN]]]]))
    assert all(math.isnan(v) for v in out.values())


def test_dense_regression_multichannel_pixel_mask():
    # C = 2: pixel 2 has one NaN channel, so the whole pixel is excluded (as valid_mask).
    # remaining errors: pixel 1 channels |1-0| and |1-3| -> l1 = (1 + 2) / 2 = 1.5
    spec = TaskSpec("f", "dense_regression", channels=2)
    target = torch.tensor([[[[0.0, 5.0]], [[3.0, NAN]]]])  # (1, 2, 1, 2)
    pred = torch.ones(1, 2, 1, 2)
    assert evaluate_predictions(spec, pred, target)["l1"] == pytest.approx(1.5)


# ---------------------------------------------------------------- normals

NORMALS = TaskSpec("n", "normals", channels=3)


def test_normals_two_angles():
    # target +z everywhere; predictions 10 and 40 degrees off (length 2, not unit); the third
    # pixel's target is NaN and is dropped.
    # mean = median = (10 + 40) / 2 = 25; within 11.25 / 22.5 / 30: only the 10 -> 1/2 each.
    target = tilted([0.0, 0.0, 0.0], length=1.0)
    target[0, :, 0, 2] = NAN
    pred = tilted([10.0, 40.0, 90.0])
    out = evaluate_predictions(NORMALS, pred, target)
    assert list(out) == list(default_metrics("normals"))
    assert out["mean_angle"] == pytest.approx(25.0, abs=1e-4)
    assert out["median_angle"] == pytest.approx(25.0, abs=1e-4)
    assert out["within_11.25"] == out["within_22.5"] == out["within_30"] == pytest.approx(0.5)


def test_normals_three_angles_streamed_exact_and_histogram():
    # angles 10, 20, 40 over two batches: mean 70/3, median 20,
    # within_11.25 = 1/3, within_22.5 = 2/3, within_30 = 2/3.
    up = tilted([0.0, 0.0, 0.0], length=1.0)
    pred = tilted([10.0, 20.0, 40.0])
    results = {}
    for mode, limit in (("exact", 0), ("histogram", 0), ("auto", 10), ("auto", 2)):
        acc = MetricAccumulator(NORMALS, median=mode, exact_limit=limit)
        acc.update(pred[..., :1], up[..., :1])
        acc.update(pred[..., 1:], up[..., 1:])
        results[mode, limit] = (acc.compute(), acc.median_is_exact)
    for (out, _exact) in results.values():
        assert out["mean_angle"] == pytest.approx(70 / 3, abs=1e-4)
        assert out["within_11.25"] == pytest.approx(1 / 3)
        assert out["within_22.5"] == out["within_30"] == pytest.approx(2 / 3)
        # the histogram (0.01 degree bins) is within one bin of the exact median
        assert out["median_angle"] == pytest.approx(20.0, abs=0.01)
    assert results["exact", 0][0]["median_angle"] == pytest.approx(20.0, abs=1e-4)
    assert results["auto", 10][1] and results["exact", 0][1]
    assert not results["auto", 2][1] and not results["histogram", 0][1]


def test_normals_zero_vectors():
    # A zero target has no direction: excluded. A zero prediction counts as 90 degrees.
    target = tilted([0.0, 0.0, 0.0], length=1.0)
    target[0, :, 0, 0] = 0.0
    pred = tilted([5.0, 0.0, 30.0])
    pred[0, :, 0, 1] = 0.0
    out = evaluate_predictions(NORMALS, pred, target)
    assert out["mean_angle"] == pytest.approx(60.0, abs=1e-4)  # (90 + 30) / 2


# ---------------------------------------------------------------- global kinds


def test_classification_missing_labels():
    # argmax [0, 1, 2, 1] vs target [0, 2, -1, 1]: right, wrong, missing, right -> 2/3
    spec = TaskSpec("c", "classification", channels=3)
    logits = F.one_hot(torch.tensor([0, 1, 2, 1]), 3).float()
    target = torch.tensor([0, 2, -1, 1])
    assert evaluate_predictions(spec, logits, target) == {"accuracy": pytest.approx(2 / 3)}
    assert evaluate_predictions(spec, logits.argmax(1), target)["accuracy"] == pytest.approx(2 / 3)


def test_binary_missing_labels():
    # logits > 0 -> [1, 0, 1, 0, 1]; targets [1, 0, 0, NaN, -1]: right, right, wrong, two
    # missing -> 2/3. A (B, 1) logit column is accepted too.
    spec = TaskSpec("b", "binary")
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0, 1.0])
    target = torch.tensor([1.0, 0.0, 0.0, NAN, -1.0])
    assert evaluate_predictions(spec, logits, target)["accuracy"] == pytest.approx(2 / 3)
    assert evaluate_predictions(spec, logits[:, None], target)["accuracy"] == pytest.approx(2 / 3)


def test_regression_missing_labels():
    # (B,): errors 0.5 and 2 (the NaN row is dropped) -> l1 1.25, mse (0.25 + 4) / 2 = 2.125
    spec = TaskSpec("r", "regression")
    out = evaluate_predictions(spec, torch.tensor([1.0, 2.0, 3.0]),
                               torch.tensor([1.5, NAN, 1.0]))
    assert out == {"l1": pytest.approx(1.25), "mse": pytest.approx(2.125)}
    # (B, C): row 2 has a NaN and is dropped; errors 1, 2 -> l1 1.5, mse 2.5
    spec2 = TaskSpec("r2", "regression", channels=2)
    out = evaluate_predictions(spec2, torch.tensor([[0.0, 0.0], [1.0, 1.0]]),
                               torch.tensor([[1.0, 2.0], [NAN, 0.0]]))
    assert out == {"l1": pytest.approx(1.5), "mse": pytest.approx(2.5)}


def test_spec_metrics_in_order_and_directions_known():
    # A spec's own list is what is reported, headline first; no list gives the kind's defaults.
    assert MetricAccumulator(TaskSpec("d", "dense_regression", metrics=("rmse", "l1"))).names \
        == ("rmse", "l1")
    assert MetricAccumulator(TaskSpec("d", "dense_regression")).names \
        == ("l1", "rmse", "abs_rel", "delta1")
    for kind in ("segmentation", "dense_regression", "normals", "classification", "binary",
                 "regression"):
        assert set(default_metrics(kind)) <= set(LOWER_IS_BETTER)
    with pytest.raises(ValueError, match="did you mean"):
        MetricAccumulator(TaskSpec("d", "dense_regression", metrics=("rmes",)))


# ---------------------------------------------------------------- Delta_MTL

BASE = {"s": {"miou": 0.50}, "d": {"rmse": 1.0}}


def test_delta_mtl_hand_worked():
    # miou: +(0.55 - 0.50) / 0.50 = +0.1; rmse (lower better): -(0.9 - 1.0) / 1.0 = +0.1
    # mean over T = 2 pairs = 0.1 -> 10 %
    model = {"s": {"miou": 0.55}, "d": {"rmse": 0.9}}
    assert delta_mtl(model, BASE) == pytest.approx(10.0)
    # rmse 1.1: -(1.1 - 1.0) / 1.0 = -0.1 -> (0.1 - 0.1) / 2 = 0
    worse = {"s": {"miou": 0.55}, "d": {"rmse": 1.1}}
    assert delta_mtl(worse, BASE) == pytest.approx(0.0, abs=1e-12)
    # only the segmentation metric: +10 %; metrics logged only by the model are ignored
    assert delta_mtl(worse, BASE, metrics={"s": ["miou"]}) == pytest.approx(10.0)
    extra = {"s": {"miou": 0.55, "pixel_acc": 0.9, "loss": 0.3}, "d": {"rmse": 0.9}}
    assert delta_mtl(extra, BASE) == pytest.approx(10.0)


def test_delta_mtl_errors():
    with pytest.raises(ValueError, match="task 'd', metric 'rmse'.*0"):
        delta_mtl({"d": {"rmse": 0.9}}, {"d": {"rmse": 0.0}})
    with pytest.raises(ValueError, match="task 'd', metric 'l1'.*missing"):
        delta_mtl({"d": {"l1": 0.9}}, BASE, metrics={"d": ["l1"]})
    with pytest.raises(ValueError, match="task 'd'.*missing from the baseline"):
        delta_mtl({"d": {"rmse": 0.9}}, {"s": {"miou": 0.5}})
    with pytest.raises(ValueError, match="no .* pair"):
        delta_mtl({"s": {"loss": 0.1}}, {"s": {"loss": 0.2}})
