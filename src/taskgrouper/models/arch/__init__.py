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

from taskgrouper.models.arch.adashare import build_adashare
from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.arch.branched import build_branched
from taskgrouper.models.arch.cross_stitch import build_cross_stitch
from taskgrouper.models.arch.hard_sharing import HardSharingNet, build_hard_sharing
from taskgrouper.models.arch.jtrl import build_jtrl
from taskgrouper.models.arch.mtan import build_mtan
from taskgrouper.models.arch.mtinet import build_mtinet
from taskgrouper.models.arch.nddr import build_nddr
from taskgrouper.models.arch.padnet import build_padnet
from taskgrouper.models.arch.papnet import build_papnet
from taskgrouper.tasks import table_row

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
             options={"head": "light", "frozen_encoder": None},
             paper="Caruana 1997; the network of Standley et al. 2020"),
    ArchInfo("cross_stitch", build_cross_stitch, shared_parameters=False,
             shared_representation=False, needs_stages=True,
             options={"alpha_same": 0.9, "alpha_other": None, "head": "light",
                      "unit_lr_scale": 100.0, "pretrained": None},
             paper="Misra et al. 2016 (survey Sec. 2.2.1)"),
    ArchInfo("nddr", build_nddr, shared_parameters=False, shared_representation=False,
             needs_stages=True,
             options={"alpha_same": 0.9, "alpha_other": None, "head": "light",
                      "unit_lr_scale": 100.0, "pretrained": None},
             paper="Gao et al. 2019, NDDR-CNN (survey Sec. 2.2.2)"),
    ArchInfo("mtan", build_mtan, spatial_only=True,
             paper="Liu et al. 2019 (survey Sec. 2.2.3)"),
    ArchInfo("branched", build_branched, needs_stages=True,
             options={"groups": None, "branch_stage": None},
             paper="Vandenhende et al. 2020, branched networks (survey Sec. 2.2.4)"),
    ArchInfo("padnet", build_padnet, spatial_only=True,
             options={"channels": None, "head": "light", "message_conv": True},
             paper="Xu et al. 2018, PAD-Net (survey Sec. 2.3.1, Eq. 2)"),
    ArchInfo("mtinet", build_mtinet, spatial_only=True,
             options={"channels": None, "head": "light", "message_conv": True,
                      "fpm_residual": True, "fpm_attention": True},
             paper="Vandenhende et al. 2020, MTI-Net (survey Sec. 2.3.4)"),
    ArchInfo("papnet", build_papnet, spatial_only=True,
             options={"channels": None, "diffusion_steps": 3, "beta": 0.5,
                      "max_affinity_pixels": 1024, "head": "light"},
             paper="Zhang et al. 2019, PAP-Net (survey Sec. 2.3.2, Eq. 3)"),
    ArchInfo("jtrl", build_jtrl, spatial_only=True, max_tasks=2,
             options={"channels": None, "head": "light"},
             paper="Zhang et al. 2018, JTRL (survey Sec. 2.3.3)"),
    ArchInfo("adashare", build_adashare, spatial_only=True,
             options={"search_epochs": 0.5, "warmup_epochs": 0.2, "tau_init": 5.0,
                      "tau_decay": 0.965, "curriculum_speed": 0, "policy_lr_scale": 10.0,
                      "policy_samples": 8, "final_policy": "sample",
                      "sparsity_weight": 0.001, "sharing_weight": 0.05, "head": "light"},
             paper="Sun et al. 2020, AdaShare (seed 001)"),
)


def arch_info(name: str) -> ArchInfo:
    """The table row of ``name``.

    Raises:
        ValueError: an unknown name (suggests the closest).
    """
    return table_row(ARCH_TABLE, name, "architecture")
