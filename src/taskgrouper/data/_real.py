"""Pieces shared by the loaders of NYUD-v2, PASCAL-Context and Cityscapes.

Task-name checks, the train/val/test convention for datasets that publish only train and
val, the file scan, decoders of images, class maps, depth, normals and binary maps, the
task specs with the metrics the survey reports, and a reader of per-sample .npy folders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskgrouper.data import files
from taskgrouper.data.base import DataError, LazySplit
from taskgrouper.data.derived import edges_from_segmentation
from taskgrouper.tasks import TaskSpec, closest

#: Metric names per task kind, as the survey reports them.
SEG_METRICS = ("miou", "pixel_acc")
DEPTH_METRICS = ("rmse", "abs_rel", "sq_rel", "rmse_log", "log10", "delta1", "delta2", "delta3")
NORMAL_METRICS = ("mean_angle", "median_angle", "rmse_angle", "within_11.25", "within_22.5",
                  "within_30")
EDGE_METRICS = ("odsf", "oisf")



# --------------------------------------------------------------------------------------------
# Helpers shared by the NYUD, PASCAL-Context and Cityscapes loaders
# --------------------------------------------------------------------------------------------

def resolve_tasks(tasks: Sequence[str] | None, known: Sequence[str], default: Sequence[str],
                  dataset: str) -> list[str]:
    """The task names to load: ``tasks`` checked against ``known``, or ``default``.

    Raises:
        DataError: an unknown name (with the closest known one) or a name given twice.
    """
    names = list(tasks) if tasks else list(default)
    for name in names:
        if name not in known:
            raise DataError(f"unknown task '{name}' for {dataset}; {closest(name, known)}")
    if len(set(names)) != len(names):
        raise DataError(f"tasks {names} name a task twice; list each task once")
    return names


def read_id_list(path: Path) -> list[str]:
    """Sample ids from a split file, one per line (blank lines skipped).

    Raises:
        DataError: the file is missing or unreadable.
    """
    if not path.is_file():
        raise DataError(f"missing split list {path}; it should hold one image id per line")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot be read as a text list of ids ({err})") from None
    return [line.strip() for line in lines if line.strip()]


def numeric_stems(folder: Path) -> list[str]:
    """Stems of the ``<i>.npy`` files in ``folder``, in numeric order."""
    stems = [p.stem for p in folder.glob("*.npy")]
    return sorted(stems, key=lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s))


def official_splits(train_keys: Sequence[Any], test_keys: Sequence[Any], cfg,
                    dataset: str) -> dict[str, list]:
    """Our train/val/test from a dataset that publishes only train and val.

    The official val keys become ``test``; a ``cfg.val_fraction`` of the official train keys,
    drawn with ``cfg.seed``, becomes ``val`` (at least one key, and at least one left to
    train on); both keep the official order. ``cfg.limit`` (when > 0) then keeps the first
    ``limit`` keys of each split.

    Raises:
        DataError: fewer than two official training samples.
    """
    train_keys = list(train_keys)
    n = len(train_keys)
    if n < 2:
        raise DataError(f"{dataset}: the official train split has {n} sample(s); at least 2 are "
                        f"needed to hold out a validation split")
    n_val = min(max(int(round(cfg.val_fraction * n)), 1), n - 1)
    order = np.random.default_rng(cfg.seed).permutation(n)
    held = set(order[:n_val].tolist())
    parts = {
        "train": [k for i, k in enumerate(train_keys) if i not in held],
        "val": [k for i, k in enumerate(train_keys) if i in held],
        "test": list(test_keys),
    }
    if cfg.limit:
        parts = {name: keys[:cfg.limit] for name, keys in parts.items()}
    return parts


def scan_samples(root: Path, kind: str, samples: dict[str, list[tuple[Any, list[Path]]]],
                 cfg, dataset: str) -> tuple[dict[str, list], list[tuple[str, str]]]:
    """Check every sample's files; keep the samples whose files are all sound.

    Args:
        root: The dataset folder (keys the scan cache).
        kind: The data kind (names the scan cache).
        samples: Split name -> [(key, the files that sample reads)].
        cfg: The data config (``workers``, ``cache``).
        dataset: Name for messages.

    Returns:
        (split name -> kept keys, [(file, reason)] for every missing or corrupt file).

    Raises:
        DataError: a split has no usable sample left.
    """
    paths = list(dict.fromkeys(str(p) for part in samples.values() for _, ps in part
                               for p in ps))
    cache = files.scan_cache_path(root, kind) if cfg.cache else None
    bad = files.scan(paths, workers=cfg.workers, cache=cache)
    kept: dict[str, list] = {}
    for split, part in samples.items():
        kept[split] = [key for key, ps in part if not any(str(p) in bad for p in ps)]
    skipped = [(p, bad[p]) for p in paths if p in bad]
    for split, keys in kept.items():
        if samples[split] and not keys:
            first = "; ".join(f"{p}: {r}" for p, r in skipped[:3])
            raise DataError(f"{dataset}: no usable sample in split '{split}': every one has a "
                            f"missing or corrupt file (first: {first}); check the dataset "
                            f"folder {root}")
        if not samples[split]:
            raise DataError(f"{dataset}: split '{split}' lists no sample; check the split "
                            f"lists under {root}")
    return kept, skipped


def image_chw(array: np.ndarray, size: tuple[int, int] | None, scale: float | None = None,
              where: str = "") -> np.ndarray:
    """An image as RGB float32 (3, H, W), resized bilinearly to ``size``.

    Accepts (H, W), (H, W, 1|3|4) and channel-first (1|3, H, W) arrays. uint8 values are
    divided by 255 and uint16 by 65535; float values are multiplied by ``scale`` (default 1:
    already in [0, 1]).
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise DataError(f"{where}: expected an RGB image (H, W, 3), got shape {a.shape}")
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    a = a[..., :3]
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    else:
        a = a.astype(np.float32)
        if scale is not None and scale != 1.0:
            a = a * np.float32(scale)
    a = files.resize(np.ascontiguousarray(a), size, "bilinear")
    return np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32)


def _plane(array: np.ndarray, where: str, what: str) -> np.ndarray:
    """(H, W) from (H, W), (H, W, 1) or (1, H, W)."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    elif a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise DataError(f"{where}: expected a (H, W) {what} map, got shape {a.shape}")
    return a


def class_map(array: np.ndarray, size: tuple[int, int] | None, classes: int, shift: int = 0,
              where: str = "") -> np.ndarray:
    """Class ids (H, W) int64: stored value - ``shift``; anything outside [0, classes) -> -1.

    Float label maps are rounded. Resized by nearest neighbour.
    """
    a = _plane(array, where, "label")
    if np.issubdtype(a.dtype, np.floating):
        a = np.where(np.isfinite(a), np.round(a), -1)
    labels = a.astype(np.int64) - shift
    labels[(labels < 0) | (labels >= classes)] = -1
    return files.resize(labels, size, "nearest")


def depth_map(array: np.ndarray, size: tuple[int, int] | None, where: str = "") -> np.ndarray:
    """Depth (1, H, W) float32; zero, negative and non-finite values become NaN."""
    d = _plane(array, where, "depth").astype(np.float32)
    d = np.where(np.isfinite(d) & (d > 0), d, np.float32(np.nan))
    return files.resize(d, size, "nearest")[None]


def _unit(n: np.ndarray) -> np.ndarray:
    """(H, W, 3) vectors scaled to unit length; zero-length or non-finite ones -> NaN."""
    n = n.astype(np.float32)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    good = np.isfinite(norm) & (norm > 1e-6)
    return np.where(good, n / np.where(good, norm, 1.0), np.float32(np.nan)).astype(np.float32)


def normal_map(array: np.ndarray, size: tuple[int, int] | None, where: str = "",
               valid: np.ndarray | None = None) -> np.ndarray:
    """Unit normals (3, H, W) float32 from vectors stored in [-1, 1].

    Accepts (H, W, 3) or (3, H, W). All-zero vectors, and pixels where ``valid`` (an (H, W)
    bool mask) is False, become NaN. Resized by nearest neighbour, then renormalised.
    """
    n = np.asarray(array)
    if n.ndim == 3 and n.shape[0] == 3 and n.shape[-1] != 3:
        n = n.transpose(1, 2, 0)
    if n.ndim != 3 or n.shape[-1] != 3:
        raise DataError(f"{where}: expected (H, W, 3) normals, got shape {n.shape}")
    n = _unit(n)
    if valid is not None:
        n[~valid] = np.nan
    n = _unit(files.resize(n, size, "nearest"))
    return np.ascontiguousarray(n.transpose(2, 0, 1))


def binary_map(array: np.ndarray, size: tuple[int, int] | None, threshold: float = 0.5,
               where: str = "") -> np.ndarray:
    """A 0/1 map (1, H, W) float32: 1 where the stored value exceeds ``threshold``."""
    a = _plane(array, where, "binary")
    b = (a.astype(np.float32) > threshold).astype(np.float32)
    return files.resize(b, size, "nearest")[None]


def edges_from_labels(labels: np.ndarray) -> np.ndarray:
    """Edges (1, H, W) float32 of a class map (H, W): one-pixel boundaries between classes.

    Pixels of label -1 are NaN (left out of the loss), and a class next to one is no edge.
    """
    return edges_from_segmentation(labels, width=1, ignore=-1, both_sides=False,
                                   ignore_value=np.nan)


def check_first_sample(split: LazySplit, dataset: str) -> None:
    """Decode the first sample of ``split`` so a wrong format fails at load time.

    Raises:
        DataError: the reader fails, or the image is not in [0, 1].
    """
    x, targets = split.read(0)
    if x.shape != tuple(split.shape):
        raise DataError(f"{dataset}: sample '{split.keys[0]}' decodes to shape {x.shape}, "
                        f"expected {tuple(split.shape)}")
    hi = float(np.nanmax(x)) if x.size else 0.0
    if hi > 1.001 or float(np.nanmin(x)) < -0.001:
        raise DataError(f"{dataset}: image of sample '{split.keys[0]}' holds values in "
                        f"[{float(np.nanmin(x)):.3g}, {hi:.3g}]; expected RGB in [0, 1] "
                        f"(or uint8 0-255); re-save the images")


def float_image_scale(path: Path) -> float:
    """1/255 when a float image array holds values above 1.5 (stored 0-255), else 1."""
    a = files.read_npy(path)
    if np.issubdtype(a.dtype, np.floating) and a.size and float(np.nanmax(a)) > 1.5:
        return 1.0 / 255.0
    return 1.0


def npy_shape(path: Path) -> tuple[int, int]:
    """(H, W) of an image stored as .npy, read from its header."""
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err})") from None
    shape = a.shape
    if len(shape) == 3 and shape[0] in (1, 3) and shape[-1] not in (1, 3, 4):
        return int(shape[1]), int(shape[2])
    return int(shape[0]), int(shape[1])


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, read from its header."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            w, h = img.size
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from None
    return int(h), int(w)


def lazy_splits(kept: dict[str, list], make_reader: Callable[[str], Any], tasks: Sequence[str],
                size: tuple[int, int]) -> dict[str, LazySplit]:
    """One :class:`LazySplit` per split; ``make_reader(split)`` builds its reader."""
    return {split: LazySplit(list(keys), make_reader(split), tuple(tasks), (3, *size))
            for split, keys in kept.items()}


def _size(cfg) -> tuple[int, int] | None:
    return None if cfg.size is None else (int(cfg.size[0]), int(cfg.size[1]))


def segmentation_spec(name: str, classes: int, description: str) -> TaskSpec:
    """A segmentation task with ``classes`` classes and the survey's metrics."""
    return TaskSpec(name, "segmentation", channels=classes, description=description,
                    metrics=SEG_METRICS)


def depth_spec(description: str = "depth") -> TaskSpec:
    """The ``depth`` task: one-channel dense regression with the usual depth metrics."""
    return TaskSpec("depth", "dense_regression", channels=1, description=description,
                    metrics=DEPTH_METRICS)


def normals_spec(description: str = "surface normals") -> TaskSpec:
    """The ``normals`` task with the angular-error metrics."""
    return TaskSpec("normals", "normals", channels=3, description=description,
                    metrics=NORMAL_METRICS)


def edge_spec(max_dist: float, description: str = "edges") -> TaskSpec:
    """The ``edge`` task: dense binary, the survey's class-balanced loss weight (0.95) and the
    benchmark's matching tolerance ``max_dist`` (a fraction of the image diagonal)."""
    return TaskSpec("edge", "dense_binary", channels=1, description=description,
                    metrics=EDGE_METRICS, options=(("pos_weight", 0.95), ("max_dist", max_dist)))


@dataclass(frozen=True)
class NpyFolderReader:
    """Decodes one sample of a folder of per-sample .npy arrays (mtan NYUD, Cityscapes).

    Attributes:
        folder: The split folder, holding ``image/`` and one folder per target.
        size: Output (H, W).
        dirs: (task, sub-folder) pairs; ``edge`` is derived from its folder's class map.
        classes: Segmentation classes (stored values 0..classes-1; others -> -1).
        scale: Factor for float images (1/255 for images stored as 0-255 floats).
    """

    folder: str
    size: tuple[int, int]
    dirs: tuple[tuple[str, str], ...]
    classes: int
    scale: float = 1.0

    def paths(self, key: str, tasks: Sequence[str]) -> list[Path]:
        """The files sample ``key`` reads for ``tasks``, the image first."""
        folder, dirs = Path(self.folder), dict(self.dirs)
        return [folder / "image" / f"{key}.npy"] + [folder / dirs[t] / f"{key}.npy"
                                                     for t in tasks]

    def __call__(self, key: str, tasks: Sequence[str]) -> tuple[np.ndarray, dict]:
        paths = self.paths(key, tasks)
        x = image_chw(files.read_npy(paths[0]), self.size, self.scale, where=str(paths[0]))
        targets = {}
        for task, path in zip(tasks, paths[1:], strict=True):
            array = files.read_npy(path)
            if task == "semseg":
                targets[task] = class_map(array, self.size, self.classes, where=str(path))
            elif task == "edge":
                labels = class_map(array, self.size, self.classes, where=str(path))
                targets[task] = edges_from_labels(labels)
            elif task == "depth":
                targets[task] = depth_map(array, self.size, str(path))
            elif task == "normals":
                targets[task] = normal_map(array, self.size, str(path))
            else:
                raise DataError(f"{self.folder}: no reader for task '{task}'")
        return x, targets


def load_npy_folders(root: Path, kind: str, name: str, cfg, dirs: dict[str, str],
                     tasks: Sequence[str], classes: int) -> tuple[dict[str, LazySplit], list]:
    """Lazy splits of the per-sample .npy layout ``{train,val}/{image,<dir>}/<i>.npy``.

    The official val becomes ``test`` and a seeded fraction of train becomes ``val``
    (:func:`official_splits`); every file is scanned first (:func:`scan_samples`).

    Args:
        root: The dataset folder.
        kind: Data kind, for the scan cache.
        name: Dataset name for messages.
        cfg: The ``data`` config section.
        dirs: Task -> label folder under each split folder.
        tasks: Tasks to read.
        classes: Segmentation classes.

    Returns:
        The three lazy splits, and the (file, reason) list of samples left out.
    """
    keys = official_splits(numeric_stems(root / "train" / "image"),
                           numeric_stems(root / "val" / "image"), cfg, name)
    task_dirs = tuple((t, dirs[t]) for t in tasks)
    folders = {"train": root / "train", "val": root / "train", "test": root / "val"}
    probes = {s: NpyFolderReader(str(f), (0, 0), task_dirs, classes) for s, f in folders.items()}
    samples = {s: [(k, probes[s].paths(k, tasks)) for k in ks] for s, ks in keys.items()}
    kept, skipped = scan_samples(root, kind, samples, cfg, name)
    first = root / "train" / "image" / f"{kept['train'][0]}.npy"
    size = _size(cfg) or npy_shape(first)
    scale = float_image_scale(first)
    parts = lazy_splits(kept, lambda s: NpyFolderReader(str(folders[s]), size, task_dirs,
                                                        classes, scale), tasks, size)
    check_first_sample(parts["train"], name)
    return parts, skipped
