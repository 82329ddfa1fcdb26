"""Multi-task network builders: config names and options to a :class:`MultiTaskModel`.

Standley et al. (2020) train, for every candidate group of tasks, a *hard parameter sharing*
network (one shared encoder, one small decoder per task); the survey's architectures
(Vandenhende et al., 2021) are in :mod:`taskgrouper.models.arch`, one row each of
:data:`~taskgrouper.models.arch.ARCH_TABLE`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from taskgrouper.models.arch import ARCH_TABLE, HardSharingNet, arch_info
from taskgrouper.models.backbones import build_backbone
from taskgrouper.tasks import TaskSpec, closest

__all__ = ["ARCHITECTURES", "HardSharingNet", "build_model", "check_architecture"]

#: Names accepted by :func:`build_model`'s ``architecture``.
ARCHITECTURES: tuple[str, ...] = tuple(info.name for info in ARCH_TABLE)


def check_architecture(architecture: str, tasks: Sequence[str], spatial: bool | None = None,
                       options: Mapping[str, Any] | None = None) -> None:
    """Fail fast on an architecture that cannot take these tasks, input or options.

    Args:
        architecture: A name of :data:`ARCHITECTURES`.
        tasks: The task names.
        spatial: Whether inputs are images (None: not known yet).
        options: ``model.options``.

    Raises:
        ValueError: naming the architecture and what would fix it.
    """
    info = arch_info(architecture)
    if info.max_tasks is not None and len(tasks) > info.max_tasks:
        raise ValueError(f"architecture '{architecture}' takes at most {info.max_tasks} tasks, "
                         f"got {len(tasks)} ({', '.join(tasks)}); choose {info.max_tasks} "
                         f"tasks, or another architecture")
    if info.spatial_only and spatial is False:
        raise ValueError(f"architecture '{architecture}' needs image inputs and an image "
                         f"backbone; use hard_sharing for vector inputs")
    for key in options or {}:
        if key not in info.options:
            hint = closest(key, list(info.options)) if info.options else "it takes no options"
            raise ValueError(f"model.options: architecture '{architecture}' has no option "
                             f"'{key}'; {hint}")


def build_model(tasks: Mapping[str, TaskSpec], in_shape: Sequence[int],
                backbone: str = "xception", width: float = 1.0,
                architecture: str = "hard_sharing",
                options: Mapping[str, Any] | None = None,
                hidden: Sequence[int] | None = None) -> nn.Module:
    """Build a multi-task network for ``tasks``.

    Args:
        tasks: Task name -> spec (any subset of a dataset's tasks).
        in_shape: One sample's shape: ``(C, H, W)`` or ``(D,)``.
        backbone: Backbone name, see :data:`taskgrouper.models.backbones.BACKBONES`.
        width: Encoder size as a fraction of the full encoder's cost (0.5 = the paper's
            half-sized network; see :mod:`taskgrouper.models.backbones`).
        architecture: One of :data:`ARCHITECTURES`.
        options: The architecture's options (``model.options``).
        hidden: Hidden sizes of the ``mlp`` backbone (``model.hidden``).

    Raises:
        ValueError: Unknown architecture, backbone or option, or tasks or inputs the
            architecture cannot take.
    """
    info = arch_info(architecture)
    in_shape = tuple(int(s) for s in in_shape)
    check_architecture(architecture, list(tasks), spatial=len(in_shape) == 3, options=options)
    # validates name and shape
    first = [build_backbone(backbone, in_shape, width=width, hidden=hidden)]

    def make_backbone() -> nn.Module:
        return first.pop() if first else build_backbone(backbone, in_shape, width=width,
                                                              hidden=hidden)

    params = {**info.options, **(options or {})}
    return info.build(make_backbone, tasks, backbone_name=backbone, **params)
