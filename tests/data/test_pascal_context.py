"""PASCAL-Context (PASCAL_MT layout) from disk: the five tasks, bad files and the layout."""

import shutil

import numpy as np
import pytest
from PIL import Image
from real_fixtures import survey_part_classes, truncate, write_pascal

from taskgrouper.config import DataConfig
from taskgrouper.data import load_dataset
from taskgrouper.data.base import DataError
from taskgrouper.data.files import resize
from taskgrouper.data.pascal_context import NORMALS_VALID_CLASSES, human_part_map

SIZE = (24, 32)


def cfg(path, **kw):
    kw.setdefault("cache", False)
    kw.setdefault("workers", 0)
    kw.setdefault("size", SIZE)
    return DataConfig(kind="pascal_context", path=str(path), **kw)


@pytest.fixture(scope="module")
def pascal(tmp_path_factory):
    root = tmp_path_factory.mktemp("pascal")
    return root, *write_pascal(root)


def expected_targets(stored):
    """What the loader should return for one sample, computed independently."""
    near = lambda a: resize(a, SIZE, "nearest")  # noqa: E731
    semseg = stored["semseg"].astype(np.int64)
    semseg[semseg >= 21] = -1
    ctx = stored["context"].astype(np.int64)
    edge = np.zeros(ctx.shape, np.float32)
    edge[:, :-1][ctx[:, :-1] != ctx[:, 1:]] = 1
    edge[:-1][ctx[:-1] != ctx[1:]] = 1
    n = 2.0 * stored["normals"].astype(np.float32) / 255.0 - 1.0
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[~np.isin(ctx, [284, 440])] = np.nan  # person and wall are trusted, sky is not
    return {"semseg": near(semseg), "human_parts": near(stored["parts"]),
            "sal": near((stored["sal"] > 127).astype(np.float32))[None],
            "normals": near(n).transpose(2, 0, 1), "edge": near(edge)[None]}


def test_round_trip(pascal):
    root, train_ids, val_ids, truth = pascal
    data = load_dataset(cfg(root))
    data.check()
    assert list(data.tasks) == ["semseg", "human_parts", "sal", "normals", "edge"]
    assert data.tasks["semseg"].channels == 21 and data.tasks["human_parts"].channels == 7
    assert data.tasks["edge"].option("max_dist") == 0.0075
    assert data.tasks["sal"].kind == "dense_binary" and data.skipped == []
    assert data.test.keys == val_ids
    assert sorted(data.train.keys + data.val.keys) == sorted(train_ids)
    for split in ("train", "val", "test"):
        part = data.split(split)
        for i, key in enumerate(part.keys):
            x, t = part.read(i)
            assert x.shape == (3, *SIZE) and x.dtype == np.float32
            want = expected_targets(truth[key])
            for task in data.tasks:
                assert t[task].dtype == want[task].dtype, task
                np.testing.assert_allclose(t[task], want[task], atol=1e-5, err_msg=task)
    assert truth[train_ids[3]]["image"].shape[:2] == (28, 20)  # resized to SIZE above
    x, _ = data.test.read(0)
    stored = truth[val_ids[0]]["image"].transpose(2, 0, 1) / 255.0
    assert np.abs(x - stored).mean() < 0.03


def test_human_parts_conventions(pascal):
    root, train_ids, _, truth = pascal
    # the fixture nests the struct as Pascal-Part does: the survey's positional access works
    assert survey_part_classes(root / "human_parts" / f"{train_ids[2]}.mat") == [15, 15]
    assert survey_part_classes(root / "human_parts" / f"{train_ids[1]}.mat") == [12]
    data = load_dataset(cfg(root, size=None), ["human_parts"])
    assert data.input_shape == (3, 512, 512)  # the survey's size when data.size is unset
    by_key = {k: data.split(s).read(i)[1]["human_parts"]
              for s in ("train", "val", "test") for i, k in enumerate(data.split(s).keys)}
    assert (by_key[train_ids[1]] == -1).all()  # no person: counts nowhere
    with_parts = by_key[train_ids[0]]
    assert with_parts.shape == (512, 512) and set(np.unique(with_parts)) == {0, 1, 2, 3, 6}
    assert (by_key[train_ids[2]] == -1).any()  # the person without part annotation
    assert human_part_map({"anno": np.zeros((0, 0))}, (4, 5)).shape == (4, 5)
    with pytest.raises(DataError, match="no struct 'anno'"):
        human_part_map({}, (4, 5), "x.mat")


def test_voc12_labels_take_precedence(tmp_path):
    train_ids, _, truth = write_pascal(tmp_path, n_train=3, n_val=2)
    (tmp_path / "semseg" / "VOC12").mkdir()
    voc = np.full(SIZE, 7, np.uint8)
    Image.fromarray(voc).save(tmp_path / "semseg" / "VOC12" / f"{train_ids[0]}.png")
    data = load_dataset(cfg(tmp_path, val_fraction=0.4), ["semseg"])
    labels = {k: data.split(s).read(i)[1]["semseg"]
              for s in ("train", "val") for i, k in enumerate(data.split(s).keys)}
    assert (labels[train_ids[0]] == 7).all()
    stored = truth[train_ids[2]]["semseg"].astype(np.int64)
    stored[stored == 255] = -1
    np.testing.assert_array_equal(labels[train_ids[2]], stored)


def test_bad_files_are_skipped(tmp_path):
    train_ids, val_ids, _ = write_pascal(tmp_path)
    truncate(tmp_path / "sal_distill" / f"{train_ids[0]}.png")
    (tmp_path / "human_parts" / f"{train_ids[4]}.mat").unlink()
    truncate(tmp_path / "pascal-context" / "trainval" / f"{val_ids[2]}.mat")
    truncate(tmp_path / "JPEGImages" / f"{val_ids[1]}.jpg")
    data = load_dataset(cfg(tmp_path, val_fraction=0.5))
    skipped = {p[len(str(tmp_path)) + 1:]: r for p, r in data.skipped}
    assert set(skipped) == {f"sal_distill/{train_ids[0]}.png",
                            f"human_parts/{train_ids[4]}.mat",
                            f"pascal-context/trainval/{val_ids[2]}.mat",
                            f"JPEGImages/{val_ids[1]}.jpg"}
    assert skipped[f"human_parts/{train_ids[4]}.mat"] == "missing"
    assert data.test.keys == val_ids[:1]
    assert sorted(data.train.keys + data.val.keys) == sorted(train_ids[1:4] + train_ids[5:])
    # a file of a task not asked for does not matter
    semseg_only = load_dataset(cfg(tmp_path, val_fraction=0.5), ["semseg"])
    assert semseg_only.test.keys == [val_ids[0], val_ids[2]]


def test_not_the_layout_and_unknown_task(tmp_path):
    with pytest.raises(DataError, match=r"missing folder .*JPEGImages"):
        load_dataset(cfg(tmp_path))
    write_pascal(tmp_path, n_train=2, n_val=1)
    with pytest.raises(DataError, match="unknown task 'human_part'.*did you mean 'human_parts'"):
        load_dataset(cfg(tmp_path), ["human_part"])
    shutil.rmtree(tmp_path / "pascal-context")
    with pytest.raises(DataError, match=r"missing folder .*pascal-context/trainval .*'edge'"):
        load_dataset(cfg(tmp_path), ["semseg", "edge"])
    assert list(load_dataset(cfg(tmp_path), ["sal"]).tasks) == ["sal"]
    (tmp_path / "ImageSets" / "Context" / "train.txt").unlink()
    with pytest.raises(DataError, match=r"missing split list .*Context/train.txt"):
        load_dataset(cfg(tmp_path), ["sal"])


def test_normals_mask_lists_context_classes():
    assert {284, 440, 427, 397} <= NORMALS_VALID_CLASSES  # person, wall, tvmonitor, table
    assert not {360, 431} & NORMALS_VALID_CLASSES  # sky, unknown
