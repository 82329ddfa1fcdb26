"""Small copies of the real datasets' on-disk layouts, written with the real file formats.

Each writer fills a folder the way the published archive does (JPEG and PNG through PIL,
``.npy`` through numpy, MATLAB files through ``scipy.io.savemat``) and returns the stored
values per sample id, so tests can check what the loaders decode against what was written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat, savemat

SIZE = (24, 32)


def _image(rng, h: int, w: int) -> np.ndarray:
    """A smooth RGB uint8 image (JPEG keeps smooth images close to what was written)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.uniform(40, 200, size=3)
    img = np.stack([base[c] + 30 * np.sin(xx / w * np.pi * (c + 1)) + 20 * yy / h
                    for c in range(3)], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _normals(rng, h: int, w: int) -> np.ndarray:
    """(H, W, 3) unit normals in [-1, 1] with a zero (invalid) block."""
    n = rng.normal(size=(h, w, 3)).astype(np.float32)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[:3, :4] = 0.0
    return n


def _blocks(rng, h: int, w: int, values, block: int = 4) -> np.ndarray:
    """A label map of constant blocks, values drawn from ``values``."""
    small = rng.choice(np.asarray(values), size=(-(-h // block), -(-w // block)))
    return np.kron(small, np.ones((block, block), dtype=small.dtype))[:h, :w]


def _write_list(path: Path, ids) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def write_nyud_mt(root: Path, n_train: int = 6, n_val: int = 3, size=SIZE, seed: int = 0):
    """The NYUD_MT layout; returns {id: {image, segmentation, depth, normals, edge}}."""
    rng = np.random.default_rng(seed)
    h, w = size
    for sub in ("images", "segmentation", "depth", "normals", "edge"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"{i:04d}" for i in range(n_train + n_val)]
    _write_list(root / "gt_sets" / "train.txt", ids[:n_train])
    _write_list(root / "gt_sets" / "val.txt", ids[n_train:])
    truth = {}
    for i in ids:
        img = _image(rng, h, w)
        seg = _blocks(rng, h, w, np.arange(0, 41)).astype(np.uint8)
        seg[0, 0], seg[-1, -1] = 0, 40  # unlabelled and the last class
        depth = rng.uniform(0.5, 10.0, size=(h, w)).astype(np.float32)
        depth[-2:, :] = 0.0  # no measurement
        normals = _normals(rng, h, w)
        edge = (rng.uniform(size=(h, w)) < 0.1).astype(np.float32)
        Image.fromarray(img).save(root / "images" / f"{i}.jpg", quality=95)
        Image.fromarray(seg).save(root / "segmentation" / f"{i}.png")
        np.save(root / "depth" / f"{i}.npy", depth)
        np.save(root / "normals" / f"{i}.npy", normals)
        np.save(root / "edge" / f"{i}.npy", edge)
        truth[i] = {"image": img, "segmentation": seg, "depth": depth, "normals": normals,
                    "edge": edge}
    return ids[:n_train], ids[n_train:], truth


def write_mtan(root: Path, n_train: int = 6, n_val: int = 3, size=SIZE, seed: int = 0,
               classes: int = 13, channel_first: bool = False,
               label_dir: str = "label", normals: bool = True, extra_labels=()):
    """The mtan/Cityscapes npy layout; returns {(split, i): {image, label, depth, normal}}.

    The labels are also stored under their folder's name (``label_7``, ``label_19``).

    Args:
        label_dir: The label folder (``label`` for NYUD, ``label_7`` for Cityscapes).
        extra_labels: (folder, classes) pairs of further label folders.
        channel_first: Store images as (3, H, W).
    """
    rng = np.random.default_rng(seed)
    h, w = size
    truth = {}
    for split, n in (("train", n_train), ("val", n_val)):
        for sub in ("image", label_dir, "depth", *([d for d, _ in extra_labels]),
                    *(["normal"] if normals else [])):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.uniform(0, 1, size=(h, w, 3)).astype(np.float32)
            label = _blocks(rng, h, w, np.arange(-1, classes)).astype(np.float32)
            depth = rng.uniform(0.1, 5.0, size=(h, w, 1)).astype(np.float32)
            depth[:2] = 0.0
            np.save(root / split / "image" / f"{i}.npy",
                    img.transpose(2, 0, 1) if channel_first else img)
            np.save(root / split / label_dir / f"{i}.npy", label)
            np.save(root / split / "depth" / f"{i}.npy", depth)
            entry = {"image": img, "label": label, label_dir: label, "depth": depth}
            for folder, k in extra_labels:
                extra = _blocks(rng, h, w, np.arange(-1, k)).astype(np.float32)
                np.save(root / split / folder / f"{i}.npy", extra)
                entry[folder] = extra
            if normals:
                normal = _normals(rng, h, w)
                np.save(root / split / "normal" / f"{i}.npy", normal)
                entry["normal"] = normal
            truth[(split, str(i))] = entry
    return truth


# ---------------------------------------------------------------------------- PASCAL_MT

#: Context classes used in the fixture: person (284) and wall (440) have trusted normals,
#: sky (360) does not.
CONTEXT_CLASSES = (284, 440, 360)


def pascal_part_anno(objects, imname: str = "img") -> np.ndarray:
    """The Pascal-Part ``anno`` struct as savemat writes it.

    Args:
        objects: [(class name, class index, (H, W) mask, [(part name, (H, W) mask)] or None)].
    """
    obj_dtype = [("class", object), ("class_ind", object), ("mask", object), ("parts", object)]
    objs = np.empty((1, len(objects)), dtype=obj_dtype)
    for j, (cls, ind, mask, parts) in enumerate(objects):
        if parts:
            part_arr = np.empty((1, len(parts)), dtype=[("part_name", object), ("mask", object)])
            for k, (pname, pmask) in enumerate(parts):
                part_arr[0, k] = (pname, pmask.astype(np.uint8))
        else:
            part_arr = np.zeros((0, 0))
        objs[0, j] = (cls, np.array([[ind]], dtype=np.uint8), mask.astype(np.uint8), part_arr)
    anno = np.empty((1, 1), dtype=[("imname", object), ("objects", object)])
    anno[0, 0] = (imname, objs)
    return anno


def _person_parts(h: int, w: int):
    """A person filling the left half: head rows, torso, an upper arm and a foot."""
    person = np.zeros((h, w), bool)
    person[:, : w // 2] = True
    head = np.zeros((h, w), bool)
    head[: h // 4, : w // 2] = True
    torso = np.zeros((h, w), bool)
    torso[h // 4: h // 2, : w // 4] = True
    luarm = np.zeros((h, w), bool)
    luarm[h // 4: h // 2, w // 4: w // 2] = True
    lfoot = np.zeros((h, w), bool)
    lfoot[-3:, : w // 2] = True
    expected = np.zeros((h, w), np.int64)
    expected[head], expected[torso], expected[luarm], expected[lfoot] = 1, 2, 3, 6
    parts = [("head", head), ("torso", torso), ("luarm", luarm), ("lfoot", lfoot)]
    return person, parts, expected


def write_pascal(root: Path, n_train: int = 6, n_val: int = 3, size=SIZE, seed: int = 0):
    """The PASCAL_MT layout; returns (train ids, val ids, {id: stored arrays + expected parts}).

    Sample 1 has no person (a dog), sample 2 a person without part annotation next to a
    person with parts; sample 3 is stored at a different size (28 x 20).
    """
    rng = np.random.default_rng(seed)
    for sub in ("JPEGImages", "semseg/pascal-context", "human_parts", "normals_distill",
                "sal_distill", "pascal-context/trainval"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"2008_{i:06d}" for i in range(n_train + n_val)]
    _write_list(root / "ImageSets" / "Context" / "train.txt", ids[:n_train])
    _write_list(root / "ImageSets" / "Context" / "val.txt", ids[n_train:])
    truth = {}
    for n, i in enumerate(ids):
        h, w = (28, 20) if n == 3 else size
        img = _image(rng, h, w)
        semseg = _blocks(rng, h, w, np.r_[np.arange(0, 21), 255]).astype(np.uint8)
        semseg[0, 0] = 255
        context = _blocks(rng, h, w, CONTEXT_CLASSES).astype(np.uint16)
        normals = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        sal = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
        sal[0, :2] = (127, 128)
        person, parts, expected = _person_parts(h, w)
        if n == 1:
            objects = [("dog", 12, person, None)]
            expected = np.full((h, w), -1, np.int64)
        elif n == 2:
            other = np.zeros((h, w), bool)
            other[:4, w // 2 + 2:] = True
            objects = [("person", 15, person, parts), ("person", 15, other, None)]
            expected = expected.copy()
            expected[other] = -1
        else:
            objects = [("person", 15, person, parts)]
        Image.fromarray(img).save(root / "JPEGImages" / f"{i}.jpg", quality=95)
        Image.fromarray(semseg).save(root / "semseg" / "pascal-context" / f"{i}.png")
        Image.fromarray(normals).save(root / "normals_distill" / f"{i}.png")
        Image.fromarray(sal).save(root / "sal_distill" / f"{i}.png")
        savemat(root / "human_parts" / f"{i}.mat", {"anno": pascal_part_anno(objects, i)})
        savemat(root / "pascal-context" / "trainval" / f"{i}.mat", {"LabelMap": context})
        truth[i] = {"image": img, "semseg": semseg, "context": context, "normals": normals,
                    "sal": sal, "parts": expected}
    return ids[:n_train], ids[n_train:], truth


def survey_part_classes(path: Path) -> list[int]:
    """Object class indices read with the survey's positional indexing of the loadmat nesting."""
    objects = loadmat(path)["anno"][0][0][1][0]
    return [int(objects[j][1][0][0]) for j in range(len(objects))]


def truncate(path: Path) -> None:
    """Cut a file to half its length, as an interrupted download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
