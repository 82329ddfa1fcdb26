"""Tests of labels derived from other labels: normals from depth, edges from segmentation."""

from __future__ import annotations

import numpy as np
import pytest

from taskgrouper.data import synthetic as syn
from taskgrouper.data.derived import edges_from_segmentation, normals_from_depth
from taskgrouper.data.raycast import intrinsics


def _plane_depth(a: float, b: float, c: float, shape: tuple[int, int], fx: float, fy: float,
                 cx: float, cy: float) -> np.ndarray:
    """Depth of the plane z = a x + b y + c seen by the pinhole camera (pixel centres at ints)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    rx, ry = (cols - cx) / fx, (rows - cy) / fy
    # a point t * (rx, ry, 1) lies on the plane when t = a t rx + b t ry + c
    return c / (1.0 - a * rx - b * ry)


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between (3, ...) unit vectors."""
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=0), -1.0, 1.0)))


def test_tilted_plane_gives_its_analytic_normal():
    fx, fy, cx, cy = 40.0, 36.0, 15.5, 12.0
    a, b, c = 0.3, -0.2, 3.0
    depth = _plane_depth(a, b, c, (25, 32), fx, fy, cx, cy)
    n = normals_from_depth(depth, fx, fy, cx, cy)
    assert n.shape == (3, 25, 32) and n.dtype == np.float32
    expected = np.array([a, b, -1.0]) / np.linalg.norm([a, b, -1.0])  # faces the camera
    interior = n[:, 1:-1, 1:-1].reshape(3, -1)
    np.testing.assert_allclose(interior, np.repeat(expected[:, None], interior.shape[1], 1),
                               atol=1e-5)
    # the one-pixel border has no central difference
    assert np.isnan(n[:, 0]).all() and np.isnan(n[:, -1]).all()
    assert np.isnan(n[:, :, 0]).all() and np.isnan(n[:, :, -1]).all()


def test_fronto_parallel_plane_faces_the_camera():
    n = normals_from_depth(np.full((6, 7), 2.5), 10.0, 10.0, 3.0, 2.5)
    np.testing.assert_allclose(n[:, 1:-1, 1:-1].reshape(3, -1).T, [[0.0, 0.0, -1.0]] * 20,
                               atol=1e-6)


def test_missing_depth_invalidates_the_pixel_and_its_neighbours():
    depth = np.full((7, 7), 3.0)
    depth[3, 3] = np.nan
    depth[1, 5] = 0.0  # not a depth either
    n = normals_from_depth(depth, 10.0, 10.0, 3.0, 3.0)
    bad = np.isnan(n).any(axis=0)
    expected = np.zeros((7, 7), dtype=bool)
    expected[[0, -1]] = expected[:, [0, -1]] = True
    for i, j in ((3, 3), (1, 5)):
        expected[i, j] = True
        for di, dj in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            expected[i + di, j + dj] = True
    np.testing.assert_array_equal(bad, expected)


def test_depth_jump_threshold_drops_pixels_across_a_discontinuity():
    depth = np.full((5, 8), 2.0)
    depth[:, 4:] = 4.0
    keep = normals_from_depth(depth, 10.0, 10.0, 3.5, 2.0)
    cut = normals_from_depth(depth, 10.0, 10.0, 3.5, 2.0, max_relative_jump=0.1)
    assert np.isfinite(keep[:, 1:-1, 3]).all()  # differences across the jump: garbage but kept
    assert np.isnan(cut[:, 1:-1, 3:5]).all()
    assert np.isfinite(cut[:, 1:-1, [1, 2, 5, 6]]).all()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="must be \\(H, W\\)"):
        normals_from_depth(np.ones((1, 4, 4)), 1.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="focal lengths"):
        normals_from_depth(np.ones((4, 4)), 0.0, 1.0, 0.0, 0.0)


@pytest.mark.parametrize("seed", [3, 11])
def test_synthetic_scene_normals_agree_on_planar_interiors(seed):
    config = syn.SceneConfig(resolution=64)
    scene = syn.render(syn.make_scene(seed, config), config, with_ids=True)
    f, c = intrinsics(config.resolution, config.fov_deg)
    # the renderer's pixel j looks through j + 0.5: OpenCV's principal point is c - 0.5
    derived = normals_from_depth(scene["d"][0], f, f, c - 0.5, c - 0.5)
    truth, ids = scene["n"], scene["id"]
    planar = np.zeros(ids.shape, dtype=bool)
    inner = (slice(1, -1), slice(1, -1))
    planar[inner] = ids[inner] >= 0
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            shifted_ids = ids[1 + di:ids.shape[0] - 1 + di, 1 + dj:ids.shape[1] - 1 + dj]
            shifted_n = truth[:, 1 + di:ids.shape[0] - 1 + di, 1 + dj:ids.shape[1] - 1 + dj]
            planar[inner] &= shifted_ids == ids[inner]
            planar[inner] &= np.sum(shifted_n * truth[:, 1:-1, 1:-1], axis=0) > 1 - 1e-6
    assert planar.sum() > 500
    err = _angles(derived[:, planar], truth[:, planar])
    assert np.isfinite(err).all()
    assert np.median(err) < 0.5 and err.max() < 3.0, (np.median(err), err.max())


def test_edges_on_a_two_region_map():
    labels = np.array([[0, 0, 1, 1]] * 4)
    both = edges_from_segmentation(labels)
    assert both.shape == (1, 4, 4) and both.dtype == np.float32
    np.testing.assert_array_equal(both[0], [[0, 1, 1, 0]] * 4)
    one = edges_from_segmentation(labels, both_sides=False)
    np.testing.assert_array_equal(one[0], [[0, 1, 0, 0]] * 4)
    wide = edges_from_segmentation(labels, width=2)
    np.testing.assert_array_equal(wide[0], np.ones((4, 4)))
    vertical = edges_from_segmentation(labels.T)
    np.testing.assert_array_equal(vertical[0], np.array([[0, 1, 1, 0]] * 4).T)


def test_edges_ignore_unlabelled_pixels():
    labels = np.array([[0, 0, -1, 1]] * 4)
    np.testing.assert_array_equal(edges_from_segmentation(labels)[0], np.zeros((4, 4)))
    labels = np.array([[0, 1, -1, 1],
                       [0, 1, -1, 1],
                       [0, 0, 0, 0],
                       [0, 0, 0, 0]])
    edges = edges_from_segmentation(labels, width=2, ignore_value=np.nan)[0]
    assert np.isnan(edges[:2, 2]).all()  # ignored pixels: NaN as asked, never marked
    assert edges[0, 0] == 1 and edges[0, 1] == 1 and edges[1, 3] == 1  # 1|3 differ from 0 below
    assert edges[3, 3] == 1  # dilated from row 2
    plain = edges_from_segmentation(labels)[0]
    np.testing.assert_array_equal(plain, [[1, 1, 0, 0],
                                          [1, 1, 0, 1],
                                          [0, 1, 0, 1],
                                          [0, 0, 0, 0]])
    with pytest.raises(ValueError, match="width"):
        edges_from_segmentation(labels, width=0)
