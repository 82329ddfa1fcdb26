"""The embedded default dataset: procedurally generated rooms rendered by a numpy ray caster.

Every scene is a room (floor, back wall, two side walls) holding 3-8 objects (spheres,
yaw-rotated boxes and vertical cylinders) that rest on the floor. A pinhole camera slightly above
the floor looks slightly down into the room. Each pixel casts one ray; the nearest hit gives the
labels of every task at once, so all labels are exactly consistent with the image:

====  ================  =======  ==========================================================
task  kind              shape    meaning
====  ================  =======  ==========================================================
s     segmentation      (H, W)   0 background (floor, walls), 1 sphere, 2 box, 3 cylinder;
                                 -1 where no surface is hit
d     dense_regression  (1,H,W)  z-buffer depth in metres (camera-frame z, not ray length);
                                 NaN without a hit or beyond ``SceneConfig.max_depth``
n     normals           (3,H,W)  unit surface normal in the camera frame, facing the camera
k     dense_regression  (1,H,W)  multi-scale determinant-of-Hessian response of the grey image
e     dense_regression  (1,H,W)  Sobel gradient magnitude of the smoothed grey image
o     dense_regression  (1,H,W)  occlusion edges, 0/1 (pixels on an occluding contour)
c     dense_regression  (1,H,W)  mean curvature (k1 + k2) / 2 in 1/m: sphere 1/r,
                                 cylinder side 1/(2r), planes and caps 0
====  ================  =======  ==========================================================

Coordinate frames: the world has x right, y forward (into the room) and z up, with the floor at
z = 0 and the camera at (0, 0, height). The camera frame is OpenCV's: x right, y down, z forward.
Pixel (row i, column j) looks through image point (j + 0.5, i + 0.5) of a pinhole camera with
focal length ``(W / 2) / tan(fov / 2)`` and principal point (W / 2, H / 2).

Image: ``x`` is ``albedo * shading`` in [0, 1], RGB float32 (3, H, W), with Lambertian shading
under one directional light (hard shadows cast by the objects) plus ambient light. Albedos carry
procedural textures (checker, stripes, value noise) whose contrast is scaled by
``SceneConfig.texture_strength``, so that image edges are not all geometry edges.

:func:`render_scene` builds a random :class:`Scene` from a seed (:func:`make_scene`) and renders
it (:func:`render`); tests and callers can also build a :class:`Scene` by hand to place objects
exactly.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy import ndimage

from taskgrouper.data.base import MultiTaskData, Split
from taskgrouper.tasks import TaskSpec, closest

__all__ = [
    "CACHE_VERSION",
    "DEPTH_PNG_SCALE",
    "EDGE_PNG_SCALE",
    "KEYPOINT_PNG_SCALE",
    "OCCLUSION_PNG_SCALE",
    "PAPER_TASKS",
    "SHAPE_CLASS",
    "TASKS",
    "TASKONOMY_DOMAINS",
    "Box",
    "Camera",
    "Cylinder",
    "Material",
    "Plane",
    "Scene",
    "SceneConfig",
    "Sphere",
    "camera_rays",
    "generate",
    "intrinsics",
    "load_synthetic",
    "make_scene",
    "render",
    "render_scene",
    "room_planes",
    "task_specs",
    "write_taskonomy",
]

#: Every task the renderer produces, in canonical order.
TASKS: tuple[str, ...] = ("s", "d", "n", "k", "e", "o", "c")
#: The five Taskonomy tasks of Standley et al. (2020).
PAPER_TASKS: tuple[str, ...] = ("s", "d", "n", "k", "e")

#: Bumped whenever rendering changes, so stale cache files are never read.
CACHE_VERSION = "synthetic-v1"

#: Segmentation class of each shape when ``class_follows_shape`` holds (0 is background).
SHAPE_CLASS: dict[str, int] = {"sphere": 1, "box": 2, "cylinder": 3}
_NUM_CLASSES = 4

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

_EPS = 1e-6  # smallest accepted ray parameter
_SHADOW_OFFSET = 1e-4  # shadow rays start this far off the surface (metres)
_OCCLUSION_JUMP = 0.01  # relative depth jump that makes a contour pixel an occlusion edge
_KEYPOINT_SIGMAS = (1.0, 2.0, 4.0)  # pixels at 64x64, scaled with resolution
_EDGE_SIGMA = 1.0  # pixels at 64x64, scaled with resolution

_DESCRIPTIONS = {
    "s": "semantic segmentation (background, sphere, box, cylinder)",
    "d": "z-buffer depth (m)",
    "n": "surface normals (camera frame)",
    "k": "2D keypoints (multi-scale determinant of Hessian)",
    "e": "texture edges (Sobel magnitude)",
    "o": "occlusion edges (0/1)",
    "c": "mean surface curvature (1/m)",
}


# ---------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of the scene generator.

    Attributes:
        resolution: Image height and width in pixels, 32..256.
        fov_deg: Horizontal (= vertical) field of view of the pinhole camera in degrees.
        min_objects: Fewest objects per scene.
        max_objects: Most objects per scene.
        texture_strength: Texture contrast in [0, 1]; 0 gives flat albedo per surface.
        class_follows_shape: Probability in [0, 1] that an object's segmentation class is its
            shape class (:data:`SHAPE_CLASS`); otherwise the class is uniform over {1, 2, 3}.
        max_depth: Depth (metres) beyond which depth labels are NaN.
    """

    resolution: int = 64
    fov_deg: float = 60.0
    min_objects: int = 3
    max_objects: int = 8
    texture_strength: float = 0.7
    class_follows_shape: float = 1.0
    max_depth: float = 20.0

    def __post_init__(self) -> None:
        if not isinstance(self.resolution, (int, np.integer)) or not (
                32 <= self.resolution <= 256):
            raise ValueError(f"SceneConfig: resolution={self.resolution!r} is out of range; "
                             f"set resolution to an integer between 32 and 256")
        if not 10.0 <= self.fov_deg <= 120.0:
            raise ValueError(f"SceneConfig: fov_deg={self.fov_deg} is out of range; "
                             f"set fov_deg between 10 and 120")
        if not 0 <= self.min_objects <= self.max_objects <= 12:
            raise ValueError(f"SceneConfig: need 0 <= min_objects <= max_objects <= 12, got "
                             f"min_objects={self.min_objects}, max_objects={self.max_objects}")
        for name in ("texture_strength", "class_follows_shape"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SceneConfig: {name}={value} must lie in [0, 1]")
        if not self.max_depth > 0:
            raise ValueError(f"SceneConfig: max_depth={self.max_depth} must be positive")


def task_specs(tasks: Iterable[str] = TASKS) -> dict[str, TaskSpec]:
    """Task specifications of the synthetic dataset.

    Args:
        tasks: Task names, a subset of :data:`TASKS` (a string such as ``"sdnke"`` works too).

    Returns:
        Task name -> :class:`~taskgrouper.tasks.TaskSpec`, in the order given.

    Raises:
        ValueError: A name is not a synthetic task (the message suggests the closest), or a
            name is repeated.
    """
    names = list(tasks)
    specs: dict[str, TaskSpec] = {}
    for name in names:
        if name not in TASKS:
            raise ValueError(f"synthetic dataset: unknown task '{name}'; " + closest(name, TASKS))
        if name in specs:
            raise ValueError(f"synthetic dataset: task '{name}' is listed twice")
        if name == "s":
            specs[name] = TaskSpec(name, "segmentation", channels=_NUM_CLASSES,
                                   description=_DESCRIPTIONS[name])
        elif name == "n":
            specs[name] = TaskSpec(name, "normals", channels=3, description=_DESCRIPTIONS[name])
        elif name == "d":
            specs[name] = TaskSpec(name, "dense_regression", channels=1,
                                   description=_DESCRIPTIONS[name])
        else:  # 2D responses near zero almost everywhere: relative errors mean nothing
            specs[name] = TaskSpec(name, "dense_regression", channels=1, metrics=("l1", "rmse"),
                                   description=_DESCRIPTIONS[name])
    return specs


# ---------------------------------------------------------------------------------------------
# scene description


@dataclass(frozen=True)
class Material:
    """Albedo of a surface: a procedural pattern blending two colours.

    The pattern value ``v`` in [0, 1] at a surface point gives the albedo
    ``color + texture_strength * v * (color2 - color)``.

    Attributes:
        color: Base RGB albedo in [0, 1].
        color2: Second RGB albedo, reached where the pattern is 1 at full texture strength.
        pattern: ``"flat"``, ``"checker"``, ``"stripes"`` or ``"noise"`` (value noise).
        scale: Pattern period in metres.
        offset: Shift of the pattern in the surface's local frame (metres).
        direction: Stripe direction in the local frame (need not be unit length).
        phase: Seed of the value-noise lattice.
    """

    color: tuple[float, float, float] = (0.6, 0.6, 0.6)
    color2: tuple[float, float, float] = (0.25, 0.25, 0.25)
    pattern: str = "checker"
    scale: float = 0.5
    offset: tuple[float, float, float] = (0.137, 0.291, 0.373)
    direction: tuple[float, float, float] = (1.0, 0.0, 0.0)
    phase: float = 0.0

    def value(self, local: np.ndarray) -> np.ndarray:
        """The pattern value in [0, 1] at points ``local`` (3, Q) of the surface's frame."""
        q = (local + np.asarray(self.offset)[:, None]) / self.scale  # (3, Q)
        if self.pattern == "flat":
            return np.zeros(q.shape[1])
        if self.pattern == "checker":
            return np.mod(np.floor(q).sum(axis=0), 2.0)  # (Q,)
        if self.pattern == "stripes":
            direction = np.asarray(self.direction, dtype=np.float64)
            direction = direction / np.linalg.norm(direction)
            return np.mod(np.floor(direction @ q), 2.0)  # (Q,)
        if self.pattern == "noise":
            return 0.65 * _value_noise(q, self.phase) + 0.35 * _value_noise(2.03 * q,
                                                                             self.phase + 17.0)
        raise ValueError(f"Material: unknown pattern '{self.pattern}'; "
                         + closest(self.pattern, ("flat", "checker", "stripes", "noise")))


_NOISE_TABLE = np.random.default_rng(20200715).random(4096)  # lattice values in [0, 1)


def _value_noise(q: np.ndarray, phase: float) -> np.ndarray:
    """Trilinear value noise in [0, 1] with a hashed random value per integer lattice point."""
    cell = np.floor(q)  # (3, Q)
    w = q - cell
    w = w * w * (3.0 - 2.0 * w)  # smoothstep weights, (3, Q)
    ix, iy, iz = cell.astype(np.int64)
    hx = (ix * 73856093, (ix + 1) * 73856093)  # spatial hash terms, (Q,) each
    hy = (iy * 19349663, (iy + 1) * 19349663)
    hz = (iz * 83492791 + int(phase * 1000.0), (iz + 1) * 83492791 + int(phase * 1000.0))
    wx, wy, wz = (1.0 - w[0], w[0]), (1.0 - w[1], w[1]), (1.0 - w[2], w[2])
    out = np.zeros(q.shape[1])
    for a, b, c in itertools.product((0, 1), repeat=3):
        value = _NOISE_TABLE[(hx[a] ^ hy[b] ^ hz[c]) & 4095]  # (Q,)
        out += wx[a] * wy[b] * wz[c] * value
    return out


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of (3, Q) arrays (either may be (3, 1)): (Q,)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _vec(values) -> np.ndarray:
    """A float64 (3, 1) column vector."""
    return np.asarray(values, dtype=np.float64).reshape(3, 1)


@dataclass(frozen=True)
class Plane:
    """An infinite plane (floor or wall), background class unless ``cls`` says otherwise.

    Attributes:
        point: Any point of the plane (world frame).
        normal: Unit normal pointing into the room.
        material: Albedo.
        cls: Segmentation class.
    """

    point: tuple[float, float, float]
    normal: tuple[float, float, float]
    material: Material = Material()
    cls: int = 0
    shape: ClassVar[str] = "plane"

    def intersect(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ray parameters of the hits (inf for a miss) and the part hit (always 0).

        Args:
            o: Ray origins (3, Q) or (3, 1).
            d: Ray directions (3, Q) or (3, 1), not necessarily unit length.

        Returns:
            ``t`` (Q,) with the hit at ``o + t * d``, and ``part`` (Q,) int.
        """
        n = _vec(self.normal)
        denom = _dot(n, d)  # (Q,)
        num = _dot(n, _vec(self.point) - o)  # (Q,)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = num / denom
        t = np.where((np.abs(denom) > 1e-12) & (t > _EPS), t, np.inf)
        t = np.broadcast_to(t, np.broadcast_shapes(o.shape, d.shape)[1:])
        return t, np.zeros(t.shape, dtype=np.int64)

    def normal_at(self, p: np.ndarray, part: np.ndarray) -> np.ndarray:
        """Unit normals (3, Q) at surface points ``p`` (3, Q)."""
        return np.broadcast_to(_vec(self.normal), p.shape).copy()

    def local(self, p: np.ndarray) -> np.ndarray:
        """Texture coordinates (3, Q): the in-plane offset from ``point``."""
        n = _vec(self.normal)
        q = p - _vec(self.point)
        return q - n * np.sum(n * q, axis=0)  # drop the normal component, (3, Q)

    def curvature(self, part: np.ndarray) -> np.ndarray:
        """Mean curvature (Q,) of the surface at the hit parts: 0 for a plane."""
        return np.zeros(part.shape)


@dataclass(frozen=True)
class Sphere:
    """A sphere.

    Attributes:
        center: Centre (world frame, metres); resting on the floor means ``center[2] == radius``.
        radius: Radius in metres.
        cls: Segmentation class.
        material: Albedo.
    """

    center: tuple[float, float, float]
    radius: float
    cls: int = SHAPE_CLASS["sphere"]
    material: Material = Material()
    shape: ClassVar[str] = "sphere"

    def intersect(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ray parameters of the nearest hits (inf for a miss); see :meth:`Plane.intersect`."""
        oc = o - _vec(self.center)  # (3, Q)
        a = _dot(d, d)  # (Q,)
        b = _dot(d, oc)  # half of the linear coefficient, (Q,)
        c = _dot(oc, oc) - self.radius ** 2
        disc = b * b - a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        t0 = (-b - root) / a
        t1 = (-b + root) / a
        t = np.where(t0 > _EPS, t0, np.where(t1 > _EPS, t1, np.inf))
        t = np.where(disc >= 0.0, t, np.inf)
        t = np.broadcast_to(t, np.broadcast_shapes(o.shape, d.shape)[1:])
        return t, np.zeros(t.shape, dtype=np.int64)

    def bounds(self) -> tuple[np.ndarray, float]:
        """Bounding sphere: centre (3,) and radius."""
        return np.asarray(self.center, dtype=np.float64), float(self.radius)

    def normal_at(self, p: np.ndarray, part: np.ndarray) -> np.ndarray:
        """Outward unit normals (3, Q) at surface points ``p`` (3, Q)."""
        return (p - _vec(self.center)) / self.radius

    def local(self, p: np.ndarray) -> np.ndarray:
        """Texture coordinates (3, Q): offset from the centre."""
        return p - _vec(self.center)

    def curvature(self, part: np.ndarray) -> np.ndarray:
        """Mean curvature (Q,): 1 / radius everywhere."""
        return np.full(part.shape, 1.0 / self.radius)


def _yaw(v: np.ndarray, angle: float) -> np.ndarray:
    """Rotate vectors ``v`` (3, Q) by ``angle`` radians about the world z axis."""
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack([cos * v[0] - sin * v[1], sin * v[0] + cos * v[1], v[2]])


@dataclass(frozen=True)
class Box:
    """A box rotated about the vertical axis.

    Attributes:
        center: Centre (world frame); resting on the floor means ``center[2] == half_size[2]``.
        half_size: Half extents along the box's own x, y and z axes.
        yaw: Rotation about the world z axis in radians.
        cls: Segmentation class.
        material: Albedo.
    """

    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    yaw: float = 0.0
    cls: int = SHAPE_CLASS["box"]
    material: Material = Material()
    shape: ClassVar[str] = "box"

    def intersect(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hits (slab method); ``part`` is the local axis (0, 1, 2) of the face hit."""
        po = _yaw(o - _vec(self.center), -self.yaw)  # origins in the box frame, (3, Q)
        dl = _yaw(d, -self.yaw)  # directions in the box frame, (3, Q)
        dl = np.where(np.abs(dl) < 1e-12, 1e-12, dl)
        h = np.asarray(self.half_size, dtype=np.float64)[:, None]
        ta = (-h - po) / dl  # (3, Q)
        tb = (h - po) / dl
        near = np.minimum(ta, tb)
        far = np.maximum(ta, tb)
        t_near = np.maximum(np.maximum(near[0], near[1]), near[2])  # (Q,)
        t_far = np.minimum(np.minimum(far[0], far[1]), far[2])
        part = np.where(near[0] == t_near, 0, np.where(near[1] == t_near, 1, 2))  # face axis
        t = np.where((t_near <= t_far) & (t_near > _EPS), t_near, np.inf)
        shape = np.broadcast_shapes(o.shape, d.shape)[1:]
        return np.broadcast_to(t, shape), np.broadcast_to(part, shape)

    def bounds(self) -> tuple[np.ndarray, float]:
        """Bounding sphere: centre (3,) and radius."""
        return np.asarray(self.center, dtype=np.float64), float(np.linalg.norm(self.half_size))

    def normal_at(self, p: np.ndarray, part: np.ndarray) -> np.ndarray:
        """Outward unit normals (3, Q) of the faces ``part`` at points ``p`` (3, Q)."""
        local = _yaw(p - _vec(self.center), -self.yaw)  # (3, Q)
        n = np.zeros_like(local)
        cols = np.arange(local.shape[1])
        n[part, cols] = np.sign(local[part, cols])
        return _yaw(n, self.yaw)

    def local(self, p: np.ndarray) -> np.ndarray:
        """Texture coordinates (3, Q): the point in the box frame."""
        return _yaw(p - _vec(self.center), -self.yaw)

    def curvature(self, part: np.ndarray) -> np.ndarray:
        """Mean curvature (Q,): 0 on every face."""
        return np.zeros(part.shape)


@dataclass(frozen=True)
class Cylinder:
    """A vertical cylinder with flat caps.

    Attributes:
        base: Centre of the bottom cap (world frame); resting on the floor means ``base[2] == 0``.
        radius: Radius in metres.
        height: Height in metres.
        cls: Segmentation class.
        material: Albedo.
    """

    base: tuple[float, float, float]
    radius: float
    height: float
    cls: int = SHAPE_CLASS["cylinder"]
    material: Material = Material()
    shape: ClassVar[str] = "cylinder"

    def intersect(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hits; ``part`` is 0 for the side, 1 for the top cap, 2 for the bottom cap."""
        rel = o - _vec(self.base)  # (3, Q)
        shape = np.broadcast_shapes(o.shape, d.shape)[1:]
        # side: |rel_xy + t d_xy| = r
        a = d[0] * d[0] + d[1] * d[1]  # (Q,)
        b = rel[0] * d[0] + rel[1] * d[1]
        c = rel[0] * rel[0] + rel[1] * rel[1] - self.radius ** 2
        disc = b * b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        z_side = rel[2] + t_side * d[2]
        ok = (disc >= 0) & (a > 1e-12) & (t_side > _EPS) & (z_side >= 0) & (
            z_side <= self.height)
        t_side = np.where(ok, t_side, np.inf)
        best = np.broadcast_to(t_side, shape)
        part = np.zeros(shape, dtype=np.int64)
        # caps: planes z = height (top) and z = 0 (bottom) inside the disc
        for cap_part, z_cap in ((1, self.height), (2, 0.0)):
            with np.errstate(divide="ignore", invalid="ignore"):  # horizontal rays: inf, NaN
                t_cap = (z_cap - rel[2]) / d[2]
                x = rel[0] + t_cap * d[0]
                y = rel[1] + t_cap * d[1]
                ok = (np.abs(d[2]) > 1e-12) & (t_cap > _EPS) & (
                    x * x + y * y <= self.radius ** 2)
            t_cap = np.where(ok, t_cap, np.inf)
            closer = t_cap < best
            best = np.where(closer, t_cap, best)
            part = np.where(closer, cap_part, part)
        return best, part

    def bounds(self) -> tuple[np.ndarray, float]:
        """Bounding sphere: centre (3,) and radius."""
        centre = np.asarray(self.base, dtype=np.float64) + [0.0, 0.0, self.height / 2.0]
        return centre, float(np.hypot(self.radius, self.height / 2.0))

    def normal_at(self, p: np.ndarray, part: np.ndarray) -> np.ndarray:
        """Outward unit normals (3, Q) at points ``p`` (3, Q) of the parts ``part`` (Q,)."""
        rel = p - _vec(self.base)  # (3, Q)
        side = np.stack([rel[0] / self.radius, rel[1] / self.radius, np.zeros(rel.shape[1])])
        cap = np.zeros_like(rel)
        cap[2] = np.where(part == 1, 1.0, -1.0)
        return np.where(part == 0, side, cap)

    def local(self, p: np.ndarray) -> np.ndarray:
        """Texture coordinates (3, Q): offset from the base centre."""
        return p - _vec(self.base)

    def curvature(self, part: np.ndarray) -> np.ndarray:
        """Mean curvature (Q,): 1 / (2 radius) on the side, 0 on the caps."""
        return np.where(part == 0, 0.5 / self.radius, 0.0)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at (0, 0, height) looking along world +y, pitched down.

    Attributes:
        height: Height of the optical centre above the floor (metres).
        pitch_deg: Downward tilt of the optical axis in degrees (0 = horizontal).
    """

    height: float = 1.5
    pitch_deg: float = 12.0

    def rotation(self) -> np.ndarray:
        """World-from-camera rotation (3, 3): columns are the camera x, y, z axes in the world."""
        p = np.deg2rad(self.pitch_deg)
        right = [1.0, 0.0, 0.0]
        down = [0.0, -np.sin(p), -np.cos(p)]
        forward = [0.0, np.cos(p), -np.sin(p)]
        return np.array([right, down, forward]).T

    def position(self) -> np.ndarray:
        """Optical centre (3,) in the world frame."""
        return np.array([0.0, 0.0, self.height])

    def to_world(self, p_cam) -> np.ndarray:
        """World coordinates of camera-frame points ``p_cam`` (3,) or (3, Q)."""
        p_cam = np.asarray(p_cam, dtype=np.float64)
        pos = self.position() if p_cam.ndim == 1 else self.position()[:, None]
        return self.rotation() @ p_cam + pos

    def to_camera(self, p_world) -> np.ndarray:
        """Camera-frame coordinates of world points ``p_world`` (3,) or (3, Q)."""
        p_world = np.asarray(p_world, dtype=np.float64)
        pos = self.position() if p_world.ndim == 1 else self.position()[:, None]
        return self.rotation().T @ (p_world - pos)


def room_planes(half_width: float = 5.0, back: float = 10.0, floor: Material | None = None,
                walls: tuple[Material, Material, Material] | None = None) -> tuple[Plane, ...]:
    """The floor (z = 0), back wall (y = back) and side walls (x = +-half_width) of a room.

    Args:
        half_width: Distance of each side wall from the camera's vertical plane.
        back: Distance of the back wall from the camera.
        floor: Floor material (a default checker when None).
        walls: Materials of the back, left and right walls (flat defaults when None).

    Returns:
        The four planes, floor first.
    """
    floor = floor or Material(color=(0.55, 0.5, 0.45), color2=(0.3, 0.28, 0.25))
    walls = walls or (Material(color=(0.8, 0.8, 0.75), pattern="flat"),) * 3
    return (
        Plane((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), floor),
        Plane((0.0, back, 0.0), (0.0, -1.0, 0.0), walls[0]),
        Plane((-half_width, 0.0, 0.0), (1.0, 0.0, 0.0), walls[1]),
        Plane((half_width, 0.0, 0.0), (-1.0, 0.0, 0.0), walls[2]),
    )


@dataclass(frozen=True)
class Scene:
    """Everything :func:`render` needs besides the :class:`SceneConfig`.

    Attributes:
        camera: The camera.
        objects: Spheres, boxes and cylinders; they cast shadows.
        room: Background planes (class 0 by default); they cast no shadows.
        light_dir: Direction towards the directional light (world frame, any length).
        ambient: Ambient share of the shading in [0, 1].
    """

    camera: Camera = Camera()
    objects: tuple = ()
    room: tuple = field(default_factory=room_planes)
    light_dir: tuple[float, float, float] = (0.3, -0.6, 0.75)
    ambient: float = 0.3


# ---------------------------------------------------------------------------------------------
# rendering


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


def render(scene: Scene, config: SceneConfig | None = None, *,
           with_ids: bool = False) -> dict[str, np.ndarray]:
    """Ray-cast ``scene`` and derive every label.

    Args:
        scene: The scene description.
        config: Resolution, field of view, texture strength and max depth (defaults when None).
        with_ids: Also return ``"id"``, the (H, W) int64 index of the surface hit per pixel
            (-1 none, then ``scene.room`` in order, then ``scene.objects`` in order).

    Returns:
        ``"x"`` (3, H, W) float32 image in [0, 1] and one array per task of :data:`TASKS`:
        ``s`` (H, W) int64, ``n`` (3, H, W) float32, the rest (1, H, W) float32.
    """
    config = config or SceneConfig()
    res = config.resolution
    d_cam = camera_rays(res, config.fov_deg)  # (3, P)
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
            idx = _screen_candidates(surface, scene.camera, config)
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
    strength = config.texture_strength
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

    # shading: Lambert + ambient, hard shadows cast by the objects
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
    image = np.clip(albedo * shading, 0.0, 1.0).reshape(3, res, res)  # (3, H, W)

    # labels
    depth = t_best.reshape(res, res)  # camera-frame z, since camera rays have z = 1; (H, W)
    depth_label = np.where(depth <= config.max_depth, depth, np.nan)
    normal_cam = (rot.T @ normal).reshape(3, res, res)  # (3, H, W)
    ids = sid.reshape(res, res)
    grey = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).astype(np.float64)
    scale = res / 64.0
    out = {
        "x": image.astype(np.float32),
        "s": classes.reshape(res, res),
        "d": depth_label[None].astype(np.float32),
        "n": normal_cam.astype(np.float32),
        "k": _keypoints(grey, scale)[None].astype(np.float32),
        "e": _edges(grey, scale)[None].astype(np.float32),
        "o": _occlusion(depth, ids, object_miss, n_room)[None].astype(np.float32),
        "c": curvature.reshape(1, res, res).astype(np.float32),
    }
    if with_ids:
        out["id"] = ids.copy()
    return out


@lru_cache(maxsize=64)
def _gauss_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian kernels of derivative order 0, 1, 2 for :func:`scipy.ndimage.correlate1d`.

    Same truncation (4 sigma) as :func:`scipy.ndimage.gaussian_filter`; reversed, so that
    correlating applies the convolution of the derivative of a Gaussian.
    """
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 * (x / sigma) ** 2)
    phi /= phi.sum()
    first = -x / sigma ** 2 * phi
    second = (x * x / sigma ** 4 - 1.0 / sigma ** 2) * phi
    return phi[::-1].copy(), first[::-1].copy(), second[::-1].copy()


def _screen_candidates(obj, camera: Camera, config: SceneConfig) -> np.ndarray:
    """Flat pixel indices whose rays may hit ``obj``: the image rectangle bounding the
    projection of its bounding sphere (every pixel when the sphere reaches the camera plane)."""
    res = config.resolution
    centre, radius = obj.bounds()
    cx, cy, cz = camera.to_camera(centre)
    if cz - radius <= 1e-6:
        return np.arange(res * res)
    f, c = intrinsics(res, config.fov_deg)
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


def _keypoints(grey: np.ndarray, scale: float) -> np.ndarray:
    """Max over scales of |sigma^4 det(Hessian)| of the grey image (H, W), Taskonomy style."""
    response = np.zeros_like(grey)
    corr = ndimage.correlate1d
    for sigma in _KEYPOINT_SIGMAS:
        s = sigma * scale
        g0, g1, g2 = _gauss_kernels(s)
        ixx = corr(corr(grey, g0, axis=0, mode="nearest"), g2, axis=1, mode="nearest")  # (H, W)
        iyy = corr(corr(grey, g2, axis=0, mode="nearest"), g0, axis=1, mode="nearest")
        ixy = corr(corr(grey, g1, axis=0, mode="nearest"), g1, axis=1, mode="nearest")
        response = np.maximum(response, np.abs(s ** 4 * (ixx * iyy - ixy * ixy)))
    return response


def _edges(grey: np.ndarray, scale: float) -> np.ndarray:
    """Sobel gradient magnitude (H, W) of the Gaussian-smoothed grey image.

    The Sobel responses are divided by 8, so the value is the intensity change per pixel.
    """
    g0 = _gauss_kernels(_EDGE_SIGMA * scale)[0]
    smooth = ndimage.correlate1d(grey, g0, axis=0, mode="nearest")
    smooth = ndimage.correlate1d(smooth, g0, axis=1, mode="nearest")  # (H, W)
    gx = ndimage.sobel(smooth, axis=1, mode="nearest") / 8.0
    gy = ndimage.sobel(smooth, axis=0, mode="nearest") / 8.0
    return np.hypot(gx, gy)


def _occlusion(depth: np.ndarray, ids: np.ndarray, object_miss: list[np.ndarray],
               n_room: int) -> np.ndarray:
    """Occlusion edges (H, W): 1 on pixels of an object's occluding contour, 0 elsewhere.

    A pixel on object A is an occlusion edge when one of its 4-neighbours misses A and sees a
    surface more than 1% farther away. Contact lines with the floor (where the neighbour is
    nearer) and the room's concave corners are thus not occlusion edges. NaN without a hit.
    """
    res = depth.shape[0]
    out = np.zeros(depth.shape)
    for j, miss in enumerate(object_miss):
        mask = ids == n_room + j  # (H, W)
        if not mask.any():
            continue
        miss = miss.reshape(res, res)
        edge = np.zeros(depth.shape, dtype=bool)
        # (pixel slice, neighbour slice) for the 4 neighbours
        for here, there in (
            ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
            ((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
            ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
            ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
        ):
            jump = depth[there] > depth[here] * (1.0 + _OCCLUSION_JUMP)
            edge[here] |= mask[here] & miss[there] & jump
        out[edge] = 1.0
    out[ids < 0] = np.nan
    return out


# ---------------------------------------------------------------------------------------------
# random scenes


def _random_color(rng: np.random.Generator, low: float = 0.15,
                  high: float = 0.95) -> tuple[float, float, float]:
    return tuple(float(v) for v in rng.uniform(low, high, size=3))


def _random_material(rng: np.random.Generator, scale_range: tuple[float, float]) -> Material:
    """A random material; always draws the same amount of randomness."""
    color = _random_color(rng)
    other = _random_color(rng)
    mix = rng.uniform(0.3, 0.8)
    color2 = tuple(float(mix * a + (1 - mix) * 0.5 * b) for a, b in zip(color, other, strict=True))
    pattern = ("flat", "checker", "stripes", "noise", "noise")[int(rng.integers(5))]
    scale = float(rng.uniform(*scale_range))
    offset = tuple(float(v) for v in rng.uniform(0, 10, size=3))
    direction = tuple(float(v) for v in rng.normal(size=3))
    phase = float(rng.uniform(0, 100))
    return Material(color=color, color2=color2, pattern=pattern, scale=scale, offset=offset,
                    direction=direction, phase=phase)


def make_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """The random scene of ``seed``: camera jitter, room, light and 3-8 objects on the floor.

    Objects are placed without overlapping footprints inside the camera's view. The random draws
    do not depend on ``texture_strength`` or ``class_follows_shape`` (the class draw is always
    made), so changing those knobs keeps the geometry of a seed.

    Args:
        seed: Seed of the scene.
        config: Object count, field of view and class knobs (defaults when None).

    Returns:
        The scene.
    """
    config = config or SceneConfig()
    rng = np.random.default_rng(seed)
    camera = Camera(height=float(rng.uniform(1.3, 1.7)), pitch_deg=float(rng.uniform(8.0, 16.0)))
    back = float(rng.uniform(9.0, 12.0))
    half_width = float(rng.uniform(3.5, 6.5))
    floor = _random_material(rng, (0.3, 1.0))
    walls = tuple(_random_material(rng, (0.3, 1.5)) for _ in range(3))
    room = room_planes(half_width, back, floor, walls)
    azimuth = np.deg2rad(rng.uniform(-60.0, 60.0))
    elevation = np.deg2rad(rng.uniform(35.0, 65.0))
    light = (float(np.cos(elevation) * np.sin(azimuth)),
             float(-np.cos(elevation) * np.cos(azimuth)), float(np.sin(elevation)))
    ambient = float(rng.uniform(0.2, 0.35))

    n_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    tan_half = np.tan(np.deg2rad(config.fov_deg) / 2.0)
    y_near, y_far = 2.4, min(7.5, back - 1.5)
    placed: list[tuple[float, float, float]] = []  # footprint circles (x, y, radius)
    objects = []
    for _ in range(n_objects):
        shape = ("sphere", "box", "cylinder")[int(rng.integers(3))]
        follows = rng.random() < config.class_follows_shape
        random_class = int(rng.integers(1, 4))
        cls = SHAPE_CLASS[shape] if follows else random_class
        material = _random_material(rng, (0.08, 0.35))
        size = rng.uniform(size=4)  # raw size draws, scaled per shape below
        yaw = float(rng.uniform(0, np.pi))
        shrink = 1.0
        for attempt in range(200):
            if attempt and attempt % 25 == 0:
                shrink *= 0.8
            if shape == "sphere":
                r = shrink * (0.25 + 0.45 * size[0])
                footprint = r
            elif shape == "box":
                hx, hy = shrink * (0.2 + 0.35 * size[0]), shrink * (0.2 + 0.35 * size[1])
                hz = shrink * (0.2 + 0.4 * size[2])
                footprint = float(np.hypot(hx, hy))
            else:
                r = shrink * (0.2 + 0.3 * size[0])
                height = shrink * (0.4 + 1.2 * size[2])
                footprint = r
            y = float(rng.uniform(y_near, y_far))
            x_max = min(0.8 * tan_half * y, half_width - 0.1) - footprint
            x = float(rng.uniform(-x_max, x_max)) if x_max > 0 else 0.0
            if all((x - px) ** 2 + (y - py) ** 2 >= (footprint + pr + 0.05) ** 2
                   for px, py, pr in placed):
                break
        placed.append((x, y, footprint))
        if shape == "sphere":
            objects.append(Sphere((x, y, r), r, cls=cls, material=material))
        elif shape == "box":
            objects.append(Box((x, y, hz), (hx, hy, hz), yaw=yaw, cls=cls, material=material))
        else:
            objects.append(Cylinder((x, y, 0.0), r, height, cls=cls, material=material))
    return Scene(camera=camera, objects=tuple(objects), room=room, light_dir=light,
                 ambient=ambient)


def render_scene(seed: int, config: SceneConfig | None = None) -> dict[str, np.ndarray]:
    """Render the random scene of ``seed`` (deterministic).

    Args:
        seed: Non-negative integer seed.
        config: Generator knobs (defaults when None).

    Returns:
        ``"x"`` and every task of :data:`TASKS`; see :func:`render`.
    """
    config = config or SceneConfig()
    return render(make_scene(seed, config), config)


def _child_seed(*entropy: int) -> int:
    """A 64-bit seed derived from non-negative integers."""
    state = np.random.SeedSequence([int(e) for e in entropy]).generate_state(2)
    return int(state[0]) | (int(state[1]) << 32)


def generate(n: int, seed: int, config: SceneConfig | None = None,
             tasks: Iterable[str] = TASKS) -> Split:
    """Render ``n`` scenes into one split.

    Scene ``i`` uses a seed derived from ``(seed, i)``, so the first scenes of a longer split
    equal those of a shorter one with the same seed.

    Args:
        n: Number of scenes.
        seed: Seed of the split.
        config: Generator knobs (defaults when None).
        tasks: Tasks whose targets are kept.

    Returns:
        A :class:`~taskgrouper.data.base.Split` with ``x`` (N, 3, H, W) float32 and targets per
        the conventions of :mod:`taskgrouper.tasks`.
    """
    config = config or SceneConfig()
    names = list(task_specs(tasks))
    res = config.resolution
    x = np.empty((n, 3, res, res), dtype=np.float32)
    targets = {}
    for name in names:
        if name == "s":
            targets[name] = np.empty((n, res, res), dtype=np.int64)
        else:
            channels = 3 if name == "n" else 1
            targets[name] = np.empty((n, channels, res, res), dtype=np.float32)
    for i in range(n):
        scene = render_scene(_child_seed(seed, i), config)
        x[i] = scene["x"]
        for name in names:
            targets[name][i] = scene[name]
    return Split(x, targets)


# ---------------------------------------------------------------------------------------------
# dataset with cache


def _cache_path(cache_dir: Path, config: SceneConfig, seed: int, n: int, split: str,
                tasks: list[str]) -> Path:
    key = json.dumps({"version": CACHE_VERSION, "config": asdict(config), "seed": int(seed),
                      "n": int(n), "split": split, "tasks": tasks}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir / f"synthetic_{split}_{digest}.npz"


def _read_cache(path: Path, n: int, tasks: list[str]) -> Split | None:
    """The cached split, or None when the file is missing, unreadable or inconsistent."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            x = data["x"]
            targets = {name: data[f"t_{name}"] for name in tasks}
    except Exception:  # any unreadable file (bad zip, truncated, missing key) is regenerated
        return None
    if x.shape[0] != n or any(t.shape[0] != n for t in targets.values()):
        return None
    return Split(x, targets)


def _write_cache(path: Path, split: Split) -> None:
    """Write ``split`` to ``path`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            arrays = {f"t_{k}": v for k, v in split.targets.items()}
            np.savez_compressed(fh, x=split.x, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_synthetic(n_train: int = 1200, n_val: int = 200, n_test: int = 200, seed: int = 0,
                   config: SceneConfig | None = None, tasks: Iterable[str] = PAPER_TASKS,
                   cache_dir: str | Path | None = None) -> MultiTaskData:
    """The synthetic multi-task dataset.

    Train, val and test use distinct seed streams derived from ``seed``, so no scene is shared.

    Args:
        n_train: Training scenes.
        n_val: Validation scenes.
        n_test: Test scenes.
        seed: Dataset seed.
        config: Generator knobs (``SceneConfig()`` when None).
        tasks: Task names, a subset of :data:`TASKS`.
        cache_dir: Folder for one compressed ``.npz`` per split (named by a hash of config,
            seed, size, split, tasks and :data:`CACHE_VERSION`); ``~`` is expanded. None
            disables caching. Unreadable cache files are regenerated and overwritten.

    Returns:
        A checked :class:`~taskgrouper.data.base.MultiTaskData`.
    """
    config = config or SceneConfig()
    specs = task_specs(tasks)
    names = list(specs)
    root = Path(cache_dir).expanduser() if cache_dir is not None else None
    splits = {}
    for index, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        split_seed = _child_seed(seed, 7919, index)
        data = None
        if root is not None:
            path = _cache_path(root, config, seed, n, split, names)
            data = _read_cache(path, n, names)
        if data is None:
            data = generate(n, split_seed, config, names)
            if root is not None:
                _write_cache(path, data)
        splits[split] = data
    dataset = MultiTaskData(tasks=specs, train=splits["train"], val=splits["val"],
                            test=splits["test"], name=f"synthetic-{config.resolution}")
    dataset.check()
    return dataset


# ---------------------------------------------------------------------------------------------
# Taskonomy layout


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
    from PIL import Image

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
