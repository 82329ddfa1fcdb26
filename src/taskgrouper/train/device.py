"""Where and in what precision a run trains: the device, the autocast dtype, the memory
layout of the inputs."""

from __future__ import annotations

import torch

from taskgrouper.errors import InputError

__all__ = ["autocast_dtype", "input_memory_format", "resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as torch understands it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise InputError(f"train.device '{name}' is not a device ({err}); use auto, cpu or "
                         f"cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"train.device '{name}' asks for CUDA but none is available; use auto "
                         f"or cpu")
    return device


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """Autocast dtype: fp32 eager on CPU by default, bf16 (else fp16) on GPUs."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None  # measured: bf16 autocast trains ~15x slower than fp32 on the dev CPUs


def input_memory_format(name: str, input_shape) -> torch.memory_format:
    """``channels_last`` for image inputs under "auto"; vectors stay contiguous."""
    if name == "channels_last" or (name == "auto" and len(input_shape) == 3):
        return torch.channels_last
    return torch.contiguous_format
