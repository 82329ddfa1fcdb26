"""Threshold-swept scores of per-pixel binary maps (saliency): max F-beta and max mIoU.

Predicted probabilities are binarised at ``n`` evenly spaced thresholds ``t_k = k / (n + 1)``,
k = 1..n (99 by default, as the edge benchmark), a pixel being positive when its probability is
``>= t_k``. For every threshold the confusion counts TP, FP, FN, TN are summed over every valid
pixel of the split; they follow from two histograms of the probabilities (of the positive and
of the negative pixels) over the ``n + 1`` intervals the thresholds cut [0, 1] into, so the
streaming state is ``2 x (n + 1)`` integers on the device of the predictions
(:func:`threshold_histograms`, :func:`threshold_counts`).

* ``maxf``: ``max_k F_beta(P_k, R_k)`` with ``beta^2 = 0.3`` (Achanta et al., 2009, the
  salient-object-detection convention that the dense-prediction survey reports), precision
  ``P = TP / (TP + FP)`` and recall ``R = TP / (TP + FN)`` from the split-level counts.
* ``max_miou``: ``max_k (IoU_fg + IoU_bg) / 2`` with ``IoU_fg = TP / (TP + FP + FN)`` and
  ``IoU_bg = TN / (TN + FN + FP)`` from the split-level counts.

Undefined ratios are 0 as in the edge benchmark (precision with no positive prediction, recall
with no positive pixel, F with ``P + R = 0``). A class (foreground or background) with an empty
union at a threshold is left out of that threshold's mean IoU (``absent="skip"``) or counts as
IoU 0 (``absent="zero"``), as segmentation mIoU.

Note: the survey's evaluation code averages per-image precision, recall and IoU before taking
the maxima; this module uses split-level counts (every pixel weighs the same), which is what a
streaming evaluation can keep exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "FBETA2",
    "max_fbeta",
    "max_mean_iou",
    "threshold_counts",
    "threshold_histograms",
    "thresholds_tensor",
]

#: beta^2 of the saliency F-measure.
FBETA2 = 0.3


def thresholds_tensor(n: int, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.float64) -> Tensor:
    """``(n,)`` thresholds ``k / (n + 1)``, k = 1..n."""
    return torch.arange(1, n + 1, device=device, dtype=dtype) / (n + 1)


def threshold_histograms(prob: Tensor, positive: Tensor, thresholds: Tensor) -> Tensor:
    """Histograms of the probabilities of negative and positive pixels over the thresholds.

    Args:
        prob: ``(V,)`` probabilities of the valid pixels.
        positive: ``(V,)`` bool ground truth.
        thresholds: ``(T,)`` increasing thresholds.

    Returns:
        ``(2, T + 1)`` int64: row 0 the negatives, row 1 the positives; column ``j`` counts
        the pixels with exactly ``j`` thresholds ``<= prob`` (positive at thresholds 0..j-1).
    """
    t = thresholds.numel()
    idx = torch.bucketize(prob.to(thresholds.dtype), thresholds, right=True)  # (V,) in 0..T
    flat = idx + positive.long() * (t + 1)
    return torch.bincount(flat, minlength=2 * (t + 1)).reshape(2, t + 1)


def threshold_counts(hist: Tensor) -> Tensor:
    """``(T, 4)`` TP, FP, FN, TN per threshold from the ``(2, T + 1)`` histograms."""
    # pixels positive at threshold k: those with more than k thresholds below them
    above = hist.flip(1).cumsum(1).flip(1)[:, 1:]  # (2, T): column k sums bins k+1..T
    neg_total, pos_total = hist.sum(dim=1)
    tp, fp = above[1], above[0]
    return torch.stack([tp, fp, pos_total - tp, neg_total - fp], dim=1)  # (T, 4)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` with 0 where ``den`` is 0 (no warning, no NaN)."""
    return num / torch.where(den > 0, den, torch.ones_like(den))


def max_fbeta(counts: Tensor, beta2: float = FBETA2) -> float:
    """``max_k (1 + beta^2) P R / (beta^2 P + R)`` over the ``(T, 4)`` counts; NaN if empty."""
    if counts.numel() == 0 or int(counts[0].sum()) == 0:
        return math.nan
    c = counts.to(torch.float64)
    tp, fp, fn = c[:, 0], c[:, 1], c[:, 2]
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return float(_ratio((1.0 + beta2) * p * r, beta2 * p + r).max())


def max_mean_iou(counts: Tensor, absent: str = "skip") -> float:
    """``max_k`` of the mean of the foreground and background IoU; NaN if empty.

    Args:
        counts: ``(T, 4)`` TP, FP, FN, TN.
        absent: ``"skip"``: a class whose union is empty is left out of the mean; ``"zero"``:
            it counts as 0.
    """
    if counts.numel() == 0 or int(counts[0].sum()) == 0:
        return math.nan
    c = counts.to(torch.float64)
    tp, fp, fn, tn = c.unbind(1)
    union = torch.stack([tp + fp + fn, tn + fn + fp], dim=1)  # (T, 2) foreground, background
    inter = torch.stack([tp, tn], dim=1)
    iou = _ratio(inter, union)
    if absent == "zero":
        return float(iou.mean(dim=1).max())
    present = (union > 0).to(torch.float64)
    return float(_ratio((iou * present).sum(dim=1), present.sum(dim=1)).max())
