"""Reading the files of real datasets: images, arrays and MATLAB files, checked and resized.

Every reader raises :class:`~taskgrouper.data.base.DataError` naming the file, so a bad file
never surfaces as a bare PIL or numpy traceback. :func:`scan` checks a whole file list up front
(in parallel, results cached) so loaders can leave corrupt samples out and list them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from taskgrouper.data.base import DataError
from taskgrouper.errors import InputError

__all__ = ["check_file", "read_image", "read_mat", "read_npy", "resize", "scan",
           "scan_cache_path"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_image(path: str | Path) -> np.ndarray:
    """An image file as an array: (H, W) for grey, (H, W, 3) for colour, dtype as stored.

    16-bit PNGs come back as uint16 (or int32 where PIL decodes them as mode "I"), palette PNGs
    as their indices, so label maps keep their values.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.mode in ("RGBA", "CMYK", "YCbCr", "LA"):
                img = img.convert("RGB")
            array = np.asarray(img)
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path}: not a readable image ({err}); re-export or remove the "
                        f"file") from None
    if array.dtype == np.int32 and array.size and array.max() <= 65535 and array.min() >= 0:
        array = array.astype(np.uint16)
    return array


def read_npy(path: str | Path) -> np.ndarray:
    """A .npy array; a missing or truncated file raises :class:`DataError` naming it."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err}); re-save it with "
                        f"numpy.save") from None


def read_mat(path: str | Path) -> dict:
    """A MATLAB .mat file (v5-v7.2) as the dict ``scipy.io.loadmat`` returns."""
    from scipy.io import loadmat

    try:
        return loadmat(path)
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except (ValueError, OSError, TypeError, NotImplementedError) as err:
        raise DataError(f"{path}: not a readable .mat file ({err})") from None


def check_file(path: str | Path) -> str | None:
    """None when ``path`` exists and its format checks out, else the reason it does not.

    Images are verified with PIL (headers and chunk checksums, no full decode); .npy files by
    their header and size; .mat files by loading them.
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    suffix = path.suffix.lower()
    try:
        if suffix in _IMAGE_SUFFIXES:
            from PIL import Image

            with Image.open(path) as img:
                img.verify()
            with Image.open(path) as img:  # verify() does not decode; a truncated body does
                img.load()
        elif suffix == ".npy":
            np.load(path, mmap_mode="r", allow_pickle=False)
        elif suffix == ".mat":
            read_mat(path)
        elif path.stat().st_size == 0:
            return "empty file"
    except DataError as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - any decoder failure means the file is unusable
        return f"corrupt ({type(err).__name__}: {err})"
    return None


def _check_many(paths: Sequence[str]) -> list[str | None]:
    return [check_file(p) for p in paths]


def scan(paths: Sequence[str | Path], *, workers: int = 0, cache: Path | None = None,
         ) -> dict[str, str]:
    """Check many files; returns {path: reason} for every bad one.

    Args:
        paths: Files to check.
        workers: Processes to check with (0: this process).
        cache: A JSON file remembering earlier results, keyed by path, size and mtime, so a
            second scan of an unchanged dataset opens nothing.
    """
    paths = [str(p) for p in paths]
    stamps = {}
    for p in paths:
        try:
            st = os.stat(p)
            stamps[p] = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamps[p] = "missing"
    known: dict[str, list] = {}
    if cache is not None and cache.is_file():
        try:
            known = json.loads(cache.read_text())
        except (OSError, json.JSONDecodeError):
            known = {}
    todo = [p for p in paths if p not in known or known[p][0] != stamps[p]]
    if todo:
        if workers > 0 and len(todo) > 64:
            chunks = [todo[i:i + 256] for i in range(0, len(todo), 256)]
            with ProcessPoolExecutor(workers) as pool:
                results = [r for part in pool.map(_check_many, chunks) for r in part]
        else:
            results = _check_many(todo)
        for p, reason in zip(todo, results, strict=True):
            known[p] = [stamps[p], reason]
        if cache is not None:
            from taskgrouper.io import write_json_atomic

            write_json_atomic(known, cache)
    return {p: known[p][1] for p in paths if known[p][1] is not None}


def scan_cache_path(root: str | Path, kind: str) -> Path:
    """Where :func:`scan` results for dataset folder ``root`` are cached."""
    from taskgrouper.data import cache_dir

    digest = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "scans" / f"{kind}-{digest}.json"


def resize(array: np.ndarray, size: tuple[int, int] | None, mode: str) -> np.ndarray:
    """Resize a (H, W) or (H, W, C) array to ``size`` = (H', W').

    Args:
        mode: ``"bilinear"`` for images and continuous maps without invalid pixels,
            ``"nearest"`` for labels and for maps with invalid values (NaN or sentinels are
            never blended into valid ones).
    """
    if size is None or tuple(array.shape[:2]) == tuple(size):
        return array
    h, w = int(size[0]), int(size[1])
    squeeze = array.ndim == 2
    a = array[..., None] if squeeze else array
    if mode == "nearest":
        # index arithmetic keeps the dtype exact (int labels, uint16 codes)
        rows = np.minimum((np.arange(h) + 0.5) * a.shape[0] / h, a.shape[0] - 1).astype(int)
        cols = np.minimum((np.arange(w) + 0.5) * a.shape[1] / w, a.shape[1] - 1).astype(int)
        out = a[rows][:, cols]
    elif mode == "bilinear":
        import torch
        import torch.nn.functional as F

        t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).unsqueeze(0)
        out = F.interpolate(t.float(), size=(h, w), mode="bilinear", align_corners=False,
                            antialias=h < a.shape[0] or w < a.shape[1])
        out = out[0].numpy().transpose(1, 2, 0)
        if np.issubdtype(array.dtype, np.integer):
            info = np.iinfo(array.dtype)
            out = np.clip(np.round(out), info.min, info.max).astype(array.dtype)
        else:
            out = out.astype(array.dtype)
    else:
        raise InputError(f"resize mode '{mode}' is not 'bilinear' or 'nearest'")
    return out[..., 0] if squeeze else out
