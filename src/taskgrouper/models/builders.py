"""Multi-task network builders: config names and options to a :class:`MultiTaskModel`.

Standley et al. (2020) train, for every candidate group of tasks, a *hard parameter sharing*
network (one shared encoder, one small decoder per task); the survey's architectures
(Vandenhende et al., 2021) are in :mod:`taskgrouper.models.arch`, one row each of
:data:`~taskgrouper.models.arch.ARCH_TABLE`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.arch import ARCH_TABLE, HardSharingNet, arch_info
from taskgrouper.models.backbones import backbone_factory
from taskgrouper.tasks import TaskSpec, closest

__all__ = ["ARCHITECTURES", "Clash", "HardSharingNet", "architecture_clashes", "build_model",
           "check_architecture"]

#: Names accepted by :func:`build_model`'s ``architecture``.
ARCHITECTURES: tuple[str, ...] = tuple(info.name for info in ARCH_TABLE)


@dataclass(frozen=True)
class Clash:
    """One rule an architecture, a balancer and a task set break.

    Attributes:
        rule: ``"task_grads"``, ``"representation"``, ``"max_tasks"`` or ``"spatial"``.
        reason: What is wrong, in a few words (a skipped model's reason).
        message: What is wrong and what would fix it (the error :func:`check_compatible`
            raises).
    """

    rule: str
    reason: str
    message: str


def architecture_clashes(arch: Any, tasks: int | Sequence[str],
                         spatial: bool | None) -> list[Clash]:
    """The rules on the architecture, the task set (names, or only their number) and the
    inputs (``spatial``: images or vectors; None: not known yet, the rule is not applied)."""
    named = isinstance(tasks, Sequence) and not isinstance(tasks, str)
    n_tasks = len(tasks) if named else int(tasks)
    found = []
    max_tasks = getattr(arch, "max_tasks", None)
    if max_tasks is not None and n_tasks > max_tasks:
        names = f" ({', '.join(tasks)})" if named else ""
        found.append(Clash(
            "max_tasks",
            f"architecture '{arch.name}' takes at most {max_tasks} tasks; the bench has "
            f"{n_tasks}",
            f"architecture '{arch.name}' takes at most {max_tasks} tasks, got {n_tasks}"
            f"{names}; choose {max_tasks} tasks, or another architecture"))
    if getattr(arch, "spatial_only", False) and spatial is not None and not spatial:
        found.append(Clash(
            "spatial",
            f"architecture '{arch.name}' needs image inputs; the dataset has vectors",
            f"architecture '{arch.name}' needs image inputs and an image backbone; use "
            f"hard_sharing for vector inputs"))
    return found


def check_architecture(architecture: str, tasks: Sequence[str], spatial: bool | None = None,
                       options: Mapping[str, Any] | None = None) -> None:
    """Fail fast on an architecture that cannot take these tasks, input or options.

    Args:
        architecture: A name of :data:`ARCHITECTURES`.
        tasks: The task names.
        spatial: Whether inputs are images (None: not known yet).
        options: ``model.options``.

    Raises:
        InputError: naming the architecture and what would fix it.
    """
    info = arch_info(architecture)
    for clash in architecture_clashes(info, list(tasks), spatial):
        raise InputError(clash.message)
    for key in options or {}:
        if key not in info.options:
            hint = closest(key, list(info.options)) if info.options else "it takes no options"
            raise InputError(f"model.options: architecture '{architecture}' has no option "
                             f"'{key}'; {hint}")


def build_model(tasks: Mapping[str, TaskSpec], in_shape: Sequence[int],
                backbone: str = "xception", width: float = 1.0,
                architecture: str = "hard_sharing",
                options: Mapping[str, Any] | None = None,
                hidden: Sequence[int] | None = None, scale: float = 1.0) -> nn.Module:
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
        scale: Channel multiplier of an image backbone's width-1 encoder (``model.scale``).

    Raises:
        ValueError: Unknown architecture, backbone or option, or tasks or inputs the
            architecture cannot take.
    """
    info = arch_info(architecture)
    in_shape = tuple(int(s) for s in in_shape)
    check_architecture(architecture, list(tasks), spatial=len(in_shape) == 3, options=options)
    # validates name and shape
    make_backbone = backbone_factory(backbone, in_shape, width=width, hidden=hidden,
                                     scale=scale)
    params = {**info.options, **(options or {})}
    return info.build(make_backbone, tasks, backbone_name=backbone, **params)
