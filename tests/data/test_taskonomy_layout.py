"""The Taskonomy-layout writer of the test fixtures: folders, file names and PNG encodings."""

from __future__ import annotations

import numpy as np
from PIL import Image
from taskonomy_layout import DEPTH_PNG_SCALE, EDGE_PNG_SCALE, write_taskonomy

from taskgrouper.data.synthetic import PAPER_TASKS, SceneConfig, generate

SMALL = SceneConfig(resolution=32)


def test_write_taskonomy_layout_and_depth_encoding(tmp_path):
    split = generate(2, 1, SMALL, tasks=PAPER_TASKS)
    split.targets["d"][0, 0, 0, 0] = np.nan  # one invalid pixel
    paths = write_taskonomy(split, tmp_path, building="testbldg")
    domains = ("rgb", "segment_semantic", "depth_zbuffer", "normal", "keypoints2d",
               "edge_texture")
    expected = {tmp_path / "testbldg" / dom / f"point_{p}_view_0_domain_{dom}.png"
                for p in range(2) for dom in domains}
    assert set(paths) == expected and all(p.is_file() for p in paths)

    depth_png = np.array(Image.open(tmp_path / "testbldg" / "depth_zbuffer"
                                    / "point_1_view_0_domain_depth_zbuffer.png"))
    assert depth_png.dtype == np.uint16
    np.testing.assert_allclose(depth_png / DEPTH_PNG_SCALE, split.targets["d"][1, 0],
                               atol=0.5 / DEPTH_PNG_SCALE + 1e-6)
    first = np.array(Image.open(tmp_path / "testbldg" / "depth_zbuffer"
                                / "point_0_view_0_domain_depth_zbuffer.png"))
    assert first[0, 0] == 65535

    seg = np.array(Image.open(tmp_path / "testbldg" / "segment_semantic"
                              / "point_0_view_0_domain_segment_semantic.png"))
    np.testing.assert_array_equal(seg.astype(np.int64) - 1, split.targets["s"][0])
    normal = np.array(Image.open(tmp_path / "testbldg" / "normal"
                                 / "point_0_view_0_domain_normal.png"))
    assert normal.shape == (32, 32, 3) and normal.dtype == np.uint8
    decoded = normal.transpose(2, 0, 1) / 255.0 * 2.0 - 1.0
    np.testing.assert_allclose(decoded, split.targets["n"][0], atol=1.0 / 255.0 + 1e-6)
    edges = np.array(Image.open(tmp_path / "testbldg" / "edge_texture"
                                / "point_0_view_0_domain_edge_texture.png"))
    assert edges.dtype == np.uint16
    np.testing.assert_allclose(edges / EDGE_PNG_SCALE, split.targets["e"][0, 0],
                               atol=1.0 / EDGE_PNG_SCALE)
