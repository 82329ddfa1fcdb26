"""Measuring a network: losses and metrics over a split, the constant predictor's, and the
network's cost.

- :func:`evaluate_split`: per-task loss (normalised scale) and metrics of a model on a split;
- :func:`evaluate_constant`: the same for the constant baseline (training mean or majority
  class), the floor every network must beat;
- :func:`run_cost`: MACs, parameters, SNT and latency of the network.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from taskgrouper.config import ExperimentConfig
from taskgrouper.tasks import TaskSpec
from taskgrouper.train.feeding import Stream, Tensors
from taskgrouper.train.losses import denormalise, task_loss_sum

__all__ = ["constant_outputs", "evaluate_constant", "evaluate_split", "normalise_pred",
           "run_cost"]


def constant_outputs(spec: TaskSpec, train_raw: Tensor, n: int, shape) -> Tensor:
    """Predictions of the constant baseline: training mean or most frequent class."""
    if spec.kind in ("segmentation", "classification"):
        valid = train_raw[train_raw >= 0]
        counts = torch.bincount(valid.flatten(), minlength=spec.channels)
        logits = torch.full((spec.channels,), -10.0)
        logits[int(counts.argmax())] = 10.0
        if spec.kind == "segmentation":
            return logits.view(1, -1, 1, 1).expand(n, -1, *shape).clone()
        return logits.expand(n, -1).clone()
    if spec.kind == "binary":
        valid = train_raw[torch.isfinite(train_raw) & (train_raw >= 0)]
        return torch.full((n,), 10.0 if valid.float().mean() > 0.5 else -10.0)
    if spec.kind == "dense_binary":
        # the majority label over valid training pixels (a label >= 0.5 counts as 1)
        valid = train_raw[torch.isfinite(train_raw)]
        positive = bool(valid.numel()) and float((valid >= 0.5).float().mean()) > 0.5
        return torch.full((n, 1, *shape), 10.0 if positive else -10.0)
    if spec.kind == "normals":
        mean = torch.nanmean(train_raw.transpose(0, 1).flatten(1), dim=1)  # (3,)
        mean = mean / mean.norm().clamp(min=1e-8)
        return mean.view(1, 3, 1, 1).expand(n, -1, *shape).clone()
    mean = torch.tensor(spec.mean, dtype=torch.float32)
    if spec.kind == "dense_regression":
        return mean.view(1, -1, 1, 1).expand(n, -1, *shape).clone()
    if train_raw.dim() == 1:
        return mean[:1].expand(n).clone()
    return mean.view(1, -1).expand(n, -1).clone()


def evaluate_split(model: nn.Module, split: Tensors | Stream, specs: dict[str, TaskSpec],
                   device: torch.device, batch_size: int = 128,
                   amp_dtype: torch.dtype | None = None,
                   quick: bool = False,
                   label_counts: dict[str, float] | None = None
                   ) -> dict[str, dict[str, float]]:
    """Per-task loss (normalised scale, over all valid labels of the split) and metrics.

    ``quick`` (the per-epoch validation) scores edge tasks at 9 thresholds instead of the
    benchmark's 99; losses and every other metric are the same. ``label_counts``, when given,
    receives the number of valid labels of each task (the loss of a task without any is NaN).
    """
    from taskgrouper.evaluate.metrics import MetricAccumulator

    model.eval()
    sums = {t: torch.zeros((), device=device, dtype=torch.float64) for t in specs}
    counts = {t: torch.zeros((), device=device, dtype=torch.float64) for t in specs}
    accs = {t: MetricAccumulator(spec, edge_thresholds=9 if quick else None)
            for t, spec in specs.items()}
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    with torch.no_grad():
        for x, targets, raw, _ in split.batches(None, batch_size):
            with autocast:
                out = model(x.to(device, non_blocking=True))
            for t, spec in specs.items():
                pred = out[t].float()
                s, c = task_loss_sum(spec, pred, targets[t].to(device, non_blocking=True))
                sums[t] += s
                counts[t] += c
                accs[t].update(denormalise(spec, pred), raw[t].to(device, non_blocking=True))
    result = {}
    for t in specs:
        n = float(counts[t])
        if label_counts is not None:
            label_counts[t] = n
        result[t] = {"loss": float(sums[t]) / n if n else float("nan"), **accs[t].compute()}
    return result


def evaluate_constant(specs: dict[str, TaskSpec], train_raw: dict[str, Tensor],
                      split: Tensors | Stream,
                      batch_size: int = 128) -> dict[str, dict[str, float]]:
    """The constant predictor's loss and metrics on a split (statistics from ``train_raw``)."""
    from taskgrouper.evaluate.metrics import MetricAccumulator

    shape = tuple(split.sample_shape[-2:])
    accs = {t: MetricAccumulator(spec) for t, spec in specs.items()}
    sums = dict.fromkeys(specs, 0.0)
    counts = dict.fromkeys(specs, 0.0)
    for _, targets, raw, n in split.batches(None, batch_size):
        for t, spec in specs.items():
            pred = constant_outputs(spec, train_raw[t], n, shape)
            accs[t].update(pred, raw[t])
            s, c = task_loss_sum(spec, normalise_pred(spec, pred), targets[t])
            sums[t] += float(s)
            counts[t] += float(c)
    return {t: {"loss": sums[t] / max(counts[t], 1.0), **accs[t].compute()} for t in specs}


def normalise_pred(spec: TaskSpec, pred: Tensor) -> Tensor:
    """Inverse of :func:`denormalise` (a label-scale prediction to the loss scale)."""
    if not spec.normalised:
        return pred
    mean = torch.tensor(spec.mean, dtype=pred.dtype)
    std = torch.tensor(spec.std, dtype=pred.dtype)
    if spec.kind == "dense_regression":
        return (pred - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    if pred.dim() == 1:
        return (pred - mean[0]) / std[0]
    return (pred - mean.view(1, -1)) / std.view(1, -1)


def run_cost(model: nn.Module, config: ExperimentConfig, in_shape) -> dict[str, float]:
    """MACs, parameters, SNT (against the full-width encoder) and latency of ``model``."""
    from taskgrouper.evaluate.cost import encoder_cost, network_cost

    reference = encoder_cost(config.model.backbone, tuple(in_shape), 1.0, config.model.hidden,
                             config.model.scale)
    device = next(model.parameters()).device
    cost = network_cost(model, tuple(in_shape), reference, latency_device=device)
    return {"macs": int(cost.macs), "params": int(cost.params), "snt": float(cost.snt),
            "latency_s": float(cost.latency_s), "latency_device": str(device)}
