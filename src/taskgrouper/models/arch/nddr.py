"""NDDR-CNN: per-task networks fused by neural discriminative dimensionality reduction.

Gao et al., "NDDR-CNN: Layerwise Feature Fusing in Multi-Task CNNs by Neural Discriminative
Dimensionality Reduction" (CVPR 2019); survey of Vandenhende et al. (2021), Sec. 2.2.2. As in a
cross-stitch network (:mod:`taskgrouper.models.arch.cross_stitch`) every task has its own
backbone, and after every stage the tasks' features are fused; the fusion is an *NDDR layer*:
the T stage outputs are concatenated along channels, and for each task a 1 x 1 convolution
reduces the T*C channels back to C, followed by batch normalisation and a ReLU:

    x~_k = ReLU(BN_k(W_k * concat(x_1, ..., x_T)))        W_k: (C, T*C, 1, 1)

Initialisation (Gao et al.'s "diagonal" initialisation): ``W_k`` is ``alpha_same`` times the
identity on task k's own channels and ``alpha_other`` times the identity on every other task's
channels, zero elsewhere. The convolution then computes exactly the cross-stitch combination
``sum_l alpha_{k,l} x_l`` channel by channel (the survey: "NDDR-CNN behaves as a cross-stitch
network when the non-diagonal elements in the weight matrix of the convolutional layer are
zero"); batch norm and ReLU follow it as in the paper. Training may then fuse across channels.

Vector features ``(B, C)`` (the ``mlp`` backbone) are fused the same way, as ``(B, T*C, 1, 1)``
maps. Parameter groups as for cross-stitch: nothing counts as shared, task ``t`` owns its
backbone, its head and its NDDR layers (the ones computing ``x~_t``); ``Outputs.rep`` is
``None``. Not implemented: the paper's larger learning rate for the NDDR layers (the trainer
uses one learning rate for all parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from taskgrouper.models.arch.cross_stitch import (
    StitchedNetworks,
    initial_alphas,
    per_task_backbones,
    stage_channels,
)
from taskgrouper.tasks import TaskSpec

__all__ = ["NDDRNet", "NDDRUnit", "build_nddr"]


class NDDRUnit(nn.Module):
    """One NDDR layer per task at one stage: concat, 1x1 conv, BN, ReLU (Gao et al., 2019).

    Args:
        tasks: Task names, in the order of the activations ``forward`` takes.
        channels: Channels C of each task's activation.
        alpha_same: Initial weight of a task's own channels.
        alpha_other: Initial weight of the same channel of each other task (``None``:
            ``(1 - alpha_same) / (T - 1)``).

    Attributes:
        reduce: Task name -> ``Sequential(Conv2d(T*C, C, 1), BatchNorm2d(C), ReLU)``.
    """

    def __init__(self, tasks: Sequence[str], channels: int, alpha_same: float = 0.9,
                 alpha_other: float | None = None) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        n = len(self.tasks)
        same, other = initial_alphas(n, alpha_same, alpha_other)
        self.reduce = nn.ModuleDict()
        eye = torch.eye(channels)
        for k, task in enumerate(self.tasks):
            conv = nn.Conv2d(n * channels, channels, 1, bias=False)
            # weight[c, l*C + c] = alpha_{k,l}: block l of the input channels, its diagonal
            blocks = [eye * (same if l == k else other) for l in range(n)]
            with torch.no_grad():
                conv.weight.copy_(torch.cat(blocks, dim=1)[:, :, None, None])  # (C, T*C, 1, 1)
            self.reduce[task] = nn.Sequential(conv, nn.BatchNorm2d(channels),
                                              nn.ReLU(inplace=True))

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # xs: T x (B, C, H, W) or T x (B, C)
        vector = xs[0].dim() == 2
        x = torch.cat(list(xs), dim=1)  # (B, T*C, H, W) or (B, T*C)
        if vector:
            x = x[:, :, None, None]  # (B, T*C, 1, 1)
        outs = [self.reduce[t](x) for t in self.tasks]  # T x (B, C, H, W)
        return [o.flatten(1) for o in outs] if vector else outs

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The NDDR layer that computes ``task``'s output."""
        return list(self.reduce[task].parameters())


class NDDRNet(StitchedNetworks):
    """NDDR-CNN: per-task backbones with an NDDR layer per task after every stage.

    Gao et al. (CVPR 2019); survey Sec. 2.2.2. See the module docstring.

    Args:
        backbones: Task name -> that task's backbone (built separately, same architecture).
        tasks: Task name -> spec.
        alpha_same: Initial weight of a task's own channels.
        alpha_other: Initial weight of the other tasks' channels (``None``: rows sum to 1).
        backbone_name: The backbones' registry name.
    """

    def __init__(self, backbones: Mapping[str, nn.Module], tasks: Mapping[str, TaskSpec],
                 alpha_same: float = 0.9, alpha_other: float | None = None,
                 backbone_name: str | None = None) -> None:
        names = tuple(tasks)
        channels = stage_channels(backbones, names)
        units = [NDDRUnit(names, c, alpha_same, alpha_other) for c in channels]
        super().__init__(backbones, units, tasks, backbone_name, "nddr")


def build_nddr(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec], *,
               backbone_name: str | None = None, alpha_same: float = 0.9,
               alpha_other: float | None = None,
               pretrained: str | Mapping[str, str] | None = None) -> NDDRNet:
    """An NDDR-CNN with one backbone per task.

    Args:
        make_backbone: Returns a fresh backbone; called once per task.
        tasks: Task name -> spec.
        backbone_name: The backbone's registry name.
        alpha_same: Initial same-task weight of the NDDR convolutions (Gao et al.: 0.9).
        alpha_other: Initial cross-task weight; ``None``: ``(1 - alpha_same) / (T - 1)``.
        pretrained: Single-task checkpoints for the backbones and heads, as for cross-stitch
            (:meth:`~taskgrouper.models.arch.cross_stitch.StitchedNetworks.load_single_task`);
            ``None``: random initialisation.
    """
    model = NDDRNet(per_task_backbones(make_backbone, list(tasks)), tasks,
                    alpha_same=alpha_same, alpha_other=alpha_other, backbone_name=backbone_name)
    if pretrained is not None:
        model.load_single_task(pretrained)
    return model
