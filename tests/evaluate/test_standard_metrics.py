"""Hand-worked checks of the dense-prediction literature's metrics: dense binary maps (F1,
pixel accuracy, saliency max F-beta and max mIoU), the Eigen depth set, the RMS angle of
normals, the mIoU conventions, and the metric-name checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from taskgrouper.evaluate.metrics import (
    LOWER_IS_BETTER,
    SUPPORTED_METRICS,
    MetricAccumulator,
    evaluate_predictions,
)
from taskgrouper.evaluate.saliency import (
    max_fbeta,
    max_mean_iou,
    threshold_counts,
    threshold_histograms,
    thresholds_tensor,
)
from taskgrouper.tasks import KINDS, TaskSpec, default_metrics

NAN = math.nan


def logit(p: list[float]) -> torch.Tensor:
    """(1, 1, 1, P) logits of the probabilities ``p``."""
    t = torch.tensor(p, dtype=torch.float64)
    return torch.log(t / (1 - t)).float()[None, None, None]


def row(values: list[float]) -> torch.Tensor:
    """(1, 1, 1, P) float32 map."""
    return torch.tensor(values, dtype=torch.float32)[None, None, None]


# ---------------------------------------------------------------- dense binary

# Six valid pixels and one ignored (its prediction 0.8 must not count):
#   probability  0.9  0.7  0.6  0.3  0.2  0.1  | 0.8
#   label        1    1    0    0    1    0    | NaN
PROB = [0.9, 0.7, 0.6, 0.3, 0.2, 0.1, 0.8]
LABEL = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, NAN]


def test_dense_binary_f1_and_pixel_accuracy_at_one_half():
    # logit > 0 <=> p > 0.5: predicted positive 0.9, 0.7, 0.6 -> TP 2 (0.9, 0.7), FP 1 (0.6),
    # FN 1 (0.2), TN 2 (0.3, 0.1). f1 = 2TP / (2TP + FP + FN) = 4/6 = 2/3;
    # pixel_acc = (TP + TN) / 6 = 4/6.
    spec = TaskSpec("e", "dense_binary")
    out = evaluate_predictions(spec, logit(PROB), row(LABEL))
    assert list(out) == list(default_metrics("dense_binary")) == ["f1", "pixel_acc"]
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["pixel_acc"] == pytest.approx(4 / 6)
    # (B, H, W) predictions and targets are accepted too
    assert evaluate_predictions(spec, logit(PROB)[:, 0], row(LABEL)[:, 0]) == out


def test_dense_binary_masks_nan_and_handles_no_positive():
    spec = TaskSpec("e", "dense_binary")
    # all ignored: NaN
    out = evaluate_predictions(spec, logit([0.9, 0.1]), row([NAN, NAN]))
    assert all(math.isnan(v) for v in out.values())
    # no positive label, none predicted: F1 is 0/0 -> 0 (the benchmark's convention),
    # pixel accuracy 1
    out = evaluate_predictions(spec, logit([0.1, 0.2]), row([0.0, 0.0]))
    assert out == {"f1": 0.0, "pixel_acc": 1.0}


def test_saliency_counts_at_a_known_threshold():
    # thresholds=3: t = 0.25, 0.5, 0.75; a pixel is positive from p >= t.
    # t = 0.5: positive 0.9, 0.7, 0.6 -> TP 2, FP 1, FN 1, TN 2 (the ignored pixel is left out)
    # P = 2/3, R = 2/3; F-beta (beta^2 = 0.3) = 1.3 P R / (0.3 P + R) = 1.3 (4/9) / (1.3 (2/3))
    # = 2/3.
    t = thresholds_tensor(3)
    assert t.tolist() == [0.25, 0.5, 0.75]
    prob = torch.tensor(PROB[:6], dtype=torch.float64)
    positive = torch.tensor(LABEL[:6]) >= 0.5
    counts = threshold_counts(threshold_histograms(prob, positive, t))  # (3, 4)
    assert counts.tolist() == [
        [2, 2, 1, 1],  # t = 0.25: positive 0.9, 0.7, 0.6, 0.3
        [2, 1, 1, 2],  # t = 0.5
        [1, 0, 2, 3],  # t = 0.75: positive 0.9
    ]
    assert max_fbeta(counts[1:2]) == pytest.approx(2 / 3)


def test_saliency_maxf_and_max_miou():
    # Per threshold (counts above), F-beta with beta^2 = 0.3 and mean IoU of fg and bg:
    # t = 0.25: P = 2/4, R = 2/3: F = 1.3 (1/3) / (0.15 + 2/3) = (13/30) / (49/60) = 26/49
    #           IoU_fg = 2 / (2+2+1) = 2/5, IoU_bg = 1 / (1+1+2) = 1/4 -> 13/40
    # t = 0.5:  P = R = 2/3: F = 2/3;  IoU_fg = 2/4, IoU_bg = 2/4 -> 1/2
    # t = 0.75: P = 1, R = 1/3: F = 1.3 (1/3) / (0.3 + 1/3) = 1.3 / 1.9 = 13/19
    #           IoU_fg = 1/3, IoU_bg = 3 / (3+2+0) = 3/5 -> 7/15
    # maxf = 13/19 (at 0.75), max_miou = 1/2 (at 0.5).
    spec = TaskSpec("sal", "dense_binary", metrics=("maxf", "max_miou"),
                    options=(("thresholds", 3.0),))
    out = evaluate_predictions(spec, logit(PROB), row(LABEL))
    assert out["maxf"] == pytest.approx(13 / 19)
    assert out["max_miou"] == pytest.approx(1 / 2)
    # streamed in two batches: the same split-level counts
    acc = MetricAccumulator(spec)
    acc.update(logit(PROB)[..., :3], row(LABEL)[..., :3])
    acc.update(logit(PROB)[..., 3:], row(LABEL)[..., 3:])
    assert acc.compute() == out
    # The 99 default thresholds also cut between 0.6 and 0.7 (t = 0.61..0.70): positive 0.9,
    # 0.7 -> TP 2, FP 0, FN 1, TN 3: P = 1, R = 2/3, F = 1.3 (2/3) / (0.3 + 2/3) = 26/29;
    # IoU_fg = 2/3, IoU_bg = 3/4 -> 17/24. These beat the 3-threshold maxima.
    spec99 = TaskSpec("sal", "dense_binary", metrics=("maxf", "max_miou"))
    out99 = evaluate_predictions(spec99, logit(PROB), row(LABEL))
    assert out99 == {"maxf": pytest.approx(26 / 29), "max_miou": pytest.approx(17 / 24)}


def test_max_miou_absent_class_conventions():
    # All pixels negative and predicted negative at t = 0.5: TP = FP = FN = 0, TN = 2.
    # IoU_fg is 0/0: skipped -> mean over bg only = 1; counted as 0 -> (0 + 1) / 2.
    counts = torch.tensor([[0, 0, 0, 2]])
    assert max_mean_iou(counts) == 1.0
    assert max_mean_iou(counts, absent="zero") == 0.5
    assert math.isnan(max_mean_iou(torch.zeros(1, 4, dtype=torch.int64)))


# ---------------------------------------------------------------- depth (Eigen et al.)


def test_eigen_depth_set_hand_worked():
    # target [[1, 2], [5, 1]], prediction [[1, 3], [3, 2]]; errors p - t: 0, 1, -2, 1
    # l1 = (0 + 1 + 2 + 1) / 4 = 1;  rmse = sqrt((0 + 1 + 4 + 1) / 4) = sqrt(1.5)
    # abs_rel = (0/1 + 1/2 + 2/5 + 1/1) / 4 = 1.9 / 4 = 0.475
    # sq_rel  = (0/1 + 1/2 + 4/5 + 1/1) / 4 = 2.3 / 4 = 0.575
    # rmse_log = sqrt((ln(1)^2 + ln(3/2)^2 + ln(3/5)^2 + ln(2)^2) / 4)
    #          = sqrt((0 + 0.16440 + 0.26094 + 0.48045) / 4) = 0.47587
    # log10 = (0 + log10 1.5 + |log10 0.6| + log10 2) / 4 = log10(1.5 * 2 / 0.6) / 4
    #       = log10(5) / 4
    # ratios max(p/t, t/p): 1, 1.5, 5/3, 2 against 1.25, 1.5625, 1.953125:
    # delta1 = 1/4 (only 1), delta2 = 2/4 (1, 1.5), delta3 = 3/4 (1, 1.5, 5/3)
    names = ("l1", "rmse", "abs_rel", "sq_rel", "rmse_log", "log10", "delta1", "delta2",
             "delta3", "mse")
    spec = TaskSpec("depth", "dense_regression", metrics=names)
    target = torch.tensor([[[[1.0, 2.0], [5.0, 1.0]]]])
    pred = torch.tensor([[[[1.0, 3.0], [3.0, 2.0]]]])
    out = evaluate_predictions(spec, pred, target)
    assert list(out) == list(names)
    expected = {
        "l1": 1.0, "rmse": math.sqrt(1.5), "mse": 1.5, "abs_rel": 0.475, "sq_rel": 0.575,
        "rmse_log": math.sqrt((math.log(1.5) ** 2 + math.log(0.6) ** 2 + math.log(2) ** 2)
                              / 4),
        "log10": math.log10(5) / 4, "delta1": 0.25, "delta2": 0.5, "delta3": 0.75,
    }
    for name, value in expected.items():
        assert out[name] == pytest.approx(value, rel=1e-6), name
    assert out["rmse_log"] == pytest.approx(0.47587, abs=1e-5)


def test_eigen_depth_set_masks_and_clamps():
    # NaN target dropped; t = 0 has no ratio (left out of the log/ratio metrics but counted by
    # l1, the historical convention); a prediction -1 is clamped to 1e-6 for logs:
    # valid t > 0 pixels: (t 1, p -1) only -> log10 = |log10(1e-6) - 0| = 6, delta3 = 0,
    # sq_rel = (-1 - 1)^2 / 1 = 4.
    spec = TaskSpec("depth", "dense_regression", metrics=("log10", "delta3", "sq_rel", "l1"))
    target = torch.tensor([[[[1.0, NAN, 0.0]]]])
    pred = torch.tensor([[[[-1.0, 5.0, 0.5]]]])
    out = evaluate_predictions(spec, pred, target)
    assert out["log10"] == pytest.approx(6.0)
    assert out["delta3"] == 0.0 and out["sq_rel"] == pytest.approx(4.0)
    assert out["l1"] == pytest.approx((2.0 + 0.5) / 2)


# ---------------------------------------------------------------- normals


def test_normals_rmse_angle():
    # target +z; predictions 10 and 40 degrees off (third pixel's target NaN, dropped):
    # rmse_angle = sqrt((10^2 + 40^2) / 2) = sqrt(850) = 29.155 degrees; mean 25.
    a = torch.deg2rad(torch.tensor([10.0, 40.0, 90.0], dtype=torch.float64))
    pred = torch.stack([torch.zeros_like(a), torch.sin(a), torch.cos(a)])[None, :, None].float()
    target = torch.zeros(1, 3, 1, 3)
    target[:, 2] = 1.0
    target[0, :, 0, 2] = NAN
    spec = TaskSpec("n", "normals", channels=3, metrics=("rmse_angle", "mean_angle"))
    out = evaluate_predictions(spec, pred, target)
    assert out["rmse_angle"] == pytest.approx(math.sqrt(850), abs=1e-3)
    assert out["mean_angle"] == pytest.approx(25.0, abs=1e-4)


# ---------------------------------------------------------------- mIoU conventions


def seg_logits(labels: list, k: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(labels), k).permute(0, 3, 1, 2).float()


def test_miou_absent_class_per_task_option():
    # 3 classes; target [[0,1],[1,1]], prediction [[0,1],[0,1]]: IoU_0 = 1/2, IoU_1 = 2/3,
    # class 2 in neither. skip: (1/2 + 2/3) / 2 = 7/12; zero: (1/2 + 2/3 + 0) / 3 = 7/18.
    pred = seg_logits([[[0, 1], [0, 1]]], 3)
    target = torch.tensor([[[0, 1], [1, 1]]])
    skip = TaskSpec("s", "segmentation", channels=3)
    zero = TaskSpec("s", "segmentation", channels=3, options=(("miou_absent_zero", 1.0),))
    assert evaluate_predictions(skip, pred, target)["miou"] == pytest.approx(7 / 12)
    assert evaluate_predictions(zero, pred, target)["miou"] == pytest.approx(7 / 18)
    # the argument wins over the option
    assert evaluate_predictions(zero, pred, target, miou_absent="skip")["miou"] \
        == pytest.approx(7 / 12)
    with pytest.raises(ValueError, match="miou_absent_zero must be 0"):
        MetricAccumulator(TaskSpec("s", "segmentation", channels=3,
                                   options=(("miou_absent_zero", 2.0),)))


@pytest.mark.parametrize("absent", ["skip", "zero"])
def test_all_ignore_images_do_not_affect_miou(absent):
    # Human parts: images without a person are labelled -1 everywhere. Adding such an image
    # (with arbitrary predictions) to the hand case above leaves every count unchanged.
    spec = TaskSpec("parts", "segmentation", channels=3)
    pred = seg_logits([[[0, 1], [0, 1]]], 3)
    target = torch.tensor([[[0, 1], [1, 1]]])
    alone = evaluate_predictions(spec, pred, target, miou_absent=absent)
    acc = MetricAccumulator(spec, miou_absent=absent)
    acc.update(pred, target)
    acc.update(seg_logits([[[2, 2], [1, 0]]], 3), torch.full((1, 2, 2), -1))
    assert acc.compute() == alone
    assert alone["miou"] == pytest.approx(7 / 12 if absent == "skip" else 7 / 18)


# ---------------------------------------------------------------- names and directions


def test_every_supported_metric_has_a_direction_and_defaults_are_supported():
    for kind in KINDS:
        assert set(default_metrics(kind)) <= set(SUPPORTED_METRICS[kind])
        assert set(SUPPORTED_METRICS[kind]) <= set(LOWER_IS_BETTER)
    assert LOWER_IS_BETTER["sq_rel"] and LOWER_IS_BETTER["rmse_angle"]
    assert not LOWER_IS_BETTER["odsf"] and not LOWER_IS_BETTER["delta3"]


def test_unknown_metric_name_suggests_the_closest():
    with pytest.raises(ValueError, match="unknown metric 'odfs'.*did you mean 'odsf'"):
        MetricAccumulator(TaskSpec("e", "dense_binary", metrics=("odfs",)))
    with pytest.raises(ValueError, match="did you mean 'sq_rel'"):
        MetricAccumulator(TaskSpec("d", "dense_regression", metrics=("sqrel",)))
    # a metric of another kind says which
    with pytest.raises(ValueError, match="'rmse_angle' is a metric of kind.*normals"):
        MetricAccumulator(TaskSpec("d", "dense_regression", metrics=("rmse_angle",)))


def test_only_the_named_metrics_are_computed():
    # A spec naming only f1 keeps no threshold histogram and no edge counts.
    acc = MetricAccumulator(TaskSpec("e", "dense_binary", metrics=("f1",)))
    acc.update(logit(PROB), row(LABEL))
    assert "hist" not in acc._state and not acc._edges
    assert acc.compute() == {"f1": pytest.approx(2 / 3)}
