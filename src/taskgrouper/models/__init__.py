"""Multi-task networks: shared backbones, task heads and the builders that combine them."""

from taskgrouper.models.arch import ARCH_TABLE, ArchInfo, MultiTaskModel, Outputs, arch_info
from taskgrouper.models.backbones import (
    BACKBONES,
    DilatedResNet,
    MLPEncoder,
    ShallowEncoder,
    XceptionEncoder,
    build_backbone,
)
from taskgrouper.models.builders import (
    ARCHITECTURES,
    HardSharingNet,
    build_model,
    check_architecture,
)
from taskgrouper.models.heads import GlobalHead, LightDecoder, TaskHead, build_head
from taskgrouper.models.layers import SeparableConv2d, scale_channels

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
    "ShallowEncoder",
    "TaskHead",
    "XceptionEncoder",
    "build_backbone",
    "build_head",
    "build_model",
    "scale_channels",
]
