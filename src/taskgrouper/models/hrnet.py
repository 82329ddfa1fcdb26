"""A small HRNet: parallel branches at strides 4, 8, 16 and 32 with repeated multi-resolution
fusion (Wang et al., 2020, "Deep High-Resolution Representation Learning for Visual
Recognition", TPAMI).

The multi-scale backbone of the survey's decoder-focused experiments (Vandenhende et al., 2021,
Sec. 4: PAD-Net and MTI-Net on HRNet-18), reduced to a size that trains on a laptop CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.layers import BasicBlock, conv_bn, init_weights, scale_channels

__all__ = ["HRNetEncoder"]

#: Architectures that need ``backbone.stages()`` (a chain of stages), named in the error.
_CHAIN_ARCHITECTURES = ("cross_stitch", "nddr", "adashare")


def _down_path(cin: int, cout: int, steps: int) -> nn.Sequential:
    """``steps`` 3x3 stride-2 convs with BN; ReLU between them, none after the last. The
    intermediate convs keep ``cin`` channels, the last one maps to ``cout`` (as in HRNet)."""
    layers: list[nn.Module] = []
    for k in range(steps):
        last = k == steps - 1
        layers.append(conv_bn(cin, cout if last else cin, 3, stride=2, padding=1,
                              relu=not last))
    return nn.Sequential(*layers)


class _Exchange(nn.Module):
    """HRNet's exchange unit (multi-resolution fusion) into the branches ``targets``.

    Output ``i`` is ``ReLU(sum_j f_ij(x_j))`` with ``f_ii`` the identity; ``f_ij`` for a lower
    resolution branch ``j > i`` is a 1x1 conv + BN then bilinear upsampling to branch ``i``'s
    size; for a higher resolution ``j < i`` it is ``i - j`` stride-2 3x3 convs (Wang et al.,
    2020, Sec. 3).

    Args:
        channels: Channels of every branch, high to low resolution.
        targets: The branches to produce (all of them, or only the last for the final
            aggregation).
    """

    def __init__(self, channels: Sequence[int], targets: Sequence[int]) -> None:
        super().__init__()
        self.targets = tuple(targets)
        self.paths = nn.ModuleList()
        for i in self.targets:
            row = nn.ModuleList()
            for j, cj in enumerate(channels):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:
                    row.append(conv_bn(cj, channels[i], 1, relu=False))
                else:
                    row.append(_down_path(cj, channels[i], i - j))
            self.paths.append(row)

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # xs[j]: (B, C_j, H/s_j, W/s_j) -> [(B, C_i, H/s_i, W/s_i) for i in targets]
        outs = []
        for i, row in zip(self.targets, self.paths, strict=True):
            size = tuple(xs[i].shape[-2:])
            acc = xs[i]
            for j, (path, x) in enumerate(zip(row, xs, strict=True)):
                if j == i:
                    continue
                y = path(x)
                if j > i:  # (B, C_i, h_j, w_j) -> (B, C_i, h_i, w_i)
                    y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
                acc = acc + y
            outs.append(F.relu(acc))
        return outs


class _HRModule(nn.Module):
    """``blocks`` basic blocks on every branch, then an exchange unit into every branch."""

    def __init__(self, channels: Sequence[int], blocks: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, c) for _ in range(blocks)]) for c in channels)
        self.exchange = _Exchange(channels, range(len(channels)))

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # [(B, C_i, H/s_i, W/s_i)] -> the same shapes
        return self.exchange([branch(x) for branch, x in zip(self.branches, xs, strict=True)])


class HRNetEncoder(nn.Module):
    """A small HRNet (Wang et al., 2020): four parallel branches at strides 4, 8, 16 and 32.

    Layout (channel counts at width 1; every one times ``width``, see
    :func:`~taskgrouper.models.backbones.scale_channels`):

    * stem: two 3x3 stride-2 convs (3 -> 32 -> 32), stride 4;
    * stage 1: ``blocks`` basic blocks at 32 channels;
    * transition: a 3x3 conv to branch 0 (16 channels, stride 4) and a 3x3 stride-2 conv to
      branch 1 (32 channels, stride 8);
    * stages 2, 3 and 4 on 2, 3 and 4 branches (16, 32, 64, 128 channels: HRNet's doubling per
      halving of resolution), each of ``modules[k]`` HRNet modules (``blocks`` basic blocks per
      branch, then an exchange unit fusing every branch into every other); before stages 3
      and 4 a stride-2 3x3 conv from the lowest-resolution branch starts the next branch;
    * final aggregation: one more exchange unit into the stride-32 branch only, so the deepest
      output sees every branch (as HRNet's classification head aggregates downward).

    ``forward`` returns the four branch outputs shallow (stride 4) to deep (stride 32): the
    stride-4, 8 and 16 outputs of stage 4 and the aggregated stride-32 output. Because the
    deepest output depends on every parameter, a head that reads only it (hard sharing) trains
    the whole network; multi-scale decoders (MTI-Net) read all four.

    At width 1 and a 3x256x256 input the encoder has 1.56 M parameters and 0.64 G
    multiply-adds (HRNet-W18 has 9.6 M parameters; the reduced Xception 4.2 M and 2.29 G). Its
    narrow branches make the rounding of channel counts to multiples of 4 visible: width 0.5
    costs 0.55 of width 1 (16 * sqrt(0.5) = 11.3 channels become 12);
    :func:`~taskgrouper.evaluate.cost.width_for_cost` finds exact fractions.

    Args:
        in_channels: Input image channels.
        width: Channel multiplier (cost scales roughly with ``width ** 2``; see
            :mod:`taskgrouper.models.backbones`).
        modules: HRNet modules in stages 2, 3 and 4.
        blocks: Basic blocks per branch in each module (and in stage 1).
    """

    spatial = True
    STEM = 32
    BRANCHES = (16, 32, 64, 128)

    def __init__(self, in_channels: int = 3, width: float = 1.0,
                 modules: Sequence[int] = (1, 1, 1), blocks: int = 2) -> None:
        super().__init__()
        if len(modules) != 3 or min(modules) < 1:
            raise InputError(f"modules needs 3 positive counts (stages 2-4), got "
                             f"{tuple(modules)}")
        if blocks < 1:
            raise InputError(f"blocks must be at least 1, got {blocks}")
        self.width = float(width)
        stem = scale_channels(self.STEM, width)
        chans = [scale_channels(c, width) for c in self.BRANCHES]
        self.stem = nn.Sequential(conv_bn(in_channels, stem, 3, stride=2, padding=1),
                                  conv_bn(stem, stem, 3, stride=2, padding=1))
        self.stage1 = nn.Sequential(*[BasicBlock(stem, stem) for _ in range(blocks)])
        self.transition = nn.ModuleList([conv_bn(stem, chans[0], 3, padding=1),
                                         conv_bn(stem, chans[1], 3, stride=2, padding=1)])
        self.stage2 = nn.Sequential(*[_HRModule(chans[:2], blocks) for _ in range(modules[0])])
        self.branch3 = conv_bn(chans[1], chans[2], 3, stride=2, padding=1)
        self.stage3 = nn.Sequential(*[_HRModule(chans[:3], blocks) for _ in range(modules[1])])
        self.branch4 = conv_bn(chans[2], chans[3], 3, stride=2, padding=1)
        self.stage4 = nn.Sequential(*[_HRModule(chans, blocks) for _ in range(modules[2])])
        # registered last: the deepest layer in registration order feeds the deepest output
        self.aggregate = _Exchange(chans, [3])
        self.out_channels = chans
        self.strides = [4, 8, 16, 32]
        init_weights(self)

    def stages(self) -> list[nn.Module]:
        """Not available: HRNet's branches run in parallel and exchange information, so the
        network is not a chain of stages.

        Raises:
            NotImplementedError: always; names the architectures that need a chain.
        """
        raise NotImplementedError(
            "the hrnet backbone runs parallel branches and has no chain of stages, which "
            f"architectures {', '.join(_CHAIN_ARCHITECTURES)} need; use the xception or resnet "
            "backbone with them")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # x: (B, Cin, H, W); c_i = BRANCHES[i] * width
        s = self.stage1(self.stem(x))  # (B, 32w, H/4, W/4)
        xs = [t(s) for t in self.transition]  # (B, c0, H/4, W/4), (B, c1, H/8, W/8)
        xs = self.stage2(xs)
        xs = self.stage3([*xs, self.branch3(xs[-1])])  # + (B, c2, H/16, W/16)
        xs = self.stage4([*xs, self.branch4(xs[-1])])  # + (B, c3, H/32, W/32)
        deepest = self.aggregate(xs)[0]  # (B, c3, H/32, W/32), fused from all four branches
        return [*xs[:3], deepest]
