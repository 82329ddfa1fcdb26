"""PAD-Net: initial task predictions, then multi-modal distillation by spatial attention
(Xu et al., 2018, "PAD-Net: Multi-Tasks Guided Prediction-and-Distillation Network for
Simultaneous Depth Estimation and Scene Parsing", CVPR; survey of Vandenhende et al., 2021,
Sec. 2.3.1 and Eq. 2).

The distillation unit and the helpers here are reused by MTI-Net
(:mod:`taskgrouper.models.arch.mtinet`), which distils at every scale.

Training: the survey weighs the loss of each initial prediction like the task's final loss,
which is what the trainer does (each ``Outputs.aux`` loss is added to its task's loss with
weight 1, and a balancer's task weight then scales both), and trains PAD-Net with the same
optimiser grid and poly schedule as every architecture (``train`` settings, not the model's).
Xu et al. also deep-supervise intermediate tasks that get no final prediction (depth, surface
normals, contours and scene parsing, for the final depth and scene parsing; the survey's
"auxiliary tasks"); taskgrouper builds none, because every task of a group is a target whose
test metric the bench measures, and which tasks train together is what the grouping search
decides: a label used only for deep supervision would make another task set, not another
way of training this one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.arch.hard_sharing import last_weight_layer
from taskgrouper.models.backbones import _XceptionBlock
from taskgrouper.models.heads import (
    HEAD_KINDS,
    TaskHead,
    build_head,
    decoder_scale,
    dense_decoder,
)
from taskgrouper.models.layers import init_weights, scale_channels
from taskgrouper.tasks import TaskSpec, closest

__all__ = ["Distillation", "PADNet", "build_padnet"]

#: Per-task feature channels at width 1 when ``channels`` is not given (times the backbone's
#: channel multiplier).
BASE_CHANNELS = 32


class Distillation(nn.Module):
    """Multi-modal distillation by spatial attention (PAD-Net; survey Eq. 2).

    For every target task ``k`` of ``tasks``::

        F_k^o = F_k^i + sum_{l != k} sigmoid(W_{k,l} F_l^i) * (W'_{k,l} F_l^i)

    ``W_{k,l}`` is a 3x3 conv (the survey: "information from within a 3 by 3 pixels window")
    giving an element-wise attention mask (one value per channel and pixel) over the message
    ``W'_{k,l} F_l^i``, another 3x3 conv (the attention-guided message passing of Xu et al.,
    as the survey's implementation writes it). With ``message_conv=False``, ``W'`` is the
    identity and the unit is the survey's Eq. 2 verbatim. Both convs have a bias and the
    default initialisation of the package (He normal weights, zero biases), so at
    initialisation each mask is ``sigmoid`` of a random 3x3 conv of ``F_l^i``.

    Args:
        tasks: The tasks whose features are distilled (dense tasks).
        channels: Channels of every task's features.
        message_conv: Learn ``W'`` (True) or use the features themselves (False).
    """

    def __init__(self, tasks: Sequence[str], channels: int, message_conv: bool = True) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.message_conv = bool(message_conv)

        def convs() -> nn.ModuleDict:
            return nn.ModuleDict({k: nn.ModuleDict({
                l: nn.Conv2d(channels, channels, 3, padding=1) for l in self.tasks if l != k})
                for k in self.tasks})

        self.attention = convs()  # attention[k][l] = W_{k,l}
        self.message = convs() if self.message_conv else None  # message[k][l] = W'_{k,l}
        init_weights(self)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # feats[t]: (B, C, h, w) for every task -> distilled (B, C, h, w) for every task
        out = {}
        for k in self.tasks:
            acc = feats[k]
            for l in self.tasks:
                if l == k:
                    continue
                f = feats[l]  # (B, C, h, w)
                msg = self.message[k][l](f) if self.message is not None else f
                acc = acc + torch.sigmoid(self.attention[k][l](f)) * msg
            out[k] = acc
        return out

    def target_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The parameters that produce ``task``'s distilled features (only its loss reaches
        them)."""
        yield from self.attention[task].parameters()
        if self.message is not None:
            yield from self.message[task].parameters()


def task_branch(cin: int, cout: int) -> nn.Sequential:
    """A task's feature branch: two Xception-style residual blocks of separable convs."""
    return nn.Sequential(_XceptionBlock(cin, cout, 2, downsample=False),
                         _XceptionBlock(cout, cout, 2, downsample=False))


def initial_head(spec: TaskSpec, channels: int) -> TaskHead:
    """The initial (deeply supervised) prediction of a dense task: a 1x1 conv with the output
    conventions of the task's kind, at the features' resolution.

    The conv keeps PyTorch's default initialisation: its bias is not zero, so a pixel whose
    (post-ReLU) features are all zero still gets a unit normal, not the zero vector."""
    return TaskHead(spec, nn.Conv2d(channels, spec.channels, 1))


def feature_channels(backbone: nn.Module, channels: int | None) -> int:
    """Per-task feature channels: ``channels``, or :data:`BASE_CHANNELS` times the backbone's
    channel multiplier (a multiple of 4, at least 8)."""
    if channels is None:
        return scale_channels(BASE_CHANNELS, getattr(backbone, "width", 1.0))
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise InputError(f"model.options.channels must be a positive integer or null, got "
                         f"{channels!r}")
    return channels


def check_decoder_options(architecture: str, backbone: nn.Module, head: str) -> None:
    """Fail fast on a vector backbone or an unknown ``head``."""
    if not getattr(backbone, "spatial", True):
        raise InputError(f"architecture '{architecture}' needs an image backbone (xception, "
                         f"resnet or hrnet), got {type(backbone).__name__}")
    if head not in HEAD_KINDS:
        raise InputError(f"model.options.head: unknown dense head '{head}'; "
                         f"{closest(head, HEAD_KINDS)}")


def reach_group(dense: Sequence[str], tasks: Sequence[str]) -> str | None:
    """Who owns a module that every dense task's loss reaches (a task branch feeding the
    distillation): the one dense task when there is one, ``"shared"`` when every task is
    dense, else None (reached by some tasks but not all: in neither parameter group)."""
    if len(dense) == 1:
        return dense[0]
    if dense and len(dense) == len(tasks):
        return "shared"
    return None


class PADNet(MultiTaskModel):
    """PAD-Net (Xu et al., 2018) on one scale: the backbone's deepest features.

    Per dense task ``t``: a feature branch (two residual blocks of separable convs) maps the
    deepest backbone features ``(B, C, h, w)`` to ``F_t^i`` ``(B, c, h, w)``; a 1x1 conv on
    ``F_t^i`` is the initial prediction (``Outputs.aux[t]``, deep supervision at stride ``s``,
    upsampled by the trainer); :class:`Distillation` gives ``F_t^o``; the final head (``head``:
    the light decoder or ASPP) decodes ``F_t^o`` to the input size. As in the survey's
    single-scale implementation, distillation runs on the deepest features only (the survey's
    HRNet variant concatenates all scales at stride 4; MTI-Net is the multi-scale design).

    Image-level tasks (classification, binary, regression) take no part in the distillation:
    each reads the globally average-pooled deepest backbone features through a linear layer
    (:class:`~taskgrouper.models.heads.GlobalHead`), as in hard sharing, and has no initial
    prediction.

    Parameter groups (the contract of :class:`MultiTaskModel`):

    * shared: the backbone. A dense task's branch is reached by its own loss and, through the
      distillation, by every other dense task's loss: with only dense tasks (two or more) the
      branches are shared too; with a single dense task its branch is that task's own;
    * own (task ``k``): the initial-prediction conv, the distillation convs ``W_{k,l}``,
      ``W'_{k,l}`` and the final head;
    * neither: the branches when image-level tasks are mixed with two or more dense tasks
      (reached by the dense tasks' losses only); a balancer that takes per-task gradients
      must still give them the gradient of the weighted total loss.

    ``Outputs.rep`` is the backbone's stage outputs (every task depends on them).

    Args:
        backbone: An image backbone.
        tasks: Task name -> spec.
        backbone_name: The backbone's registry name.
        channels: Per-task feature channels ``c`` (None: 32 times the backbone's channel
            multiplier).
        head: Final dense head, ``light`` or ``aspp``.
        message_conv: Learn ``W'`` in the distillation (False: survey Eq. 2 verbatim).

    Attributes:
        encoder: The shared backbone.
        dense: The dense tasks, in order.
        branches: Dense task -> feature branch.
        initial: Dense task -> initial-prediction head.
        distill: The :class:`Distillation` unit.
        heads: Task -> final head.
    """

    def __init__(self, backbone: nn.Module, tasks: Mapping[str, TaskSpec],
                 backbone_name: str | None = None, channels: int | None = None,
                 head: str = "light", message_conv: bool = True) -> None:
        super().__init__(tasks, backbone_name, "padnet")
        check_decoder_options("padnet", backbone, head)
        self.encoder = backbone
        self.dense = tuple(t for t, spec in tasks.items() if spec.dense)
        c = feature_channels(backbone, channels)
        cin, stride = backbone.out_channels[-1], backbone.strides[-1]
        self.channels = c
        self.branches = nn.ModuleDict({t: task_branch(cin, c) for t in self.dense})
        self.initial = nn.ModuleDict({t: initial_head(tasks[t], c) for t in self.dense})
        self.distill = Distillation(self.dense, c, message_conv)
        self.heads = nn.ModuleDict({
            t: TaskHead(spec, dense_decoder(head, c, spec.channels, stride,
                                            scale=decoder_scale(backbone))) if spec.dense
            else build_head(spec, backbone) for t, spec in tasks.items()})

    def forward(self, x: torch.Tensor) -> Outputs:
        input_hw = tuple(x.shape[-2:])
        feats = self.encoder(x)  # [(B, C_i, H/s_i, W/s_i)], shallow to deep
        deep = feats[-1]  # (B, C, h, w)
        initial = {t: self.branches[t](deep) for t in self.dense}  # F_t^i: (B, c, h, w)
        aux = {t: [self.initial[t]([initial[t]])] for t in self.dense}  # (B, K_t, h, w)
        distilled = self.distill(initial)  # F_t^o: (B, c, h, w)
        final = {t: self.heads[t]([distilled[t]], input_hw) if t in distilled
                 else self.heads[t](feats) for t in self.tasks}  # (B, K_t, H, W) or (B, K_t)
        return Outputs(final, aux=aux, rep=feats)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The backbone, and the task branches when every task is dense (two or more)."""
        yield from self.encoder.parameters()
        if reach_group(self.dense, self.tasks) == "shared":
            yield from self.branches.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's initial-prediction conv, distillation convs and final head (and its
        branch when it is the only dense task)."""
        self._check_task(task)
        if task in self.dense:
            if reach_group(self.dense, self.tasks) == task:
                yield from self.branches[task].parameters()
            yield from self.initial[task].parameters()
            yield from self.distill.target_parameters(task)
        yield from self.heads[task].parameters()

    def last_shared_layer(self) -> list[nn.Parameter]:
        """The backbone's last conv (every task's loss reaches it)."""
        return last_weight_layer(self.encoder)


def build_padnet(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec], *,
                 backbone_name: str | None = None, channels: int | None = None,
                 head: str = "light", message_conv: bool = True) -> PADNet:
    """PAD-Net on one shared backbone; options as :class:`PADNet`."""
    return PADNet(make_backbone(), tasks, backbone_name=backbone_name, channels=channels,
                  head=head, message_conv=message_conv)
