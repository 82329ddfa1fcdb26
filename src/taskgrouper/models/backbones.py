"""Shared encoders (backbones) for multi-task networks.

Every backbone is an :class:`torch.nn.Module` whose ``forward(x)`` returns a list of stage
outputs ordered from shallow to deep, and which exposes:

* ``out_channels``: channels of each stage output;
* ``strides``: cumulative stride of each stage output (1 for vector backbones);
* ``width``: the channel multiplier it was built with;
* ``spatial``: ``True`` for image backbones (stage outputs are ``(B, C, H, W)`` maps),
  ``False`` for vector backbones (``(B, C)``);
* ``decoder_scale`` (set by :func:`build_backbone`): the ``model.scale`` it was built with,
  which narrows the dense decoders built on it (:func:`taskgrouper.models.heads.decoder_hidden`;
  a backbone built directly has none and its decoders keep their full width);
* ``stages()``: the backbone as a chain of modules, one per stage output: stage ``i`` maps
  stage ``i - 1``'s output (the input for ``i = 0``) to output ``i`` of ``forward``.
  Architectures that interleave layers between stages (cross-stitch, NDDR) or gate blocks
  (AdaShare) use it.

``width``: size as a fraction of cost
-------------------------------------
Standley et al. (2020) shrink "the number of channels in every layer of the encoder such that
it had the appropriate number of parameters and flops": a *half-sized* network costs half the
multiply-adds of the full one. The ``width`` that configs, :func:`build_backbone` and
:func:`taskgrouper.models.build_model` take means exactly that: the encoder's cost as a fraction
of the full (width 1) encoder. Since the pointwise convolutions that dominate the cost scale with
the square of the channel count, the backbone classes are built with a channel multiplier of
``sqrt(width)`` (every layer gets ``round(c * sqrt(width))`` channels, a multiple of 4, at least
8), and a width-0.5 Xception costs 0.50 of width 1 by the FLOP counter (bench/bench_flops.py).
The classes themselves take the channel multiplier (their ``width`` argument and attribute);
:func:`taskgrouper.evaluate.cost.width_for_cost` finds the channel multiplier for an exact cost
fraction. The cost itself is always what :func:`taskgrouper.evaluate.cost.count_macs` reports.

The layers the backbones share with heads and architectures (:func:`scale_channels`,
:class:`SeparableConv2d`, ...) are in :mod:`taskgrouper.models.layers`; ``scale_channels`` and
``SeparableConv2d`` are importable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.hrnet import HRNetEncoder
from taskgrouper.models.layers import (
    BasicBlock,
    SeparableConv2d,
    conv_bn,
    init_weights,
    scale_channels,
    sep_bn,
)
from taskgrouper.tasks import closest

__all__ = [
    "BACKBONES",
    "DilatedResNet",
    "MLPEncoder",
    "SeparableConv2d",
    "ShallowEncoder",
    "XceptionEncoder",
    "backbone_factory",
    "build_backbone",
    "scale_channels",
]

#: Names accepted by :func:`build_backbone`.
BACKBONES: tuple[str, ...] = ("xception", "resnet", "mlp", "hrnet", "shallow")


class _XceptionBlock(nn.Module):
    """Residual block of separable convs, optionally ending in a 2x2 stride-2 conv.

    Main path: ``n`` separable convs (BN, ReLU between them), then, when ``downsample``, a
    ``2 x 2`` stride-2 convolution in place of Xception's max pooling (Standley et al., 2020).
    Shortcut: identity, or a ``1 x 1`` conv (stride 2 when downsampling) with BN when the shape
    changes. The sum goes through a ReLU.
    """

    def __init__(self, cin: int, cout: int, n: int, downsample: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        for i in range(n):
            last = i == n - 1
            layers.append(sep_bn(c, cout, relu=not (last and not downsample)))
            c = cout
        if downsample:
            layers.append(conv_bn(cout, cout, 2, stride=2, relu=False))
        self.main = nn.Sequential(*layers)
        stride = 2 if downsample else 1
        if cin != cout or downsample:
            self.shortcut: nn.Module = conv_bn(cin, cout, 1, stride=stride, relu=False)
        else:
            self.shortcut = nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, Cin, H, W) -> (B, Cout, H/s, W/s)
        return self.act(self.main(x) + self.shortcut(x))


class XceptionEncoder(nn.Module):
    """The reduced Xception encoder of Standley et al. (2020, ICML), output stride 16.

    The paper's encoder is Xception (Chollet, 2017) "simplified to have 17 layers and the middle
    flow layers were reduced to having 512 rather than 728 channels. Furthermore, all
    max-pooling layers were replaced by 2x2 convolution layers with a stride of 2. The
    full-sized encoder had about 4 million parameters" (2.28 G multiply-adds at 256x256).

    The 17 layers counted here are the weighted layers of the main path excluding the 2x2
    downsampling convs and the 1x1 shortcut convs:

    * stem (2): 3x3 conv stride 2 (3->24), 3x3 conv (24->48);
    * entry flow (6): three residual blocks of two separable convs each (->96, ->192, ->512),
      each ending in a 2x2 stride-2 conv (1x1 stride-2 conv on the shortcut), output stride 16;
    * middle flow (6): two residual blocks of three 512-channel separable convs;
    * exit flow (3): a residual block of two 512-channel separable convs and a final
      512-channel separable conv; no further downsampling, so the output stride stays 16.

    The channel counts were tuned (narrower stem and first two entry blocks than Chollet's
    32/64/128/256) so that at width 1 and a 3x256x256 input the encoder has 4.22 M parameters
    and 2.29 G multiply-adds (conv and matmul MACs counted by
    :func:`taskgrouper.evaluate.cost.count_macs`), against the paper's "about 4 million" and
    2.28 G.

    Stage outputs (shallow to deep): stem (stride 2), entry blocks 1 and 2 (strides 4 and 8)
    and the final features after the exit flow (stride 16).

    Args:
        in_channels: Input image channels.
        width: Channel multiplier applied to every layer (see the module docstring; cost
            scales roughly with ``width ** 2``).
    """

    spatial = True
    #: Base channel counts (width 1).
    STEM = (24, 48)
    ENTRY = (96, 192, 512)
    MIDDLE = 512
    MIDDLE_BLOCKS = 2
    EXIT = (512, 512)

    def __init__(self, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.width = float(width)

        def ch(c: int) -> int:
            return scale_channels(c, width)

        s0, s1 = ch(self.STEM[0]), ch(self.STEM[1])
        self.stem = nn.Sequential(conv_bn(in_channels, s0, 3, stride=2, padding=1),
                                  conv_bn(s0, s1, 3, padding=1))
        e1, e2, e3 = (ch(c) for c in self.ENTRY)
        self.entry1 = _XceptionBlock(s1, e1, 2, downsample=True)
        self.entry2 = _XceptionBlock(e1, e2, 2, downsample=True)
        self.entry3 = _XceptionBlock(e2, e3, 2, downsample=True)
        m = ch(self.MIDDLE)
        middle: list[nn.Module] = [_XceptionBlock(e3 if i == 0 else m, m, 3, downsample=False)
                                   for i in range(self.MIDDLE_BLOCKS)]
        self.middle = nn.Sequential(*middle)
        x1, x2 = (ch(c) for c in self.EXIT)
        self.exit = nn.Sequential(_XceptionBlock(m, x1, 2, downsample=False), sep_bn(x1, x2))
        self.out_channels = [s1, e1, e2, x2]
        self.strides = [2, 4, 8, 16]
        init_weights(self)

    def stages(self) -> list[nn.Module]:
        """The chain of stages behind the four stage outputs."""
        return [self.stem, self.entry1, self.entry2,
                nn.Sequential(self.entry3, self.middle, self.exit)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # x: (B, Cin, H, W)
        s = self.stem(x)  # (B, 48w, H/2, W/2)
        e1 = self.entry1(s)  # (B, 96w, H/4, W/4)
        e2 = self.entry2(e1)  # (B, 192w, H/8, W/8)
        e3 = self.entry3(e2)  # (B, 512w, H/16, W/16)
        out = self.exit(self.middle(e3))  # (B, 512w, H/16, W/16)
        return [s, e1, e2, out]


class DilatedResNet(nn.Module):
    """ResNet-18-style encoder whose last stages are dilated instead of strided.

    Stem: 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max pool (stride 4). Four stages of basic
    blocks with 64, 128, 256, 512 channels (times ``width``). Stages that would push the
    cumulative stride past ``output_stride`` keep stride 1 and double their dilation instead
    (Yu et al., 2017), so the deepest features keep a higher resolution for dense tasks.

    Args:
        in_channels: Input image channels.
        width: Channel multiplier.
        layers: Basic blocks per stage.
        output_stride: 8, 16 or 32.
    """

    spatial = True
    CHANNELS = (64, 128, 256, 512)

    def __init__(self, in_channels: int = 3, width: float = 1.0,
                 layers: Sequence[int] = (2, 2, 2, 2), output_stride: int = 8) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise InputError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if len(layers) != 4:
            raise InputError(f"layers needs 4 stage depths, got {tuple(layers)}")
        self.width = float(width)
        chans = [scale_channels(c, width) for c in self.CHANNELS]
        self.stem = nn.Sequential(conv_bn(in_channels, chans[0], 7, stride=2, padding=3),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        stride, dilation = 4, 1
        cin = chans[0]
        stages: list[nn.Module] = []
        self.strides: list[int] = []
        for i, (cout, depth) in enumerate(zip(chans, layers, strict=True)):
            s = 1 if i == 0 else 2
            first_dilation = dilation
            if stride * s > output_stride:
                dilation *= s
                s = 1
            stride *= s
            blocks = [BasicBlock(cin, cout, s, first_dilation)]
            blocks += [BasicBlock(cout, cout, 1, dilation) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            self.strides.append(stride)
            cin = cout
        self.blocks = nn.ModuleList(stages)
        self.out_channels = chans
        self.output_stride = output_stride
        init_weights(self)

    def stages(self) -> list[nn.Module]:
        """The chain of stages behind the four stage outputs (the stem joins the first)."""
        return [nn.Sequential(self.stem, self.blocks[0]), *self.blocks[1:]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # x: (B, Cin, H, W)
        x = self.stem(x)  # (B, 64w, H/4, W/4)
        outs = []
        for stage in self.blocks:
            x = stage(x)  # (B, C_i, H/s_i, W/s_i)
            outs.append(x)
        return outs


class ShallowEncoder(nn.Module):
    """A plain, shallow convolutional encoder: the SNT network of the embedded demo.

    Standley et al. (2020) train a 17-layer Xception at 256x256 on a GPU. On a two-core CPU and
    32x32 scenes that network is dominated by per-layer overhead (its 34 depthwise and pointwise
    convolutions cost more time than their arithmetic), so it cannot be trained to convergence
    many times over in minutes. This encoder keeps what the paper's experiment needs (one
    shared encoder whose cost is set by its channel count) with eight layers:

    * four stages of two ``3 x 3`` conv-BN-ReLU layers with 32, 64, 128 and 256 channels
      (times ``width``);
    * the first conv of each of the first three stages has stride 2; the fourth stage keeps
      the resolution, so the output stride is 8 (a 4 x 4 map for a 32 x 32 input, where a
      stride of 16 leaves 2 x 2 for the dense decoders to recover).

    Every layer is a full convolution, so cost scales with ``width ** 2`` as for the Xception
    (the first layer, whose input is the 3 image channels, scales with ``width``).

    Stage outputs (shallow to deep): strides 2, 4, 8 and 8.

    Args:
        in_channels: Input image channels.
        width: Channel multiplier applied to every layer.
    """

    spatial = True
    #: Channels of the four stages at width 1.
    CHANNELS = (32, 64, 128, 256)

    def __init__(self, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.width = float(width)
        chans = [scale_channels(c, width) for c in self.CHANNELS]
        stages: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate(chans):
            stride = 2 if i < 3 else 1
            stages.append(nn.Sequential(conv_bn(cin, cout, 3, stride=stride, padding=1),
                                        conv_bn(cout, cout, 3, padding=1)))
            cin = cout
        self.blocks = nn.ModuleList(stages)
        self.out_channels = chans
        self.strides = [2, 4, 8, 8]
        init_weights(self)

    def stages(self) -> list[nn.Module]:
        """The four stages."""
        return list(self.blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # x: (B, Cin, H, W) -> [(B, 32w, H/2, W/2), (B, 64w, H/4, W/4), (B, 128w, H/8, W/8),
        #                       (B, 256w, H/8, W/8)]
        outs = []
        for stage in self.blocks:
            x = stage(x)
            outs.append(x)
        return outs


#: Hidden sizes of the ``mlp`` backbone at width 1 (``model.hidden`` overrides them).
MLP_HIDDEN: tuple[int, ...] = (256, 256)


def mlp_multiplier(in_features: int, hidden: Sequence[int], width: float) -> float:
    """The hidden-size multiplier ``m`` that gives an MLP ``width`` times its full cost.

    An MLP's multiply-adds are ``D h_1 m + (sum_i h_i h_{i+1}) m^2`` (the input layer grows
    with ``m``, the others with ``m^2``), so ``m`` solves ``a m^2 + b m = width (a + b)``.
    One hidden layer: ``m = width``; a deep, narrow-input MLP: about ``sqrt(width)``, as for
    convolutions.
    """
    a = float(sum(h1 * h2 for h1, h2 in zip(hidden, hidden[1:], strict=False)))
    b = float(in_features * hidden[0])
    if a == 0:
        return width
    return (-b + math.sqrt(b * b + 4 * a * width * (a + b))) / (2 * a)


class MLPEncoder(nn.Module):
    """Fully connected encoder for vector inputs: ``Linear -> ReLU -> Dropout`` per layer.

    Args:
        in_features: Input vector length.
        width: Multiplier of every hidden size (each rounded, at least 1 unit);
            :func:`build_backbone` picks it with :func:`mlp_multiplier` so that cost follows
            the requested width.
        hidden: Hidden sizes at width 1.
        dropout: Dropout probability after each activation.
    """

    spatial = False

    def __init__(self, in_features: int, width: float = 1.0,
                 hidden: Sequence[int] = MLP_HIDDEN, dropout: float = 0.0) -> None:
        super().__init__()
        if not hidden:
            raise InputError("MLPEncoder needs at least one hidden layer")
        self.width = float(width)
        layers: list[nn.Module] = []
        cin = in_features
        for h in hidden:
            cout = max(1, round(h * width))
            layers += [nn.Linear(cin, cout), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            cin = cout
        self.net = nn.Sequential(*layers)
        self.out_channels = [cin]
        self.strides = [1]
        init_weights(self)

    def stages(self) -> list[nn.Module]:
        """One stage: the whole MLP (on flattened inputs)."""
        return [nn.Sequential(nn.Flatten(1), self.net)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # (B, D) -> [(B, hidden[-1] * width)]
        return [self.net(x.flatten(1))]


#: The image backbones by name (``mlp`` is built apart: it sizes itself by ``hidden``).
_IMAGE_BACKBONES: dict[str, type[nn.Module]] = {
    "xception": XceptionEncoder, "resnet": DilatedResNet, "hrnet": HRNetEncoder,
    "shallow": ShallowEncoder}


def build_backbone(name: str, in_shape: tuple[int, ...], width: float = 1.0,
                   hidden: Sequence[int] | None = None, scale: float = 1.0) -> nn.Module:
    """Build a backbone by name for samples of shape ``in_shape``.

    Args:
        name: One of :data:`BACKBONES`.
        in_shape: One sample's shape: ``(C, H, W)`` for image backbones, ``(D,)`` for ``mlp``.
        width: Size as a fraction of the full encoder's cost (channels scale by
            ``sqrt(width)``; see the module docstring).
        hidden: Hidden sizes at width 1 of the ``mlp`` backbone (default ``(256, 256)``);
            other backbones take none.
        scale: Channel multiplier of the width-1 encoder of an image backbone (the
            experiment's SNT network; ``model.scale``): channels scale by
            ``scale * sqrt(width)``, and the dense decoders built on it have ``scale`` times
            their hidden channels (recorded as the backbone's ``decoder_scale``). The ``mlp``
            backbone sizes itself with ``hidden``.

    Raises:
        ValueError: Unknown name, or an input shape the backbone cannot take.
    """
    if not width > 0:
        raise InputError(f"width must be positive, got {width}")
    if not scale > 0:
        raise InputError(f"model.scale must be positive, got {scale}")
    mult = math.sqrt(width) * scale
    in_shape = tuple(int(s) for s in in_shape)
    if name not in BACKBONES:
        raise InputError(f"unknown backbone '{name}'; " + closest(name, BACKBONES))
    if hidden is not None and name != "mlp":
        raise InputError(f"model.hidden sets the hidden sizes of the mlp backbone; backbone "
                         f"'{name}' takes none: remove model.hidden")
    if name == "mlp":
        if scale != 1.0:
            raise InputError(f"model.scale sizes image backbones; the mlp backbone is sized by "
                             f"model.hidden: remove model.scale ({scale:g})")
        sizes = tuple(hidden) if hidden is not None else MLP_HIDDEN
        features = math.prod(in_shape)
        return MLPEncoder(features, width=mlp_multiplier(features, sizes, width),
                          hidden=sizes)
    if len(in_shape) != 3:
        raise InputError(f"backbone '{name}' needs image samples (C, H, W), got shape "
                         f"{in_shape}; use 'mlp' for vector inputs")
    encoder = _IMAGE_BACKBONES[name](in_shape[0], width=mult)
    # the decoders built on it are narrowed by the same scale (heads.decoder_hidden)
    encoder.decoder_scale = float(scale)
    return encoder


def backbone_factory(name: str, in_shape: Sequence[int], width: float = 1.0,
                     hidden: Sequence[int] | None = None,
                     scale: float = 1.0) -> Callable[[], nn.Module]:
    """A function that returns a fresh backbone (:func:`build_backbone`) at each call.

    The first backbone is built at once, so that a bad name, input shape or width fails here,
    before an architecture asks for it.
    """
    in_shape = tuple(int(s) for s in in_shape)
    first = [build_backbone(name, in_shape, width=width, hidden=hidden, scale=scale)]

    def make_backbone() -> nn.Module:
        return first.pop() if first else build_backbone(name, in_shape, width=width,
                                                        hidden=hidden, scale=scale)

    return make_backbone
