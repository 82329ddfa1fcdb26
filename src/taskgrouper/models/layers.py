"""Layers shared by the backbones, heads and architectures: channel scaling, weight
initialisation, separable convolutions, conv + batch norm (+ ReLU) and the ResNet basic block."""

from __future__ import annotations

import math

import torch
from torch import nn

from taskgrouper.errors import InputError

__all__ = ["BasicBlock", "SeparableConv2d", "conv_bn", "init_weights", "scale_channels",
           "sep_bn"]


def scale_channels(channels: int, width: float, multiple: int = 4, minimum: int = 8) -> int:
    """``channels * width`` rounded to a multiple of ``multiple``, at least ``minimum``."""
    if width <= 0:
        raise InputError(f"width must be positive, got {width}")
    return max(minimum, int(round(channels * width / multiple)) * multiple)


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions (fan out), unit batch norms, Kaiming-uniform linear layers
    (as :class:`torch.nn.Linear` itself), zero biases: every module of ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SeparableConv2d(nn.Module):
    """Depthwise-separable convolution: a depthwise ``k x k`` conv then a pointwise ``1 x 1``.

    Costs ``Cin*k*k*H*W + Cin*Cout*H*W`` multiply-adds on an ``H x W`` output (Chollet, 2017).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Depthwise kernel size.
        dilation: Depthwise dilation (padding keeps the spatial size).
        bias: Whether the pointwise conv has a bias (off when a batch norm follows).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 dilation: int = 1, bias: bool = False) -> None:
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, padding=pad,
                                   dilation=dilation, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, Cin, H, W) -> (B, Cin, H, W) -> (B, Cout, H, W)
        return self.pointwise(self.depthwise(x))


def sep_bn(cin: int, cout: int, relu: bool = True) -> nn.Sequential:
    """3x3 separable conv, batch norm, and a ReLU when ``relu``."""
    layers: list[nn.Module] = [SeparableConv2d(cin, cout), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
            relu: bool = True) -> nn.Sequential:
    """``kernel x kernel`` conv (no bias), batch norm, and a ReLU when ``relu``."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, padding, bias=False),
                               nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with optional stride and dilation (He et al., 2016)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or cin != cout:
            self.shortcut: nn.Module = conv_bn(cin, cout, 1, stride=stride, relu=False)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, Cin, H, W) -> (B, Cout, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))

