"""What the synthetic scenes are made of: materials, shapes, the camera and the room.

A :class:`Scene` is a room (floor, back wall, two side walls: :func:`room_planes`) holding
spheres (:class:`Sphere`), yaw-rotated boxes (:class:`Box`) and vertical cylinders
(:class:`Cylinder`), seen by a pinhole :class:`Camera` and lit by one directional light. Every
shape answers the questions of the ray caster (:mod:`taskgrouper.data.raycast`): where a ray
hits it (``intersect``), its normal (``normal_at``), texture coordinates (``local``), mean
curvature (``curvature``) and, for objects, a bounding sphere (``bounds``). Albedos are
procedural textures (checker, stripes, value noise) of a :class:`Material`.

Coordinate frames: the world has x right, y forward (into the room) and z up, with the floor at
z = 0 and the camera at (0, 0, height). The camera frame is OpenCV's: x right, y down, z forward.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from taskgrouper.errors import InputError
from taskgrouper.tasks import closest

__all__ = [
    "SHAPE_CLASS",
    "Box",
    "Camera",
    "Cylinder",
    "Material",
    "Plane",
    "Scene",
    "Sphere",
    "room_planes",
]

#: Segmentation class of each shape, the default ``cls`` of its objects (0 is background).
SHAPE_CLASS: dict[str, int] = {"sphere": 1, "box": 2, "cylinder": 3}

_EPS = 1e-6  # smallest accepted ray parameter


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
        raise InputError(f"Material: unknown pattern '{self.pattern}'; "
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
    """A room with objects, a camera and a light: everything the ray caster renders.

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

