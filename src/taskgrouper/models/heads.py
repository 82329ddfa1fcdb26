"""Task heads: light decoders for dense tasks, pooled linear heads for image-level tasks.

Output conventions (what :func:`build_head` heads return, for a batch of B samples of spatial
size H x W):

==================  ============================================================
kind                output
==================  ============================================================
segmentation        logits ``(B, K, H, W)``
dense_regression    ``(B, C, H, W)`` (normalised units)
normals             ``(B, 3, H, W)``, unit length along dim 1
dense_binary        logits ``(B, 1, H, W)`` (a logit > 0 means label 1)
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

from taskgrouper.errors import InputError
from taskgrouper.models.layers import SeparableConv2d, init_weights
from taskgrouper.tasks import KINDS, TaskSpec, closest

__all__ = ["HEAD_KINDS", "ASPPDecoder", "GlobalHead", "LightDecoder", "TaskHead", "build_head",
           "decoder_hidden", "decoder_scale", "dense_decoder"]

#: Dense decoders :func:`build_head` (``kind``) and architectures' ``head`` option accept.
HEAD_KINDS: tuple[str, ...] = ("light", "aspp")


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
            raise InputError(f"LightDecoder stride must be a power of two, got {stride}")
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
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, Cin, h, w) -> (B, Cout, h * stride, w * stride)
        return self.layers(x)


class ASPPDecoder(nn.Module):
    """Atrous spatial pyramid pooling then a classifier (DeepLab v3, Chen et al., 2017; v3+,
    Chen et al., 2018).

    Parallel branches on the encoder features: a 1x1 conv, one dilated 3x3 conv per rate and an
    image-pooling branch (global average pool, 1x1 conv, broadcast back to the feature size);
    their concatenation is projected by a 1x1 conv, and a 1x1 classifier gives the output,
    upsampled bilinearly by ``stride`` to the input size. Every conv but the pooling branch's
    and the classifier is followed by BN and ReLU.

    Departures from DeepLab, for this project's small networks and inputs:

    * The dilated 3x3 convs are depthwise-separable (DeepLab v3+'s "atrous separable
      convolution"), and ``hidden`` is 64 rather than 256, so that on the width-1 Xception
      (512 channels) the head has 0.20 M parameters (light decoder: 0.11 M); it computes at the
      encoder's resolution and upsamples bilinearly, so at 256x256 it costs 42 M
      multiply-adds against the light decoder's 247 M.
    * Rates. DeepLab v3 uses (6, 12, 18) at output stride 16 and doubles them at stride 8 on
      513-pixel crops: each rate times the stride spans the same 96, 192 and 288 input pixels.
      Our reference input is 256 pixels (Standley et al., 2020), half of that, so the default
      keeps DeepLab's geometry at half the span: ``rate * stride`` = 48, 96, 144 pixels, i.e.
      rates (3, 6, 9) at stride 16, (6, 12, 18) at stride 8, (2, 3, 5) at stride 32 (at least
      1, rounded half up). Larger rates on our 4-16 pixel feature maps would put every tap
      but the centre into the padding (the degenerate case DeepLab's pooling branch exists
      for). Pass ``rates`` to choose others.
    * The pooling branch has a bias and no BN (a BN on a 1x1 pooled map fails on a batch of
      one); no dropout before the classifier.

    Args:
        in_channels: Channels of the encoder features.
        out_channels: Output channels.
        stride: Encoder output stride; the output is ``stride`` times larger.
        hidden: Channels of every branch and of the projection.
        rates: Dilation rates of the 3x3 branches (default: from ``stride``, see above).
    """

    #: Input pixels spanned by ``rate * stride`` for the default rates (DeepLab's, halved).
    SPANS = (48, 96, 144)

    def __init__(self, in_channels: int, out_channels: int, stride: int = 16, hidden: int = 64,
                 rates: Sequence[int] | None = None) -> None:
        super().__init__()
        if stride < 1:
            raise InputError(f"ASPPDecoder stride must be positive, got {stride}")
        if rates is None:
            rates = tuple(max(1, math.floor(span / stride + 0.5)) for span in self.SPANS)
        if not rates or min(rates) < 1:
            raise InputError(f"ASPPDecoder rates must be positive, got {tuple(rates)}")
        self.stride = stride
        self.rates = tuple(int(r) for r in rates)
        self.branches = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True))])
        for r in self.rates:
            self.branches.append(nn.Sequential(SeparableConv2d(in_channels, hidden, dilation=r),
                                               nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, hidden, 1),
                                  nn.ReLU(inplace=True))
        n = len(self.branches) + 1
        self.project = nn.Sequential(nn.Conv2d(n * hidden, hidden, 1, bias=False),
                                     nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(hidden, out_channels, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, Cin, h, w)
        h, w = x.shape[-2:]
        feats = [branch(x) for branch in self.branches]  # (1 + len(rates)) x (B, hidden, h, w)
        feats.append(self.pool(x).expand(-1, -1, h, w))  # (B, hidden, 1, 1) -> (B, hidden, h, w)
        y = self.classifier(self.project(torch.cat(feats, dim=1)))  # (B, Cout, h, w)
        if self.stride == 1:
            return y
        # (B, Cout, h, w) -> (B, Cout, h * stride, w * stride)
        return F.interpolate(y, scale_factor=self.stride, mode="bilinear", align_corners=False)


def decoder_hidden(default: int, scale: float) -> int:
    """Hidden channels of a decoder on an encoder narrowed by ``model.scale``: the default
    times ``scale`` (at least 8), so that decoders keep their share of the SNT network's
    size as the paper's did (the light decoder is about a tenth of the reference encoder's
    multiply-adds); ``default`` itself at scale 1."""
    return default if scale == 1.0 else max(8, round(default * scale))


def dense_decoder(kind: str, in_channels: int, out_channels: int, stride: int,
                  scale: float = 1.0) -> nn.Module:
    """A dense decoder by name: ``light`` (:class:`LightDecoder`) or ``aspp``
    (:class:`ASPPDecoder`), from features of ``in_channels`` at ``stride`` to ``out_channels``
    at stride 1; ``scale`` (the encoder's ``model.scale``) narrows its hidden channels
    (:func:`decoder_hidden`).

    Raises:
        ValueError: An unknown kind (suggests the closest).
    """
    if kind == "light":
        return LightDecoder(in_channels, out_channels, stride=stride,
                            hidden=decoder_hidden(42, scale))
    if kind == "aspp":
        return ASPPDecoder(in_channels, out_channels, stride=stride,
                           hidden=decoder_hidden(64, scale))
    raise InputError(f"unknown dense head '{kind}'; {closest(kind, HEAD_KINDS)}")


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
        if KINDS[self.kind] == "dense":
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


def decoder_scale(backbone: nn.Module) -> float:
    """The ``model.scale`` an image backbone was built with (1 when it says none), which
    narrows the decoders on it."""
    return float(getattr(backbone, "decoder_scale", 1.0))


def build_head(spec: TaskSpec, backbone: nn.Module, kind: str = "light") -> TaskHead:
    """The head for ``spec`` on ``backbone``'s deepest features.

    Dense tasks get a :class:`LightDecoder` (``kind="light"``) or an :class:`ASPPDecoder`
    (``kind="aspp"``) upsampling by the backbone's output stride; image-level tasks get a
    :class:`GlobalHead` whatever ``kind`` says.

    Raises:
        ValueError: A dense task on a vector backbone, or an unknown ``kind``.
    """
    spatial = getattr(backbone, "spatial", True)
    cin = backbone.out_channels[-1]
    if spec.dense:
        if not spatial:
            raise InputError(f"task '{spec.name}' is dense ({spec.kind}) but backbone "
                             f"{type(backbone).__name__} takes vector inputs and has no "
                             "spatial features; use an image backbone (xception or resnet)")
        core: nn.Module = dense_decoder(kind, cin, spec.channels, backbone.strides[-1],
                                        scale=decoder_scale(backbone))
    else:
        core = GlobalHead(cin, spec.channels)
    return TaskHead(spec, core)
