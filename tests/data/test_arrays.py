"""Array datasets: round trip, missing labels, and bad input with clear messages."""

import numpy as np
import pytest

from taskgrouper.data.arrays import load_arrays
from taskgrouper.data.base import DataError


def _write(root, n=(20, 6, 6), y_cls=None):
    rng = np.random.default_rng(0)
    (root / "tasks.yaml").write_text(
        "tasks:\n  y: {kind: regression}\n  c: {kind: classification, classes: 3}\n")
    for split, size in zip(("train", "val", "test"), n, strict=True):
        (root / split).mkdir(parents=True, exist_ok=True)
        np.save(root / split / "x.npy", rng.normal(size=(size, 4)).astype(np.float32))
        y = rng.normal(size=size).astype(np.float32)
        y[0] = np.nan  # a missing label
        np.save(root / split / "y.npy", y)
        c = rng.integers(0, 3, size=size) if y_cls is None else y_cls(size)
        c[1] = -1
        np.save(root / split / "c.npy", c)


def test_round_trip_with_missing_labels(tmp_path):
    _write(tmp_path)
    data = load_arrays(tmp_path)
    assert list(data.tasks) == ["y", "c"] and data.input_kind == "vector"
    assert data.train.x.shape == (20, 4)
    assert np.isnan(data.train.targets["y"][0]) and data.train.targets["c"][1] == -1
    assert data.tasks["c"].channels == 3


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"'.*nowhere' does not exist"):
        load_arrays(tmp_path / "nowhere")


def test_first_dimensions_disagree(tmp_path):
    _write(tmp_path)
    np.save(tmp_path / "val" / "y.npy", np.zeros(5, dtype=np.float32))
    with pytest.raises(DataError, match=r"val/y.npy: 5 labels but .*x.npy has 6 inputs"):
        load_arrays(tmp_path)


def test_label_out_of_range(tmp_path):
    _write(tmp_path, y_cls=lambda size: np.full(size, 3))
    with pytest.raises(DataError, match=r"label 3 outside 0..2"):
        load_arrays(tmp_path)


def test_unknown_task_and_kind(tmp_path):
    _write(tmp_path)
    with pytest.raises(DataError, match=r"unknown task 'yy'.*did you mean 'y'"):
        load_arrays(tmp_path, tasks=["yy"])
    (tmp_path / "tasks.yaml").write_text("tasks:\n  y: {kind: regresion}\n")
    with pytest.raises(DataError, match=r"unknown kind 'regresion'.*regression"):
        load_arrays(tmp_path)


def test_corrupt_npy(tmp_path):
    _write(tmp_path)
    (tmp_path / "test" / "x.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match=r"test/x.npy: not a readable .npy"):
        load_arrays(tmp_path)
