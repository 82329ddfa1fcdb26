"""PASCAL-Context read from disk in the PASCAL_MT layout of the dense-prediction survey.

Layout (Vandenhende et al. 2021, "Multi-task learning for dense prediction tasks: a survey";
4998 train and 5105 val images of varying size)::

    ROOT/JPEGImages/<id>.jpg                  RGB image
    ROOT/ImageSets/Context/{train,val}.txt    one <id> per line
    ROOT/semseg/VOC12/<id>.png                21-class labels (0 = background, 255 = ignore);
    ROOT/semseg/pascal-context/<id>.png         the VOC12 file is used where present, as in
    (or ROOT/semseg/<id>.png)                   the survey
    ROOT/human_parts/<id>.mat                 Pascal-Part annotation (see below)
    ROOT/normals_distill/<id>.png             RGB normals, n = 2 v / 255 - 1
    ROOT/sal_distill/<id>.png                 grey saliency, > 127 = salient
    ROOT/pascal-context/trainval/<id>.mat     ``LabelMap``: (H, W) ids of the 459 context
                                              classes (edges and the normals mask come from it)

Tasks and their targets (conventions of :mod:`taskgrouper.tasks`):

* ``semseg``: ``data.classes`` classes (default 21: background + the 20 VOC classes); values
  >= classes (255 borders) are -1.
* ``human_parts``: 7 classes: 0 background, 1 head, 2 torso, 3 upper arm, 4 lower arm (with
  hand), 5 upper leg, 6 lower leg (with foot), the survey's grouping of the Pascal-Part person
  parts. Images without an annotated person are all -1 so they count in neither loss nor
  metric; pixels of a person without part annotations are -1 too.
* ``sal``: dense binary, distilled saliency (grey value > 127 -> 1).
* ``normals``: distilled normals, trusted only on pixels whose context class also exists
  among the NYUD classes the distilling network was trained on (the survey's mask:
  :data:`NORMALS_VALID_CLASSES`); every other pixel is NaN.
* ``edge``: dense binary, the boundaries of ``LabelMap`` (pixels whose context class differs
  from the pixel to the right or below, via
  :func:`taskgrouper.data.derived.edges_from_segmentation`: one pixel wide, as the survey's
  thinned Laplacian of ``LabelMap``).
  Loss and benchmark options: ``pos_weight`` 0.95, ``max_dist`` 0.0075.

The Pascal-Part ``.mat`` files hold a struct ``anno`` with fields ``imname`` and ``objects``;
``objects`` is a 1 x n struct array with fields ``class`` (name), ``class_ind`` (15 =
person), ``mask`` (H, W instance mask) and ``parts``, a 1 x k struct array with fields
``part_name`` (e.g. ``'luarm'``) and ``mask``, or an empty array when the object has no part
annotation. ``scipy.io.loadmat`` returns that nesting as ``mat['anno'][0, 0]['objects'][0, i]``
and ``...['parts'][0, j]``; fields are looked up by name (by position if unnamed).

Splits: PASCAL-Context publishes only train and val, so the official val images become our
``test`` split and a seeded (``data.seed``) ``data.val_fraction`` of the official train images
becomes our ``val`` split. ``data.limit`` caps each split before the files are checked.

Images are RGB float32 in [0, 1], shaped (3, H, W), without mean/std normalisation. Their sizes
vary, so every image is resized (not padded) to ``data.size``, default 512 x 512 as in the
survey: bilinear for images, nearest neighbour for every target (normals are renormalised).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskgrouper.data import files
from taskgrouper.data._real import (
    SEG_METRICS,
    binary_map,
    check_first_sample,
    class_map,
    edge_spec,
    image_chw,
    lazy_splits,
    normal_map,
    normals_spec,
    official_splits,
    read_id_list,
    resolve_tasks,
    scan_samples,
    segmentation_spec,
)
from taskgrouper.data.base import DataError, MultiTaskData
from taskgrouper.data.derived import edges_from_segmentation
from taskgrouper.tasks import TaskSpec

__all__ = ["NORMALS_VALID_CLASSES", "PART_GROUPS", "PascalReader", "human_part_map", "load"]

TASKS = ("semseg", "human_parts", "sal", "normals", "edge")
DEFAULT_SIZE = (512, 512)
PERSON_CLASS = 15

#: Pascal-Part person part names -> our 6 part classes (0 is background).
PART_GROUPS: dict[str, int] = {
    **dict.fromkeys(("head", "hair", "lear", "rear", "lebrow", "rebrow", "leye", "reye",
                     "mouth", "nose"), 1),
    **dict.fromkeys(("torso", "neck"), 2),
    **dict.fromkeys(("luarm", "ruarm"), 3),
    **dict.fromkeys(("llarm", "rlarm", "lhand", "rhand"), 4),
    **dict.fromkeys(("luleg", "ruleg"), 5),
    **dict.fromkeys(("llleg", "rlleg", "lfoot", "rfoot"), 6),
}

#: Ids (1-based, as in ``LabelMap``) of the PASCAL-Context classes whose name is also a NYUD
#: class name (except "unknown"), plus tvmonitor (427): the classes on which the survey trusts
#: the distilled normals. Derived from the two public class-name lists.
NORMALS_VALID_CLASSES = frozenset((
    3, 4, 6, 9, 10, 11, 13, 15, 17, 18, 22, 23, 29, 30, 33, 34, 36, 37, 38, 39, 41, 43, 46,
    49, 50, 51, 53, 55, 56, 59, 61, 62, 65, 66, 68, 69, 72, 73, 78, 83, 84, 85, 87, 88, 95,
    96, 101, 104, 105, 107, 111, 113, 115, 122, 124, 135, 141, 142, 143, 146, 150, 154, 157,
    158, 159, 165, 172, 174, 181, 183, 184, 191, 193, 195, 197, 199, 202, 213, 215, 216, 219,
    220, 223, 225, 228, 230, 232, 233, 238, 239, 242, 243, 246, 250, 251, 252, 255, 260, 261,
    263, 269, 272, 273, 275, 281, 283, 284, 285, 286, 287, 288, 290, 291, 292, 293, 295, 304,
    307, 309, 310, 314, 315, 319, 323, 329, 330, 331, 336, 342, 345, 349, 350, 351, 352, 355,
    357, 368, 370, 371, 374, 379, 380, 383, 384, 397, 401, 403, 405, 407, 408, 411, 412, 413,
    414, 417, 419, 421, 423, 427, 429, 430, 432, 440, 441, 442, 443, 444, 446, 454, 457,
))

_SEMSEG_DIRS = (("semseg", "VOC12"), ("semseg", "pascal-context"), ("semseg",))


def _field(record, name: str, index: int):
    """Field ``name`` of a MATLAB struct record (by position when the struct is unnamed)."""
    names = getattr(getattr(record, "dtype", None), "names", None)
    if names and name in names:
        return record[name]
    return record[index]


def _struct_array(value) -> np.ndarray:
    """The records of a (possibly 1 x 1 wrapped) MATLAB struct array, flattened."""
    a = np.asarray(value)
    while a.dtype == object and a.size == 1 and isinstance(a.flat[0], np.ndarray):
        a = a.flat[0]
    return a.ravel() if a.dtype.names else np.zeros(0)


def _text(value) -> str:
    a = np.asarray(value).ravel()
    return str(a[0]) if a.size else ""


def human_part_map(mat: dict, shape: tuple[int, int], where: str = "") -> np.ndarray:
    """The 7-class human-part map (H, W) int64 of a Pascal-Part annotation.

    Args:
        mat: What ``scipy.io.loadmat`` returns for the ``.mat`` file.
        shape: (H, W) of the image, used when no person is annotated.

    Returns:
        0 background, 1..6 parts (:data:`PART_GROUPS`); all -1 when no person has part
        annotations; -1 on persons without parts and on unknown part names.
    """
    if "anno" not in mat:
        raise DataError(f"{where}: no struct 'anno'; expected a Pascal-Part annotation")
    anno = np.asarray(mat["anno"]).ravel()
    if not anno.size:
        return np.full(shape, -1, dtype=np.int64)
    objects = _struct_array(_field(anno[0], "objects", 1))
    target = None
    unlabelled = []
    for obj in objects:
        index = np.asarray(_field(obj, "class_ind", 1)).ravel()
        is_person = (int(index[0]) == PERSON_CLASS if index.size
                     else _text(_field(obj, "class", 0)) == "person")
        if not is_person:
            continue
        mask = np.asarray(_field(obj, "mask", 2)).astype(bool)
        parts = _struct_array(_field(obj, "parts", 3))
        if not parts.size:
            unlabelled.append(mask)
            continue
        if target is None:
            target = np.zeros(mask.shape, dtype=np.int64)
        for part in parts:
            part_mask = np.asarray(_field(part, "mask", 1)).astype(bool)
            if part_mask.shape != target.shape:
                raise DataError(f"{where}: a part mask of shape {part_mask.shape} does not "
                                f"match the object masks {target.shape}")
            target[part_mask] = PART_GROUPS.get(_text(_field(part, "part_name", 0)), -1)
    if target is None:
        return np.full(shape, -1, dtype=np.int64)
    for mask in unlabelled:
        if mask.shape == target.shape:
            target[mask & (target == 0)] = -1
    return target


def _label_map(path: Path) -> np.ndarray:
    mat = files.read_mat(path)
    if "LabelMap" not in mat:
        raise DataError(f"{path}: no array 'LabelMap'; expected a PASCAL-Context label file")
    return np.asarray(mat["LabelMap"])


@dataclass(frozen=True)
class PascalReader:
    """Decodes one PASCAL_MT sample (picklable, for DataLoader workers).

    Attributes:
        root: The dataset folder.
        size: Output (H, W).
        classes: Semantic segmentation classes.
    """

    root: str
    size: tuple[int, int]
    classes: int = 21

    def semseg_path(self, key: str) -> Path:
        """The label PNG of ``key``: the first existing of VOC12/, pascal-context/, semseg/."""
        root = Path(self.root)
        candidates = [root.joinpath(*parts) / f"{key}.png" for parts in _SEMSEG_DIRS
                      if root.joinpath(*parts).is_dir()]
        for path in candidates:
            if path.is_file():
                return path
        return candidates[0] if candidates else root / "semseg" / "pascal-context" / f"{key}.png"

    def paths(self, key: str, tasks: Sequence[str]) -> list[Path]:
        """Every file sample ``key`` reads for ``tasks``, the image first."""
        root = Path(self.root)
        out = [root / "JPEGImages" / f"{key}.jpg"]
        for task in tasks:
            if task == "semseg":
                out.append(self.semseg_path(key))
            elif task == "human_parts":
                out.append(root / "human_parts" / f"{key}.mat")
            elif task == "sal":
                out.append(root / "sal_distill" / f"{key}.png")
            elif task == "normals":
                out += [root / "normals_distill" / f"{key}.png",
                        root / "pascal-context" / "trainval" / f"{key}.mat"]
            elif task == "edge":
                out.append(root / "pascal-context" / "trainval" / f"{key}.mat")
        return list(dict.fromkeys(out))

    def __call__(self, key: str, tasks: Sequence[str]) -> tuple[np.ndarray, dict]:
        root = Path(self.root)
        image_path = root / "JPEGImages" / f"{key}.jpg"
        image = files.read_image(image_path)
        native = image.shape[:2]
        x = image_chw(image, self.size, where=str(image_path))
        context = None
        context_path = root / "pascal-context" / "trainval" / f"{key}.mat"
        if "edge" in tasks or "normals" in tasks:
            context = _label_map(context_path)
        targets = {}
        for task in tasks:
            if task == "semseg":
                path = self.semseg_path(key)
                targets[task] = class_map(files.read_image(path), self.size, self.classes,
                                          where=str(path))
            elif task == "human_parts":
                path = root / "human_parts" / f"{key}.mat"
                parts = human_part_map(files.read_mat(path), native, str(path))
                targets[task] = files.resize(parts, self.size, "nearest")
            elif task == "sal":
                path = root / "sal_distill" / f"{key}.png"
                sal = files.read_image(path)
                if sal.ndim == 3:
                    sal = sal[..., 0]
                targets[task] = binary_map(sal, self.size, threshold=127, where=str(path))
            elif task == "normals":
                path = root / "normals_distill" / f"{key}.png"
                raw = files.read_image(path).astype(np.float32)
                if raw.ndim != 3 or raw.shape[-1] != 3:
                    raise DataError(f"{path}: expected an RGB normals image, got shape "
                                    f"{raw.shape}")
                valid = np.isin(context, list(NORMALS_VALID_CLASSES))
                if valid.shape != raw.shape[:2]:
                    raise DataError(f"{context_path}: LabelMap shape {valid.shape} does not "
                                    f"match the normals {raw.shape[:2]} of {path}")
                targets[task] = normal_map(2.0 * raw / 255.0 - 1.0, self.size, str(path),
                                           valid=valid)
            elif task == "edge":
                edges = edges_from_segmentation(context.astype(np.int64), width=1, ignore=-1,
                                                both_sides=False)[0]
                targets[task] = files.resize(edges, self.size, "nearest")[None]
            else:
                raise DataError(f"{self.root}: no reader for task '{task}'")
        return x, targets


def _require(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DataError(f"missing folder {path} ({what}); the PASCAL_MT folder is incomplete "
                        f"or data.path points at the wrong folder")


def load(cfg, tasks: Sequence[str] | None = None) -> MultiTaskData:
    """Load PASCAL-Context from ``cfg.path`` (see the module docstring for the conventions).

    Args:
        cfg: A :class:`~taskgrouper.config.DataConfig`; uses ``path``, ``size``, ``classes``,
            ``val_fraction``, ``seed``, ``limit``, ``workers``, ``cache``.
        tasks: Task names (default: all five).

    Raises:
        DataError: a missing folder or split list, an unknown task, a split left without
            usable samples.
    """
    root = Path(cfg.path)
    name = "PASCAL-Context (PASCAL_MT layout)"
    names = resolve_tasks(tasks, TASKS, TASKS, name)
    _require(root / "JPEGImages", "the RGB images")
    needs = {"human_parts": [("human_parts",)], "sal": [("sal_distill",)],
             "normals": [("normals_distill",), ("pascal-context", "trainval")],
             "edge": [("pascal-context", "trainval")]}
    for task in names:
        if task == "semseg":
            _require(root / "semseg", "semantic labels: semseg/pascal-context/<id>.png")
        for parts in needs.get(task, []):
            _require(root.joinpath(*parts), f"needed by task '{task}'")
    split_dir = root / "ImageSets" / "Context"
    keys = official_splits(read_id_list(split_dir / "train.txt"),
                           read_id_list(split_dir / "val.txt"), cfg, name)
    size = (int(cfg.size[0]), int(cfg.size[1])) if cfg.size else DEFAULT_SIZE
    reader = PascalReader(str(root), size, int(cfg.classes or 21))
    samples = {s: [(k, reader.paths(k, names)) for k in ks] for s, ks in keys.items()}
    kept, skipped = scan_samples(root, "pascal_context", samples, cfg, name)
    parts = lazy_splits(kept, lambda s: reader, names, size)
    check_first_sample(parts["train"], name)
    specs: dict[str, TaskSpec] = {
        "semseg": segmentation_spec("semseg", reader.classes,
                                    f"semantic segmentation ({reader.classes} classes)"),
        "human_parts": TaskSpec("human_parts", "segmentation", channels=7,
                                description="human parts (background + 6 parts)",
                                metrics=SEG_METRICS),
        "sal": TaskSpec("sal", "dense_binary", channels=1, description="saliency (distilled)",
                        metrics=("maxf", "max_miou")),
        "normals": normals_spec("surface normals (distilled)"),
        "edge": edge_spec(0.0075, "edges (context label boundaries)"),
    }
    return MultiTaskData({t: specs[t] for t in names}, name=f"{name} {root}", skipped=skipped,
                         **parts)
