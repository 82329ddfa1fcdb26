"""Depth errors of the Eigen et al. (2014) set, as streaming sums over valid pixels.

With ``t`` the ground truth, ``p`` the prediction and ``p+ = max(p, eps)`` (``eps = 1e-6``,
so logarithms and ratios stay finite for non-positive predictions), over the pixels of the whole
split:

==============  ==============================================================  ============
name            formula                                                         pixels
==============  ==============================================================  ============
``l1``          ``mean |p - t|``                                                finite
``mse``         ``mean (p - t)^2``                                              finite
``rmse``        ``sqrt(mean (p - t)^2)``                                        finite
``abs_rel``     ``mean |p - t| / t``                                            t > 0
``sq_rel``      ``mean (p - t)^2 / t``                                          t > 0
``rmse_log``    ``sqrt(mean (ln p+ - ln t)^2)``                                 t > 0
``log10``       ``mean |log10 p+ - log10 t|``                                   t > 0
``delta<k>``    fraction with ``max(p+ / t, t / p+) < 1.25^k``, k = 1, 2, 3     t > 0
==============  ==============================================================  ============

"finite" pixels are those whose target is finite in every channel (a missing depth is NaN);
``l1``, ``mse`` and ``rmse`` keep this module's historical convention of averaging over every
finite target, including ``t <= 0``, while the ratio and log errors need ``t > 0``. Depth
datasets mark missing depth as NaN, so the two sets coincide there. ``abs_rel`` and ``sq_rel``
use the prediction as it is (no clamping), as Eigen et al. define them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

__all__ = ["DELTA_EPS", "DEPTH_METRICS", "depth_metrics", "depth_sums"]

#: Every metric name this module reports.
DEPTH_METRICS: tuple[str, ...] = ("l1", "mse", "rmse", "abs_rel", "sq_rel", "rmse_log", "log10",
                                  "delta1", "delta2", "delta3")
#: Predictions are clamped to at least this value before logarithms and ratios.
DELTA_EPS = 1e-6

# metric -> the sums it needs (besides the pixel counts)
_NEEDS = {
    "l1": ("abs",), "mse": ("sq",), "rmse": ("sq",), "abs_rel": ("rel",), "sq_rel": ("sq_rel",),
    "rmse_log": ("sq_log",), "log10": ("log10",), "delta1": ("delta1",),
    "delta2": ("delta2",), "delta3": ("delta3",),
}


def _acc_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def depth_sums(pred: Tensor, target: Tensor, names: Iterable[str]) -> dict[str, Tensor]:
    """One batch's sufficient statistics for the metrics ``names``.

    Args:
        pred: ``(B, C, H, W)`` predictions in the label scale (float).
        target: ``(B, C, H, W)`` labels, NaN where missing.
        names: Metric names among :data:`DEPTH_METRICS`.

    Returns:
        0-d tensors on ``pred``'s device: ``n`` (finite elements), ``n_pos`` (elements with a
        positive target) and one sum per needed statistic.
    """
    needed = {s for name in names for s in _NEEDS[name]}
    acc = _acc_dtype(pred.device)
    # A pixel is valid when every channel is finite (as taskgrouper.tasks.valid_mask).
    valid = torch.isfinite(target).all(dim=1, keepdim=True).expand_as(target)  # (B, C, H, W)
    p, t = pred[valid], target[valid]  # (V,)
    err = p - t
    pos = t > 0
    pp, tp = p[pos], t[pos]  # (V+,)
    ep = err[pos]
    pc = pp.clamp(min=DELTA_EPS)  # clamped prediction for logs and ratios
    out = {"n": valid.sum(dtype=torch.int64), "n_pos": pos.sum(dtype=torch.int64)}
    if "abs" in needed:
        out["abs"] = err.abs().to(acc).sum()
    if "sq" in needed:
        out["sq"] = err.to(acc).square().sum()
    if "rel" in needed:
        out["rel"] = (ep.abs().to(acc) / tp.to(acc)).sum()
    if "sq_rel" in needed:
        out["sq_rel"] = (ep.to(acc).square() / tp.to(acc)).sum()
    if "sq_log" in needed:
        out["sq_log"] = (torch.log(pc.to(acc)) - torch.log(tp.to(acc))).square().sum()
    if "log10" in needed:
        out["log10"] = (torch.log10(pc.to(acc)) - torch.log10(tp.to(acc))).abs().sum()
    if needed & {"delta1", "delta2", "delta3"}:
        ratio = torch.maximum(pc / tp, tp / pc)  # (V+,)
        for k in (1, 2, 3):
            if f"delta{k}" in needed:
                out[f"delta{k}"] = (ratio < 1.25 ** k).sum(dtype=torch.int64)
    return out


def depth_metrics(sums: Mapping[str, float], names: Iterable[str]) -> dict[str, float]:
    """The metrics ``names`` from summed statistics (floats); NaN without a pixel to average."""

    def mean(key: str, count: str) -> float:
        return sums[key] / sums[count] if sums[count] > 0 else math.nan

    out: dict[str, float] = {}
    for name in names:
        if name == "l1":
            out[name] = mean("abs", "n")
        elif name == "mse":
            out[name] = mean("sq", "n")
        elif name == "rmse":
            out[name] = math.sqrt(mean("sq", "n"))
        elif name == "abs_rel":
            out[name] = mean("rel", "n_pos")
        elif name == "sq_rel":
            out[name] = mean("sq_rel", "n_pos")
        elif name == "rmse_log":
            out[name] = math.sqrt(mean("sq_log", "n_pos"))
        elif name == "log10":
            out[name] = mean("log10", "n_pos")
        else:  # delta1, delta2, delta3
            out[name] = mean(name, "n_pos")
    return out
