"""Multi-task network builders.

Standley et al. (2020) train, for every candidate group of tasks, a *hard parameter sharing*
network: one shared encoder and one small decoder per task. :class:`HardSharingNet` is that
network, for any subset of tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

from taskgrouper.models.backbones import build_backbone
from taskgrouper.models.heads import build_head
from taskgrouper.tasks import TaskSpec, closest

__all__ = ["ARCHITECTURES", "HardSharingNet", "build_model"]

#: Names accepted by :func:`build_model`'s ``architecture``.
ARCHITECTURES: tuple[str, ...] = ("hard_sharing",)


class HardSharingNet(nn.Module):
    """One shared encoder and one head per task.

    ``forward`` is ``decode(encode(x), x.shape[-2:])``; the two halves are exposed separately so
    that gradient-balancing methods can act on the shared representation.

    Args:
        encoder: A backbone (see :mod:`taskgrouper.models.backbones`).
        tasks: Task name -> spec; one head is built per task.
        backbone_name: The backbone's registry name (used to compute standard network time).

    Attributes:
        tasks: Task names, in the order given.
        encoder: The shared backbone.
        heads: ``nn.ModuleDict`` of task name -> head.
    """

    def __init__(self, encoder: nn.Module, tasks: Mapping[str, TaskSpec],
                 backbone_name: str | None = None) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("HardSharingNet needs at least one task")
        for name in tasks:
            if not name or "." in name:
                raise ValueError(f"task name '{name}' cannot be a module name (empty or has '.')")
        self.encoder = encoder
        self.backbone_name = backbone_name
        self.tasks: tuple[str, ...] = tuple(tasks)
        self.specs: dict[str, TaskSpec] = dict(tasks)
        self.heads = nn.ModuleDict({name: build_head(spec, encoder)
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

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        input_hw = tuple(x.shape[-2:]) if x.dim() == 4 else None
        return self.decode(self.encode(x), input_hw)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the shared encoder."""
        return self.encoder.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """Parameters of one task's head."""
        if task not in self.heads:
            raise KeyError(f"no task '{task}'; " + closest(task, self.tasks))
        return self.heads[task].parameters()


def build_model(tasks: Mapping[str, TaskSpec], in_shape: Sequence[int],
                backbone: str = "xception", width: float = 1.0,
                architecture: str = "hard_sharing") -> nn.Module:
    """Build a multi-task network for ``tasks``.

    Args:
        tasks: Task name -> spec (any subset of a dataset's tasks).
        in_shape: One sample's shape: ``(C, H, W)`` or ``(D,)``.
        backbone: Backbone name, see :data:`taskgrouper.models.backbones.BACKBONES`.
        width: Encoder size as a fraction of the full encoder's cost (0.5 = the paper's
            half-sized network; see :mod:`taskgrouper.models.backbones`).
        architecture: One of :data:`ARCHITECTURES`.

    Raises:
        ValueError: Unknown architecture or backbone, or a dense task on a vector backbone.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture '{architecture}'; "
                         + closest(architecture, ARCHITECTURES))
    encoder = build_backbone(backbone, tuple(in_shape), width=width)
    return HardSharingNet(encoder, tasks, backbone_name=backbone)
