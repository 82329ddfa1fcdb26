"""Hard parameter sharing: one shared encoder, one head per task (Caruana, 1997).

The network Standley et al. (2020) train for every candidate group of tasks, and the survey's
baseline multi-task network (Vandenhende et al., 2021, Sec. 2.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.heads import build_head
from taskgrouper.tasks import TaskSpec

__all__ = ["HardSharingNet", "build_hard_sharing", "last_weight_layer"]


def last_weight_layer(module: nn.Module) -> list[nn.Parameter]:
    """Parameters of the last convolution or linear layer of ``module`` (in registration
    order: the deepest layer of a sequential encoder)."""
    last = None
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            last = m
    return [] if last is None else [p for p in last.parameters() if p.requires_grad]


class HardSharingNet(MultiTaskModel):
    """One shared encoder and one head per task.

    ``forward`` is ``decode(encode(x), x.shape[-2:])``; the two halves are exposed separately so
    that gradient-balancing methods can act on the shared representation (``Outputs.rep`` is
    the encoder's stage outputs).

    Args:
        encoder: A backbone (see :mod:`taskgrouper.models.backbones`).
        tasks: Task name -> spec; one head is built per task.
        backbone_name: The backbone's registry name.
        head: Dense decoder of every dense task: ``light`` (the paper's) or ``aspp`` (the
            survey's DeepLab-v3 head).

    Attributes:
        encoder: The shared backbone.
        heads: ``nn.ModuleDict`` of task name -> head.
    """

    def __init__(self, encoder: nn.Module, tasks: Mapping[str, TaskSpec],
                 backbone_name: str | None = None, head: str = "light") -> None:
        super().__init__(tasks, backbone_name, "hard_sharing")
        self.encoder = encoder
        self.heads = nn.ModuleDict({name: build_head(spec, encoder, head)
                                    for name, spec in tasks.items()})

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone stage outputs, shallow to deep."""
        # (B, C, H, W) or (B, D) -> [(B, C_i, H/s_i, W/s_i)] or [(B, F)]
        return self.encoder(x)

    def decode(self, features: Sequence[torch.Tensor], input_hw: Sequence[int] | None = None,
               tasks: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Run the heads on shared features.

        Args:
            features: Output of :meth:`encode`.
            input_hw: Spatial size of the input; dense outputs are resized to it when they
                differ (``None`` for vector inputs).
            tasks: Heads to run (default: all).
        """
        names = self.tasks if tasks is None else tuple(tasks)
        return {name: self.heads[name](features, input_hw) for name in names}

    def forward(self, x: torch.Tensor) -> Outputs:
        input_hw = tuple(x.shape[-2:]) if x.dim() == 4 else None
        features = self.encode(x)
        return Outputs(self.decode(features, input_hw), rep=features)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the shared encoder."""
        return self.encoder.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """Parameters of one task's head."""
        self._check_task(task)
        return self.heads[task].parameters()

    def last_shared_layer(self) -> list[nn.Parameter]:
        return last_weight_layer(self.encoder)


def build_hard_sharing(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec],
                       *, backbone_name: str | None = None,
                       head: str = "light") -> HardSharingNet:
    """The hard-sharing network on one backbone; ``head`` picks the dense decoder."""
    return HardSharingNet(make_backbone(), tasks, backbone_name=backbone_name, head=head)
