"""Per-task losses with missing labels masked out, and the inverse of label normalisation.

One function per concern, called everywhere (the trainer, the balancers, the evaluation), so the
masking and normalisation conventions of :mod:`taskgrouper.tasks` live in one place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from taskgrouper.errors import InputError
from taskgrouper.tasks import TaskSpec

__all__ = ["denormalise", "task_loss", "task_loss_sum", "valid_mask"]


def valid_mask(spec: TaskSpec, target: Tensor) -> Tensor:
    """Boolean mask of labelled entries: (B, H, W) for dense kinds, (B,) for global ones."""
    if spec.kind in ("segmentation", "classification"):
        return target >= 0
    if spec.kind == "binary":
        return torch.isfinite(target) & (target >= 0)
    if spec.kind in ("dense_regression", "normals", "dense_binary"):
        return torch.isfinite(target).all(dim=1)
    if target.dim() == 1:
        return torch.isfinite(target)
    return torch.isfinite(target).all(dim=1)


def _masked_sum(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    # An all-missing batch gives a zero sum that still depends on the graph (so every
    # parameter keeps a gradient of 0, not None).
    mask = mask.to(values.dtype)
    return (values * mask).sum(), mask.sum()


def task_loss(spec: TaskSpec, pred: Tensor, target: Tensor) -> Tensor:
    """The task's training loss on one batch, averaged over valid labels.

    Args:
        spec: The task.
        pred: Model output for the task (see the head conventions in ``models.heads``).
        target: Labels, already normalised for regression-style kinds.

    Returns:
        A scalar tensor. Batches with no valid label give 0 (times the prediction, so the
        graph is kept).
    """
    total, count = task_loss_sum(spec, pred, target)
    return total / count.clamp(min=1.0)


def task_loss_sum(spec: TaskSpec, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Sum of the per-label losses over valid labels, and how many labels were summed.

    ``dense_binary`` tasks get a per-pixel BCE with logits, class-balanced with the
    ``pos_weight`` option (see :func:`_dense_binary_loss_sum`).

    Split-level losses are ``sum(sums) / sum(counts)`` over batches, so they do not depend on
    how the split was batched. A dense prediction smaller than its labels (an auxiliary,
    deeply supervised output) is upsampled bilinearly to the label size first.
    """
    if spec.dense and pred.dim() == 4 and pred.shape[-2:] != target.shape[-2:]:
        # (B, C, h, w) -> (B, C, H, W)
        pred = F.interpolate(pred, size=tuple(target.shape[-2:]), mode="bilinear",
                             align_corners=False)
    mask = valid_mask(spec, target)
    if spec.kind in ("segmentation", "classification"):
        # (B, K, H, W) / (B, K) logits, (B, H, W) / (B,) ids with -1 = missing
        per = F.cross_entropy(pred.float(), target.clamp(min=0), reduction="none")
        return _masked_sum(per, mask)
    if spec.kind == "binary":
        safe = torch.where(mask, target, torch.zeros_like(target))
        per = F.binary_cross_entropy_with_logits(pred.float(), safe.float(), reduction="none")
        return _masked_sum(per, mask)
    if spec.kind == "dense_binary":
        return _dense_binary_loss_sum(spec, pred, target, mask)
    safe = torch.where(torch.isfinite(target), target, torch.zeros_like(target))
    pred = pred.float()
    if spec.kind == "normals" and spec.loss == "cosine":
        per = 1.0 - F.cosine_similarity(pred, safe, dim=1, eps=1e-8)  # (B, H, W)
        return _masked_sum(per, mask)
    diff = pred - safe
    per = diff.abs() if spec.loss == "l1" else diff.pow(2)
    if spec.kind in ("dense_regression", "normals"):
        return _masked_sum(per, mask.unsqueeze(1).expand_as(per))  # (B, C, H, W)
    if per.dim() == 2:
        return _masked_sum(per, mask.unsqueeze(1).expand_as(per))  # (B, C)
    return _masked_sum(per, mask)


def _dense_binary_loss_sum(spec: TaskSpec, pred: Tensor, target: Tensor,
                           mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-pixel BCE with logits over valid pixels, class-balanced when ``pos_weight`` is set.

    With ``w = spec.option("pos_weight")`` the per-pixel loss is
    ``-(w * y * log(sigmoid(x)) + (1 - w) * (1 - y) * log(1 - sigmoid(x)))``: the balanced
    cross-entropy of the dense-prediction survey (Vandenhende et al., 2021), which weights the
    rare edge pixels by 0.95 and the background by 0.05. The sum is divided by the number of
    valid pixels (not by the weights), as in the survey's code.
    """
    if pred.dim() == 3:
        pred = pred.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
    if target.dim() == 3:
        target = target.unsqueeze(1)
        mask = valid_mask(spec, target)
    if pred.shape != target.shape:
        raise InputError(f"task '{spec.name}' (dense_binary): prediction shape "
                         f"{tuple(pred.shape)} does not match target shape "
                         f"{tuple(target.shape)}; the head must give (B, 1, H, W) logits")
    safe = torch.where(torch.isfinite(target), target, torch.zeros_like(target)).float()
    x = pred.float()
    w = spec.option("pos_weight")
    if w is None:
        per = F.binary_cross_entropy_with_logits(x, safe, reduction="none")  # (B, 1, H, W)
    else:
        w = float(w)
        if not 0.0 <= w <= 1.0:
            raise InputError(f"task '{spec.name}': option pos_weight must lie in [0, 1] "
                             f"(positives weighted w, negatives 1 - w), got {w}")
        # log(sigmoid(x)) and log(1 - sigmoid(x)) = log(sigmoid(-x)), both stable
        per = -(w * safe * F.logsigmoid(x) + (1.0 - w) * (1.0 - safe) * F.logsigmoid(-x))
    return _masked_sum(per[:, 0], mask)  # (B, H, W)


def denormalise(spec: TaskSpec, pred: Tensor) -> Tensor:
    """Map a regression-style prediction back to the label scale; other kinds unchanged."""
    if not spec.normalised or spec.mean is None:
        return pred
    mean = torch.tensor(spec.mean, dtype=pred.dtype, device=pred.device)
    std = torch.tensor(spec.std, dtype=pred.dtype, device=pred.device)
    if spec.kind == "dense_regression":
        return pred * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)  # (B, C, H, W)
    if pred.dim() == 1:
        return pred * std[0] + mean[0]
    return pred * std.view(1, -1) + mean.view(1, -1)
