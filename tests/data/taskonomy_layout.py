"""Synthetic scenes written in the Taskonomy on-disk layout: fixtures for the Taskonomy loader.

:func:`write_taskonomy` writes a :class:`~taskgrouper.data.base.Split` of the synthetic scenes
(:func:`taskgrouper.data.synthetic.generate`) as Taskonomy PNG files, so that tests (and
``bench/bench_data_loading.py``) can read them back with :mod:`taskgrouper.data.taskonomy`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from taskgrouper.data.base import Split
from taskgrouper.tasks import closest

__all__ = [
    "DEPTH_PNG_SCALE",
    "EDGE_PNG_SCALE",
    "KEYPOINT_PNG_SCALE",
    "OCCLUSION_PNG_SCALE",
    "TASKONOMY_DOMAINS",
    "write_taskonomy",
]

#: Taskonomy PNG encodings used by :func:`write_taskonomy`.
DEPTH_PNG_SCALE = 512.0  # depth_zbuffer: uint16 = round(depth * 512), 65535 = invalid
EDGE_PNG_SCALE = 65535.0  # edge_texture: uint16 = round(clip(e * 65535, 0, 65535))
KEYPOINT_PNG_SCALE = 65535.0 / 0.1  # keypoints2d: uint16 = round(clip(k * 655350, 0, 65535))
OCCLUSION_PNG_SCALE = 65535.0  # edge_occlusion: 0 -> 0, 1 -> 65535
#: Task name -> Taskonomy domain folder written by :func:`write_taskonomy`.
TASKONOMY_DOMAINS: dict[str, str] = {
    "s": "segment_semantic",
    "d": "depth_zbuffer",
    "n": "normal",
    "k": "keypoints2d",
    "e": "edge_texture",
    "o": "edge_occlusion",
}


def write_taskonomy(split: Split, out_dir: str | Path, building: str = "synthetic",
                    tasks: Iterable[str] | None = None) -> list[Path]:
    """Write a split in the Taskonomy on-disk layout (fixtures for a real-data loader).

    Files go to ``out_dir/<building>/<domain>/point_<P>_view_0_domain_<domain>.png`` with P the
    scene index. Encodings:

    - ``rgb``: 8-bit RGB, ``round(x * 255)``.
    - ``depth_zbuffer``: 16-bit grey, ``round(depth * 512)`` (1/512 m), 65535 = invalid.
    - ``normal``: 8-bit RGB, ``round((n + 1) / 2 * 255)``; invalid pixels are (0, 0, 0).
    - ``segment_semantic``: 8-bit grey, class id + 1, so 0 = ignore (-1) and 1 = background.
    - ``keypoints2d``: 16-bit grey, ``round(clip(k * KEYPOINT_PNG_SCALE, 0, 65535))``.
    - ``edge_texture``: 16-bit grey, ``round(clip(e * EDGE_PNG_SCALE, 0, 65535))``.
    - ``edge_occlusion``: 16-bit grey, 0 or 65535.

    Args:
        split: Scenes with targets for ``tasks``.
        out_dir: Output root.
        building: Building name (folder under ``out_dir``).
        tasks: Tasks to write, each in :data:`TASKONOMY_DOMAINS`; default: every target of the
            split that has a Taskonomy domain.

    Returns:
        The written paths, scene by scene (rgb first, then the tasks in order).
    """
    if tasks is None:
        tasks = [t for t in split.targets if t in TASKONOMY_DOMAINS]
    tasks = list(tasks)
    for name in tasks:
        if name not in TASKONOMY_DOMAINS:
            raise ValueError(f"write_taskonomy: task '{name}' has no Taskonomy domain; "
                             + closest(name, TASKONOMY_DOMAINS))
        if name not in split.targets:
            raise ValueError(f"write_taskonomy: the split has no targets for task '{name}'")
    root = Path(out_dir) / building
    written: list[Path] = []

    def save(array: np.ndarray, domain: str, index: int) -> None:
        folder = root / domain
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"point_{index}_view_0_domain_{domain}.png"
        Image.fromarray(array).save(path)
        written.append(path)

    def uint16(values: np.ndarray, scale: float) -> np.ndarray:
        values = np.nan_to_num(values, nan=0.0)
        return np.round(np.clip(values * scale, 0, 65535)).astype(np.uint16)

    for i in range(len(split)):
        rgb = np.round(np.clip(split.x[i], 0, 1) * 255).astype(np.uint8)  # (3, H, W)
        save(np.ascontiguousarray(rgb.transpose(1, 2, 0)), "rgb", i)
        for name in tasks:
            target = split.targets[name][i]
            domain = TASKONOMY_DOMAINS[name]
            if name == "s":
                save((np.clip(target, -1, 254) + 1).astype(np.uint8), domain, i)  # (H, W)
            elif name == "d":
                depth = target[0] * DEPTH_PNG_SCALE  # (H, W)
                ok = np.isfinite(depth) & (depth < 65534.5)
                save(np.where(ok, np.round(np.where(ok, depth, 0)), 65535).astype(np.uint16),
                     domain, i)
            elif name == "n":
                ok = np.all(np.isfinite(target), axis=0)  # (H, W)
                enc = np.round((np.nan_to_num(target) + 1.0) / 2.0 * 255.0)  # (3, H, W)
                enc = np.where(ok[None], np.clip(enc, 0, 255), 0).astype(np.uint8)
                save(np.ascontiguousarray(enc.transpose(1, 2, 0)), domain, i)
            elif name == "k":
                save(uint16(target[0], KEYPOINT_PNG_SCALE), domain, i)
            elif name == "e":
                save(uint16(target[0], EDGE_PNG_SCALE), domain, i)
            else:  # "o"
                save(uint16(target[0], OCCLUSION_PNG_SCALE), domain, i)
    return written
