"""NYUD-v2 from disk: both layouts, label decoding, bad files, splits, and DataLoader workers."""

import pickle

import numpy as np
import pytest
import torch
from real_fixtures import truncate, write_mtan, write_nyud_mt

from taskgrouper.config import DataConfig
from taskgrouper.data import load_dataset
from taskgrouper.data.base import DataError
from taskgrouper.data.files import resize


def cfg(path, **kw):
    kw.setdefault("cache", False)
    kw.setdefault("workers", 0)
    return DataConfig(kind="nyud", path=str(path), **kw)


def read_all(split):
    return {key: split.read(i) for i, key in enumerate(split.keys)}


@pytest.fixture(scope="module")
def nyud_mt(tmp_path_factory):
    root = tmp_path_factory.mktemp("nyud_mt")
    return root, *write_nyud_mt(root)


def test_nyud_mt_round_trip(nyud_mt):
    root, train_ids, val_ids, truth = nyud_mt
    data = load_dataset(cfg(root))
    data.check()
    assert list(data.tasks) == ["semseg", "depth", "normals", "edge"]
    assert data.tasks["semseg"].channels == 40 and data.input_shape == (3, 24, 32)
    assert data.tasks["edge"].option("pos_weight") == 0.95
    assert data.tasks["edge"].option("max_dist") == 0.011
    assert data.skipped == []
    for split in ("train", "val", "test"):
        for key, (x, t) in read_all(data.split(split)).items():
            stored = truth[key]
            assert x.dtype == np.float32 and x.shape == (3, 24, 32)
            assert 0.0 <= x.min() and x.max() <= 1.0
            assert np.abs(x - stored["image"].transpose(2, 0, 1) / 255.0).mean() < 0.03  # JPEG
            seg = stored["segmentation"].astype(np.int64) - 1  # 1..40 -> 0..39, 0 -> -1
            np.testing.assert_array_equal(t["semseg"], seg)
            assert t["semseg"][0, 0] == -1 and t["semseg"][-1, -1] == 39
            depth = t["depth"][0]
            assert np.isnan(depth[-2:]).all()
            np.testing.assert_array_equal(depth[:-2], stored["depth"][:-2])
            normals = t["normals"]
            assert np.isnan(normals[:, :3, :4]).all()
            np.testing.assert_allclose(normals[:, 3:], stored["normals"][3:].transpose(2, 0, 1),
                                       atol=1e-6)
            np.testing.assert_array_equal(t["edge"][0], stored["edge"])


def test_official_val_is_test_and_val_is_seeded(nyud_mt):
    root, train_ids, val_ids, _ = nyud_mt
    a = load_dataset(cfg(root, val_fraction=0.5, seed=3), ["depth"])
    b = load_dataset(cfg(root, val_fraction=0.5, seed=3), ["depth"])
    assert a.test.keys == val_ids
    assert a.val.keys == b.val.keys and len(a.val) == 3
    assert sorted(a.train.keys + a.val.keys) == sorted(train_ids)
    assert not set(a.train.keys) & set(a.val.keys)
    others = [load_dataset(cfg(root, val_fraction=0.5, seed=s), ["depth"]).val.keys
              for s in range(4)]
    assert len({tuple(k) for k in others}) > 1  # the seed matters
    limited = load_dataset(cfg(root, limit=2), ["depth"])
    assert [len(limited.split(s)) for s in ("train", "val", "test")] == [2, 1, 2]


def test_resize_keeps_invalid_pixels_apart(nyud_mt):
    root, train_ids, val_ids, truth = nyud_mt
    data = load_dataset(cfg(root, size=(12, 16)))
    key = data.test.keys[0]
    x, t = data.test.read(0)
    assert x.shape == (3, 12, 16) and data.input_shape == (3, 12, 16)
    seg = resize(truth[key]["segmentation"].astype(np.int64) - 1, (12, 16), "nearest")
    seg[seg < 0] = -1
    np.testing.assert_array_equal(t["semseg"], seg)
    depth = t["depth"][0]
    assert np.isnan(depth[-1]).all() and np.isfinite(depth[:-1]).all()
    norm = np.linalg.norm(t["normals"], axis=0)
    valid = np.isfinite(norm)
    assert valid.sum() > 150 and np.allclose(norm[valid], 1.0, atol=1e-5)
    assert set(np.unique(t["edge"])) <= {0.0, 1.0}


def test_corrupt_and_missing_files_are_skipped(tmp_path):
    train_ids, val_ids, _ = write_nyud_mt(tmp_path)
    truncate(tmp_path / "images" / f"{train_ids[0]}.jpg")
    (tmp_path / "segmentation" / f"{train_ids[1]}.png").unlink()
    truncate(tmp_path / "depth" / f"{val_ids[0]}.npy")
    data = load_dataset(cfg(tmp_path))
    bad = {p.split("/")[-2] + "/" + p.split("/")[-1]: reason for p, reason in data.skipped}
    assert set(bad) == {f"images/{train_ids[0]}.jpg", f"segmentation/{train_ids[1]}.png",
                        f"depth/{val_ids[0]}.npy"}
    assert bad[f"segmentation/{train_ids[1]}.png"] == "missing"
    kept = data.train.keys + data.val.keys
    assert sorted(kept) == sorted(train_ids[2:])
    assert data.test.keys == val_ids[1:]
    # the depth file only matters when depth is asked for
    assert load_dataset(cfg(tmp_path), ["semseg"]).test.keys == val_ids


def test_scan_results_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKGROUPER_CACHE", str(tmp_path / "cache"))
    train_ids, _, _ = write_nyud_mt(tmp_path / "d", n_train=4, n_val=2)
    truncate(tmp_path / "d" / "edge" / f"{train_ids[0]}.npy")
    first = load_dataset(cfg(tmp_path / "d", cache=True))
    assert list((tmp_path / "cache" / "scans").glob("nyud-*.json"))
    second = load_dataset(cfg(tmp_path / "d", cache=True))
    assert first.skipped == second.skipped and len(first.skipped) == 1


def test_not_the_layout(tmp_path):
    with pytest.raises(DataError, match="neither gt_sets/ and images/.*nor train/image/"):
        load_dataset(cfg(tmp_path))
    write_nyud_mt(tmp_path / "d", n_train=2, n_val=1)
    with pytest.raises(DataError, match="did you mean 'nyud_mt'"):
        load_dataset(cfg(tmp_path / "d", split="nyud-mt"))
    for path in (tmp_path / "d" / "normals").iterdir():
        path.unlink()
    (tmp_path / "d" / "normals").rmdir()
    with pytest.raises(DataError, match=r"missing folder .*normals \(labels of task 'normals'\)"):
        load_dataset(cfg(tmp_path / "d"))
    assert list(load_dataset(cfg(tmp_path / "d"), ["semseg", "edge"]).tasks) == ["semseg", "edge"]
    (tmp_path / "d" / "gt_sets" / "val.txt").unlink()
    with pytest.raises(DataError, match=r"missing split list .*gt_sets/val.txt"):
        load_dataset(cfg(tmp_path / "d"), ["semseg"])


def test_unknown_task(nyud_mt):
    with pytest.raises(DataError, match="unknown task 'depht'.*did you mean 'depth'"):
        load_dataset(cfg(nyud_mt[0]), ["depht"])
    with pytest.raises(DataError, match="did you mean 'normals'"):
        load_dataset(cfg(nyud_mt[0], split="nyud_mt"), ["normal"])


def test_mtan_layout(tmp_path):
    truth = write_mtan(tmp_path, channel_first=True)
    data = load_dataset(cfg(tmp_path))
    assert data.name.startswith("NYUD (mtan layout)")
    assert list(data.tasks) == ["semseg", "depth", "normals"]  # edge only when asked for
    assert data.tasks["semseg"].channels == 13
    assert data.test.keys == ["0", "1", "2"]
    for split, folder in (("train", "train"), ("val", "train"), ("test", "val")):
        for key, (x, t) in read_all(data.split(split)).items():
            stored = truth[(folder, key)]
            np.testing.assert_allclose(x, stored["image"].transpose(2, 0, 1), atol=1e-6)
            np.testing.assert_array_equal(t["semseg"], stored["label"].astype(np.int64))
            assert np.isnan(t["depth"][0, :2]).all()
            np.testing.assert_array_equal(t["depth"][0, 2:], stored["depth"][2:, :, 0])
            assert np.isnan(t["normals"][:, :3, :4]).all()
    edged = load_dataset(cfg(tmp_path, split="mtan", size=(12, 16)), ["semseg", "edge"])
    x, t = edged.train.read(0)
    assert x.shape == (3, 12, 16) and t["edge"].shape == (1, 12, 16)
    seg, edge = t["semseg"], t["edge"][0]
    assert np.isnan(edge[seg < 0]).all()
    changes = (seg[:, :-1] != seg[:, 1:]) & (seg[:, :-1] >= 0) & (seg[:, 1:] >= 0)
    assert (edge[:, :-1][changes] == 1).all()
    assert edged.tasks["edge"].kind == "dense_binary"
    with pytest.raises(DataError, match="did you mean 'semseg'"):
        load_dataset(cfg(tmp_path), ["semsegs"])


def test_mtan_corrupt_array_is_skipped(tmp_path):
    write_mtan(tmp_path, n_train=4, n_val=2)
    truncate(tmp_path / "val" / "normal" / "1.npy")
    (tmp_path / "train" / "depth" / "2.npy").unlink()
    data = load_dataset(cfg(tmp_path, val_fraction=0.5))
    assert sorted(p[len(str(tmp_path)) + 1:] for p, _ in data.skipped) == [
        "train/depth/2.npy", "val/normal/1.npy"]
    assert data.test.keys == ["0"] and "2" not in data.train.keys + data.val.keys


class _Samples(torch.utils.data.Dataset):
    def __init__(self, split):
        self.split = split

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        return self.split.read(i)


def _collect(split, workers):
    loader = torch.utils.data.DataLoader(_Samples(split), batch_size=2, num_workers=workers,
                                         collate_fn=lambda batch: batch)
    return [sample for batch in loader for sample in batch]


def test_reader_pickles_and_workers_agree(nyud_mt):
    data = load_dataset(cfg(nyud_mt[0]))
    reader = pickle.loads(pickle.dumps(data.train.reader))
    x0, t0 = data.train.read(1)
    x1, t1 = reader(data.train.keys[1], data.train.tasks)
    np.testing.assert_array_equal(x0, x1)
    serial, parallel = _collect(data.train, 0), _collect(data.train, 2)
    assert len(serial) == len(parallel) == len(data.train)
    for (xa, ta), (xb, tb) in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(xa, xb)
        for task in data.tasks:
            np.testing.assert_array_equal(ta[task], tb[task])
