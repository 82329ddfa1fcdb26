"""Labels derived from other labels, for datasets that do not ship them.

Both functions are plain numpy and follow the target conventions of :mod:`taskgrouper.tasks`,
so any loader can add a task it lacks: surface normals from a depth map and a camera
(:func:`normals_from_depth`), boundary maps from a segmentation (:func:`edges_from_segmentation`).
"""

from __future__ import annotations

import numpy as np

from taskgrouper.errors import InputError

__all__ = ["edges_from_segmentation", "normals_from_depth"]


def normals_from_depth(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float, *,
                       max_relative_jump: float | None = None) -> np.ndarray:
    """Unit surface normals (camera frame) of a z-buffer depth map.

    Every pixel is back-projected to the 3D point
    ``P = z * ((u - cx) / fx, (v - cy) / fy, 1)`` with ``(u, v) = (column, row)``: the OpenCV
    pinhole model with pixel centres at integer coordinates, x right, y down, z forward. The
    tangents are the central differences ``P[v, u+1] - P[v, u-1]`` and
    ``P[v+1, u] - P[v-1, u]``; their cross product is the normal, oriented towards the camera
    (``n . P < 0``). On a plane the result is exact, since the differences of points of a plane
    lie in the plane.

    A pixel's normal is NaN when its depth or the depth of any of its four neighbours is
    missing (NaN, or not positive), on the one-pixel image border (no central difference),
    where the tangents are parallel, and, with ``max_relative_jump``, where a neighbour's depth
    differs from the pixel's by more than that fraction of it (a depth discontinuity, whose
    difference would mix two surfaces).

    Args:
        depth: (H, W) depth along the optical axis (z, not ray length); NaN where unknown.
        fx: Focal length in pixels along x (columns).
        fy: Focal length in pixels along y (rows).
        cx: Principal point column, in the convention above (a camera whose principal point
            lies at the image centre has ``cx = (W - 1) / 2``).
        cy: Principal point row.
        max_relative_jump: Optional discontinuity threshold, e.g. 0.05; None keeps every
            pixel whose neighbours are valid.

    Returns:
        (3, H, W) float32 unit normals, NaN where invalid.

    Raises:
        ValueError: ``depth`` is not two-dimensional or a focal length is not positive.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise InputError(f"normals_from_depth: depth must be (H, W), got shape {depth.shape}")
    if not (fx > 0 and fy > 0):
        raise InputError(f"normals_from_depth: focal lengths must be positive, got fx={fx}, "
                         f"fy={fy}")
    h, w = depth.shape
    out = np.full((3, h, w), np.nan, dtype=np.float32)
    if h < 3 or w < 3:
        return out
    z = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    points = np.stack([(cols - cx) / fx * z, (rows - cy) / fy * z, z])  # (3, H, W)

    centre = points[:, 1:-1, 1:-1]
    du = points[:, 1:-1, 2:] - points[:, 1:-1, :-2]  # along columns (image x)
    dv = points[:, 2:, 1:-1] - points[:, :-2, 1:-1]  # along rows (image y)
    # dv x du faces the camera for a visible surface (x right, y down, z forward)
    normal = np.cross(dv, du, axis=0)
    norm = np.linalg.norm(normal, axis=0)
    valid = np.isfinite(norm) & (norm > 0) & np.isfinite(z[1:-1, 1:-1])
    if max_relative_jump is not None:
        zc = z[1:-1, 1:-1]
        for neighbour in (z[1:-1, 2:], z[1:-1, :-2], z[2:, 1:-1], z[:-2, 1:-1]):
            with np.errstate(invalid="ignore"):
                valid &= np.abs(neighbour - zc) <= max_relative_jump * zc
    with np.errstate(invalid="ignore", divide="ignore"):
        normal = normal / norm
    facing_away = np.sum(normal * centre, axis=0) > 0  # NaN compares False
    normal[:, facing_away] *= -1.0
    normal[:, ~valid] = np.nan
    out[:, 1:-1, 1:-1] = normal
    return out


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved by (dy, dx) pixels, False shifted in at the border."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def edges_from_segmentation(labels: np.ndarray, width: int = 1, ignore: int = -1, *,
                            both_sides: bool = True, ignore_value: float = 0.0) -> np.ndarray:
    """Boundary map of a label map: 1 on pixels next to a different label, 0 elsewhere.

    Two 4-neighbours form a boundary pair when both are labelled (neither equals ``ignore``)
    and their labels differ. With ``both_sides`` (the default) both pixels of every pair are
    marked, so a boundary is two pixels wide and symmetric (it does not depend on which region
    is which); with ``both_sides=False`` only the upper/left pixel of each pair is marked,
    giving one-pixel boundaries like the thinned edges of PASCAL-Context. A label next to an
    ignored pixel is not a boundary, since the ignored pixel's class is unknown. ``width > 1``
    then dilates the marked pixels with a square of side ``2 * width - 1`` (Chebyshev distance
    below ``width``), never onto ignored pixels.

    Args:
        labels: (H, W) integer labels.
        width: Dilation of the boundary, >= 1 (1: none).
        ignore: The label of unlabelled pixels.
        both_sides: Mark both pixels of a boundary pair (True) or the upper/left one (False).
        ignore_value: Value written at ignored pixels: 0 (the default) or NaN, which leaves them
            out of a ``dense_binary`` loss.

    Returns:
        (1, H, W) float32 map of 0 and 1 (``ignore_value`` at ignored pixels).

    Raises:
        ValueError: ``labels`` is not two-dimensional or ``width`` < 1.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"edges_from_segmentation: labels must be (H, W), got shape "
                         f"{labels.shape}")
    if int(width) != width or width < 1:
        raise InputError(f"edges_from_segmentation: width must be an integer >= 1, got {width}")
    valid = labels != ignore
    edge = np.zeros(labels.shape, dtype=bool)
    # horizontal pairs (i, j) - (i, j+1) and vertical pairs (i, j) - (i+1, j)
    pair_h = valid[:, :-1] & valid[:, 1:] & (labels[:, :-1] != labels[:, 1:])
    pair_v = valid[:-1, :] & valid[1:, :] & (labels[:-1, :] != labels[1:, :])
    edge[:, :-1] |= pair_h
    edge[:-1, :] |= pair_v
    if both_sides:
        edge[:, 1:] |= pair_h
        edge[1:, :] |= pair_v
    if width > 1:
        grown = edge.copy()
        r = int(width) - 1
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if dy or dx:
                    grown |= _shift(edge, dy, dx)
        edge = grown
    out = np.where(edge & valid, 1.0, 0.0).astype(np.float32)
    out[~valid] = ignore_value
    return out[None]
