"""Tests of the synthetic ray-cast dataset: analytic geometry, labels, determinism, cache."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from taskgrouper.data import synthetic as syn
from taskgrouper.data.raycast import camera_rays, intrinsics
from taskgrouper.data.scene import SHAPE_CLASS, Box, Camera, Cylinder, Scene, Sphere
from taskgrouper.data.synthetic import (
    PAPER_TASKS,
    TASKS,
    SceneConfig,
    generate,
    load_synthetic,
    make_scene,
    render,
    render_scene,
    task_specs,
)
from taskgrouper.tasks import valid_mask

ODD = SceneConfig(resolution=33)  # odd size: the centre pixel looks along the optical axis
SMALL = SceneConfig(resolution=32)


def _ray(config: SceneConfig, i: int, j: int) -> np.ndarray:
    """Camera-frame direction (3,) with z = 1 through pixel (row i, column j)."""
    f, c = intrinsics(config.resolution, config.fov_deg)
    return np.array([(j + 0.5 - c) / f, (i + 0.5 - c) / f, 1.0])


def test_sphere_depth_and_normals_match_closed_form():
    camera = Camera(height=2.0, pitch_deg=10.0)
    z, r = 4.0, 1.0  # about 7 pixels of radius at 33x33
    centre_cam = np.array([0.0, 0.0, z])
    sphere = Sphere(tuple(camera.to_world(centre_cam)), r)
    out = render(Scene(camera=camera, objects=(sphere,)), ODD)
    mid = ODD.resolution // 2

    assert out["d"][0, mid, mid] == pytest.approx(z - r, rel=1e-4)
    np.testing.assert_allclose(out["n"][:, mid, mid], [0.0, 0.0, -1.0], atol=1e-5)
    assert out["s"][mid, mid] == SHAPE_CLASS["sphere"]
    assert out["c"][0, mid, mid] == pytest.approx(1.0 / r, rel=1e-5)

    for i, j in ((12, 20), (19, 14), (mid, 11)):
        d = _ray(ODD, i, j)
        # |t d - C|^2 = r^2, nearest root
        b = d @ centre_cam
        t = (b - np.sqrt(b * b - (d @ d) * (centre_cam @ centre_cam - r * r))) / (d @ d)
        hit = t * d
        assert out["d"][0, i, j] == pytest.approx(hit[2], rel=1e-4)
        np.testing.assert_allclose(out["n"][:, i, j], (hit - centre_cam) / r, atol=1e-4)


def test_floor_depth_matches_plane_intersection():
    camera = Camera(height=1.4, pitch_deg=12.0)
    out = render(Scene(camera=camera), ODD, with_ids=True)
    rot = camera.rotation()
    res = ODD.resolution
    for i, j in ((res - 1, res // 2), (res - 3, 5), (res - 6, res - 4)):
        assert out["id"][i, j] == 0  # the floor is the first room plane
        d_world = rot @ _ray(ODD, i, j)
        t = -camera.height / d_world[2]  # camera z = t since the ray has z = 1
        assert out["d"][0, i, j] == pytest.approx(t, rel=1e-5)
        np.testing.assert_allclose(out["n"][:, i, j], rot.T @ [0.0, 0.0, 1.0], atol=1e-5)
        assert out["s"][i, j] == 0
        assert out["c"][0, i, j] == 0.0


def test_box_and_cylinder_facing_the_camera():
    camera = Camera(height=1.5, pitch_deg=0.0)
    mid = ODD.resolution // 2
    # camera (0, 0, z) is world (0, z, 1.5) when the pitch is 0
    box = Box((0.0, 4.0, 1.5), (0.5, 0.3, 1.5), yaw=0.0)
    out = render(Scene(camera=camera, objects=(box,)), ODD)
    assert out["d"][0, mid, mid] == pytest.approx(4.0 - 0.3, rel=1e-5)
    np.testing.assert_allclose(out["n"][:, mid, mid], [0.0, 0.0, -1.0], atol=1e-6)
    assert out["s"][mid, mid] == SHAPE_CLASS["box"] and out["c"][0, mid, mid] == 0.0

    cylinder = Cylinder((0.0, 3.0, 0.0), 0.4, 2.5)
    out = render(Scene(camera=camera, objects=(cylinder,)), ODD)
    assert out["d"][0, mid, mid] == pytest.approx(3.0 - 0.4, rel=1e-5)
    np.testing.assert_allclose(out["n"][:, mid, mid], [0.0, 0.0, -1.0], atol=1e-6)
    assert out["s"][mid, mid] == SHAPE_CLASS["cylinder"]
    assert out["c"][0, mid, mid] == pytest.approx(0.5 / 0.4)  # mean curvature of the side


def test_render_scene_is_deterministic_by_seed():
    a, b, c = render_scene(5, SMALL), render_scene(5, SMALL), render_scene(6, SMALL)
    assert set(a) == {"x", *TASKS}
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["x"], c["x"])
    s1, s2 = generate(2, 3, SMALL), generate(2, 3, SMALL)
    np.testing.assert_array_equal(s1.x, s2.x)
    assert not np.array_equal(s1.x[0], s1.x[1])


def test_shapes_dtypes_and_ranges():
    config = SceneConfig(resolution=40)
    split = generate(3, 0, config)
    specs = task_specs()
    h = w = 40
    assert split.x.shape == (3, 3, h, w) and split.x.dtype == np.float32
    assert split.x.min() >= 0.0 and split.x.max() <= 1.0
    assert split.targets["s"].shape == (3, h, w) and split.targets["s"].dtype == np.int64
    assert set(np.unique(split.targets["s"])) <= {-1, 0, 1, 2, 3}
    assert specs["s"].channels == 4 and specs["s"].kind == "segmentation"
    for name in ("d", "n", "k", "e", "o", "c"):
        target = split.targets[name]
        assert target.shape == (3, specs[name].channels, h, w) and target.dtype == np.float32
        assert valid_mask(specs[name], target).mean() > 0.99
    d = split.targets["d"]
    assert np.nanmin(d) > 0 and np.nanmax(d) <= config.max_depth
    n = split.targets["n"]
    ok = valid_mask(specs["n"], n)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1)[ok], 1.0, atol=1e-5)
    # normals face the camera: n . ray < 0 for every pixel ray
    rays = camera_rays(h, config.fov_deg).reshape(3, h, w)
    assert np.all(np.einsum("nchw,chw->nhw", n, rays)[ok] < 1e-6)
    assert set(np.unique(split.targets["o"])) <= {0.0, 1.0}
    assert split.targets["o"].max() == 1.0
    for name in ("k", "e", "c"):
        assert np.nanmin(split.targets[name]) >= 0.0


def test_task_specs_reject_unknown_names():
    assert list(task_specs("sdnke")) == list(PAPER_TASKS)
    with pytest.raises(ValueError, match=r"'x'.*choices"):
        task_specs(["s", "x"])
    with pytest.raises(ValueError, match="twice"):
        task_specs(["s", "s"])


def test_class_follows_shape():
    follow = SceneConfig(resolution=32, class_follows_shape=1.0)
    for seed in range(3):
        scene = make_scene(seed, follow)
        out = render(scene, follow, with_ids=True)
        for k, obj in enumerate(scene.objects):
            assert obj.cls == SHAPE_CLASS[obj.shape]
            pixels = out["id"] == len(scene.room) + k
            assert np.all(out["s"][pixels] == SHAPE_CLASS[obj.shape])
        assert np.all(out["s"][out["id"] < len(scene.room)] == 0)

    shuffled = SceneConfig(resolution=32, class_follows_shape=0.0)
    mismatches = [obj.cls != SHAPE_CLASS[obj.shape]
                  for seed in range(6) for obj in make_scene(seed, shuffled).objects]
    assert any(mismatches)
    # the class knob does not move the geometry of a seed
    np.testing.assert_array_equal(render_scene(1, follow)["d"], render_scene(1, shuffled)["d"])


def test_texture_strength_controls_texture_edges():
    flat = SceneConfig(resolution=48, texture_strength=0.0)
    textured = SceneConfig(resolution=48, texture_strength=1.0)
    # an empty room: no shadows, so with flat albedo the floor has no edges away from the walls
    out = render(Scene(camera=Camera(pitch_deg=15.0)), flat, with_ids=True)
    floor = out["id"] == 0
    interior = ndimage.binary_erosion(floor, iterations=5)
    assert interior.sum() > 100
    assert out["e"][0][interior].max() < 1e-6
    textured_room = render(Scene(camera=Camera(pitch_deg=15.0)), textured)
    assert textured_room["e"][0][interior].max() > 1e-3
    # random scenes: inside the room planes (away from geometry edges) texture adds edge energy
    energy = {"flat": 0.0, "textured": 0.0}
    for seed in range(3):
        for key, config in (("flat", flat), ("textured", textured)):
            out = render(make_scene(seed, config), config, with_ids=True)
            ids = out["id"]
            inside = np.zeros_like(ids, dtype=bool)
            for k in range(4):  # room planes
                inside |= ndimage.binary_erosion(ids == k, iterations=3)
            energy[key] += float(out["e"][0][inside].sum())
    assert energy["flat"] < 0.5 * energy["textured"]


@pytest.mark.parametrize("resolution", [16, 31, 257])
def test_resolution_is_validated(resolution):
    with pytest.raises(ValueError, match="resolution"):
        SceneConfig(resolution=resolution)


def test_cache_is_reused_and_corrupt_files_regenerated(tmp_path, monkeypatch):
    kwargs = dict(n_train=3, n_val=2, n_test=1, seed=4, config=SMALL, cache_dir=tmp_path)
    first = load_synthetic(**kwargs)
    files = sorted(tmp_path.glob("*.npz"))
    assert len(files) == 3 and not list(tmp_path.glob("*.tmp"))
    assert list(first.tasks) == list(PAPER_TASKS)
    assert len(first.train) == 3 and len(first.val) == 2 and len(first.test) == 1
    assert not np.array_equal(first.train.x[0], first.val.x[0])  # distinct seed streams

    def boom(*args, **kw):
        raise AssertionError("render_scene called although the cache exists")

    with monkeypatch.context() as patch:
        patch.setattr(syn, "render_scene", boom)
        second = load_synthetic(**kwargs)
    for split in ("train", "val", "test"):
        a, b = first.split(split), second.split(split)
        np.testing.assert_array_equal(a.x, b.x)
        for name in PAPER_TASKS:
            np.testing.assert_array_equal(a.targets[name], b.targets[name])

    train_file = next(f for f in files if f.name.startswith("synthetic_train_"))
    train_file.write_bytes(b"not a zip file")
    third = load_synthetic(**kwargs)
    np.testing.assert_array_equal(third.train.x, first.train.x)
    with np.load(train_file) as data:  # overwritten with a readable file
        np.testing.assert_array_equal(data["x"], first.train.x)
