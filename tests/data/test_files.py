"""File readers of the real-dataset loaders: clear errors, a cached scan, label-safe resizing."""

import numpy as np
import pytest
from PIL import Image

from taskgrouper.data.base import DataError
from taskgrouper.data.files import check_file, read_image, read_npy, resize, scan


def write_png(path, array):
    Image.fromarray(array).save(path)
    return path


def test_sixteen_bit_png_keeps_its_values(tmp_path):
    depth = np.array([[0, 1], [8191, 65535]], dtype=np.uint16)
    got = read_image(write_png(tmp_path / "d.png", depth))
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, depth)


def test_truncated_png_and_missing_file_are_named(tmp_path):
    good = write_png(tmp_path / "good.png", np.zeros((8, 8, 3), np.uint8))
    data = good.read_bytes()
    bad = tmp_path / "bad.png"
    bad.write_bytes(data[: len(data) // 2])
    assert check_file(good) is None
    assert "corrupt" in check_file(bad)
    assert check_file(tmp_path / "none.png") == "missing"
    with pytest.raises(DataError, match="bad.png"):
        read_image(bad)
    with pytest.raises(DataError, match="missing file .*none.npy"):
        read_npy(tmp_path / "none.npy")


def test_scan_lists_bad_files_and_caches_results(tmp_path):
    paths = [write_png(tmp_path / f"{i}.png", np.full((4, 4), i, np.uint8)) for i in range(3)]
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY garbage")
    paths.append(tmp_path / "x.npy")
    cache = tmp_path / "cache" / "scan.json"
    bad = scan(paths, cache=cache)
    assert list(bad) == [str(tmp_path / "x.npy")]
    assert cache.is_file()
    # a file that changes is checked again; unchanged ones come from the cache
    paths[0].write_bytes(b"not a png")
    bad = scan(paths, cache=cache)
    assert set(bad) == {str(paths[0]), str(tmp_path / "x.npy")}


def test_nearest_resize_never_blends_labels_or_invalid_codes():
    labels = np.array([[0, 0, 5, 5], [0, 0, 5, 5], [255, 255, 1, 1], [255, 255, 1, 1]],
                      dtype=np.uint8)
    down = resize(labels, (2, 2), "nearest")
    # each output pixel copies the input pixel under its centre: (0.5 + i) * 4 / 2 -> 1, 3
    np.testing.assert_array_equal(down, [[0, 5], [255, 1]])
    up = resize(labels, (8, 8), "nearest")
    assert set(np.unique(up)) == {0, 1, 5, 255}
    assert up.dtype == np.uint8


def test_bilinear_resize_of_an_image_keeps_its_range_and_channels():
    img = np.zeros((4, 4, 3), np.float32)
    img[:, 2:] = 1.0
    out = resize(img, (4, 8), "bilinear")
    assert out.shape == (4, 8, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out[:, 0], 0.0)
    np.testing.assert_allclose(out[:, -1], 1.0)
    with pytest.raises(ValueError, match="bicubic"):
        resize(img, (2, 2), "bicubic")
