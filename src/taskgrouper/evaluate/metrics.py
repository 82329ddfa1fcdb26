"""Streaming evaluation metrics for every task kind, and the multi-task score Delta_MTL.

Metrics such as mIoU, RMSE or the median angular error are functions of the whole split, not
means of per-batch values, so :class:`MetricAccumulator` keeps sufficient statistics (a
confusion matrix, sums of errors and counts, an angle histogram, threshold histograms, per-image
edge-matching counts) and turns them into numbers only in :meth:`MetricAccumulator.compute`.
Tensor statistics live on the device of the first batch passed to
:meth:`MetricAccumulator.update`; only the final small sums travel to the CPU. The edge
benchmark (``odsf``, ``oisf``) thins and matches each image on the CPU.

Predictions are expected in the ORIGINAL label scale (the caller de-normalises regression
outputs); targets follow the conventions of :mod:`taskgrouper.tasks`. Labels that are missing or
invalid are excluded from every metric. The accumulator computes exactly the metrics named in
``spec.metrics`` (by default the kind's, see :func:`taskgrouper.tasks.default_metrics`; the
first is the headline metric), and keeps only the statistics those need.

Metric names each kind supports (:data:`SUPPORTED_METRICS`); the defaults come first, the
others after "also":

==================  ===========================================================================
segmentation        ``miou``, ``pixel_acc`` (fractions in [0, 1])
dense_regression    ``l1``, ``rmse``, ``abs_rel``, ``delta1``; also ``mse``, ``sq_rel``,
                    ``rmse_log``, ``log10``, ``delta2``, ``delta3`` (the Eigen et al. set, see
                    :mod:`taskgrouper.evaluate.depth`)
normals             ``mean_angle``, ``median_angle`` (degrees), ``within_11.25``,
                    ``within_22.5``, ``within_30`` (fractions); also ``rmse_angle`` (root mean
                    squared angle, degrees)
dense_binary        ``f1``, ``pixel_acc`` (at probability 0.5, i.e. logit > 0); also ``odsf``,
                    ``oisf`` (edge benchmark, :mod:`taskgrouper.evaluate.edges`), ``maxf``,
                    ``max_miou`` (saliency, :mod:`taskgrouper.evaluate.saliency`)
classification      ``accuracy``
binary              ``accuracy``
regression          ``l1``, ``mse``
==================  ===========================================================================

Every mean is taken over all valid elements of the split (e.g. ``rmse`` is the root of the mean
squared error over every valid pixel of every image, not a mean of per-image RMSEs).

``dense_binary`` predictions are logits ``(B, 1, H, W)``; a target pixel counts as positive
from 0.5 up. ``f1 = 2 TP / (2 TP + FP + FN)`` and ``pixel_acc = (TP + TN) / valid pixels`` at
logit > 0. As in the edge benchmark, an F-score whose ratio is 0/0 (no positive label and no
positive prediction) is 0, not NaN. Task options (:meth:`taskgrouper.tasks.TaskSpec.option`)
tune them: ``thresholds`` (number of thresholds ``k / (n + 1)`` of ``odsf``, ``oisf``, ``maxf``,
``max_miou``; default 99) and ``max_dist`` (edge matching tolerance as a fraction of the image
diagonal; default 0.0075).

mIoU and classes absent from the split: a class that neither the ground truth nor the
prediction contains anywhere in the split has IoU 0/0. By default (``"skip"``) it is left out
of the mean: a small or unbalanced split (a few images, a task such as human parts where most
images have no part) would otherwise score a class the split never shows as a failure, so the
score would measure the split's class coverage rather than the model. On full benchmark splits
every class appears and the two conventions agree. ``"zero"`` counts such a class as IoU 0,
which is what the dense-prediction survey's code does (``tp / max(tp + fp + fn, 1e-8)``
averaged over all classes); choose it with ``MetricAccumulator(miou_absent="zero")`` or per task
with the option ``miou_absent_zero = 1`` (the argument wins over the option). The same
convention applies to the foreground/background mean of ``max_miou``. Images whose labels are
all ignored (-1) contribute nothing, so human-parts mIoU is plain segmentation mIoU over the
images that have parts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from taskgrouper.errors import InputError
from taskgrouper.evaluate.depth import DELTA_EPS, depth_metrics, depth_sums
from taskgrouper.evaluate.edges import benchmark_thresholds, edge_counts, ods_ois
from taskgrouper.evaluate.saliency import (
    max_fbeta,
    max_mean_iou,
    threshold_counts,
    threshold_histograms,
    thresholds_tensor,
)
from taskgrouper.tasks import KINDS, TaskSpec, closest

__all__ = [
    "LOWER_IS_BETTER",
    "SUPPORTED_METRICS",
    "MetricAccumulator",
    "delta_mtl",
    "evaluate_predictions",
]

#: Metric name -> True when a lower value is better. Covers every metric this module reports.
LOWER_IS_BETTER: dict[str, bool] = {
    "miou": False,
    "pixel_acc": False,
    "l1": True,
    "rmse": True,
    "abs_rel": True,
    "sq_rel": True,
    "rmse_log": True,
    "log10": True,
    "delta1": False,
    "delta2": False,
    "delta3": False,
    "mean_angle": True,
    "median_angle": True,
    "rmse_angle": True,
    "within_11.25": False,
    "within_22.5": False,
    "within_30": False,
    "f1": False,
    "odsf": False,
    "oisf": False,
    "maxf": False,
    "max_miou": False,
    "accuracy": False,
    "mse": True,
}

#: Task kind -> every metric name :class:`MetricAccumulator` can report for it.
SUPPORTED_METRICS: dict[str, tuple[str, ...]] = {
    "segmentation": ("miou", "pixel_acc"),
    "dense_regression": ("l1", "rmse", "abs_rel", "delta1", "mse", "sq_rel", "rmse_log",
                         "log10", "delta2", "delta3"),
    "normals": ("mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30",
                "rmse_angle"),
    "dense_binary": ("f1", "pixel_acc", "odsf", "oisf", "maxf", "max_miou"),
    "classification": ("accuracy",),
    "binary": ("accuracy",),
    "regression": ("l1", "mse"),
}

#: Angular thresholds (degrees) reported for normals, with their metric names.
_ANGLE_THRESHOLDS: tuple[tuple[str, float], ...] = (
    ("within_11.25", 11.25),
    ("within_22.5", 22.5),
    ("within_30", 30.0),
)
#: Width (degrees) of the angle histogram bins used for the streaming median.
_HIST_BIN_DEG = 0.01
_HIST_BINS = int(round(180.0 / _HIST_BIN_DEG))  # 18000 bins over [0, 180] degrees
#: Predictions are clamped to at least this value before the depth ratios and logarithms.
_DELTA_EPS = DELTA_EPS
_EDGE_METRICS = frozenset({"odsf", "oisf"})
_SWEEP_METRICS = frozenset({"maxf", "max_miou"})
_AT_HALF_METRICS = frozenset({"f1", "pixel_acc"})


def _acc_dtype(device: torch.device) -> torch.dtype:
    """Float dtype for running sums: float64 where the device supports it (not MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _as_float(x: Tensor) -> Tensor:
    """``x`` as a floating tensor of at least float32 precision (half inputs are upcast)."""
    if not torch.is_floating_point(x):
        return x.to(torch.float32)
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _check_metric_names(spec: TaskSpec) -> None:
    """Raise a ValueError naming the task, the bad metric and the closest supported one."""
    supported = SUPPORTED_METRICS[spec.kind]
    for name in spec.metrics:
        if name in supported:
            continue
        elsewhere = [k for k in KINDS if name in SUPPORTED_METRICS[k]]
        hint = (f"'{name}' is a metric of kind(s) {', '.join(elsewhere)}; "
                if elsewhere else "")
        raise InputError(f"task '{spec.name}': unknown metric '{name}' for kind "
                         f"'{spec.kind}'; {hint}" + closest(name, supported))
    if len(set(spec.metrics)) != len(spec.metrics):
        raise InputError(f"task '{spec.name}': metric names repeat in {spec.metrics}; list "
                         "each once")


def _int_option(spec: TaskSpec, name: str, default: int, low: int) -> int:
    value = spec.option(name, default)
    if isinstance(value, bool) or not float(value).is_integer() or value < low:
        raise InputError(f"task '{spec.name}': option {name} must be an integer >= {low}, got "
                         f"{value!r}")
    return int(value)


class MetricAccumulator:
    """Accumulates one task's metrics over the batches of a split.

    Example::

        acc = MetricAccumulator(spec)
        for pred, target in batches:
            acc.update(pred, target)
        scores = acc.compute()  # {"miou": 0.41, "pixel_acc": 0.83}

    Args:
        spec: The task. ``spec.metrics`` names the metrics to compute (each must be one of
            :data:`SUPPORTED_METRICS` for ``spec.kind``); ``spec.channels`` is checked against
            the predictions of segmentation and classification tasks; ``spec.options`` may set
            ``thresholds``, ``max_dist`` and ``miou_absent_zero`` (see the module docstring).
        miou_absent: How mIoU treats a class absent from both prediction and ground truth over
            the whole split (its IoU is 0/0): ``"skip"`` leaves it out of the mean, ``"zero"``
            counts it as IoU 0. None (default): the task's option ``miou_absent_zero`` (1:
            ``"zero"``), else ``"skip"``.
        median: How the normals' ``median_angle`` is obtained. ``"exact"`` keeps every valid
            angle (on the tensors' device) and returns the exact median (mean of the two middle
            values for an even count); ``"histogram"`` keeps a histogram with 0.01 degree bins
            and interpolates linearly inside the median bin (error below 0.01 degree, constant
            memory); ``"auto"`` (default) is exact until more than ``exact_limit`` angles have
            been seen, then falls back to the histogram.
        exact_limit: Largest number of angles kept for the exact median in ``"auto"`` mode
            (4 million float32 values = 16 MB).

    Raises:
        ValueError: On an unknown option value, or a metric name in ``spec.metrics`` that the
            task's kind does not report (the message suggests the closest name).
    """

    def __init__(
        self,
        spec: TaskSpec,
        miou_absent: str | None = None,
        median: str = "auto",
        exact_limit: int = 4_000_000,
        edge_thresholds: int | None = None,
    ) -> None:
        if miou_absent is None:
            flag = spec.option("miou_absent_zero", 0)
            if flag not in (0, 1):
                raise InputError(f"task '{spec.name}': option miou_absent_zero must be 0 "
                                 f"(skip absent classes) or 1 (count them as 0), got {flag!r}")
            miou_absent = "zero" if flag == 1 else "skip"
        if miou_absent not in ("skip", "zero"):
            raise InputError(f"miou_absent must be 'skip' or 'zero', not '{miou_absent}'")
        if median not in ("auto", "exact", "histogram"):
            raise InputError(f"median must be 'auto', 'exact' or 'histogram', not '{median}'")
        _check_metric_names(spec)
        self.spec = spec
        self.miou_absent = miou_absent
        self.median = median
        self.exact_limit = int(exact_limit)
        # The spec's metrics, headline first (a spec without a list gets its kind's defaults).
        self.names: tuple[str, ...] = tuple(spec.metrics)
        self._wanted = frozenset(self.names)
        self.n_thresholds = _int_option(spec, "thresholds", 99, 1)
        # the edge benchmark (thinning and matching per threshold) is the one costly metric;
        # a cap (the trainer's per-epoch validation uses 9: 0.1, 0.2, ..., 0.9, a subset of
        # the 99) keeps it cheap where the number only tracks progress
        self.n_edge_thresholds = (self.n_thresholds if edge_thresholds is None
                                  else min(self.n_thresholds, int(edge_thresholds)))
        max_dist = spec.option("max_dist", 0.0075)
        if isinstance(max_dist, bool) or not float(max_dist) >= 0:
            raise InputError(f"task '{spec.name}': option max_dist must be >= 0 (a fraction of "
                             f"the image diagonal, e.g. 0.0075), got {max_dist!r}")
        self.max_dist = float(max_dist)
        self._state: dict[str, Tensor] = {}
        self._edges: list[np.ndarray] = []  # per image (T, 4) edge benchmark counts
        self._thresholds: Tensor | None = None
        self._angles: list[Tensor] | None = None  # exact-median store, 1-D float32 chunks
        self._n_angles = 0
        self._updates = 0
        self.reset()

    # ------------------------------------------------------------------ public API

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self._state = {}
        self._edges = []
        self._angles = [] if self.median in ("auto", "exact") else None
        self._n_angles = 0
        self._updates = 0

    @property
    def median_is_exact(self) -> bool:
        """True while ``median_angle`` is computed exactly (normals only)."""
        return self._angles is not None

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch.

        Args:
            pred: Predictions in the original label scale. Segmentation: logits (B, K, H, W)
                or class ids (B, H, W); dense_regression: (B, C, H, W); normals: (B, 3, H, W),
                not necessarily unit length; dense_binary: logits (B, 1, H, W) or (B, H, W);
                classification: logits (B, K) or class ids (B,); binary: logits (B,) or
                (B, 1), a logit > 0 meaning class 1; regression: (B,) or (B, C).
            target: Labels following :mod:`taskgrouper.tasks`, on the same device as ``pred``.

        Raises:
            ValueError: When shapes do not fit the task or a class id is out of range.
        """
        pred = pred.detach()
        target = target.detach().to(pred.device)
        kind = self.spec.kind
        if kind == "segmentation":
            self._update_segmentation(pred, target)
        elif kind == "dense_regression":
            self._update_dense_regression(pred, target)
        elif kind == "normals":
            self._update_normals(pred, target)
        elif kind == "dense_binary":
            self._update_dense_binary(pred, target)
        elif kind == "classification":
            self._update_classification(pred, target)
        elif kind == "binary":
            self._update_binary(pred, target)
        else:
            self._update_regression(pred, target)
        self._updates += 1

    def compute(self) -> dict[str, float]:
        """The metrics over every batch since the last :meth:`reset`.

        Returns:
            Metric name -> value, the configured (headline) metrics first. A metric with no
            valid label to average over is NaN; before any update every metric is NaN.
        """
        if not self._updates:
            return {name: math.nan for name in self.names}
        kind = self.spec.kind
        if kind == "segmentation":
            values = self._compute_segmentation()
        elif kind == "normals":
            values = self._compute_normals()
        elif kind == "dense_regression":
            sums = {k: float(v.cpu()) for k, v in self._state.items()}
            values = depth_metrics(sums, self.names)
        elif kind == "dense_binary":
            values = self._compute_dense_binary()
        else:
            values = self._compute_sums()
        return {name: values[name] for name in self.names}

    # ------------------------------------------------------------------ helpers

    def _fail(self, message: str) -> ValueError:
        return ValueError(f"task '{self.spec.name}' ({self.spec.kind}): {message}")

    def _add(self, stats: dict[str, Tensor]) -> None:
        """Add batch statistics to the running state (created on the first batch's device)."""
        if not self._state:
            self._state = {k: v.clone() for k, v in stats.items()}
            return
        device = next(iter(self._state.values())).device
        for k, v in stats.items():
            self._state[k] += v.to(device)

    def _sum(self, x: Tensor) -> Tensor:
        """Sum of ``x`` as a 0-d tensor in the accumulation dtype, on ``x``'s device."""
        return x.to(_acc_dtype(x.device)).sum()

    def _count(self, mask: Tensor) -> Tensor:
        """Number of True entries of ``mask`` as a 0-d int64 tensor on its device."""
        return mask.sum(dtype=torch.int64)

    def _check_shape(self, pred: Tensor, target: Tensor) -> None:
        if pred.shape != target.shape:
            raise self._fail(f"prediction shape {tuple(pred.shape)} does not match target "
                             f"shape {tuple(target.shape)}")

    # ------------------------------------------------------------------ segmentation

    def _update_segmentation(self, pred: Tensor, target: Tensor) -> None:
        k = self.spec.channels
        if target.ndim != 3:
            raise self._fail(f"target must be (B, H, W), got {tuple(target.shape)}")
        if pred.ndim == 4:
            if pred.shape[1] != k:
                raise self._fail(f"expected {k} class logits, got {pred.shape[1]}")
            labels = pred.argmax(dim=1)  # (B, H, W)
        elif pred.ndim == 3 and not torch.is_floating_point(pred):
            labels = pred  # class ids (B, H, W)
        else:
            raise self._fail(f"prediction must be logits (B, K, H, W) or class ids (B, H, W), "
                             f"got {tuple(pred.shape)}")
        self._check_shape(labels, target)
        valid = target >= 0  # (B, H, W)
        t = target[valid].long()  # (V,)
        p = labels[valid].long()  # (V,)
        if t.numel() and int(t.max()) >= k:
            raise self._fail(f"target class id {int(t.max())} >= number of classes {k}")
        if p.numel() and (int(p.min()) < 0 or int(p.max()) >= k):
            raise self._fail(f"predicted class ids must lie in [0, {k})")
        # Rows: ground truth, columns: prediction.
        confusion = torch.bincount(t * k + p, minlength=k * k).reshape(k, k)  # (K, K)
        self._add({"confusion": confusion})

    def _compute_segmentation(self) -> dict[str, float]:
        counts = self._state["confusion"]  # (K, K) int64
        confusion = counts.to(_acc_dtype(counts.device))  # (K, K)
        tp = confusion.diagonal()  # (K,)
        union = confusion.sum(dim=0) + confusion.sum(dim=1) - tp  # (K,) TP + FP + FN
        total = confusion.sum()
        present = union > 0  # (K,)
        iou = torch.where(present, tp / union.clamp(min=1), torch.zeros_like(tp))  # (K,)
        if self.miou_absent == "skip":
            n_classes = present.sum()
            miou = iou.sum() / n_classes if bool(n_classes > 0) else torch.tensor(math.nan)
        else:
            miou = iou.mean() if bool(total > 0) else torch.tensor(math.nan)
        pixel_acc = tp.sum() / total if bool(total > 0) else torch.tensor(math.nan)
        miou_v, acc_v = torch.stack([miou.cpu(), pixel_acc.cpu()]).tolist()
        return {"miou": miou_v, "pixel_acc": acc_v}

    # ------------------------------------------------------------------ sum-based kinds

    def _update_dense_regression(self, pred: Tensor, target: Tensor) -> None:
        if target.ndim == 3:
            target = target.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
        if target.ndim != 4:
            raise self._fail(f"target must be (B, C, H, W), got {tuple(target.shape)}")
        self._check_shape(pred, target)
        self._add(depth_sums(_as_float(pred), _as_float(target), self.names))

    def _update_classification(self, pred: Tensor, target: Tensor) -> None:
        if target.ndim != 1:
            raise self._fail(f"target must be (B,), got {tuple(target.shape)}")
        if pred.ndim == 2:
            if pred.shape[1] != self.spec.channels:
                raise self._fail(f"expected {self.spec.channels} class logits, "
                                 f"got {pred.shape[1]}")
            labels = pred.argmax(dim=1)  # (B,)
        elif pred.ndim == 1 and not torch.is_floating_point(pred):
            labels = pred  # class ids (B,)
        else:
            raise self._fail(f"prediction must be logits (B, K) or class ids (B,), "
                             f"got {tuple(pred.shape)}")
        self._check_shape(labels, target)
        valid = target >= 0  # (B,)
        correct = (labels == target) & valid
        self._add({"n": self._count(valid), "correct": self._count(correct)})

    def _update_binary(self, pred: Tensor, target: Tensor) -> None:
        if pred.ndim == 2 and pred.shape[1] == 1:
            pred = pred[:, 0]  # (B, 1) -> (B,)
        if target.ndim == 2 and target.shape[1] == 1:
            target = target[:, 0]
        self._check_shape(pred, target)
        target = _as_float(target)
        valid = torch.isfinite(target) & (target >= 0)  # (B,)
        correct = ((pred > 0) == (target >= 0.5)) & valid
        self._add({"n": self._count(valid), "correct": self._count(correct)})

    def _update_regression(self, pred: Tensor, target: Tensor) -> None:
        if pred.ndim == 2 and pred.shape[1] == 1 and target.ndim == 1:
            pred = pred[:, 0]  # (B, 1) -> (B,)
        elif pred.ndim == 1 and target.ndim == 2 and target.shape[1] == 1:
            target = target[:, 0]
        self._check_shape(pred, target)
        if pred.ndim not in (1, 2):
            raise self._fail(f"prediction must be (B,) or (B, C), got {tuple(pred.shape)}")
        pred, target = _as_float(pred), _as_float(target)
        if target.ndim == 1:
            valid = torch.isfinite(target)  # (B,)
        else:
            # A row is valid when every channel is finite (as taskgrouper.tasks.valid_mask).
            valid = torch.isfinite(target).all(dim=1, keepdim=True).expand_as(target)  # (B, C)
        err = pred[valid] - target[valid]  # (V,)
        self._add({
            "n": self._count(valid),
            "abs": self._sum(err.abs()),
            "sq": self._sum(err.square()),
        })

    def _compute_sums(self) -> dict[str, float]:
        s = {k: float(v.cpu()) for k, v in self._state.items()}

        def ratio(num: float, den: float) -> float:
            return num / den if den > 0 else math.nan

        if "correct" in s:
            return {"accuracy": ratio(s["correct"], s["n"])}
        return {"l1": ratio(s["abs"], s["n"]), "mse": ratio(s["sq"], s["n"])}

    # ------------------------------------------------------------------ dense binary

    def _thresholds_on(self, device: torch.device) -> Tensor:
        if self._thresholds is None or self._thresholds.device != device:
            self._thresholds = thresholds_tensor(self.n_thresholds, device,
                                                 _acc_dtype(device))
        return self._thresholds

    def _update_dense_binary(self, pred: Tensor, target: Tensor) -> None:
        if target.ndim == 3:
            target = target.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
        if pred.ndim == 3:
            pred = pred.unsqueeze(1)
        if target.ndim != 4 or target.shape[1] != 1:
            raise self._fail(f"target must be (B, 1, H, W), got {tuple(target.shape)}")
        self._check_shape(pred, target)
        logits = _as_float(pred)[:, 0]  # (B, H, W)
        labels = _as_float(target)[:, 0]  # (B, H, W)
        valid = torch.isfinite(labels)  # (B, H, W)
        positive = valid & (labels >= 0.5)
        stats = {"n": self._count(valid)}
        if self._wanted & _AT_HALF_METRICS:
            predicted = valid & (logits > 0)
            stats["tp"] = self._count(predicted & positive)
            stats["fp"] = self._count(predicted & ~positive)
            stats["fn"] = self._count(~predicted & positive)
        if self._wanted & _SWEEP_METRICS:
            thresholds = self._thresholds_on(logits.device)
            prob = torch.sigmoid(logits[valid].to(thresholds.dtype))  # (V,)
            stats["hist"] = threshold_histograms(prob, positive[valid], thresholds)
        self._add(stats)
        if self._wanted & _EDGE_METRICS:
            thresholds_np = benchmark_thresholds(self.n_edge_thresholds)
            prob = torch.sigmoid(logits.double()).cpu().numpy()  # (B, H, W)
            gt, ok = positive.cpu().numpy(), valid.cpu().numpy()
            for b in range(prob.shape[0]):
                self._edges.append(edge_counts(prob[b], gt[b], ok[b], thresholds_np,
                                               self.max_dist))

    def _compute_dense_binary(self) -> dict[str, float]:
        state = self._state
        if int(state["n"]) == 0:
            return {name: math.nan for name in self.names}
        out: dict[str, float] = {}
        if self._wanted & _AT_HALF_METRICS:
            n, tp, fp, fn = (int(state[k]) for k in ("n", "tp", "fp", "fn"))
            out["f1"] = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn > 0 else 0.0
            out["pixel_acc"] = (n - fp - fn) / n
        if self._wanted & _SWEEP_METRICS:
            counts = threshold_counts(state["hist"].cpu())  # (T, 4)
            out["maxf"] = max_fbeta(counts)
            out["max_miou"] = max_mean_iou(counts, self.miou_absent)
        if self._wanted & _EDGE_METRICS:
            out["odsf"], out["oisf"] = ods_ois(np.stack(self._edges))
        return out

    # ------------------------------------------------------------------ normals

    def _update_normals(self, pred: Tensor, target: Tensor) -> None:
        if pred.ndim != 4 or pred.shape[1] != 3:
            raise self._fail(f"prediction must be (B, 3, H, W), got {tuple(pred.shape)}")
        self._check_shape(pred, target)
        pred, target = _as_float(pred), _as_float(target)
        t_norm = target.norm(dim=1)  # (B, H, W); NaN where any component is NaN
        # NaN targets are invalid; so are zero-length ones (their angle is undefined).
        valid = torch.isfinite(t_norm) & (t_norm > 0)  # (B, H, W)
        p = pred.movedim(1, -1)[valid]  # (V, 3)
        t = target.movedim(1, -1)[valid]  # (V, 3)
        # atan2(|p x t|, p . t) is the angle between the directions whatever the lengths, and
        # stays accurate near 0 and 180 degrees where acos of a dot product does not.
        cross = torch.linalg.cross(p, t, dim=-1).norm(dim=-1)  # (V,)
        dot = (p * t).sum(dim=-1)  # (V,)
        angle = torch.rad2deg(torch.atan2(cross, dot))  # (V,) in [0, 180]
        # A zero-length prediction has no direction: count it as orthogonal (90 degrees).
        angle = torch.where(p.norm(dim=-1) > 0, angle, torch.full_like(angle, 90.0))
        bins = (angle / _HIST_BIN_DEG).long().clamp_(0, _HIST_BINS - 1)  # (V,)
        stats = {
            "n": self._count(valid),
            "sum": self._sum(angle),
            "sq": self._sum(angle.to(_acc_dtype(angle.device)).square()),
            "hist": torch.bincount(bins, minlength=_HIST_BINS),  # (_HIST_BINS,)
        }
        for name, thr in _ANGLE_THRESHOLDS:
            stats[name] = self._count(angle < thr)
        self._add(stats)
        if self._angles is not None:
            self._n_angles += angle.numel()
            if self.median == "auto" and self._n_angles > self.exact_limit:
                self._angles = None  # too many: the histogram takes over
            else:
                device = self._state["hist"].device
                self._angles.append(angle.to(device=device, dtype=torch.float32))

    def _compute_normals(self) -> dict[str, float]:
        hist = self._state["hist"]  # (_HIST_BINS,)
        keys = ("n", "sum", "sq", *(name for name, _ in _ANGLE_THRESHOLDS))
        small = torch.stack([self._state[k].to(_acc_dtype(hist.device)) for k in keys])
        n, total, squares, *within = small.cpu().tolist()
        if n == 0:
            return {name: math.nan for name in self.names}
        out = {"mean_angle": total / n, "rmse_angle": math.sqrt(squares / n)}
        for (name, _), count in zip(_ANGLE_THRESHOLDS, within, strict=True):
            out[name] = count / n
        if self._angles is not None:
            angles = torch.cat(self._angles).cpu().to(torch.float64).sort().values  # (N,)
            m = angles.numel()
            mid = angles[(m - 1) // 2 : m // 2 + 1]  # one or two middle values
            out["median_angle"] = float(mid.mean())
        else:
            out["median_angle"] = _histogram_median(hist.cpu(), _HIST_BIN_DEG)
        return out


def _histogram_median(hist: Tensor, width: float) -> float:
    """Median of the values binned in ``hist`` (bin i covers [i * width, (i + 1) * width)).

    The values are taken as spread uniformly inside each bin, so the result is exact to within
    one bin width.
    """
    counts = hist.to(torch.float64)  # (B,)
    n = float(counts.sum())
    if n == 0:
        return math.nan
    cum = counts.cumsum(0)  # (B,)
    half = n / 2.0
    b = int(torch.searchsorted(cum, torch.tensor([half], dtype=torch.float64))[0])
    b = min(b, counts.numel() - 1)
    before = float(cum[b - 1]) if b > 0 else 0.0
    inside = float(counts[b])
    frac = (half - before) / inside if inside > 0 else 0.0
    return (b + frac) * width


def evaluate_predictions(spec: TaskSpec, pred: Tensor, target: Tensor,
                         **options) -> dict[str, float]:
    """The metrics of one batch (a split held in memory at once).

    Args:
        spec: The task.
        pred: Predictions, as for :meth:`MetricAccumulator.update`.
        target: Labels, as for :meth:`MetricAccumulator.update`.
        **options: Passed to :class:`MetricAccumulator` (``miou_absent``, ``median``, ...).

    Returns:
        Metric name -> value.
    """
    acc = MetricAccumulator(spec, **options)
    acc.update(pred, target)
    return acc.compute()


def delta_mtl(
    model: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]],
    metrics: Mapping[str, Sequence[str]] | None = None,
    lower_is_better: Mapping[str, bool] | None = None,
) -> float:
    """Multi-task performance relative to a baseline (Vandenhende et al. 2021, Eq. 10).

    ``Delta_MTL = (1/T) * sum_i (-1)^{l_i} (M_m,i - M_b,i) / M_b,i``, with ``l_i = 1`` when a
    lower value is better for the i-th (task, metric) pair and T the number of pairs. Positive
    means the model beats the baseline (typically the single-task networks).

    Args:
        model: Task -> metric name -> value for the evaluated model.
        baseline: Task -> metric name -> value for the baseline.
        metrics: Task -> metric names to compare. Default: for every task of ``model``, every
            metric present in both ``model[task]`` and ``baseline[task]`` whose direction is
            known (other keys, e.g. a loss logged alongside, are ignored). Pass each task's
            headline metric only (``{t: [spec.metrics[0]]}``) for the one-metric-per-task form.
        lower_is_better: Directions of metrics beyond :data:`LOWER_IS_BETTER` (or overrides).

    Returns:
        Delta_MTL as a percentage (e.g. ``10.0`` for +10 %).

    Raises:
        ValueError: Naming the task and metric when a requested value is missing, not finite,
            of unknown direction, or when the baseline value is 0; or when no pair is compared.
    """
    directions = dict(LOWER_IS_BETTER)
    if lower_is_better:
        directions.update(lower_is_better)
    if metrics is None:
        metrics = {}
        for task, values in model.items():
            if task not in baseline:
                raise InputError(f"delta_mtl: task '{task}' is missing from the baseline")
            metrics[task] = [m for m in values if m in baseline[task] and m in directions]
    terms: list[float] = []
    for task, names in metrics.items():
        if isinstance(names, str):
            names = [names]
        for name in names:
            where = f"task '{task}', metric '{name}'"
            if name not in directions:
                raise InputError(f"delta_mtl: {where}: unknown whether lower is better; pass "
                                 "lower_is_better={...}")
            base = baseline.get(task, {}).get(name)
            if base is None:
                raise InputError(f"delta_mtl: {where}: missing from the baseline")
            value = model.get(task, {}).get(name)
            if value is None:
                raise InputError(f"delta_mtl: {where}: missing from the model's results")
            base, value = float(base), float(value)
            if not math.isfinite(base) or not math.isfinite(value):
                raise InputError(f"delta_mtl: {where}: value is not finite "
                                 f"(model {value}, baseline {base})")
            if base == 0:
                raise InputError(f"delta_mtl: {where}: baseline value is 0, the relative "
                                 "change is undefined")
            sign = -1.0 if directions[name] else 1.0
            terms.append(sign * (value - base) / base)
    if not terms:
        raise InputError("delta_mtl: no (task, metric) pair to compare")
    return 100.0 * sum(terms) / len(terms)
