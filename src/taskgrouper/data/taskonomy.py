"""The Taskonomy dataset (Zamir et al. 2018) read from its PNG files, as Standley et al. use it.

Layouts
-------
Three folder layouts are recognised (the first that matches wins):

- ``ROOT/<domain>/taskonomy/<building>/point_<P>_view_<V>_domain_<domain>.png``: the layout of
  the released tarballs as the Omnidata download tools unpack them;
- ``ROOT/<domain>/<building>/point_...png``: the same without the ``taskonomy`` level;
- ``ROOT/<building>/<domain>/point_...png``: one folder per building, the layout
  ``write_taskonomy`` of ``tests/data/taskonomy_layout.py`` writes.

A sample is one (building, point, view) with an ``rgb`` file; the key passed to the reader is
``(building, "point_<P>_view_<V>")``. The domain part of the label file names is read from the
files themselves, so the ``segmentsemantic`` spelling (folder or file name) works as well as
``segment_semantic``.

Tasks and label encodings
-------------------------
Task names are those of the synthetic scenes where a domain matches (so configs carry over);
the domain names are accepted as aliases and name the task as given.

===  ====================  ================  ===================================================
name domain                kind              decoding (stored value v)
===  ====================  ================  ===================================================
s    segment_semantic      segmentation      class v - 1; v = 0 -> -1 (unlabelled);
                                             ``data.classes`` classes (default 17)
d    depth_zbuffer         dense_regression  v / 512 metres; NaN where v >= 2^13 (16 m;
                                             65535 marks missing depth)
n    normal                normals           2 v / 255 - 1 per channel, renormalised; NaN where
                                             depth is invalid or the code is (0, 0, 0)
k    keypoints2d           dense_regression  v / 65535
e    edge_texture          dense_regression  v / 65535
o    edge_occlusion        dense_regression  v / 65535; NaN where depth is invalid
-    principal_curvature   dense_regression  channels 1-2, v / 255; NaN where depth is invalid
-    reshading             dense_regression  channel 1, v / 255; NaN where depth is invalid
-    depth_euclidean       dense_regression  v / 512 metres; NaN where v >= 2^13
-    keypoints3d           dense_regression  v / 65535
===  ====================  ================  ===================================================

The depth validity rule and the set of masked domains follow the data loader released with
Standley et al. (2020) (``mask = depth < 2**13``, applied to the depth, normal, occlusion-edge,
reshading and curvature losses); the paper itself only states that labels are normalised to
zero mean and unit standard deviation, which the trainer does. Where a masked task is asked for
and ``depth_zbuffer`` is on disk, the depth file of every sample is read for the mask (and a
sample without one is left out); without a depth folder only the task's own invalid codes
count. The unit of ``k``, ``e`` and ``o`` is the full 16-bit range, so 1.0 is the largest value
a PNG can hold (``KEYPOINT_PNG_SCALE`` of ``tests/data/taskonomy_layout.py`` differs: the synthetic
writer stretches keypoint responses by 10 before encoding). Note that the code released with
Standley et al. trains its edge task on ``edge_occlusion``; here ``e`` is ``edge_texture``, as
in the synthetic scenes, and their edge task is ``o`` (or ``edge_occlusion``).

Images and labels are resized to ``data.size`` (default 256x256, the paper's input size):
rgb and the unmasked continuous maps (keypoints, texture edges) bilinearly; everything with
invalid codes (segmentation, depth, normals, masked maps) by nearest neighbour, so an invalid
value is never blended into a valid one.

Splits
------
``data.split`` names one of the official split files ``train_val_test_<tiny|medium|full|
fullplus>.csv`` (looked for in ``ROOT/splits/`` and ``ROOT/``), or is the path of such a CSV
(columns ``id,train,val,test``, 1 or 0 per building). Without a split (``data.split: null``)
the buildings found are shuffled with ``data.seed`` and divided 80/10/10; with fewer than
three buildings their points are divided instead (every view of a point stays in one split).
``data.limit`` keeps that many samples per split, evenly spaced over the sorted keys, before any
file is opened. Every file of the kept samples is then checked (:func:`files.scan`, in
``data.workers`` processes, cached when ``data.cache``); a sample with a missing or corrupt file
is left out and listed in :attr:`MultiTaskData.skipped`.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskgrouper.data import files
from taskgrouper.data.base import SPLITS, DataError, LazySplit, MultiTaskData
from taskgrouper.errors import InputError
from taskgrouper.tasks import TaskSpec, closest

__all__ = [
    "DEFAULT_CLASSES",
    "DEFAULT_SIZE",
    "DEFAULT_TASKS",
    "DEPTH_INVALID",
    "DEPTH_UNITS_PER_METRE",
    "DEPTH_VALID_BELOW",
    "DOMAINS",
    "SPLIT_SIZES",
    "Domain",
    "TaskonomyReader",
    "decode_depth",
    "decode_normals",
    "decode_segmentation",
    "depth_valid",
    "load",
    "read_split_csv",
    "resolve_task",
]

#: depth_zbuffer and depth_euclidean store 1/512 m per unit.
DEPTH_UNITS_PER_METRE = 512.0
#: Stored depth values at or above this (16 m) are invalid (Standley et al.'s released loader).
DEPTH_VALID_BELOW = 2 ** 13
#: The stored value of pixels without depth (sky, holes in the mesh).
DEPTH_INVALID = 65535
#: Segmentation classes of the real Taskonomy ``segment_semantic`` maps (values 1..17).
DEFAULT_CLASSES = 17
#: Input size of the paper's networks.
DEFAULT_SIZE = (256, 256)
#: The five tasks of Standley et al. (2020), used when no task is named.
DEFAULT_TASKS = ("s", "d", "n", "k", "e")
#: The official split files: ``train_val_test_<size>.csv``.
SPLIT_SIZES = ("tiny", "medium", "full", "fullplus")

_FILE_RE = re.compile(r"^(point_(\d+)_view_(\d+))_domain_(.+)\.png$")


@dataclass(frozen=True)
class Domain:
    """One Taskonomy label domain and how it is decoded.

    Attributes:
        name: Canonical domain (folder) name.
        spellings: Folder names that hold it, tried in order.
        short: Task name shared with the synthetic scenes (None: the domain name only).
        kind: Task kind (:data:`taskgrouper.tasks.KINDS`).
        channels: Target channels (classes for segmentation: see ``data.classes``).
        masked: Invalid (NaN) where the z-buffer depth is invalid.
        resize: ``"nearest"`` or ``"bilinear"``.
        description: For reports.
    """

    name: str
    spellings: tuple[str, ...]
    short: str | None
    kind: str
    channels: int
    masked: bool
    resize: str
    description: str


DOMAINS: dict[str, Domain] = {d.name: d for d in (
    Domain("segment_semantic", ("segment_semantic", "segmentsemantic"), "s", "segmentation",
           DEFAULT_CLASSES, False, "nearest", "semantic segmentation"),
    Domain("depth_zbuffer", ("depth_zbuffer",), "d", "dense_regression", 1, True, "nearest",
           "z-buffer depth (m)"),
    Domain("normal", ("normal", "normals"), "n", "normals", 3, True, "nearest",
           "surface normals"),
    Domain("keypoints2d", ("keypoints2d",), "k", "dense_regression", 1, False, "bilinear",
           "2D keypoints"),
    Domain("edge_texture", ("edge_texture",), "e", "dense_regression", 1, False, "bilinear",
           "texture edges"),
    Domain("edge_occlusion", ("edge_occlusion",), "o", "dense_regression", 1, True, "nearest",
           "occlusion edges"),
    Domain("principal_curvature", ("principal_curvature",), None, "dense_regression", 2, True,
           "nearest", "principal curvatures"),
    Domain("reshading", ("reshading",), None, "dense_regression", 1, True, "nearest",
           "reshading"),
    Domain("depth_euclidean", ("depth_euclidean",), None, "dense_regression", 1, False,
           "nearest", "euclidean depth (m)"),
    Domain("keypoints3d", ("keypoints3d",), None, "dense_regression", 1, False, "bilinear",
           "3D keypoints"),
)}

_ALIASES: dict[str, str] = {}
for _d in DOMAINS.values():
    for _name in (_d.name, *_d.spellings, *((_d.short,) if _d.short else ())):
        _ALIASES[_name] = _d.name
del _d, _name


def resolve_task(name: str) -> Domain:
    """The domain a task name (short name or domain name) stands for.

    Raises:
        DataError: An unknown name, with the closest known one.
    """
    if name not in _ALIASES:
        raise DataError(f"unknown Taskonomy task '{name}'; {closest(name, _ALIASES)}")
    return DOMAINS[_ALIASES[name]]


# ---------------------------------------------------------------------------------------------
# decoding


def _grey(raw: np.ndarray) -> np.ndarray:
    """The first channel of a (H, W, C) image, or the (H, W) image itself."""
    return raw[..., 0] if raw.ndim == 3 else raw


def depth_valid(raw: np.ndarray) -> np.ndarray:
    """(H, W) bool: stored depth values that are valid (below :data:`DEPTH_VALID_BELOW`)."""
    return _grey(raw) < DEPTH_VALID_BELOW


def decode_depth(raw: np.ndarray) -> np.ndarray:
    """Stored depth (1/512 m units) -> (1, H, W) float32 metres, NaN where invalid."""
    raw = _grey(raw)
    metres = raw.astype(np.float32) / np.float32(DEPTH_UNITS_PER_METRE)
    return np.where(raw < DEPTH_VALID_BELOW, metres, np.float32(np.nan))[None]


def decode_normals(raw: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Stored normals (H, W, 3) uint8 -> (3, H, W) float32 unit vectors, NaN where invalid.

    Each channel decodes as ``2 v / 255 - 1``; the vector is then renormalised. A pixel is
    invalid where ``valid`` (e.g. the depth mask) is False, where the code is (0, 0, 0), and
    where the decoded vector is far from unit length (norm below 0.5: no real normal
    encodes so).
    """
    if raw.ndim != 3 or raw.shape[2] < 3:
        raise InputError(f"normal maps are (H, W, 3) RGB images, got shape {raw.shape}")
    code = raw[..., :3]
    scale = 255.0 if raw.dtype != np.uint16 else 65535.0
    vec = code.astype(np.float32).transpose(2, 0, 1) * np.float32(2.0 / scale) - 1.0
    norm = np.linalg.norm(vec, axis=0)
    ok = (norm >= 0.5) & np.any(code != 0, axis=2)
    if valid is not None:
        ok &= valid
    with np.errstate(invalid="ignore", divide="ignore"):
        vec = vec / norm
    return np.where(ok[None], vec, np.float32(np.nan)).astype(np.float32)


def decode_segmentation(raw: np.ndarray, classes: int) -> np.ndarray:
    """Stored labels (value = class + 1, 0 = unlabelled) -> (H, W) int64, -1 = ignore.

    Values above ``classes`` (no such class) also become -1.
    """
    labels = _grey(raw).astype(np.int64) - 1
    labels[labels >= classes] = -1
    return labels


def _unit(raw: np.ndarray) -> np.ndarray:
    """Integer image -> float32 in [0, 1] by its dtype's range (16-bit: /65535, 8-bit: /255)."""
    scale = 65535.0 if raw.dtype == np.uint16 else 255.0
    return raw.astype(np.float32) / np.float32(scale)


# ---------------------------------------------------------------------------------------------
# layout


@dataclass(frozen=True)
class Layout:
    """Where the files of a Taskonomy folder are.

    Attributes:
        root: The dataset folder.
        style: ``"domain/taskonomy/building"``, ``"domain/building"`` or
            ``"building/domain"``.
    """

    root: str
    style: str

    def folder(self, domain_folder: str, building: str) -> str:
        """The folder holding one domain of one building."""
        if self.style == "domain/taskonomy/building":
            return os.path.join(self.root, domain_folder, "taskonomy", building)
        if self.style == "domain/building":
            return os.path.join(self.root, domain_folder, building)
        return os.path.join(self.root, building, domain_folder)

    def file(self, domain_folder: str, token: str, building: str, stem: str) -> str:
        """The file of one sample in one domain (``token``: the domain part of its name)."""
        return os.path.join(self.folder(domain_folder, building), f"{stem}_domain_{token}.png")

    def pattern(self, domain_folder: str) -> str:
        """A human readable path pattern, for messages."""
        return self.folder(domain_folder, "<building>") + os.sep + "point_<P>_view_<V>_domain_*.png"


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_dir())
    except OSError:
        return []


def _detect(root: Path) -> tuple[Layout, list[str]]:
    """The layout of ``root`` and its buildings (sorted)."""
    r = str(root)
    if (root / "rgb" / "taskonomy").is_dir():
        layout = Layout(r, "domain/taskonomy/building")
        buildings = _subdirs(os.path.join(r, "rgb", "taskonomy"))
    elif (root / "rgb").is_dir():
        layout = Layout(r, "domain/building")
        buildings = _subdirs(os.path.join(r, "rgb"))
    else:
        layout = Layout(r, "building/domain")
        buildings = [b for b in _subdirs(r) if os.path.isdir(os.path.join(r, b, "rgb"))]
    if not buildings and layout.style != "building/domain":
        rgb = os.path.join(r, "rgb", "taskonomy") if "taskonomy" in layout.style \
            else os.path.join(r, "rgb")
        raise DataError(
            f"{rgb} holds no building folder; expected {layout.pattern('rgb')} (if {r} is one "
            f"building's folder, point data.path at the folder above it)")
    if not buildings:
        raise DataError(
            f"{root}: no rgb folder found; expected Taskonomy files as "
            f"{root}/<building>/rgb/point_<P>_view_<V>_domain_rgb.png or "
            f"{root}/rgb/taskonomy/<building>/point_<P>_view_<V>_domain_rgb.png (or "
            f"{root}/rgb/<building>/...); point data.path at the folder holding them")
    return layout, buildings


def _find_domain(layout: Layout, buildings: Sequence[str], domain: Domain,
                 ) -> tuple[str, str] | None:
    """(folder spelling, file-name token) of a domain on disk, or None when it is absent."""
    for spelling in domain.spellings:
        present = [b for b in buildings if os.path.isdir(layout.folder(spelling, b))]
        if not present:
            continue
        for b in present:  # the file-name token as the files spell it
            with os.scandir(layout.folder(spelling, b)) as it:
                for entry in it:
                    m = _FILE_RE.match(entry.name)
                    if m:
                        return spelling, m.group(4)
        return spelling, spelling
    return None


def _natural(stem: str) -> tuple[int, int]:
    m = re.match(r"point_(\d+)_view_(\d+)", stem)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _samples(layout: Layout, building: str) -> list[tuple[str, str]]:
    """The (building, stem) keys of a building's rgb files, sorted by point and view."""
    stems = []
    with os.scandir(layout.folder("rgb", building)) as it:
        for entry in it:
            m = _FILE_RE.match(entry.name)
            if m and m.group(4) == "rgb":
                stems.append(m.group(1))
    stems.sort(key=_natural)
    return [(building, s) for s in stems]


# ---------------------------------------------------------------------------------------------
# splits


def _split_file(root: Path, split: str) -> Path:
    """The split CSV ``data.split`` names."""
    if split in SPLIT_SIZES:
        candidates = [root / "splits" / f"train_val_test_{split}.csv",
                      root / f"train_val_test_{split}.csv"]
        for c in candidates:
            if c.is_file():
                return c
        raise DataError(
            f"data.split '{split}': no split file {candidates[0]} or {candidates[1]}; copy "
            f"train_val_test_{split}.csv from the Taskonomy release there, set data.split to "
            f"the CSV's path, or set data.split to null to split the buildings found")
    path = Path(split).expanduser()
    if not path.is_absolute() and not path.exists() and (root / path).exists():
        path = root / path
    if path.is_file():
        return path
    raise DataError(f"data.split '{split}' is neither a split size "
                    f"({closest(split, SPLIT_SIZES)}) nor an existing CSV file")


def read_split_csv(path: Path) -> dict[str, str]:
    """Building -> split name from a CSV with columns ``id,train,val,test`` (1 or 0).

    Raises:
        DataError: Unreadable file, missing columns, a value that is not 0/1, or a building
            in more than one split.
    """
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = {(h or "").strip() for h in reader.fieldnames or ()}
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read the split file ({err})") from None
    missing = [c for c in ("id", *SPLITS) if c not in header]
    if missing:
        raise DataError(f"{path}: a split file needs the columns id,train,val,test; missing "
                        f"{', '.join(missing)}")
    out: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        chosen = []
        for s in SPLITS:
            try:
                flag = float(row[s] or 0)
            except ValueError:
                raise DataError(f"{path}, line {line}: '{s}' is '{row[s]}', not 1 or 0") from None
            if flag:
                chosen.append(s)
        if len(chosen) > 1:
            raise DataError(f"{path}, line {line}: building '{row['id']}' is in "
                            f"{' and '.join(chosen)}; mark one split per building")
        if chosen and row["id"]:
            out[row["id"]] = chosen[0]
    return out


def _fractions(n: int) -> tuple[int, int, int]:
    """(train, val, test) counts for n groups, 80/10/10 with at least one each (n >= 3)."""
    n_val = max(1, round(0.1 * n))
    n_test = max(1, round(0.1 * n))
    return n - n_val - n_test, n_val, n_test


def _assign(keys_by_building: dict[str, list], cfg, root: Path) -> dict[str, list]:
    """Sample keys per split."""
    buildings = sorted(keys_by_building)
    out: dict[str, list] = {s: [] for s in SPLITS}
    if cfg.split:
        path = _split_file(root, cfg.split)
        table = read_split_csv(path)
        for b in buildings:
            if b in table:
                out[table[b]].extend(keys_by_building[b])
        for s in SPLITS:
            if not out[s]:
                listed = sorted(b for b, v in table.items() if v == s)
                shown = ", ".join(listed[:5]) + (" ..." if len(listed) > 5 else "")
                raise DataError(
                    f"{path}: no building of the '{s}' split is under {root} (the file lists "
                    f"{len(listed)}: {shown or 'none'}; found {', '.join(buildings[:5])}"
                    f"{' ...' if len(buildings) > 5 else ''}); download those buildings or "
                    f"use another split file")
        return out
    rng = np.random.default_rng(cfg.seed)
    if len(buildings) >= 3:
        order = [buildings[i] for i in rng.permutation(len(buildings))]
        n_train, n_val, _ = _fractions(len(order))
        parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
                 "test": order[n_train + n_val:]}
        for s in SPLITS:
            for b in sorted(parts[s]):
                out[s].extend(keys_by_building[b])
        return out
    # fewer than three buildings: divide their points, keeping the views of a point together
    points = sorted({(b, _natural(stem)[0]) for b in buildings for _, stem in keys_by_building[b]})
    if len(points) < 3:
        raise DataError(f"{root}: {len(points)} point(s) in {len(buildings)} building(s) cannot "
                        f"be divided into train, val and test; add buildings or points")
    order = [points[i] for i in rng.permutation(len(points))]
    n_train, n_val, _ = _fractions(len(order))
    which = {p: "train" for p in order[:n_train]}
    which.update({p: "val" for p in order[n_train:n_train + n_val]})
    which.update({p: "test" for p in order[n_train + n_val:]})
    for b in buildings:
        for key in keys_by_building[b]:
            out[which[(b, _natural(key[1])[0])]].append(key)
    return out


def _limit(keys: list, limit: int) -> list:
    """At most ``limit`` keys, evenly spaced (0: all)."""
    if not limit or len(keys) <= limit:
        return keys
    index = np.unique(np.linspace(0, len(keys) - 1, limit).round().astype(int))
    return [keys[i] for i in index]


# ---------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class TaskonomyReader:
    """Decodes one sample: the :data:`taskgrouper.data.base.Reader` of Taskonomy splits.

    A frozen dataclass of plain values, so DataLoader worker processes can unpickle it.

    Attributes:
        layout: Where the files are.
        size: Output (H, W).
        tasks: (task name, domain name, folder spelling, file token) per readable task.
        depth: (folder spelling, file token) of ``depth_zbuffer`` for the masks of masked
            tasks; None when the dataset has no depth.
        classes: Segmentation classes.
    """

    layout: Layout
    size: tuple[int, int]
    tasks: tuple[tuple[str, str, str, str], ...]
    depth: tuple[str, str] | None
    classes: int = DEFAULT_CLASSES

    def rgb_path(self, key: tuple[str, str]) -> str:
        return self.layout.file("rgb", "rgb", key[0], key[1])

    def task_path(self, key: tuple[str, str], task: str) -> str:
        entry = self._entries()[task]
        return self.layout.file(entry[2], entry[3], key[0], key[1])

    def depth_path(self, key: tuple[str, str]) -> str | None:
        if self.depth is None:
            return None
        return self.layout.file(self.depth[0], self.depth[1], key[0], key[1])

    def _entries(self) -> dict[str, tuple[str, str, str, str]]:
        return {t[0]: t for t in self.tasks}

    def __call__(self, key: tuple[str, str], tasks: Sequence[str],
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        rgb = files.read_image(self.rgb_path(key))
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        x = files.resize(_unit(rgb[..., :3]), self.size, "bilinear")
        x = np.clip(x, 0.0, 1.0).transpose(2, 0, 1).astype(np.float32)

        entries = self._entries()
        mask = None
        raw_depth = None
        if any(DOMAINS[entries[t][1]].masked for t in tasks) and self.depth is not None:
            raw_depth = files.resize(_grey(files.read_image(self.depth_path(key))), self.size,
                                     "nearest")
            mask = depth_valid(raw_depth)

        targets: dict[str, np.ndarray] = {}
        for task in tasks:
            _, name, folder, token = entries[task]
            domain = DOMAINS[name]
            if name == "depth_zbuffer" and raw_depth is not None:
                raw = raw_depth
            else:
                raw = files.read_image(self.layout.file(folder, token, key[0], key[1]))
                if name not in ("normal", "principal_curvature"):
                    raw = _grey(raw)
                if domain.resize == "nearest":  # bilinear maps are resized once decoded
                    raw = files.resize(raw, self.size, "nearest")
            targets[task] = self._decode(domain, raw, mask)
        return x, targets

    def _decode(self, domain: Domain, raw: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        name = domain.name
        if name == "segment_semantic":
            return decode_segmentation(raw, self.classes)
        if name in ("depth_zbuffer", "depth_euclidean"):
            return decode_depth(raw)
        if name == "normal":
            if raw.ndim == 2:  # a grey file cannot hold normals: every pixel is invalid
                return np.full((3, *raw.shape), np.nan, dtype=np.float32)
            return decode_normals(raw, mask)
        if name == "principal_curvature":
            if raw.ndim == 2:
                raw = np.repeat(raw[..., None], 2, axis=2)
            value = _unit(raw[..., :2]).transpose(2, 0, 1)
        elif domain.resize == "bilinear":
            value = files.resize(_unit(_grey(raw)), self.size, "bilinear")[None]
        else:
            value = _unit(_grey(raw))[None]
        value = value.astype(np.float32)
        if domain.masked and mask is not None:
            value = np.where(mask[None], value, np.float32(np.nan))
        return value


# ---------------------------------------------------------------------------------------------
# loading


def _specs(requested: list[tuple[str, Domain]], classes: int) -> dict[str, TaskSpec]:
    specs = {}
    for task, domain in requested:
        if domain.kind == "segmentation":
            specs[task] = TaskSpec(task, "segmentation", channels=classes,
                                   description=f"{domain.description} ({classes} classes)")
        elif domain.kind == "normals":
            specs[task] = TaskSpec(task, "normals", channels=3, description=domain.description)
        elif domain.name in ("depth_zbuffer", "depth_euclidean"):
            specs[task] = TaskSpec(task, "dense_regression", channels=domain.channels,
                                   description=domain.description)
        else:  # maps near zero almost everywhere: relative errors mean nothing
            specs[task] = TaskSpec(task, "dense_regression", channels=domain.channels,
                                   metrics=("l1", "rmse"), description=domain.description)
    return specs


def _requested(tasks: Sequence[str] | None, layout: Layout, buildings: list[str],
               ) -> tuple[list[tuple[str, Domain]], dict[str, tuple[str, str]]]:
    """The (task, domain) pairs to load and the on-disk (spelling, token) of each domain."""
    found: dict[str, tuple[str, str] | None] = {}

    def on_disk(domain: Domain) -> tuple[str, str] | None:
        if domain.name not in found:
            found[domain.name] = _find_domain(layout, buildings, domain)
        return found[domain.name]

    if tasks is None:
        pairs = [(t, resolve_task(t)) for t in DEFAULT_TASKS]
        pairs = [(t, d) for t, d in pairs if on_disk(d) is not None]
        if not pairs:
            raise DataError(
                f"{layout.root}: none of the default tasks' domain folders "
                f"({', '.join(DOMAINS[_ALIASES[t]].name for t in DEFAULT_TASKS)}) is there; "
                f"expected e.g. {layout.pattern('depth_zbuffer')}; name the tasks to load")
    else:
        pairs = [(str(t), resolve_task(str(t))) for t in tasks]
        seen: dict[str, str] = {}
        for t, d in pairs:
            if d.name in seen:
                raise DataError(f"tasks '{seen[d.name]}' and '{t}' both name the Taskonomy "
                                f"domain '{d.name}'; list it once")
            seen[d.name] = t
        for t, d in pairs:
            if on_disk(d) is None:
                raise DataError(
                    f"{layout.root}: task '{t}' needs the '{d.name}' domain folder, which is "
                    f"missing; expected {layout.pattern(d.name)}; download that domain or "
                    f"drop task '{t}'")
    return pairs, {name: where for name, where in found.items() if where is not None}


def _check_first(reader: TaskonomyReader, key: tuple[str, str],
                 pairs: list[tuple[str, Domain]]) -> None:
    """Raise DataError for label files whose format cannot be the domain's (checked once)."""
    for task, domain in pairs:
        if domain.name not in ("segment_semantic", "normal"):
            continue
        path = reader.task_path(key, task)
        raw = files.read_image(path)
        if domain.name == "normal" and (raw.ndim != 3 or raw.shape[2] < 3):
            raise DataError(f"{path}: a normal map must be an RGB image, got shape {raw.shape}; "
                            f"check that the '{domain.name}' folder holds surface normals")
        if domain.name == "segment_semantic":
            top = int(_grey(raw).max())
            if top > reader.classes:
                raise DataError(
                    f"{path}: label value {top} (class {top - 1}) but data.classes is "
                    f"{reader.classes}; set data.classes to at least {top} (value = class + 1, "
                    f"0 = unlabelled)")


def load(cfg, tasks: Sequence[str] | None = None) -> MultiTaskData:
    """Load a Taskonomy folder (see the module docstring for layouts, encodings and splits).

    Args:
        cfg: The ``data`` section (:class:`taskgrouper.config.DataConfig`): ``path``, ``size``,
            ``split``, ``limit``, ``seed``, ``classes``, ``workers``, ``cache``.
        tasks: Task names (short names such as ``"d"`` or domain names such as
            ``"depth_zbuffer"``); None: the paper's five tasks whose domains are on disk.

    Returns:
        Lazy train/val/test splits read by a :class:`TaskonomyReader`.

    Raises:
        DataError: Not a Taskonomy folder, an unknown task (with the closest name), a missing
            domain folder, a bad split file, or a split without any usable sample.
    """
    if not cfg.path:
        raise DataError("data.path is required for Taskonomy: set it to the dataset folder")
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path '{root}' is not a folder; point it at the Taskonomy root")
    layout, buildings = _detect(root)
    pairs, where = _requested(tasks, layout, buildings)
    classes = int(cfg.classes) if cfg.classes else DEFAULT_CLASSES
    size = tuple(int(s) for s in cfg.size) if cfg.size else DEFAULT_SIZE
    needs_mask = any(d.masked for _, d in pairs)
    if needs_mask and "depth_zbuffer" not in where:
        where_depth = _find_domain(layout, buildings, DOMAINS["depth_zbuffer"])
        if where_depth is not None:
            where["depth_zbuffer"] = where_depth
    reader = TaskonomyReader(
        layout=layout, size=size,
        tasks=tuple((t, d.name, *where[d.name]) for t, d in pairs),
        depth=where.get("depth_zbuffer") if needs_mask else None,
        classes=classes)

    keys_by_building = {b: _samples(layout, b) for b in buildings}
    if not any(keys_by_building.values()):
        raise DataError(f"{root}: the rgb folders hold no file named "
                        f"point_<P>_view_<V>_domain_rgb.png; expected {layout.pattern('rgb')}")
    parts = _assign({b: k for b, k in keys_by_building.items() if k}, cfg, root)
    parts = {s: _limit(parts[s], cfg.limit) for s in SPLITS}

    # every file of every kept sample, checked once
    mask_only = reader.depth is not None and not any(d.name == "depth_zbuffer" for _, d in pairs)
    per_key: dict[tuple[str, str], list[str]] = {}
    for s in SPLITS:
        for key in parts[s]:
            paths = [reader.rgb_path(key), *(reader.task_path(key, t) for t, _ in pairs)]
            if mask_only:
                paths.append(reader.depth_path(key))
            per_key[key] = paths
    cache = files.scan_cache_path(root, "taskonomy") if cfg.cache else None
    bad = files.scan([p for ps in per_key.values() for p in ps], workers=cfg.workers,
                     cache=cache)
    skipped: list[tuple[str, str]] = []
    if bad:
        depth_files = {reader.depth_path(k) for k in per_key} if mask_only else set()
        for path, reason in bad.items():
            if path in depth_files:
                reason += " (the depth file is the validity mask of the masked tasks)"
            skipped.append((path, reason))
        for s in SPLITS:
            parts[s] = [k for k in parts[s] if not any(p in bad for p in per_key[k])]
    for s in SPLITS:
        if not parts[s]:
            shown = "; ".join(f"{p}: {r}" for p, r in skipped[:3])
            raise DataError(f"{root}: the '{s}' split has no sample whose files are all "
                            f"readable" + (f" (e.g. {shown})" if shown else "")
                            + "; fix or download the files, or choose another split")
    _check_first(reader, parts["train"][0], pairs)

    names = tuple(t for t, _ in pairs)
    shape = (3, *size)
    return MultiTaskData(
        tasks=_specs(pairs, classes),
        train=LazySplit(parts["train"], reader, names, shape),
        val=LazySplit(parts["val"], reader, names, shape),
        test=LazySplit(parts["test"], reader, names, shape),
        name=f"taskonomy:{root}",
        skipped=skipped,
    )
