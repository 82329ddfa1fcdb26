"""Multi-task architectures: one file each, one explicit table.

To add an architecture: write ``models/arch/<name>.py`` with a :class:`MultiTaskModel`
subclass and a builder ``build_<name>(make_backbone, tasks, *, backbone_name, **options)``, and
add a row to :data:`ARCH_TABLE`. ``make_backbone()`` returns a fresh backbone each call (one per
task for architectures with a network per task); ``options`` are the architecture's own
settings from ``model.options`` in the config, each listed with its default in the row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.arch.hard_sharing import HardSharingNet, build_hard_sharing

__all__ = ["ARCH_TABLE", "ArchInfo", "HardSharingNet", "MultiTaskModel", "Outputs", "arch_info"]


@dataclass(frozen=True)
class ArchInfo:
    """One row of the architecture table.

    Attributes:
        name: The name used in configs (``model.architecture``).
        build: ``build(make_backbone, tasks, *, backbone_name, **options)``.
        shared_parameters: True when some parameters are reached by every task's loss, so
            balancers that need per-task gradients of shared parameters can run.
        shared_representation: True when ``Outputs.rep`` is set (representation-level
            balancers can run).
        spatial_only: True when it needs an image backbone (multi-scale feature maps).
        needs_stages: True when it needs ``backbone.stages()`` (a chain of stages).
        max_tasks: The most tasks it takes (``jtrl``: 2), or None.
        options: Option names ``model.options`` may set, with their defaults.
        paper: Where it comes from.
    """

    name: str
    build: Callable[..., MultiTaskModel]
    shared_parameters: bool = True
    shared_representation: bool = True
    spatial_only: bool = False
    needs_stages: bool = False
    max_tasks: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    paper: str = ""


ARCH_TABLE: tuple[ArchInfo, ...] = (
    ArchInfo("hard_sharing", build_hard_sharing,
             paper="Caruana 1997; the network of Standley et al. 2020"),
)


def arch_info(name: str) -> ArchInfo:
    """The table row of ``name``.

    Raises:
        ValueError: an unknown name (suggests the closest).
    """
    from taskgrouper.tasks import closest

    for info in ARCH_TABLE:
        if info.name == name:
            return info
    names = [i.name for i in ARCH_TABLE]
    raise ValueError(f"unknown architecture '{name}'; {closest(name, names)}")
