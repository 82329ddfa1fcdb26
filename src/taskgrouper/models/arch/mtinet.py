"""MTI-Net: multi-scale task interaction (Vandenhende et al., 2020, "MTI-Net: Multi-Scale Task
Interaction Networks for Multi-Task Learning", ECCV; survey of Vandenhende et al., 2021,
Sec. 2.3.4).

Training: Vandenhende et al. deep-supervise the initial prediction of every task at every
scale with the same loss weight as the task's final prediction, which is what the trainer
does (each ``Outputs.aux`` loss is added to its task's loss with weight 1, and a balancer's
task weight then scales both); their Adam at 1e-4 with weight decay 1e-4 and a poly
learning-rate schedule come from the optimiser grid and schedule the survey uses for every
architecture, so they belong to ``train`` (e.g. ``configs/nyud.yaml``), not to this model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.arch.hard_sharing import last_weight_layer
from taskgrouper.models.arch.padnet import (
    Distillation,
    check_decoder_options,
    feature_channels,
    initial_head,
    reach_group,
    task_branch,
)
from taskgrouper.models.heads import TaskHead, build_head, decoder_scale, dense_decoder
from taskgrouper.models.layers import init_weights, scale_channels, sep_bn
from taskgrouper.tasks import TaskSpec

__all__ = ["FeaturePropagation", "MTINet", "build_mtinet"]


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of ``(B, C, h, w)`` to ``size`` (a no-op when it already has it)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class FeaturePropagation(nn.Module):
    """MTI-Net's feature propagation module (FPM) at one scale.

    With ``N`` tasks of ``c`` channels each, ``F_t`` ``(B, c, h, w)``:

    1. task attention (``task_attention``, two or more tasks): a non-linear function of the
       concatenated features gives ``N * c`` logits per pixel; a softmax over the ``N`` tasks
       of each channel and pixel weighs the tasks' features, ``m_{t,c} F_{t,c}``;
    2. the (weighted) concatenation is reduced to one shared map ``S`` (a 1x1 conv then a
       separable 3x3 conv, each with BN and ReLU);
    3. each task takes its own view of ``S`` through a squeeze-and-excitation gate (Hu et al.,
       2018: global pooling, two linear layers, a sigmoid per channel), and keeps its own
       features (``residual``): ``P_t = SE_t(S) * S + F_t``.

    ``P_t`` is what the next, higher-resolution scale receives for task ``t``. The task
    attention and the residual are Vandenhende et al.'s (2020); without both, the FPM passes on
    the gated shared map only.

    Args:
        tasks: The tasks (dense ones).
        channels: Channels of every task's features at this scale (and of the output).
        reduction: Squeeze-and-excitation reduction ratio.
        residual: Add each task's own features to its gated share.
        task_attention: Weigh the tasks' features by a softmax over tasks before the
            reduction (no effect with one task, where the softmax is 1).

    Attributes:
        attention: The logits' network (1x1 conv to ``N * c / 4`` channels, BN, ReLU, separable
            3x3 conv, BN, ReLU, 1x1 conv back to ``N * c``), or None.
    """

    def __init__(self, tasks: Sequence[str], channels: int, reduction: int = 4,
                 residual: bool = True, task_attention: bool = True) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.residual = bool(residual)
        n = len(self.tasks)
        self.attention: nn.Sequential | None = None
        if task_attention and n > 1:
            hidden = max(4, n * channels // 4)
            self.attention = nn.Sequential(
                nn.Conv2d(n * channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                nn.ReLU(inplace=True), sep_bn(hidden, hidden), nn.Conv2d(hidden, n * channels, 1))
        self.reduce = nn.Sequential(
            nn.Conv2d(n * channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True), sep_bn(channels, channels))
        squeezed = max(4, channels // reduction)
        self.gates = nn.ModuleDict({t: nn.Sequential(
            nn.Linear(channels, squeezed), nn.ReLU(inplace=True), nn.Linear(squeezed, channels),
            nn.Sigmoid()) for t in self.tasks})
        init_weights(self)

    def task_mask(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """The task attention ``(B, N, c, h, w)``, summing to 1 over the tasks (dim 1), or None
        without task attention."""
        if self.attention is None:
            return None
        b, c, h, w = feats[self.tasks[0]].shape
        logits = self.attention(torch.cat([feats[t] for t in self.tasks], dim=1))  # (B, Nc, h, w)
        return torch.softmax(logits.view(b, len(self.tasks), c, h, w), dim=1)  # task-major

    def share(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The shared map ``S`` ``(B, c, h, w)`` of the tasks' features (steps 1 and 2)."""
        stacked = torch.stack([feats[t] for t in self.tasks], dim=1)  # (B, N, c, h, w)
        mask = self.task_mask(feats)
        if mask is not None:
            stacked = mask * stacked  # (B, N, c, h, w)
        return self.reduce(stacked.flatten(1, 2))  # (B, Nc, h, w) -> (B, c, h, w)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # feats[t]: (B, c, h, w) -> per task (B, c, h, w)
        shared = self.share(feats)  # (B, c, h, w)
        pooled = shared.mean(dim=(2, 3))  # (B, c)
        out = {}
        for t in self.tasks:
            out[t] = shared * self.gates[t](pooled)[:, :, None, None]
            if self.residual:
                out[t] = out[t] + feats[t]
        return out


class MTINet(MultiTaskModel):
    """MTI-Net (Vandenhende et al., 2020) on the backbone's stage outputs.

    The backbone's ``S`` outputs are the scales (HRNet: strides 4, 8, 16, 32; Xception and
    ResNet: their stage outputs). From the deepest scale to the highest resolution, at every
    scale ``s`` and for every dense task ``t``:

    1. initial task features ``F_{t,s}`` ``(B, c_s, h_s, w_s)`` from the backbone features at
       ``s`` concatenated with what the FPM of scale ``s + 1`` propagated for ``t`` (upsampled),
       by a task branch (two residual blocks of separable convs); a 1x1 conv on them is the
       initial prediction at scale ``s`` (deep supervision, ``Outputs.aux[t]``, highest
       resolution first, upsampled to the labels by the trainer);
    2. for ``s > 0``, the :class:`FeaturePropagation` module passes the tasks' features at
       ``s`` on to scale ``s - 1``;
    3. multi-modal distillation at ``s`` (PAD-Net's spatial attention,
       :class:`~taskgrouper.models.arch.padnet.Distillation`, one unit per scale).

    Feature aggregation: each task's distilled features of all scales are upsampled to the
    highest resolution and concatenated ``(B, sum_s c_s, h_0, w_0)``; the final head
    (``head``: light decoder or ASPP, upsampling by the first stride) gives the prediction.

    Simplifications against the paper: per-task feature channels are ``channels`` at the
    deepest scale and halve with every doubling of resolution (``c_s = channels * stride_s /
    stride_deepest``, at least 8; the paper uses the backbone's channel counts), so that every
    scale costs about the same; task branches and the FPM use separable convs (the package's
    building block) instead of basic blocks; the FPM keeps the paper's task attention, per-task
    squeeze-and-excitation and residual (options ``fpm_attention`` and ``fpm_residual``), but
    its attention logits and its reduction each use a 1x1 and a separable 3x3 conv instead of
    basic blocks, and its squeeze-and-excitation a reduction ratio of 4 instead of 16; the
    aggregated features go to the package's dense heads instead of HRNet's 1x1 head; the
    backbone is not pre-trained.

    Image-level tasks (classification, binary, regression) read the globally average-pooled
    deepest backbone features through a linear layer (as in hard sharing); they take no part
    in propagation or distillation and have no initial predictions.

    Parameter groups: shared = the backbone, plus the task branches and FPMs when every task is
    dense (two or more: each dense task's loss reaches every branch through distillation and
    propagation); own = a task's initial-prediction convs, its distillation convs (as target) at
    every scale and its final head (plus branches and FPMs when it is the only dense task);
    branches and FPMs are in neither group when image-level tasks are mixed with two or more
    dense ones. ``Outputs.rep`` is the backbone's stage outputs.

    Args:
        backbone: An image backbone.
        tasks: Task name -> spec.
        backbone_name: The backbone's registry name.
        channels: Per-task feature channels at the deepest scale (None: 32 times the
            backbone's channel multiplier).
        head: Final dense head, ``light`` or ``aspp``.
        message_conv: Learn ``W'`` in the distillation (False: survey Eq. 2 verbatim).
        fpm_residual: The FPM adds each task's own features to its gated share
            (:class:`FeaturePropagation`; Vandenhende et al., 2020).
        fpm_attention: The FPM weighs the tasks' features by a softmax over tasks before
            reducing them (Vandenhende et al., 2020).

    Attributes:
        encoder: The shared backbone.
        dense: The dense tasks, in order.
        channels: Per-task feature channels at every scale, highest resolution first.
        branches: Per scale, dense task -> feature branch.
        initial: Per scale, dense task -> initial-prediction head.
        propagate: FPMs; ``propagate[s - 1]`` carries scale ``s`` to ``s - 1``.
        distill: Per scale, a :class:`~taskgrouper.models.arch.padnet.Distillation` unit.
        heads: Task -> final head.
    """

    def __init__(self, backbone: nn.Module, tasks: Mapping[str, TaskSpec],
                 backbone_name: str | None = None, channels: int | None = None,
                 head: str = "light", message_conv: bool = True, fpm_residual: bool = True,
                 fpm_attention: bool = True) -> None:
        super().__init__(tasks, backbone_name, "mtinet")
        check_decoder_options("mtinet", backbone, head)
        self.encoder = backbone
        self.dense = tuple(t for t, spec in tasks.items() if spec.dense)
        deepest = feature_channels(backbone, channels)
        strides = list(backbone.strides)
        n = len(strides)
        self.channels = [scale_channels(deepest, s / strides[-1]) for s in strides]
        cin = [c + (self.channels[s + 1] if s + 1 < n else 0)
               for s, c in enumerate(backbone.out_channels)]
        self.branches = nn.ModuleList(nn.ModuleDict({
            t: task_branch(cin[s], self.channels[s]) for t in self.dense}) for s in range(n))
        self.initial = nn.ModuleList(nn.ModuleDict({
            t: initial_head(tasks[t], self.channels[s]) for t in self.dense}) for s in range(n))
        # propagate[s - 1] carries scale s to scale s - 1
        self.propagate = nn.ModuleList(
            FeaturePropagation(self.dense, self.channels[s], residual=fpm_residual,
                               task_attention=fpm_attention)
            for s in range(1, n) if self.dense)
        self.distill = nn.ModuleList(Distillation(self.dense, c, message_conv)
                                     for c in self.channels)
        total = sum(self.channels)
        self.heads = nn.ModuleDict({
            t: TaskHead(spec, dense_decoder(head, total, spec.channels, strides[0],
                                            scale=decoder_scale(backbone)))
            if spec.dense else build_head(spec, backbone) for t, spec in tasks.items()})

    def forward(self, x: torch.Tensor) -> Outputs:
        input_hw = tuple(x.shape[-2:])
        feats = self.encoder(x)  # [(B, C_s, h_s, w_s)], s = 0 (highest resolution) .. n - 1
        n = len(feats)
        initial: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
        aux: dict[str, list[torch.Tensor]] = {t: [] for t in self.dense}
        carried: dict[str, torch.Tensor] | None = None
        for s in reversed(range(n)) if self.dense else ():
            f, size = feats[s], feats[s].shape[-2:]
            for t in self.dense:
                inp = f if carried is None else torch.cat([f, _resize(carried[t], size)], dim=1)
                initial[s][t] = self.branches[s][t](inp)  # F_{t,s}: (B, c_s, h_s, w_s)
                aux[t].insert(0, self.initial[s][t]([initial[s][t]]))  # (B, K_t, h_s, w_s)
            carried = self.propagate[s - 1](initial[s]) if s > 0 else None  # (B, c_s, h_s, w_s)
        distilled = [unit(initial[s]) for s, unit in enumerate(self.distill)] if self.dense \
            else []
        size0 = feats[0].shape[-2:]
        final = {}
        for t in self.tasks:
            if t in aux:
                agg = torch.cat([_resize(d[t], size0) for d in distilled], dim=1)
                final[t] = self.heads[t]([agg], input_hw)  # (B, sum c_s, h_0, w_0) -> (B, K, H, W)
            else:
                final[t] = self.heads[t](feats)  # pooled deepest features -> (B, K)
        return Outputs(final, aux=aux, rep=feats)

    def _cross_modules(self, task: str | None = None) -> Iterator[nn.Parameter]:
        """Branches (of ``task``, or all) and FPMs: every dense task's loss reaches them."""
        for scale in self.branches:
            for t, branch in scale.items():
                if task is None or t == task:
                    yield from branch.parameters()
        yield from self.propagate.parameters()

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The backbone, and the branches and FPMs when every task is dense (two or more)."""
        yield from self.encoder.parameters()
        if reach_group(self.dense, self.tasks) == "shared":
            yield from self._cross_modules()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's initial-prediction convs, distillation convs and final head (and the
        branches and FPMs when it is the only dense task)."""
        self._check_task(task)
        if task in self.dense:
            if reach_group(self.dense, self.tasks) == task:
                yield from self._cross_modules(task)
            for scale in self.initial:
                yield from scale[task].parameters()
            for unit in self.distill:
                yield from unit.target_parameters(task)
        yield from self.heads[task].parameters()

    def last_shared_layer(self) -> list[nn.Parameter]:
        """The backbone's last conv (every task's loss reaches it)."""
        return last_weight_layer(self.encoder)


def build_mtinet(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec], *,
                 backbone_name: str | None = None, channels: int | None = None,
                 head: str = "light", message_conv: bool = True, fpm_residual: bool = True,
                 fpm_attention: bool = True) -> MTINet:
    """MTI-Net on one shared multi-scale backbone; options as :class:`MTINet`."""
    return MTINet(make_backbone(), tasks, backbone_name=backbone_name, channels=channels,
                  head=head, message_conv=message_conv, fpm_residual=bool(fpm_residual),
                  fpm_attention=bool(fpm_attention))
