"""Cityscapes read from disk as the per-sample .npy arrays multi-task papers publish.

Layout (the preprocessed Cityscapes of Liu et al. 2019, "End-to-end multi-task learning with
attention": 2975 train and 500 val samples at 128 x 256)::

    ROOT/{train,val}/image/<i>.npy       (H, W, 3) float RGB in [0, 1] (channel-first accepted;
                                         uint8 0-255 too)
    ROOT/{train,val}/label_7/<i>.npy     (H, W) 7-class labels, -1 = unlabelled
    ROOT/{train,val}/label_19/<i>.npy    (H, W) 19-class labels, -1 = unlabelled
      (or ROOT/{train,val}/label/<i>.npy with data.classes classes)
    ROOT/{train,val}/depth/<i>.npy       (H, W) or (H, W, 1) disparity/depth; 0 = invalid

Tasks: ``semseg`` (segmentation) and ``depth`` (dense regression on the stored values: the
MTAN arrays hold scaled inverse depth). The label folder follows ``data.classes``: 7 or 19
read ``label_7/`` or ``label_19/`` (``label/`` when that folder is missing); unset, ``label_7/``
is used when present, else ``label_19/``, else ``label/`` with 7 classes. Stored values outside
[0, classes) become -1; zero, negative and non-finite depth becomes NaN.

Splits: Cityscapes publishes only train and val labels, so the official val samples become our
``test`` split and a seeded (``data.seed``) ``data.val_fraction`` of the official train samples
becomes our ``val`` split. ``data.limit`` caps each split before the files are checked.

Images are RGB float32 in [0, 1], shaped (3, H, W), without mean/std normalisation (float
images stored as 0-255, detected on the first training image, are divided by 255). With
``data.size`` set, images are resized bilinearly and labels and depth by nearest neighbour;
unset, the stored size (128 x 256) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from taskgrouper.data._real import (
    depth_spec,
    load_npy_folders,
    resolve_tasks,
    segmentation_spec,
)
from taskgrouper.data.base import DataError, MultiTaskData

__all__ = ["label_folder", "load"]

TASKS = ("semseg", "depth")


def label_folder(split_dir: Path, classes: int | None) -> tuple[str, int]:
    """(label sub-folder, classes) for a split folder and ``data.classes``.

    Raises:
        DataError: no label folder fits.
    """
    if classes is not None:
        for sub in (f"label_{classes}", "label"):
            if (split_dir / sub).is_dir():
                return sub, int(classes)
        raise DataError(f"missing folder {split_dir / f'label_{classes}'} (or "
                        f"{split_dir / 'label'}) for data.classes={classes}; set data.classes "
                        f"to the classes of a label folder that exists")
    for sub, n in (("label_7", 7), ("label_19", 19), ("label", 7)):
        if (split_dir / sub).is_dir():
            return sub, n
    raise DataError(f"missing label folder in {split_dir}: expected label_7/, label_19/ or "
                    f"label/ holding <i>.npy class maps")


def load(cfg, tasks: Sequence[str] | None = None) -> MultiTaskData:
    """Load Cityscapes from ``cfg.path`` (see the module docstring for the conventions).

    Args:
        cfg: A :class:`~taskgrouper.config.DataConfig`; uses ``path``, ``size``, ``classes``,
            ``val_fraction``, ``seed``, ``limit``, ``workers``, ``cache``.
        tasks: Task names (default: ``semseg`` and ``depth``).

    Raises:
        DataError: a folder not in the layout, an unknown task, a split left without usable
            samples.
    """
    root = Path(cfg.path)
    name = "Cityscapes (npy layout)"
    names = resolve_tasks(tasks, TASKS, TASKS, name)
    for split in ("train", "val"):
        if not (root / split / "image").is_dir():
            raise DataError(f"missing folder {root / split / 'image'}: {root} is not the "
                            f"Cityscapes npy layout ({{train,val}}/{{image,label_7,depth}}/"
                            f"<i>.npy); point data.path at the folder holding train/ and val/")
    label_dir, classes = label_folder(root / "train", cfg.classes)
    dirs = {"semseg": label_dir, "depth": "depth"}
    for split in ("train", "val"):
        for task in names:
            if not (root / split / dirs[task]).is_dir():
                raise DataError(f"missing folder {root / split / dirs[task]} (labels of task "
                                f"'{task}'); the dataset folder is incomplete")
    parts, skipped = load_npy_folders(root, "cityscapes", name, cfg, dirs, names, classes)
    specs = {
        "semseg": segmentation_spec("semseg", classes,
                                    f"semantic segmentation ({classes} classes)"),
        "depth": depth_spec("depth (disparity as stored)"),
    }
    return MultiTaskData({t: specs[t] for t in names}, name=f"{name} {root}", skipped=skipped,
                         **parts)
