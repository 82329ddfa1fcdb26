"""NYUD-v2 read from disk, in either of the two layouts multi-task papers publish it in.

``NYUD_MT`` (the layout of the dense-prediction survey, Vandenhende et al. 2021; 795 train and
654 val images at 480 x 640)::

    ROOT/images/<id>.jpg            RGB image
    ROOT/segmentation/<id>.png      40 classes stored as 1..40; 0 = unlabelled (ignored)
    ROOT/depth/<id>.npy             (H, W) or (H, W, 1) depth in metres; 0 = no measurement
    ROOT/normals/<id>.npy           (H, W, 3) surface normals stored in [-1, 1]; an all-zero
                                    vector = no normal
    ROOT/edge/<id>.npy              (H, W) edge map, 0 or 1
    ROOT/gt_sets/{train,val}.txt    one <id> per line

``mtan`` (the preprocessed arrays of Liu et al. 2019, "End-to-end multi-task learning with
attention", 795 train and 654 val samples at 288 x 384)::

    ROOT/{train,val}/image/<i>.npy   (H, W, 3) float RGB in [0, 1] (channel-first accepted)
    ROOT/{train,val}/label/<i>.npy   (H, W) 13 classes, -1 = unlabelled
    ROOT/{train,val}/depth/<i>.npy   (H, W) or (H, W, 1) depth; 0 = no measurement
    ROOT/{train,val}/normal/<i>.npy  (H, W, 3) normals in [-1, 1]; all-zero = no normal

``data.split`` picks the layout: ``"nyud_mt"``, ``"mtan"``, or ``"auto"``/unset to detect it
(``gt_sets/`` means NYUD_MT, ``train/image/`` means mtan).

Tasks: ``semseg`` (segmentation), ``depth`` (dense regression, metres), ``normals``, and
``edge`` (dense binary; loss and benchmark options ``pos_weight`` 0.95, ``max_dist`` 0.011).
NYUD_MT ships its edge maps; for the mtan layout ``edge`` is derived from the (resized)
segmentation: one-pixel boundaries between classes, NaN on unlabelled pixels; it is only loaded
when asked for.

Splits: NYUD publishes only train and val, so the official val images become our ``test``
split and a seeded (``data.seed``) ``data.val_fraction`` of the official train images becomes
our ``val`` split. ``data.limit`` caps each split before the files are checked.

Targets follow :mod:`taskgrouper.tasks`: class ids with -1 for unlabelled pixels, NaN for
pixels without depth or normal. Images are RGB float32 in [0, 1], shaped (3, H, W), without
mean/std normalisation. With ``data.size`` set, images are resized bilinearly and every target
by nearest neighbour (so no invalid value is blended into a valid one; normals are renormalised
to unit length afterwards); unset, NYUD_MT keeps its native 480 x 640 and mtan its 288 x 384.

This module also holds the helpers the other survey-layout loaders
(:mod:`taskgrouper.data.pascal_context`, :mod:`taskgrouper.data.cityscapes`) share: task-name
checks, the train/val/test convention, file scanning and the target decoders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskgrouper.data import files
from taskgrouper.data._real import (
    _size,
    binary_map,
    check_first_sample,
    class_map,
    depth_map,
    depth_spec,
    edge_spec,
    image_chw,
    image_size,
    lazy_splits,
    load_npy_folders,
    normal_map,
    normals_spec,
    official_splits,
    read_id_list,
    resolve_tasks,
    scan_samples,
    segmentation_spec,
)
from taskgrouper.data.base import DataError, MultiTaskData
from taskgrouper.tasks import closest

__all__ = ["LAYOUTS", "NyudMTReader", "detect_layout", "load"]

#: Layout names ``data.split`` may give.
LAYOUTS = ("nyud_mt", "mtan")

_NYUD_MT_TASKS = ("semseg", "depth", "normals", "edge")
_MTAN_TASKS = ("semseg", "depth", "normals")  # "edge" (derived) only when asked for
_MTAN_DIRS = {"semseg": "label", "depth": "depth", "normals": "normal", "edge": "label"}


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NyudMTReader:
    """Decodes one NYUD_MT sample (picklable, for DataLoader workers).

    Attributes:
        root: The dataset folder.
        size: Output (H, W); every input and target is resized to it.
        classes: Segmentation classes (stored values 1..classes; 0 = unlabelled).
    """

    root: str
    size: tuple[int, int]
    classes: int = 40

    def paths(self, key: str, tasks: Sequence[str]) -> list[Path]:
        """The files sample ``key`` reads for ``tasks``, the image first."""
        root = Path(self.root)
        out = [root / "images" / f"{key}.jpg"]
        for task in tasks:
            out.append({"semseg": root / "segmentation" / f"{key}.png",
                        "depth": root / "depth" / f"{key}.npy",
                        "normals": root / "normals" / f"{key}.npy",
                        "edge": root / "edge" / f"{key}.npy"}[task])
        return out

    def __call__(self, key: str, tasks: Sequence[str]) -> tuple[np.ndarray, dict]:
        paths = self.paths(key, tasks)
        x = image_chw(files.read_image(paths[0]), self.size, where=str(paths[0]))
        targets = {}
        for task, path in zip(tasks, paths[1:], strict=True):
            if task == "semseg":
                targets[task] = class_map(files.read_image(path), self.size, self.classes,
                                          shift=1, where=str(path))
            elif task == "depth":
                targets[task] = depth_map(files.read_npy(path), self.size, str(path))
            elif task == "normals":
                targets[task] = normal_map(files.read_npy(path), self.size, str(path))
            else:
                targets[task] = binary_map(files.read_npy(path), self.size, where=str(path))
        return x, targets


# --------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------

def detect_layout(root: Path, split: str | None) -> str:
    """``"nyud_mt"`` or ``"mtan"``: ``split`` when given, else detected from the folders.

    Raises:
        DataError: an unknown layout name, or a folder in neither layout.
    """
    if split not in (None, "", "auto"):
        if split not in LAYOUTS:
            raise DataError(f"data.split '{split}' is not a NYUD layout; "
                            f"{closest(split, (*LAYOUTS, 'auto'))}")
        return split
    if (root / "gt_sets").is_dir() or (root / "images").is_dir():
        return "nyud_mt"
    if (root / "train" / "image").is_dir():
        return "mtan"
    raise DataError(f"{root} is not a NYUD dataset folder: it has neither gt_sets/ and images/ "
                    f"(the NYUD_MT layout: images/, segmentation/, depth/, normals/, edge/, "
                    f"gt_sets/{{train,val}}.txt) nor train/image/ (the mtan layout: "
                    f"{{train,val}}/{{image,label,depth,normal}}/<i>.npy); point data.path at "
                    f"the folder holding them")


def _require(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise DataError(f"missing folder {folder} ({what}); the dataset folder is incomplete "
                        f"or data.path points at the wrong folder")


def _load_nyud_mt(root: Path, cfg, tasks: list[str]) -> MultiTaskData:
    name = "NYUD (NYUD_MT layout)"
    _require(root / "images", "the RGB images")
    for task in tasks:
        sub = {"semseg": "segmentation", "depth": "depth", "normals": "normals",
               "edge": "edge"}[task]
        _require(root / sub, f"labels of task '{task}'")
    train_ids = read_id_list(root / "gt_sets" / "train.txt")
    test_ids = read_id_list(root / "gt_sets" / "val.txt")
    keys = official_splits(train_ids, test_ids, cfg, name)
    classes = int(cfg.classes or 40)
    probe = NyudMTReader(str(root), (0, 0), classes)
    samples = {s: [(k, probe.paths(k, tasks)) for k in ks] for s, ks in keys.items()}
    kept, skipped = scan_samples(root, "nyud", samples, cfg, name)
    size = _size(cfg) or image_size(root / "images" / f"{kept['train'][0]}.jpg")
    reader = NyudMTReader(str(root), size, classes)
    parts = lazy_splits(kept, lambda s: reader, tasks, size)
    check_first_sample(parts["train"], name)
    specs = {
        "semseg": segmentation_spec("semseg", classes, f"semantic segmentation ({classes} "
                                                       f"NYUv2 classes)"),
        "depth": depth_spec("depth (metres)"),
        "normals": normals_spec(),
        "edge": edge_spec(0.011),
    }
    return MultiTaskData({t: specs[t] for t in tasks}, name=f"{name} {root}", skipped=skipped,
                         **parts)


def _load_mtan(root: Path, cfg, tasks: list[str]) -> MultiTaskData:
    name = "NYUD (mtan layout)"
    for split in ("train", "val"):
        _require(root / split / "image", "the RGB images")
        for task in tasks:
            _require(root / split / _MTAN_DIRS[task], f"labels of task '{task}'")
    classes = int(cfg.classes or 13)
    parts, skipped = load_npy_folders(root, "nyud", name, cfg, _MTAN_DIRS, tasks, classes)
    specs = {
        "semseg": segmentation_spec("semseg", classes, f"semantic segmentation ({classes} "
                                                       f"NYUv2 classes)"),
        "depth": depth_spec(),
        "normals": normals_spec(),
        "edge": edge_spec(0.011, "edges (segmentation boundaries)"),
    }
    return MultiTaskData({t: specs[t] for t in tasks}, name=f"{name} {root}", skipped=skipped,
                         **parts)


def load(cfg, tasks: Sequence[str] | None = None) -> MultiTaskData:
    """Load NYUD-v2 from ``cfg.path`` (see the module docstring for layouts and conventions).

    Args:
        cfg: A :class:`~taskgrouper.config.DataConfig`; uses ``path``, ``split`` (layout),
            ``size``, ``classes``, ``val_fraction``, ``seed``, ``limit``, ``workers``, ``cache``.
        tasks: Task names (default: every task the layout ships).

    Raises:
        DataError: a folder not in either layout, a missing split list or label folder, an
            unknown task, a split left without usable samples.
    """
    root = Path(cfg.path)
    layout = detect_layout(root, cfg.split)
    if layout == "nyud_mt":
        names = resolve_tasks(tasks, _NYUD_MT_TASKS, _NYUD_MT_TASKS, "NYUD (NYUD_MT layout)")
        return _load_nyud_mt(root, cfg, names)
    names = resolve_tasks(tasks, (*_MTAN_TASKS, "edge"), _MTAN_TASKS, "NYUD (mtan layout)")
    return _load_mtan(root, cfg, names)
