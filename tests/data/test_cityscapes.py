"""Cityscapes (npy layout) from disk: label folders, invalid depth, bad files, the layout."""

import numpy as np
import pytest
from real_fixtures import truncate, write_mtan

from taskgrouper.config import DataConfig
from taskgrouper.data import load_dataset
from taskgrouper.data.base import DataError


def cfg(path, **kw):
    kw.setdefault("cache", False)
    kw.setdefault("workers", 0)
    return DataConfig(kind="cityscapes", path=str(path), **kw)


def write(root, **kw):
    kw.setdefault("classes", 7)
    kw.setdefault("label_dir", "label_7")
    return write_mtan(root, normals=False, **kw)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("city")
    return root, write(root, extra_labels=[("label_19", 19)])


def test_round_trip(city):
    root, truth = city
    data = load_dataset(cfg(root))
    data.check()
    assert list(data.tasks) == ["semseg", "depth"] and data.tasks["semseg"].channels == 7
    assert data.input_shape == (3, 24, 32) and data.skipped == []
    assert data.test.keys == ["0", "1", "2"]
    assert sorted(data.train.keys + data.val.keys, key=int) == [str(i) for i in range(6)]
    for split, folder in (("train", "train"), ("val", "train"), ("test", "val")):
        part = data.split(split)
        for i, key in enumerate(part.keys):
            x, t = part.read(i)
            stored = truth[(folder, key)]
            np.testing.assert_allclose(x, stored["image"].transpose(2, 0, 1), atol=1e-6)
            np.testing.assert_array_equal(t["semseg"], stored["label_7"].astype(np.int64))
            assert t["semseg"].dtype == np.int64 and (t["semseg"] == -1).any()
            assert t["depth"].shape == (1, 24, 32) and np.isnan(t["depth"][0, :2]).all()
            np.testing.assert_array_equal(t["depth"][0, 2:], stored["depth"][2:, :, 0])


def test_label_folder_choice(city, tmp_path):
    root, truth = city
    data = load_dataset(cfg(root, classes=19), ["semseg"])
    assert data.tasks["semseg"].channels == 19
    np.testing.assert_array_equal(data.test.read(1)[1]["semseg"],
                                  truth[("val", "1")]["label_19"].astype(np.int64))
    with pytest.raises(DataError, match=r"label_2 .*data.classes=2"):
        load_dataset(cfg(root, classes=2))
    write(tmp_path / "plain", label_dir="label", classes=19, n_train=3, n_val=2)
    plain = load_dataset(cfg(tmp_path / "plain"))
    assert plain.tasks["semseg"].channels == 7  # label/ without data.classes: 7 classes
    labels = plain.train.read(0)[1]["semseg"]
    assert labels.max() < 7  # stored classes 7..18 are out of range: ignored
    assert load_dataset(cfg(tmp_path / "plain", classes=19)).tasks["semseg"].channels == 19


def test_resize_channel_first_and_byte_scaled_images(tmp_path):
    truth = write(tmp_path / "cf", channel_first=True, n_train=3, n_val=2)
    data = load_dataset(cfg(tmp_path / "cf", size=(12, 16)))
    x, t = data.test.read(0)
    assert x.shape == (3, 12, 16) and data.input_shape == (3, 12, 16)
    assert t["semseg"].shape == (12, 16) and t["depth"].shape == (1, 12, 16)
    np.testing.assert_array_equal(t["semseg"], truth[("val", "0")]["label_7"][1::2, 1::2])
    assert np.isnan(t["depth"][0, 0]).all() and np.isfinite(t["depth"][0, 1:]).all()
    for path in (tmp_path / "cf").glob("*/image/*.npy"):  # floats stored as 0-255
        np.save(path, np.load(path) * 255.0)
    scaled = load_dataset(cfg(tmp_path / "cf"))
    np.testing.assert_allclose(scaled.test.read(0)[0],
                               truth[("val", "0")]["image"].transpose(2, 0, 1), atol=1e-5)


def test_bad_files_are_skipped(tmp_path):
    write(tmp_path, n_train=6, n_val=3)
    truncate(tmp_path / "train" / "image" / "3.npy")
    (tmp_path / "val" / "depth" / "2.npy").unlink()
    data = load_dataset(cfg(tmp_path, val_fraction=0.5))
    assert sorted(p[len(str(tmp_path)) + 1:] for p, _ in data.skipped) == [
        "train/image/3.npy", "val/depth/2.npy"]
    assert data.test.keys == ["0", "1"]
    assert "3" not in data.train.keys + data.val.keys
    assert load_dataset(cfg(tmp_path, val_fraction=0.5), ["semseg"]).test.keys == ["0", "1", "2"]


def test_not_the_layout_and_unknown_task(tmp_path):
    with pytest.raises(DataError, match=r"missing folder .*train/image: .*not the Cityscapes"):
        load_dataset(cfg(tmp_path))
    write(tmp_path, n_train=2, n_val=1)
    with pytest.raises(DataError, match="unknown task 'dept'.*did you mean 'depth'"):
        load_dataset(cfg(tmp_path), ["dept"])
    for path in (tmp_path / "val" / "depth").iterdir():
        path.unlink()
    (tmp_path / "val" / "depth").rmdir()
    with pytest.raises(DataError, match=r"missing folder .*val/depth \(labels of task 'depth'\)"):
        load_dataset(cfg(tmp_path))
    assert list(load_dataset(cfg(tmp_path), ["semseg"]).tasks) == ["semseg"]
