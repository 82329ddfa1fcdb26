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


def _classes(root, classes):
    (root / "tasks.yaml").write_text(
        f"tasks:\n  y: {{kind: regression}}\n  c: {{kind: classification, classes: {classes}}}\n")


def test_class_count_warning_only_below_half(tmp_path, recwarn):
    from taskgrouper.data.arrays import ClassCountWarning

    _write(tmp_path)  # class ids 0..2
    _classes(tmp_path, 5)  # labels use 3 of 5: more than half, no warning
    load_arrays(tmp_path)
    assert not [w for w in recwarn if issubclass(w.category, ClassCountWarning)]
    _classes(tmp_path, 7)
    with pytest.warns(ClassCountWarning, match=r"task 'c' declares classes: 7 but its labels "
                                               r"use ids 0..2 only.*set 'classes: 3'"):
        data = load_arrays(tmp_path)
    assert data.tasks["c"].channels == 7  # a warning, not a refusal


def test_class_count_above_the_cap(tmp_path, recwarn):
    from taskgrouper.data.arrays import MAX_CLASSES

    _write(tmp_path)
    _classes(tmp_path, MAX_CLASSES + 1)
    with pytest.raises(DataError, match=r"classes: 10001 but its labels use ids 0..2 only.*"
                                        r"set 'classes: 3'"):
        load_arrays(tmp_path)
    # a label set that really is that large loads
    _write(tmp_path, y_cls=lambda size: np.arange(size) + MAX_CLASSES - 10)
    _classes(tmp_path, MAX_CLASSES + 10)
    assert load_arrays(tmp_path).tasks["c"].channels == MAX_CLASSES + 10
    assert not recwarn.list


def test_headers_are_checked_before_any_value(tmp_path):
    _write(tmp_path)
    x = np.load(tmp_path / "train" / "x.npy")
    x[0, 0] = np.nan
    np.save(tmp_path / "train" / "x.npy", x)
    np.save(tmp_path / "test" / "c.npy", np.zeros((6, 2), np.int64))
    with pytest.raises(DataError, match=r"test/c.npy: task 'c' \(classification\) expects "
                                        r"shape \(N,\), got \(6, 2\)"):
        load_arrays(tmp_path)
    np.save(tmp_path / "test" / "c.npy", np.zeros(6, np.int64))
    with pytest.raises(DataError, match=r"train/x.npy: inputs hold 1 NaN"):
        load_arrays(tmp_path)


def test_non_finite_inputs_found_across_blocks(tmp_path, monkeypatch):
    import taskgrouper.data.arrays as arrays

    monkeypatch.setattr(arrays, "_BLOCK", 8)  # two samples of 4 features per block
    _write(tmp_path)
    x = np.load(tmp_path / "val" / "x.npy").astype(np.float64)
    x[3, 1], x[5, 0], x[5, 2] = np.inf, np.nan, 1e40  # 1e40 overflows float32
    np.save(tmp_path / "val" / "x.npy", x)
    with pytest.raises(DataError, match=r"val/x.npy: inputs hold 1 NaN and 2 infinite value\(s\), "
                                        r"the first in sample 3; 1 of them are values beyond"):
        load_arrays(tmp_path)
    x = np.nan_to_num(x, posinf=0.0).astype(np.float64)
    x[5, 2] = 0.0
    np.save(tmp_path / "val" / "x.npy", x)
    got = load_arrays(tmp_path).val.x
    assert got.dtype == np.float32 and np.array_equal(got, x.astype(np.float32))


def test_one_channel_targets_load_in_the_table_form(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "tasks.yaml").write_text(
        "tasks:\n  r: {kind: regression}\n  b: {kind: binary}\n  m: {kind: dense_regression}\n"
        "  s: {kind: segmentation, classes: 3.0}\n  e: {kind: dense_binary}\n")
    for split in ("train", "val", "test"):
        (tmp_path / split).mkdir()
        np.save(tmp_path / split / "x.npy", rng.normal(size=(5, 2, 4, 6)).astype(np.float32))
        np.save(tmp_path / split / "r.npy", rng.normal(size=(5, 1)))
        np.save(tmp_path / split / "b.npy", np.array([True, False, True, True, False])[:, None])
        np.save(tmp_path / split / "m.npy", rng.normal(size=(5, 4, 6)))
        np.save(tmp_path / split / "s.npy", rng.integers(0, 3, size=(5, 1, 4, 6)))
        np.save(tmp_path / split / "e.npy", rng.random((5, 4, 6)) > 0.5)
    data = load_arrays(tmp_path)
    t = data.test.targets
    assert t["r"].shape == (5,) and t["r"].dtype == np.float32
    assert t["b"].shape == (5,) and t["b"].tolist() == [1, 0, 1, 1, 0]
    assert t["m"].shape == (5, 1, 4, 6) and t["s"].shape == (5, 4, 6)
    assert t["s"].dtype == np.int64 and t["e"].shape == (5, 1, 4, 6)
    assert data.tasks["s"].channels == 3


@pytest.mark.parametrize("entry, match", [
    ("{kind: classification, classes: 3.9}", r"has classes: 3.9; classes must be a "
                                              r"whole number >= 2"),
    ("{kind: classification, classes: true}", r"has classes: true;"),
    ("{kind: regression, channels: 0}", r"has channels: 0; channels must be a whole number >= 1"),
    ("{kind: normals, channels: 2}", r"normals have 3 channels"),
    ("{kind: classification, classes: 3, channels: 4}", r"remove 'channels'"),
])
def test_bad_numbers_in_tasks_yaml(tmp_path, entry, match):
    _write(tmp_path)
    (tmp_path / "tasks.yaml").write_text(f"tasks:\n  c: {entry}\n")
    with pytest.raises(DataError, match=r"tasks.yaml: task .c.*" + match):
        load_arrays(tmp_path)
