"""Tests of the Taskonomy loader on fixtures written in the dataset's on-disk format."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from taskonomy_layout import KEYPOINT_PNG_SCALE, TASKONOMY_DOMAINS, write_taskonomy

from taskgrouper.config import parse_config
from taskgrouper.data import load_dataset
from taskgrouper.data import synthetic as syn
from taskgrouper.data import taskonomy as tx
from taskgrouper.data.base import DataError, LazySplit

TASKS = ("s", "d", "n", "k", "e", "o")
N_BUILDINGS, PER_BUILDING = 3, 4


def _cfg(path, **data):
    """A DataConfig for a Taskonomy folder; 32x32 synthetic scenes with 4 classes by default."""
    raw = {"kind": "taskonomy", "path": str(path), "size": [32, 32], "classes": 4,
           "cache": False, "workers": 0}
    raw.update(data)
    return parse_config({"data": raw}).data


@pytest.fixture(scope="module")
def scenes():
    return syn.generate(N_BUILDINGS * PER_BUILDING, seed=5,
                        config=syn.SceneConfig(resolution=32), tasks=TASKS)


@pytest.fixture(scope="module")
def flat(tmp_path_factory, scenes):
    """ROOT/<building>/<domain>/point_<P>_view_0_domain_<domain>.png, buildings b0..b2."""
    root = tmp_path_factory.mktemp("taskonomy_flat")
    for b in range(N_BUILDINGS):
        part = scenes.subset(slice(b * PER_BUILDING, (b + 1) * PER_BUILDING))
        write_taskonomy(part, root, building=f"b{b}", tasks=TASKS)
    return root


@pytest.fixture()
def copy(flat, tmp_path):
    """A private copy of the flat fixture, free to damage."""
    root = tmp_path / "root"
    shutil.copytree(flat, root)
    return root


def _index(key) -> int:
    """Scene index of a (building, stem) key of the flat fixture."""
    building, stem = key
    return int(building[1:]) * PER_BUILDING + int(stem.split("_")[1])


def _file(root: Path, building: str, domain: str, point: int) -> Path:
    return root / building / domain / f"point_{point}_view_0_domain_{domain}.png"


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=0), -1.0, 1.0)))


# ---------------------------------------------------------------------------------------------
# round trip of the synthetic labels


def test_loads_the_synthetic_labels_back(flat, scenes):
    data = tx.load(_cfg(flat), list(TASKS))
    assert data.name == f"taskonomy:{flat}"
    assert data.skipped == []
    assert all(isinstance(data.split(s), LazySplit) for s in ("train", "val", "test"))
    assert data.input_shape == (3, 32, 32)
    kinds = {t: spec.kind for t, spec in data.tasks.items()}
    assert kinds == {"s": "segmentation", "d": "dense_regression", "n": "normals",
                     "k": "dense_regression", "e": "dense_regression", "o": "dense_regression"}
    assert data.tasks["s"].channels == 4
    # 80/10/10 of three buildings: one building per split, each whole
    buildings = [{k[0] for k in data.split(s).keys} for s in ("train", "val", "test")]
    assert all(len(b) == 1 for b in buildings) and len(set.union(*buildings)) == 3
    assert sum(len(data.split(s)) for s in ("train", "val", "test")) == 12

    step16 = 0.5 / 65535.0
    for split in ("train", "val", "test"):
        lazy = data.split(split)
        for i, key in enumerate(lazy.keys):
            x, t = lazy.read(i)
            j = _index(key)
            truth = {name: scenes.targets[name][j] for name in TASKS}
            assert x.dtype == np.float32 and x.shape == (3, 32, 32)
            np.testing.assert_allclose(x, scenes.x[j], atol=0.5 / 255 + 1e-6)
            assert t["s"].dtype == np.int64
            np.testing.assert_array_equal(t["s"], truth["s"])

            d = truth["d"]
            valid = np.isfinite(d) & (d < tx.DEPTH_VALID_BELOW / tx.DEPTH_UNITS_PER_METRE)
            assert valid.mean() > 0.9
            np.testing.assert_array_equal(np.isfinite(t["d"]), valid)
            np.testing.assert_allclose(t["d"][valid], d[valid], atol=0.5 / 512 + 1e-6)

            ok = valid[0] & np.isfinite(truth["n"]).all(axis=0)
            np.testing.assert_array_equal(np.isfinite(t["n"]).all(axis=0), ok)
            np.testing.assert_allclose(np.linalg.norm(t["n"][:, ok], axis=0), 1.0, atol=1e-5)
            assert _angle(t["n"][:, ok], truth["n"][:, ok]).max() < 1.0  # 8-bit codes

            # the loader reads keypoints2d in the real dataset's unit (v / 65535); the synthetic
            # writer stretched them by KEYPOINT_PNG_SCALE / 65535 first
            k = t["k"] * 65535.0 / KEYPOINT_PNG_SCALE
            top = 65535.0 / KEYPOINT_PNG_SCALE
            np.testing.assert_allclose(k, np.clip(truth["k"], 0, top),
                                       atol=0.5 / KEYPOINT_PNG_SCALE + 1e-7)
            np.testing.assert_allclose(t["e"], np.clip(truth["e"], 0, 1), atol=step16 + 1e-7)
            # occlusion edges are masked where depth is invalid
            np.testing.assert_array_equal(np.isfinite(t["o"]), valid)
            np.testing.assert_array_equal(t["o"][valid], truth["o"][valid])


def test_short_names_match_the_synthetic_domains():
    for task, domain in TASKONOMY_DOMAINS.items():
        assert tx.resolve_task(task).name == domain
        assert tx.resolve_task(domain).short == task


def test_default_tasks_and_load_dataset(flat):
    data = load_dataset(_cfg(flat))  # through the package entry point
    assert list(data.tasks) == ["s", "d", "n", "k", "e"]
    data.check()


# ---------------------------------------------------------------------------------------------
# layouts and spellings


def _reorganise(flat: Path, out: Path, style: str, segment_folder: str) -> None:
    """Copy the flat fixture into a domain-first layout, renaming segment_semantic."""
    for building in sorted(p.name for p in flat.iterdir()):
        for domain_dir in (flat / building).iterdir():
            domain = domain_dir.name
            spelled = segment_folder if domain == "segment_semantic" else domain
            if style == "domain/taskonomy/building":
                target = out / spelled / "taskonomy" / building
            else:
                target = out / spelled / building
            target.mkdir(parents=True)
            for f in domain_dir.iterdir():
                shutil.copy(f, target / f.name.replace("segment_semantic", spelled))


@pytest.mark.parametrize("style", ["domain/taskonomy/building", "domain/building"])
def test_domain_first_layouts_and_the_segmentsemantic_spelling(flat, tmp_path, style):
    root = tmp_path / "released"
    _reorganise(flat, root, style, "segmentsemantic")
    assert (root / "segmentsemantic").is_dir()
    names = ["segment_semantic", "depth_zbuffer", "normal"]
    got = tx.load(_cfg(root), names)
    want = tx.load(_cfg(flat), ["s", "d", "n"])
    assert got.train.reader.layout.style == style
    assert list(got.tasks) == names  # tasks keep the names asked for
    for split in ("train", "val", "test"):
        a, b = got.split(split), want.split(split)
        assert a.keys == b.keys
        for i in range(len(a)):
            (xa, ta), (xb, tb) = a.read(i), b.read(i)
            np.testing.assert_array_equal(xa, xb)
            for name, short in zip(names, ("s", "d", "n"), strict=True):
                np.testing.assert_array_equal(ta[name], tb[short])
    # the spelling itself is also a task name
    assert list(tx.load(_cfg(root), ["segmentsemantic"]).tasks) == ["segmentsemantic"]


# ---------------------------------------------------------------------------------------------
# hand-written files: depth validity, normal decoding, segmentation shift


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_hand_written_codes_decode_as_the_real_dataset(tmp_path):
    root = tmp_path / "hand"
    depth = np.array([[0, 512, 8191, 8192],
                      [10000, 65535, 1024, 1024]], dtype=np.uint16)
    normal = np.zeros((2, 4, 3), dtype=np.uint8)
    normal[0, 0] = (255, 128, 128)  # ~ +x
    normal[0, 1] = (128, 0, 128)  # ~ -y
    normal[0, 2] = (100, 150, 200)  # not unit after decoding: renormalised
    normal[0, 3] = (255, 128, 128)  # depth invalid -> NaN
    normal[1, 2] = (0, 0, 0)  # the all-zero code: invalid
    normal[1, 3] = (128, 128, 0)  # ~ -z
    segment = np.array([[0, 1, 2, 17], [3, 3, 0, 5]], dtype=np.uint8)
    keypoints = np.array([[0, 65535, 32768, 1], [0, 0, 0, 0]], dtype=np.uint16)
    occlusion = np.full((2, 4), 65535, dtype=np.uint16)
    for point in range(3):  # one building: its points are split
        rgb = np.full((2, 4, 3), 40 * point, dtype=np.uint8)
        for domain, array in (("rgb", rgb), ("depth_zbuffer", depth), ("normal", normal),
                              ("segment_semantic", segment), ("keypoints2d", keypoints),
                              ("edge_occlusion", occlusion)):
            _save(_file(root, "only", domain, point), array)
    data = tx.load(_cfg(root, size=[2, 4], classes=None), ["s", "d", "n", "k", "o"])
    assert data.tasks["s"].channels == tx.DEFAULT_CLASSES == 17
    assert sorted(len(data.split(s)) for s in ("train", "val", "test")) == [1, 1, 1]
    x, t = data.train.read(0)
    assert x.shape == (3, 2, 4)

    nan = np.nan
    np.testing.assert_array_equal(t["d"][0], [[0.0, 1.0, 8191 / 512, nan],
                                              [nan, nan, 2.0, 2.0]])
    np.testing.assert_array_equal(t["s"], [[-1, 0, 1, 16], [2, 2, -1, 4]])
    np.testing.assert_allclose(t["k"][0], [[0, 1, 32768 / 65535, 1 / 65535], [0, 0, 0, 0]])
    np.testing.assert_array_equal(t["o"][0], [[1, 1, 1, nan], [nan, nan, 1, 1]])

    n = t["n"]
    raw = normal.astype(np.float64).transpose(2, 0, 1) * 2 / 255 - 1  # 2 v / 255 - 1
    unit = raw / np.linalg.norm(raw, axis=0)
    for i, j in ((0, 0), (0, 1), (0, 2), (1, 3)):
        np.testing.assert_allclose(n[:, i, j], unit[:, i, j], atol=1e-6)
    np.testing.assert_allclose(n[:, 0, 0], [1, 0, 0], atol=0.01)
    np.testing.assert_allclose(n[:, 0, 1], [0, -1, 0], atol=0.01)
    np.testing.assert_allclose(n[:, 1, 3], [0, 0, -1], atol=0.01)
    invalid = np.isnan(n).any(axis=0)
    np.testing.assert_array_equal(invalid, [[False, False, False, True],
                                            [True, True, True, False]])

    # with too few classes for the stored values the loader says what to set
    with pytest.raises(DataError, match="set data.classes to at least 17"):
        tx.load(_cfg(root, size=[2, 4], classes=4), ["s"])

    # the optional domains: curvature (2 channels of 8 bits) and reshading, both masked
    curvature = np.zeros((2, 4, 3), dtype=np.uint8)
    curvature[..., 0], curvature[..., 1], curvature[..., 2] = 51, 255, 7
    for point in range(3):
        _save(_file(root, "only", "principal_curvature", point), curvature)
        _save(_file(root, "only", "reshading", point), np.full((2, 4), 102, dtype=np.uint8))
        _save(_file(root, "only", "depth_euclidean", point), depth)
    extra = tx.load(_cfg(root, size=[2, 4]), ["principal_curvature", "reshading",
                                              "depth_euclidean"])
    _, t = extra.train.read(0)
    valid = depth < tx.DEPTH_VALID_BELOW
    assert t["principal_curvature"].shape == (2, 2, 4)
    np.testing.assert_allclose(t["principal_curvature"][:, valid].T, [[0.2, 1.0]] * 5)
    assert np.isnan(t["principal_curvature"][:, ~valid]).all()
    np.testing.assert_allclose(t["reshading"][0][valid], 0.4)
    assert np.isnan(t["reshading"][0][~valid]).all()
    assert t["depth_euclidean"].shape == (1, 2, 4)
    np.testing.assert_array_equal(t["depth_euclidean"], tx.decode_depth(depth))


def test_decoders_directly():
    raw = np.array([[0, 8191, 8192, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(tx.decode_depth(raw)[0], [[0, 8191 / 512, np.nan, np.nan]])
    np.testing.assert_array_equal(tx.decode_segmentation(np.array([[0, 1, 5]]), 4),
                                  [[-1, 0, -1]])


# ---------------------------------------------------------------------------------------------
# bad files, splits, resizing, limits


def test_corrupt_and_missing_files_are_left_out_and_listed(copy, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKGROUPER_CACHE", str(tmp_path / "cache"))
    corrupt = _file(copy, "b0", "depth_zbuffer", 1)
    corrupt.write_bytes(corrupt.read_bytes()[: corrupt.stat().st_size // 2])
    missing = _file(copy, "b1", "normal", 2)
    missing.unlink()
    cfg = _cfg(copy, cache=True)
    data = tx.load(cfg, list(TASKS))
    reasons = dict(data.skipped)
    assert set(reasons) == {str(corrupt), str(missing)}
    assert reasons[str(missing)] == "missing"
    assert "corrupt" in reasons[str(corrupt)] or "truncated" in reasons[str(corrupt)].lower()
    keys = [k for s in ("train", "val", "test") for k in data.split(s).keys]
    assert len(keys) == 10
    assert ("b0", "point_1_view_0") not in keys and ("b1", "point_2_view_0") not in keys
    for s in ("train", "val", "test"):  # every kept sample reads
        for i in range(len(data.split(s))):
            data.split(s).read(i)
    # the scan is cached: a second load opens nothing and finds the same
    assert list((tmp_path / "cache" / "scans").glob("taskonomy-*.json"))
    assert dict(tx.load(cfg, list(TASKS)).skipped) == reasons
    # a task that does not need the missing normal keeps that sample
    only_depth = tx.load(cfg, ["d"])
    assert [p for p, _ in only_depth.skipped] == [str(corrupt)]


def test_normals_alone_still_read_depth_for_their_mask(copy):
    depth = _file(copy, "b2", "depth_zbuffer", 0)
    depth.unlink()
    data = tx.load(_cfg(copy), ["n"])
    assert len(data.skipped) == 1 and data.skipped[0][0] == str(depth)
    assert "validity mask" in data.skipped[0][1]


def test_split_csv_by_size_name_and_by_path(copy, tmp_path):
    (copy / "splits").mkdir()
    table = "id,train,val,test\nb0,1,0,0\nb1,0,1,0\nb2,0,0,1\nnot_downloaded,1,0,0\n"
    (copy / "splits" / "train_val_test_tiny.csv").write_text(table)
    data = tx.load(_cfg(copy, split="tiny"), ["d"])
    assert {k[0] for k in data.train.keys} == {"b0"}
    assert {k[0] for k in data.val.keys} == {"b1"}
    assert {k[0] for k in data.test.keys} == {"b2"}
    assert len(data.train) == PER_BUILDING

    elsewhere = tmp_path / "my_split.csv"
    elsewhere.write_text("id,train,val,test\nb2,1,0,0\nb0,0,1,0\nb1,0,0,1\n")
    data = tx.load(_cfg(copy, split=str(elsewhere)), ["d"])
    assert {k[0] for k in data.train.keys} == {"b2"}

    with pytest.raises(DataError, match="train_val_test_medium.csv"):
        tx.load(_cfg(copy, split="medium"), ["d"])
    with pytest.raises(DataError, match="did you mean 'tiny'"):
        tx.load(_cfg(copy, split="tinny"), ["d"])
    elsewhere.write_text("id,train,val,test\nb2,1,0,0\nb0,1,0,0\nzz,0,0,1\n")
    with pytest.raises(DataError, match="'val' split"):
        tx.load(_cfg(copy, split=str(elsewhere)), ["d"])
    elsewhere.write_text("building,train\nb0,1\n")
    with pytest.raises(DataError, match="id,train,val,test"):
        tx.load(_cfg(copy, split=str(elsewhere)), ["d"])


def test_resize_to_a_chosen_size(flat, scenes):
    data = tx.load(_cfg(flat, size=[16, 24]), list(TASKS))
    assert data.input_shape == (3, 16, 24)
    x, t = data.train.read(0)
    j = _index(data.train.keys[0])
    assert x.shape == (3, 16, 24) and 0 <= x.min() and x.max() <= 1
    assert t["s"].shape == (16, 24)
    for name, channels in (("d", 1), ("n", 3), ("k", 1), ("e", 1), ("o", 1)):
        assert t[name].shape == (channels, 16, 24)
    # nearest neighbour: labels and depths are values of the original maps, never blends
    assert set(np.unique(t["s"])) <= set(np.unique(scenes.targets["s"][j]))
    original = np.round(scenes.targets["d"][j] * 512) / 512
    finite = t["d"][np.isfinite(t["d"])]
    assert np.isin(finite, original).all()
    assert set(np.unique(t["o"][np.isfinite(t["o"])])) <= {0.0, 1.0}


def test_limit_is_applied_before_the_scan(copy):
    corrupt = _file(copy, "b0", "rgb", 1)  # not among the kept samples
    corrupt.write_bytes(b"\x89PNG not really")
    data = tx.load(_cfg(copy, limit=2), ["d"])
    assert [len(data.split(s)) for s in ("train", "val", "test")] == [2, 2, 2]
    assert data.skipped == []
    assert all(k[1] in ("point_0_view_0", "point_3_view_0")
               for s in ("train", "val", "test") for k in data.split(s).keys)


def test_seeded_building_split_is_reproducible(flat):
    a = tx.load(_cfg(flat, seed=1), ["d"])
    b = tx.load(_cfg(flat, seed=1), ["d"])
    assert a.train.keys == b.train.keys and a.test.keys == b.test.keys


# ---------------------------------------------------------------------------------------------
# errors


def test_a_folder_that_is_not_the_layout(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="no rgb folder found") as err:
        tx.load(_cfg(tmp_path), ["d"])
    assert str(tmp_path) in str(err.value) and "<building>/rgb" in str(err.value)
    with pytest.raises(DataError, match="not a folder"):
        tx.load(_cfg(tmp_path / "nowhere"), ["d"])
    # one building's folder given as the root: its rgb folder holds files, not buildings
    building = tmp_path / "b0"
    _save(building / "rgb" / "point_0_view_0_domain_rgb.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(DataError, match="holds no building folder.*folder above it"):
        tx.load(_cfg(building), ["d"])


def test_unknown_missing_and_repeated_tasks(flat):
    with pytest.raises(DataError, match="unknown Taskonomy task 'depht'; did you mean"):
        tx.load(_cfg(flat), ["depht"])
    with pytest.raises(DataError, match="'principal_curvature' domain folder") as err:
        tx.load(_cfg(flat), ["d", "principal_curvature"])
    assert str(flat) in str(err.value)
    with pytest.raises(DataError, match="both name the Taskonomy domain 'depth_zbuffer'"):
        tx.load(_cfg(flat), ["d", "depth_zbuffer"])


# ---------------------------------------------------------------------------------------------
# worker processes


class _Samples(torch.utils.data.Dataset):
    """A torch Dataset over a lazy split (what the trainer streams)."""

    def __init__(self, split: LazySplit):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i):
        return self.split.read(i)


def test_reader_pickles_and_dataloader_workers_agree(flat):
    data = tx.load(_cfg(flat), list(TASKS))
    reader = data.train.reader
    again = pickle.loads(pickle.dumps(reader))
    assert again == reader
    key = data.train.keys[0]
    x0, t0 = reader(key, TASKS)
    x1, t1 = again(key, TASKS)
    np.testing.assert_array_equal(x0, x1)
    for name in TASKS:
        np.testing.assert_array_equal(t0[name], t1[name])

    split = data.train
    serial = list(torch.utils.data.DataLoader(_Samples(split), batch_size=2, num_workers=0))
    parallel = list(torch.utils.data.DataLoader(_Samples(split), batch_size=2, num_workers=2))
    assert len(serial) == len(parallel) == 2
    for (xa, ta), (xb, tb) in zip(serial, parallel, strict=True):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        for name in TASKS:
            torch.testing.assert_close(ta[name], tb[name], rtol=0, atol=0, equal_nan=True)
