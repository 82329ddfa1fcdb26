"""A numpy ray caster: one primary ray per pixel, nearest hits, shading with hard shadows.

:func:`trace` casts the rays of a pinhole camera into a :class:`~taskgrouper.data.scene.Scene`
and records, per pixel, the nearest surface hit with its normal, albedo, mean curvature and
segmentation class (:class:`Hits`); :func:`shade` turns the hits into an image. The labels of
the synthetic dataset are derived from the hits in :mod:`taskgrouper.data.synthetic`.

Pixel (row i, column j) looks through image point (j + 0.5, i + 0.5) of a pinhole camera with
focal length ``(W / 2) / tan(fov / 2)`` and principal point (W / 2, H / 2); camera rays have
camera-frame z = 1, so a hit's ray parameter is its depth (camera-frame z).

Shading: the image is ``albedo * shading`` in [0, 1], with Lambertian shading under one
directional light (hard shadows cast by the objects; the room casts none) plus ambient light.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from taskgrouper.data.scene import Camera, Scene, _dot, _vec

__all__ = ["Hits", "camera_rays", "intrinsics", "shade", "trace"]

_SHADOW_OFFSET = 1e-4  # shadow rays start this far off the surface (metres)


def intrinsics(resolution: int, fov_deg: float) -> tuple[float, float]:
    """Focal length and principal point (pixels) of the square pinhole camera.

    Returns:
        ``(f, c)``: pixel (row i, column j) sees camera-frame direction
        ``((j + 0.5 - c) / f, (i + 0.5 - c) / f, 1)``.
    """
    f = (resolution / 2.0) / np.tan(np.deg2rad(fov_deg) / 2.0)
    return float(f), resolution / 2.0


@lru_cache(maxsize=16)
def camera_rays(resolution: int, fov_deg: float) -> np.ndarray:
    """Camera-frame ray directions (3, H*W) with z = 1, row-major over pixels (read-only)."""
    f, c = intrinsics(resolution, fov_deg)
    centres = (np.arange(resolution) + 0.5 - c) / f  # (W,)
    ys, xs = np.meshgrid(centres, centres, indexing="ij")  # (H, W) each
    rays = np.stack([xs.ravel(), ys.ravel(), np.ones(resolution * resolution)])  # (3, P)
    rays.setflags(write=False)
    return rays


@dataclass(frozen=True)
class Hits:
    """What the primary rays of one image hit, per pixel (row-major, ``P = H * W``).

    Attributes:
        t: (P,) ray parameter of the nearest hit, inf for none; since camera rays have z = 1,
            this is the camera-frame z (depth) of the hit.
        surface: (P,) int64 index of the surface hit: -1 none, then ``scene.room`` in order,
            then ``scene.objects`` in order.
        part: (P,) int64 part of that surface (see each shape's ``intersect``).
        object_miss: Per object of ``scene.objects``, (P,) bool, True where the ray misses it
            (whether or not something nearer is hit).
        points: (3, P) world points hit (the camera centre where nothing is hit).
        normal: (3, P) unit world normals facing the camera; NaN without a hit.
        albedo: (3, P) albedo at the hits (textured with the texture strength); 0 without a
            hit.
        curvature: (P,) mean curvature at the hits; NaN without a hit.
        classes: (P,) int64 segmentation class of the surface hit; -1 without a hit.
    """

    t: np.ndarray
    surface: np.ndarray
    part: np.ndarray
    object_miss: list[np.ndarray]
    points: np.ndarray
    normal: np.ndarray
    albedo: np.ndarray
    curvature: np.ndarray
    classes: np.ndarray


def trace(scene: Scene, resolution: int, fov_deg: float, texture_strength: float) -> Hits:
    """Cast one primary ray per pixel into ``scene`` and describe the nearest hits.

    Args:
        scene: The scene.
        resolution: Image height and width in pixels.
        fov_deg: Horizontal (= vertical) field of view in degrees.
        texture_strength: Texture contrast in [0, 1]; 0 gives flat albedo per surface.

    Returns:
        The hits, pixel by pixel.
    """
    d_cam = camera_rays(resolution, fov_deg)  # (3, P)
    n_pix = d_cam.shape[1]
    rot = scene.camera.rotation()  # (3, 3)
    d = rot @ d_cam  # world directions, (3, P)
    o = scene.camera.position()[:, None]  # (3, 1)
    surfaces = list(scene.room) + list(scene.objects)
    n_room = len(scene.room)

    # primary rays: nearest hit over all surfaces
    t_best = np.full(n_pix, np.inf)
    sid = np.full(n_pix, -1, dtype=np.int64)
    part = np.zeros(n_pix, dtype=np.int64)
    object_miss = []  # per object: (P,) True where the ray misses it
    for k, surface in enumerate(surfaces):
        if k < n_room:
            t, p = surface.intersect(o, d)
            closer = np.flatnonzero(t < t_best)
            t, p = t[closer], p[closer]
        else:  # objects: only the rays inside the projection of the bounding sphere
            idx = _screen_candidates(surface, scene.camera, resolution, fov_deg)
            t, p = surface.intersect(o, d[:, idx])
            miss = np.ones(n_pix, dtype=bool)
            miss[idx] = ~np.isfinite(t)
            object_miss.append(miss)
            sub = np.flatnonzero(t < t_best[idx])
            closer = idx[sub]
            t, p = t[sub], p[sub]
        t_best[closer] = t
        sid[closer] = k
        part[closer] = p
    hit = np.isfinite(t_best)  # (P,)
    points = o + d * np.where(hit, t_best, 0.0)  # (3, P)

    normal = np.full((3, n_pix), np.nan)
    albedo = np.zeros((3, n_pix))
    curvature = np.full(n_pix, np.nan)
    classes = np.full(n_pix, -1, dtype=np.int64)
    strength = texture_strength
    for k in np.unique(sid[hit]):
        surface = surfaces[k]
        idx = np.flatnonzero(sid == k)
        pts = points[:, idx]  # (3, Q)
        normal[:, idx] = surface.normal_at(pts, part[idx])
        mat = surface.material
        base = _vec(mat.color)
        if strength > 0 and mat.pattern != "flat":
            v = mat.value(surface.local(pts))  # (Q,)
            albedo[:, idx] = base + strength * v * (_vec(mat.color2) - base)
        else:
            albedo[:, idx] = base
        curvature[idx] = surface.curvature(part[idx])
        classes[idx] = surface.cls
    facing_away = np.sum(normal * d, axis=0) > 0  # NaN compares False
    normal[:, facing_away] *= -1.0
    return Hits(t=t_best, surface=sid, part=part, object_miss=object_miss, points=points,
                normal=normal, albedo=albedo, curvature=curvature, classes=classes)


def shade(scene: Scene, hits: Hits) -> np.ndarray:
    """The image (3, P) in [0, 1]: albedo times Lambert plus ambient shading, with hard
    shadows cast by the objects (the room casts none)."""
    points, normal = hits.points, hits.normal
    light = np.asarray(scene.light_dir, dtype=np.float64)
    light = light / np.linalg.norm(light)
    lambert = np.nan_to_num(light @ normal, nan=0.0)  # (P,)
    lambert = np.maximum(lambert, 0.0)
    lit = np.flatnonzero(lambert > 0)
    if scene.objects and lit.size:
        origins = points[:, lit] + _SHADOW_OFFSET * normal[:, lit]  # (3, L)
        blocked = np.zeros(lit.size, dtype=bool)
        for obj in scene.objects:
            centre, radius = obj.bounds()
            v = centre[:, None] - origins  # (3, L)
            along = light @ v  # (L,)
            near = (along > -radius) & (_dot(v, v) - along * along <= radius * radius + 1e-9)
            cand = np.flatnonzero(near & ~blocked)
            if cand.size:
                t, _ = obj.intersect(origins[:, cand], light[:, None])
                blocked[cand[np.isfinite(t)]] = True
        lambert[lit[blocked]] = 0.0
    shading = scene.ambient + (1.0 - scene.ambient) * lambert  # (P,)
    return np.clip(hits.albedo * shading, 0.0, 1.0)  # (3, P)


def _screen_candidates(obj, camera: Camera, resolution: int, fov_deg: float) -> np.ndarray:
    """Flat pixel indices whose rays may hit ``obj``: the image rectangle bounding the
    projection of its bounding sphere (every pixel when the sphere reaches the camera plane)."""
    res = resolution
    centre, radius = obj.bounds()
    cx, cy, cz = camera.to_camera(centre)
    if cz - radius <= 1e-6:
        return np.arange(res * res)
    f, c = intrinsics(res, fov_deg)
    zs = (cz - radius, cz + radius)
    # x / z over the box around the sphere is extreme at the box corners (z > 0)
    ratios_x = [x / z for x in (cx - radius, cx + radius) for z in zs]
    ratios_y = [y / z for y in (cy - radius, cy + radius) for z in zs]
    j0 = max(int(np.ceil(min(ratios_x) * f + c - 0.5)), 0)
    j1 = min(int(np.floor(max(ratios_x) * f + c - 0.5)), res - 1)
    i0 = max(int(np.ceil(min(ratios_y) * f + c - 0.5)), 0)
    i1 = min(int(np.floor(max(ratios_y) * f + c - 0.5)), res - 1)
    if j1 < j0 or i1 < i0:
        return np.zeros(0, dtype=np.int64)
    rows = np.arange(i0, i1 + 1)
    cols = np.arange(j0, j1 + 1)
    return (rows[:, None] * res + cols[None, :]).ravel()  # (Q,)

