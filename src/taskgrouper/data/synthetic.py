"""The embedded default dataset: procedurally generated rooms, their images and labels.

Every scene is a room (floor, back wall, two side walls) holding 3-8 objects (spheres,
yaw-rotated boxes and vertical cylinders) that rest on the floor (:func:`make_scene`; the
shapes, camera and materials are in :mod:`taskgrouper.data.scene`). A pinhole camera slightly
above the floor looks slightly down into the room. Each pixel casts one ray
(:mod:`taskgrouper.data.raycast`); the nearest hit gives the labels of every task at once, so
all labels are exactly consistent with the image:

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
exactly. :func:`load_synthetic` renders (or reads from its cache) the train, val and test splits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from taskgrouper.data.base import MultiTaskData, Split

# what a scene is made of, and the renderer
from taskgrouper.data.raycast import shade, trace
from taskgrouper.data.scene import (
    SHAPE_CLASS,
    Box,
    Camera,
    Cylinder,
    Material,
    Scene,
    Sphere,
    room_planes,
)
from taskgrouper.errors import InputError
from taskgrouper.tasks import TaskSpec, closest

__all__ = [
    "CACHE_VERSION",
    "PAPER_TASKS",
    "TASKS",
    "SceneConfig",
    "generate",
    "load",
    "load_synthetic",
    "make_scene",
    "render",
    "render_scene",
    "task_specs",
]

#: Every task the renderer produces, in canonical order.
TASKS: tuple[str, ...] = ("s", "d", "n", "k", "e", "o", "c")
#: The five Taskonomy tasks of Standley et al. (2020).
PAPER_TASKS: tuple[str, ...] = ("s", "d", "n", "k", "e")

#: Bumped whenever rendering changes, so stale cache files are never read.
CACHE_VERSION = "synthetic-v1"

_NUM_CLASSES = 4  # background and the three shape classes of SHAPE_CLASS

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
            raise InputError(f"SceneConfig: resolution={self.resolution!r} is out of range; "
                             f"set resolution to an integer between 32 and 256")
        if not 10.0 <= self.fov_deg <= 120.0:
            raise InputError(f"SceneConfig: fov_deg={self.fov_deg} is out of range; "
                             f"set fov_deg between 10 and 120")
        if not 0 <= self.min_objects <= self.max_objects <= 12:
            raise InputError(f"SceneConfig: need 0 <= min_objects <= max_objects <= 12, got "
                             f"min_objects={self.min_objects}, max_objects={self.max_objects}")
        for name in ("texture_strength", "class_follows_shape"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"SceneConfig: {name}={value} must lie in [0, 1]")
        if not self.max_depth > 0:
            raise InputError(f"SceneConfig: max_depth={self.max_depth} must be positive")


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
            raise InputError(f"synthetic dataset: unknown task '{name}'; " + closest(name, TASKS))
        if name in specs:
            raise InputError(f"synthetic dataset: task '{name}' is listed twice")
        if name == "s":
            specs[name] = TaskSpec(name, "segmentation", channels=_NUM_CLASSES,
                                   description=_DESCRIPTIONS[name])
        elif name == "n":
            specs[name] = TaskSpec(name, "normals", channels=3, description=_DESCRIPTIONS[name])
        elif name == "d":  # RMSE first: the survey's headline metric for depth
            specs[name] = TaskSpec(name, "dense_regression", channels=1,
                                   metrics=("rmse", "l1", "abs_rel", "delta1"),
                                   description=_DESCRIPTIONS[name])
        else:  # 2D responses near zero almost everywhere: relative errors mean nothing
            specs[name] = TaskSpec(name, "dense_regression", channels=1, metrics=("l1", "rmse"),
                                   description=_DESCRIPTIONS[name])
    return specs


# ---------------------------------------------------------------------------------------------
# rendering and labels


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
    hits = trace(scene, res, config.fov_deg, config.texture_strength)
    image = shade(scene, hits).reshape(3, res, res)  # (3, H, W)

    # labels
    depth = hits.t.reshape(res, res)  # camera-frame z, since camera rays have z = 1; (H, W)
    depth_label = np.where(depth <= config.max_depth, depth, np.nan)
    normal_cam = (scene.camera.rotation().T @ hits.normal).reshape(3, res, res)  # (3, H, W)
    ids = hits.surface.reshape(res, res)
    grey = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).astype(np.float64)
    scale = res / 64.0
    out = {
        "x": image.astype(np.float32),
        "s": hits.classes.reshape(res, res),
        "d": depth_label[None].astype(np.float32),
        "n": normal_cam.astype(np.float32),
        "k": _keypoints(grey, scale)[None].astype(np.float32),
        "e": _edges(grey, scale)[None].astype(np.float32),
        "o": _occlusion(depth, ids, hits.object_miss, len(scene.room))[None].astype(np.float32),
        "c": hits.curvature.reshape(1, res, res).astype(np.float32),
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
    from taskgrouper.io import replace_atomic

    arrays = {f"t_{k}": v for k, v in split.targets.items()}
    replace_atomic(path, lambda fh: np.savez_compressed(fh, x=split.x, **arrays))


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


def load(cfg, tasks=None):
    """The scenes a ``data`` section (``kind: synthetic``) describes, cached under
    :func:`taskgrouper.data.cache_dir` unless ``cache`` is off.

    Raises:
        DataError: an unknown task (with the closest name), a task named twice, or a scene
            setting out of range.
    """
    from taskgrouper.data import cache_dir
    from taskgrouper.data.base import DataError
    from taskgrouper.tasks import closest

    names = list(tasks) if tasks else list(PAPER_TASKS)
    for name in names:
        if name not in TASKS:
            raise DataError(f"unknown task '{name}' for the synthetic scenes; "
                            f"{closest(name, TASKS)}")
    if len(set(names)) != len(names):
        raise DataError(f"tasks {names} name a task twice; list each task once")
    try:
        scene = SceneConfig(resolution=cfg.resolution, texture_strength=cfg.texture_strength,
                            class_follows_shape=cfg.class_follows_shape, fov_deg=cfg.fov_deg,
                            min_objects=cfg.min_objects, max_objects=cfg.max_objects)
    except ValueError as err:
        raise DataError(f"data: {err}") from None
    return load_synthetic(n_train=cfg.n_train, n_val=cfg.n_val, n_test=cfg.n_test,
                          seed=cfg.seed, config=scene, tasks=tuple(names),
                          cache_dir=cache_dir() / "synthetic" if cfg.cache else None)
