"""Multi-Task Attention Network: a shared backbone and per-task soft-attention modules.

Liu, Johns and Davison, "End-to-End Multi-Task Learning with Attention" (CVPR 2019); survey of
Vandenhende et al. (2021), Sec. 2.2.3. The shared backbone extracts a general pool of features
(its stage outputs ``p_j``); every task selects from it with its own attention module at every
stage. For task i at stage j:

    a_i^j = sigmoid(BN(conv1x1(ReLU(BN(conv1x1([p_j ; f_i^j(a^_i^{j-1})]))))))
    a^_i^j = a_i^j * p_j                                           (element-wise)

``[ ; ]`` is concatenation along channels and ``f_i^j`` (max pooling to stage j's resolution,
then 3 x 3 conv, BN, ReLU) carries the task's attended features of the previous stage to
stage j. The first stage's mask sees ``p_1`` alone. The heads read each task's attended
features ``[a^_i^1, ..., a^_i^S]`` (by default the deepest).

Differences from the paper: (1) the paper computes the mask from a feature inside block j
(``u^(j)``) and applies it to the block output ``p^(j)``; the backbones here expose stage
outputs only, so both are the stage output. (2) The bridge ``f`` pools before its convolution
(Liu et al. convolve, then pool), so its 3 x 3 convolution runs at the coarser resolution:
four times fewer multiply-adds where the stride doubles, which matters beside the separable
convolutions of the xception backbone. (3) Each task has its own bridges, so that the backbone
is the only shared part. (4) MTAN's decoder-side attention (the SegNet variant) is not built:
the heads are those of :mod:`taskgrouper.models.heads`.

Parameter groups: the backbone is shared (``shared_parameters()``; GradNorm's last shared
layer is its last weighted layer); task i owns its attention modules and its head;
``Outputs.rep`` is the list of backbone stage outputs, which every task's attention reads.
Any backbone with image stage outputs works (``stages()`` is not needed).

Training: MTAN has no deep supervision or auxiliary loss, so the trainer's loss is the paper's;
Liu et al. weigh the tasks with Dynamic Weight Average (temperature 2) and train with Adam at
1e-4, halved after 100 of 200 epochs, but the weighting is the ``dwa`` balancer (temperature 2
by default), which the bench pairs with every architecture, and the survey trains MTAN with
the same optimiser grid and poly schedule as every architecture, so the model fixes neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.arch.hard_sharing import last_weight_layer
from taskgrouper.models.heads import build_head
from taskgrouper.tasks import TaskSpec

__all__ = ["AttentionMask", "MTANEncoder", "MTANNet", "TaskAttention", "build_mtan"]


class AttentionMask(nn.Module):
    """A soft-attention mask on one stage's shared features: ``mask * shared``.

    ``mask = sigmoid(BN(conv1x1(ReLU(BN(conv1x1(input))))))`` with ``input`` the shared
    features, concatenated with the task's previous attended features when there are some
    (Liu et al., 2019: g is conv-BN-ReLU, h is conv-BN-sigmoid, both 1 x 1).

    Args:
        in_channels: Channels of the mask's input.
        channels: Channels of the shared features (and of the mask).
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.g = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False),
                               nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.h = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False),
                               nn.BatchNorm2d(channels), nn.Sigmoid())

    def mask(self, shared: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """The attention mask in (0, 1), shaped like ``shared``."""
        # shared: (B, C, h, w); previous: (B, C, h, w) or None
        z = shared if previous is None else torch.cat([shared, previous], dim=1)
        return self.h(self.g(z))  # (B, C, h, w)

    def forward(self, shared: torch.Tensor, previous: torch.Tensor | None = None
                ) -> torch.Tensor:
        return self.mask(shared, previous) * shared  # (B, C, h, w)


class TaskAttention(nn.Module):
    """One task's attention modules over all stages of the shared backbone.

    Args:
        channels: Channels of the backbone's stage outputs, shallow to deep.

    Attributes:
        masks: One :class:`AttentionMask` per stage.
        bridges: ``f`` per stage after the first: 3 x 3 conv (previous stage's channels to this
            stage's), BN, ReLU, run in ``forward`` after max pooling to the stage's size.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.masks = nn.ModuleList(
            [AttentionMask(c if j == 0 else 2 * c, c) for j, c in enumerate(channels)])
        self.bridges = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                           nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
             for cin, cout in zip(channels[:-1], channels[1:], strict=True)])

    def forward(self, shared: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # shared: [(B, C_j, H/s_j, W/s_j)] shallow to deep
        attended = [self.masks[0](shared[0])]
        for j in range(1, len(shared)):
            previous = attended[-1]  # (B, C_{j-1}, H/s_{j-1}, W/s_{j-1})
            previous = _max_pool_to(previous, tuple(shared[j].shape[-2:]))  # at H/s_j, W/s_j
            previous = self.bridges[j - 1](previous)  # (B, C_j, H/s_j, W/s_j)
            attended.append(self.masks[j](shared[j], previous))
        return attended


def _max_pool_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Max pooling of ``x`` (B, C, h, w) to ``size``: plain ``k x k`` pooling when the sizes
    divide exactly (deterministic backward on CUDA), adaptive pooling otherwise."""
    h, w = x.shape[-2:]
    if (h, w) == size:
        return x
    if h % size[0] == 0 and w % size[1] == 0:
        return F.max_pool2d(x, (h // size[0], w // size[1]))
    return F.adaptive_max_pool2d(x, size)


class MTANEncoder(nn.Module):
    """The shared backbone and every task's attention modules (everything before the heads).

    Args:
        backbone: The shared image backbone.
        tasks: Task names.

    Attributes:
        backbone: The shared backbone.
        attention: ``nn.ModuleDict`` of task name -> :class:`TaskAttention`.
    """

    def __init__(self, backbone: nn.Module, tasks: Sequence[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.attention = nn.ModuleDict({t: TaskAttention(backbone.out_channels) for t in tasks})

    def forward(self, x: torch.Tensor
                ) -> tuple[list[torch.Tensor], dict[str, list[torch.Tensor]]]:
        # x: (B, Cin, H, W)
        shared = self.backbone(x)  # [(B, C_j, H/s_j, W/s_j)]
        return shared, {t: att(shared) for t, att in self.attention.items()}


class MTANNet(MultiTaskModel):
    """MTAN: shared backbone, per-task attention at every stage, per-task heads.

    Liu et al. (CVPR 2019); survey Sec. 2.2.3. See the module docstring.

    Args:
        backbone: The shared image backbone (``spatial`` stage outputs).
        tasks: Task name -> spec.
        backbone_name: The backbone's registry name.

    Attributes:
        encoder: The :class:`MTANEncoder` (backbone and attention; its cost is the encoder
            cost in standard network time).
        heads: ``nn.ModuleDict`` of task name -> head on the task's attended features.
    """

    def __init__(self, backbone: nn.Module, tasks: Mapping[str, TaskSpec],
                 backbone_name: str | None = None) -> None:
        super().__init__(tasks, backbone_name, "mtan")
        if not getattr(backbone, "spatial", True):
            raise InputError(f"architecture 'mtan' needs an image backbone with feature maps; "
                             f"backbone '{backbone_name or type(backbone).__name__}' gives "
                             "vectors (use xception or resnet, or hard_sharing for vectors)")
        self.encoder = MTANEncoder(backbone, list(tasks))
        self.heads = nn.ModuleDict({t: build_head(spec, backbone) for t, spec in tasks.items()})

    def forward(self, x: torch.Tensor) -> Outputs:
        input_hw = tuple(x.shape[-2:])
        shared, attended = self.encoder(x)
        out = {t: self.heads[t](attended[t], input_hw) for t in self.tasks}
        return Outputs(out, rep=shared)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The backbone's parameters."""
        return self.encoder.backbone.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's attention modules and head."""
        self._check_task(task)
        yield from self.encoder.attention[task].parameters()
        yield from self.heads[task].parameters()

    def last_shared_layer(self) -> list[nn.Parameter]:
        return last_weight_layer(self.encoder.backbone)


def build_mtan(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec], *,
               backbone_name: str | None = None) -> MTANNet:
    """An MTAN on one shared backbone (no options)."""
    return MTANNet(make_backbone(), tasks, backbone_name=backbone_name)
