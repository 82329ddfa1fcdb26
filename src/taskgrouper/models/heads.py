"""Task heads: light decoders for dense tasks, pooled linear heads for image-level tasks.

Output conventions (what :func:`build_head` heads return, for a batch of B samples of spatial
size H x W):

==================  ============================================================
kind                output
==================  ============================================================
segmentation        logits ``(B, K, H, W)``
dense_regression    ``(B, C, H, W)`` (normalised units)
normals             ``(B, 3, H, W)``, unit length along dim 1
classification      logits ``(B, K)``
binary              logits ``(B,)``
regression          ``(B, C)``, or ``(B,)`` when ``C == 1`` (normalised units)
==================  ============================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from taskgrouper.models.backbones import SeparableConv2d, _init_weights
from taskgrouper.tasks import TaskSpec

__all__ = ["GlobalHead", "LightDecoder", "TaskHead", "build_head"]


class LightDecoder(nn.Module):
    """The light decoder of Standley et al. (2020): transposed and separable convolutions.

    The paper's decoders have "four transposed convolutional layers and four separable
    convolutional layers; every decoder has about 116,000 parameters". Here the number of
    transposed convs is ``log2(stride)`` (each a 2x2 stride-2 upsampling, BN, ReLU) and there
    are ``max(4, log2(stride))`` separable 3x3 convs. For stride 16 the layers alternate
    ``T, S, T, S, T, S, T, S``; for a smaller stride the extra separable convs come first, at the
    encoder's resolution (stride 8: ``S, T, S, T, S, T, S``). Every layer but the last has BN and
    ReLU; the last separable conv is the output layer (with bias, no BN/ReLU).

    With 512 input channels (the width-1 Xception encoder), ``hidden=42`` and one output channel
    the decoder has about 115 k parameters at stride 16.

    Args:
        in_channels: Channels of the encoder features.
        out_channels: Output channels.
        stride: Encoder output stride; must be a power of two.
        hidden: Channels of every hidden layer.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 16,
                 hidden: int = 42) -> None:
        super().__init__()
        n_up = int(round(math.log2(stride))) if stride >= 1 else -1
        if n_up < 0 or 2 ** n_up != stride:
            raise ValueError(f"LightDecoder stride must be a power of two, got {stride}")
        n_sep = max(4, n_up)
        self.stride = stride
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(n_sep):
            if i >= n_sep - n_up:  # upsample before this separable conv
                layers += [nn.ConvTranspose2d(c, hidden, 2, stride=2, bias=False),
                           nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)]
                c = hidden
            if i == n_sep - 1:
                layers.append(SeparableConv2d(c, out_channels, bias=True))
            else:
                layers += [SeparableConv2d(c, hidden), nn.BatchNorm2d(hidden),
                           nn.ReLU(inplace=True)]
                c = hidden
        self.layers = nn.Sequential(*layers)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, Cin, h, w) -> (B, Cout, h * stride, w * stride)
        return self.layers(x)


class GlobalHead(nn.Module):
    """Image-level head: global average pooling then a linear layer.

    On vector features ``(B, C)`` it is just the linear layer.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        return self.fc(x)  # (B, out)


class TaskHead(nn.Module):
    """One task's head with the output conventions of its kind applied.

    Args:
        spec: The task.
        core: :class:`LightDecoder` (dense kinds) or :class:`GlobalHead`.
        feature_index: Which backbone stage output the head reads (default: the deepest).
    """

    def __init__(self, spec: TaskSpec, core: nn.Module, feature_index: int = -1) -> None:
        super().__init__()
        self.spec = spec
        self.kind = spec.kind
        self.core = core
        self.feature_index = feature_index

    def forward(self, features: Sequence[torch.Tensor],
                input_hw: Sequence[int] | None = None) -> torch.Tensor:
        out = self.core(features[self.feature_index])
        if self.kind in ("segmentation", "dense_regression", "normals"):
            # (B, C, h', w') -> (B, C, H, W) when odd input sizes break exact upsampling
            if input_hw is not None and tuple(out.shape[-2:]) != tuple(input_hw):
                out = F.interpolate(out, size=tuple(input_hw), mode="bilinear",
                                    align_corners=False)
            if self.kind == "normals":
                out = F.normalize(out, p=2.0, dim=1, eps=1e-6)  # unit vectors along dim 1
            return out
        if self.kind == "binary":
            return out.squeeze(1)  # (B, 1) -> (B,)
        if self.kind == "regression" and out.shape[1] == 1:
            return out.squeeze(1)  # (B, 1) -> (B,)
        return out  # (B, K) or (B, C)


def build_head(spec: TaskSpec, backbone: nn.Module) -> TaskHead:
    """The head for ``spec`` on ``backbone``'s deepest features.

    Dense tasks get a :class:`LightDecoder` upsampling by the backbone's output stride; image-
    level tasks get a :class:`GlobalHead`.

    Raises:
        ValueError: A dense task on a vector backbone.
    """
    spatial = getattr(backbone, "spatial", True)
    cin = backbone.out_channels[-1]
    if spec.dense:
        if not spatial:
            raise ValueError(f"task '{spec.name}' is dense ({spec.kind}) but backbone "
                             f"{type(backbone).__name__} takes vector inputs and has no "
                             "spatial features; use an image backbone (xception or resnet)")
        core: nn.Module = LightDecoder(cin, spec.channels, stride=backbone.strides[-1])
    else:
        core = GlobalHead(cin, spec.channels)
    return TaskHead(spec, core)
