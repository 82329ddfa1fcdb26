"""Training-time augmentation: random left-right mirroring of image inputs and their labels.

Standley et al. trained every network with random horizontal flips (their released Taskonomy
loader mirrors the image and each label map, and negates the horizontal component of the
surface normals); the survey's experiments do the same. ``train.augment: flip`` does it here,
per sample, with the run's own random generator, so a resumed run draws the same flips.

What a mirror does to each task kind:

- dense kinds (segmentation, dense regression, dense binary, normals): the label map is
  mirrored with the image; normals also change the sign of their first channel (x points right
  in the camera frame, so it points left after mirroring);
- global kinds (classification, regression, binary): unchanged.

Only image inputs (N, C, H, W) can be mirrored; other inputs are refused when training starts.
"""

from __future__ import annotations

import torch
from torch import Tensor

from taskgrouper.errors import InputError
from taskgrouper.tasks import TaskSpec

__all__ = ["AUGMENTS", "check_augment", "draw_flips", "flip_batch"]

#: The values of ``train.augment``.
AUGMENTS = ("none", "flip")


def check_augment(augment: str, input_shape: tuple[int, ...], dataset: str) -> None:
    """Refuse ``train.augment: flip`` for inputs that are not images.

    Raises:
        InputError: ``flip`` with an input that is not (C, H, W).
    """
    if augment == "flip" and len(input_shape) != 3:
        raise InputError(f"train.augment: flip mirrors images, but the inputs of dataset "
                         f"'{dataset}' have shape {tuple(input_shape)}; set train.augment: "
                         f"none for inputs that are not images")


def draw_flips(n: int, generator: torch.Generator) -> Tensor:
    """Which of ``n`` samples to mirror: a fair coin each, from ``generator`` (CPU)."""
    return torch.rand(n, generator=generator) < 0.5


def flip_batch(x: Tensor, targets: dict[str, Tensor], specs: dict[str, TaskSpec],
               flips: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Mirror the samples of ``x`` (N, C, H, W) and their dense labels where ``flips`` (N,).

    Labels are mirrored along their last axis (the image width); a normals task also negates
    channel 0 of the mirrored samples. Global labels are returned as they are.
    """
    if not bool(flips.any()):
        return x, targets
    flips = flips.to(x.device)

    def mirror(t: Tensor) -> Tensor:
        where = flips.view(-1, *([1] * (t.dim() - 1)))
        return torch.where(where, t.flip(-1), t)

    out = {}
    for name, target in targets.items():
        spec = specs[name]
        if not spec.dense:
            out[name] = target
            continue
        mirrored = mirror(target)
        if spec.kind == "normals":
            sign = torch.ones(target.shape[1], dtype=target.dtype, device=target.device)
            sign[0] = -1
            factor = torch.where(flips.view(-1, 1, 1, 1), sign.view(1, -1, 1, 1),
                                 torch.ones_like(sign).view(1, -1, 1, 1))
            mirrored = mirrored * factor
        out[name] = mirrored
    return mirror(x), out
