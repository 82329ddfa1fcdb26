"""Multi-task networks: shared backbones, task heads and the builders that combine them."""

from taskgrouper.models.arch import ARCH_TABLE, ArchInfo, MultiTaskModel, Outputs, arch_info
from taskgrouper.models.backbones import (
    BACKBONES,
    DilatedResNet,
    MLPEncoder,
    SeparableConv2d,
    XceptionEncoder,
    build_backbone,
    scale_channels,
    width_for_cost,
)
from taskgrouper.models.builders import (
    ARCHITECTURES,
    HardSharingNet,
    build_model,
    check_architecture,
)
from taskgrouper.models.heads import GlobalHead, LightDecoder, TaskHead, build_head

__all__ = [
    "ARCHITECTURES",
    "ARCH_TABLE",
    "ArchInfo",
    "MultiTaskModel",
    "Outputs",
    "arch_info",
    "check_architecture",
    "BACKBONES",
    "DilatedResNet",
    "GlobalHead",
    "HardSharingNet",
    "LightDecoder",
    "MLPEncoder",
    "SeparableConv2d",
    "TaskHead",
    "XceptionEncoder",
    "build_backbone",
    "build_head",
    "build_model",
    "scale_channels",
    "width_for_cost",
]
