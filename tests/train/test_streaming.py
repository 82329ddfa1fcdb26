"""Lazy splits: training streamed through DataLoader workers equals training from memory."""

from dataclasses import dataclass

import numpy as np
import pytest

from taskgrouper.config import parse_config
from taskgrouper.data.base import LazySplit, MultiTaskData, Split
from taskgrouper.tasks import TaskSpec
from taskgrouper.train import train


@dataclass(frozen=True)
class ArrayReader:
    """A picklable reader serving samples of in-memory arrays, as a file reader would."""

    split: Split

    def __call__(self, key, tasks):
        return self.split.x[key], {t: self.split.targets[t][key] for t in tasks}


def images(seed=0, n=(48, 16, 16)) -> MultiTaskData:
    """Segmentation (bright half = class 1) and depth (= brightness) on 16x16 images."""
    rng = np.random.default_rng(seed)

    def split(size):
        x = rng.uniform(size=(size, 3, 16, 16)).astype(np.float32)
        grey = x.mean(axis=1)
        seg = (grey > 0.5).astype(np.int64)
        seg[:, :2] = -1  # ignored rows
        depth = (2.0 * grey)[:, None].astype(np.float32)
        depth[:, :, -1] = np.nan
        return Split(x, {"s": seg, "d": depth})

    tasks = {"s": TaskSpec("s", "segmentation", 2), "d": TaskSpec("d", "dense_regression")}
    return MultiTaskData(tasks, split(n[0]), split(n[1]), split(n[2]), name="images")


def lazy(data: MultiTaskData, skipped=()) -> MultiTaskData:
    parts = {name: LazySplit(list(range(len(part))), ArrayReader(part), tuple(data.tasks),
                             part.sample_shape)
             for name, part in (("train", data.train), ("val", data.val), ("test", data.test))}
    return MultiTaskData(data.tasks, name="lazy-images", skipped=list(skipped), **parts)


def config(**data):
    return parse_config({"data": {"kind": "arrays", "path": "unused", **data},
                         "model": {"backbone": "resnet", "width": 0.25},
                         "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "device": "cpu",
                                   "train_fraction": 0.75}})


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_training_equals_in_memory_training(tmp_path, workers):
    data = images()
    ref = train(config(), tmp_path / "mem", data=data, progress=False, log=lambda m: None)
    messages = []
    got = train(config(in_memory=False, workers=workers), tmp_path / "lazy", data=lazy(data),
                progress=False, log=messages.append)
    # same samples in the same order through the same ops: the same numbers
    for split in ("val", "test", "constant_test"):
        for t in ("s", "d"):
            for metric, value in getattr(ref, split)[t].items():
                assert getattr(got, split)[t][metric] == pytest.approx(value, rel=1e-5,
                                                                       abs=1e-7), metric
    assert not any("decoded" in m for m in messages)


def test_auto_decodes_a_small_lazy_dataset_into_memory_and_lists_skipped_files(tmp_path):
    messages = []
    data = lazy(images(), skipped=[("/data/rgb/p1.png", "corrupt (truncated)")])
    train(config(), tmp_path, data=data, progress=False, log=messages.append)
    assert any("1 sample(s) left out" in m for m in messages)
    assert any("/data/rgb/p1.png: corrupt (truncated)" in m for m in messages)
    assert any("decoded 80 samples into memory" in m for m in messages)


def test_auto_streams_when_the_dataset_exceeds_the_memory_budget(tmp_path):
    messages = []
    train(config(memory_gb=1e-6), tmp_path, data=lazy(images()), progress=False,
          log=messages.append)
    assert any("streaming from files" in m and "data.memory_gb" in m for m in messages)


def test_lazy_split_subset_materialise_and_task_selection():
    data = images()
    part = lazy(data).train
    sub = part.subset([3, 1])
    got = sub.materialise()
    np.testing.assert_array_equal(got.x, data.train.x[[3, 1]])
    np.testing.assert_array_equal(got.targets["s"], data.train.targets["s"][[3, 1]])
    only_d = lazy(data).select_tasks(["d"])
    assert only_d.train.tasks == ("d",) and only_d.input_shape == (3, 16, 16)
    assert part.nbytes() == 48 * (3 * 16 * 16 * 4 + 16 * 16 * 8 + 16 * 16 * 4)
