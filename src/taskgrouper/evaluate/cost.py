"""Inference cost of networks: multiply-adds, parameters, latency and standard network time.

Standley et al. (2020), "Which Tasks Should Be Learned Together in Multi-task Learning?"
(ICML), compare multi-task solutions at a fixed *inference-time budget* measured in
**standard network time (SNT)**: the cost of one full-sized encoder. A budget of 1.5 SNT,
for instance, allows one full-sized network plus one half-sized network. Decoders are small
(about 116k parameters each) and are not counted in SNT.

Here cost means multiply-accumulate operations (MACs) of one forward pass for one sample at
the real input size, counted by :class:`torch.utils.flop_counter.FlopCounterMode`. The counter
reports FLOPs as two per multiply-add, so its figure is halved. It counts convolutions
(including depthwise, dilated and transposed ones) and matrix multiplies; batch norm,
activations, additions, pooling and interpolation are not counted (they are a small fraction of
the total and the paper's figures count multiply-adds of the weighted layers).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from taskgrouper.errors import InputError
from taskgrouper.models.backbones import build_backbone

__all__ = [
    "NetworkCost",
    "count_macs",
    "count_params",
    "encoder_cost",
    "measure_latency",
    "network_cost",
    "snt",
    "width_for_cost",
]


def _meta_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters and buffers live on the meta device.

    The copy is made without duplicating tensor storage: every parameter and buffer is mapped to
    an empty meta tensor of the same shape before :func:`copy.deepcopy` runs.
    """
    memo: dict[int, object] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"),
                                   requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(module, memo)


def _count(module: nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(x)
    return int(counter.get_total_flops()) // 2


def _module_device(module: nn.Module) -> torch.device:
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def count_macs(module: nn.Module, input_shape: Sequence[int], *, device: str | None = "meta",
               ) -> int:
    """Multiply-adds of one forward pass of ``module`` for one sample.

    Args:
        module: Any module taking a single tensor of shape ``(1, *input_shape)``.
        input_shape: One sample's shape without the batch axis, e.g. ``(3, 256, 256)``.
        device: ``"meta"`` (default) runs the count on a storage-free copy of the module, which
            makes large inputs cheap; if that fails (an operator without a meta kernel), the
            count falls back to a real forward pass on the module's own device. ``None`` skips
            the meta attempt.

    Returns:
        MACs (the counter's FLOPs divided by two). The module's train/eval mode is left as it
        was; the count itself is taken in eval mode.
    """
    shape = (1, *(int(s) for s in input_shape))
    if device == "meta":
        try:
            meta = _meta_copy(module).eval()
            return _count(meta, torch.empty(shape, device="meta"))
        except (NotImplementedError, RuntimeError):
            pass
    dev = _module_device(module)
    if dev.type == "meta":  # nothing real to run on: count on an uninitialised CPU copy
        dev = torch.device("cpu")
        return _count(copy.deepcopy(module).to_empty(device=dev).eval(),
                      torch.zeros(shape, device=dev))
    was_training = module.training
    module.eval()
    try:
        return _count(module, torch.zeros(shape, device=dev))
    finally:
        module.train(was_training)


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``) of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def measure_latency(module: nn.Module, input_shape: Sequence[int], device: str | torch.device,
                    batch_size: int = 1, warmup: int = 3, iters: int = 10) -> float:
    """Median wall-clock seconds per sample of an inference forward pass.

    The module is moved to ``device`` (it stays there) and run in eval mode without gradients;
    its previous mode is restored. On CUDA every timed pass is bracketed by
    :func:`torch.cuda.synchronize` so that asynchronous kernels are counted.

    Args:
        module: Model taking ``(batch_size, *input_shape)``.
        input_shape: One sample's shape.
        device: Where to run, e.g. ``"cpu"`` or ``"cuda"``.
        batch_size: Samples per forward pass; the result is divided by it.
        warmup: Untimed passes first.
        iters: Timed passes; the median is reported.
    """
    if iters < 1:
        raise InputError(f"iters must be >= 1, got {iters}")
    device = torch.device(device)
    cuda = device.type == "cuda"
    was_training = module.training
    module.to(device).eval()
    x = torch.randn(batch_size, *input_shape, device=device)
    times = []
    try:
        with torch.no_grad():
            for _ in range(warmup):
                module(x)
            for _ in range(iters):
                if cuda:
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                module(x)
                if cuda:
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
    finally:
        module.train(was_training)
    return statistics.median(times) / batch_size


@dataclass
class NetworkCost:
    """Inference cost of one network.

    Attributes:
        macs: Multiply-adds of the whole network (encoder and every head) for one sample.
        params: Trainable parameters of the whole network.
        snt: Standard network time: encoder MACs over the MACs of the full-sized (width 1)
            encoder of the same backbone at the same input size (Standley et al., 2020).
        latency_s: Median seconds per sample, when measured.
    """

    macs: int
    params: int
    snt: float
    latency_s: float | None = None


def snt(encoder_macs: int, reference_macs: int) -> float:
    """Standard network time: ``encoder_macs / reference_macs``.

    Args:
        encoder_macs: MACs of the encoder(s) of a solution (summed when there are several).
        reference_macs: MACs of one full-sized encoder at the same input size.
    """
    if reference_macs <= 0:
        raise InputError(f"reference_macs must be positive, got {reference_macs}")
    return float(encoder_macs) / float(reference_macs)


def encoder_cost(backbone_name: str, in_shape: Sequence[int], width: float = 1.0,
                 hidden: Sequence[int] | None = None, scale: float = 1.0) -> int:
    """MACs of a backbone alone (no heads) for one sample of shape ``in_shape``.

    The backbone is built on the meta device, so the count allocates no parameter memory.
    """
    with torch.device("meta"):
        backbone = build_backbone(backbone_name, tuple(in_shape), width=width, hidden=hidden,
                                  scale=scale)
    return count_macs(backbone, in_shape)


def width_for_cost(target_fraction: float, input_shape: Sequence[int] = (3, 256, 256),
                   backbone: str = "xception", tol: float = 1e-3) -> float:
    """The channel multiplier whose encoder costs ``target_fraction`` of the full encoder.

    Cost is multiply-adds counted by :func:`count_macs` (:func:`encoder_cost`) at
    ``input_shape``. The search bisects the width on the counted cost; because channel counts
    are rounded, cost is a step function of width, so the candidate width whose cost is closest
    to the target is returned. For Xception at 256x256, ``width_for_cost(0.5)`` is about 0.7:
    the paper's "half-sized" encoder (Standley et al., 2020).

    Args:
        target_fraction: Wanted cost relative to width 1, in ``(0, 1]`` (or above, up to 4).
        input_shape: One sample's shape.
        backbone: Backbone name.
        tol: Stop when the bisection interval is narrower than this.
    """
    if not 0 < target_fraction <= 4:
        raise InputError(f"target_fraction must be in (0, 4], got {target_fraction}")
    reference = encoder_cost(backbone, input_shape, 1.0)
    cache: dict[float, float] = {}

    def frac(w: float) -> float:
        if w not in cache:
            cache[w] = encoder_cost(backbone, input_shape, w * w) / reference  # size = mult^2
        return cache[w]

    lo, hi = 0.01, 2.0
    while frac(hi) < target_fraction and hi < 16:
        hi *= 2
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if frac(mid) < target_fraction:
            lo = mid
        else:
            hi = mid
    return min(cache, key=lambda w: (abs(cache[w] - target_fraction), w))


def network_cost(model: nn.Module, in_shape: Sequence[int], reference_macs: int | None = None,
                 *, latency_device: str | torch.device | None = None) -> NetworkCost:
    """Cost of a multi-task network built by :func:`taskgrouper.models.build_model`.

    Args:
        model: A network with an ``encoder`` attribute (its shared backbone).
        in_shape: One sample's shape.
        reference_macs: MACs of the full-sized encoder; when ``None`` it is computed from the
            model's ``backbone_name`` at width 1 with :func:`encoder_cost`.
        latency_device: When given, latency is measured there with :func:`measure_latency`.

    Returns:
        :class:`NetworkCost` whose ``macs`` include the heads and whose ``snt`` counts only
        the encoder, as in the paper.
    """
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise TypeError(f"{type(model).__name__} has no 'encoder' attribute; network_cost needs "
                        "the shared encoder to compute standard network time")
    if reference_macs is None:
        name = getattr(model, "backbone_name", None)
        if name is None:
            raise TypeError("reference_macs is required for a model without 'backbone_name'")
        reference_macs = encoder_cost(name, in_shape, 1.0)
    total = count_macs(model, in_shape)
    enc = count_macs(encoder, in_shape)
    latency = None
    if latency_device is not None:
        latency = measure_latency(model, in_shape, latency_device)
    return NetworkCost(macs=total, params=count_params(model), snt=snt(enc, reference_macs),
                       latency_s=latency)
