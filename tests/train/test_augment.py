"""Random left-right mirroring (``train.augment: flip``): what it does to each task kind, worked
by hand, and through the trainer (learns, resumes exactly, refuses non-image inputs)."""

from __future__ import annotations

import math

import pytest
import torch

from taskgrouper.config import parse_config
from taskgrouper.data import load_dataset
from taskgrouper.errors import InputError
from taskgrouper.tasks import TaskSpec
from taskgrouper.train import train
from taskgrouper.train.augment import check_augment, draw_flips, flip_batch

SPECS = {"s": TaskSpec("s", "segmentation", 3), "n": TaskSpec("n", "normals", 3),
         "d": TaskSpec("d", "dense_regression", 1), "c": TaskSpec("c", "classification", 2)}


def _batch():
    # two samples of a 1-channel 1x3 image: [1, 2, 3] and [4, 5, 6]
    x = torch.tensor([[[[1.0, 2.0, 3.0]]], [[[4.0, 5.0, 6.0]]]])
    s = torch.tensor([[[0, 1, 2]], [[2, 1, 0]]])
    # normals (N, 3, 1, 3): channel 0 (x, to the right) is 0.1, 0.2, 0.3 / 0.4, 0.5, NaN
    n = torch.tensor([[[[0.1, 0.2, 0.3]], [[1.0, 1.0, 1.0]], [[7.0, 8.0, 9.0]]],
                      [[[0.4, 0.5, math.nan]], [[1.0, 1.0, 1.0]], [[7.0, 8.0, 9.0]]]])
    d = torch.tensor([[[[10.0, 20.0, 30.0]]], [[[40.0, 50.0, 60.0]]]])
    c = torch.tensor([1, 0])
    return x, {"s": s, "n": n, "d": d, "c": c}


def test_mirrors_the_chosen_samples_and_their_dense_labels():
    x, targets = _batch()
    fx, ft = flip_batch(x, targets, SPECS, torch.tensor([True, False]))
    # sample 0 mirrored: [1, 2, 3] -> [3, 2, 1]; sample 1 as it was
    assert fx[0, 0, 0].tolist() == [3.0, 2.0, 1.0] and fx[1, 0, 0].tolist() == [4.0, 5.0, 6.0]
    assert ft["s"][0, 0].tolist() == [2, 1, 0] and ft["s"][1, 0].tolist() == [2, 1, 0]
    assert ft["d"][0, 0, 0].tolist() == [30.0, 20.0, 10.0]
    assert ft["d"][1, 0, 0].tolist() == [40.0, 50.0, 60.0]
    # normals: mirrored, and x negated: [0.1, 0.2, 0.3] -> [-0.3, -0.2, -0.1]; y, z only mirrored
    assert ft["n"][0, 0, 0].tolist() == pytest.approx([-0.3, -0.2, -0.1])
    assert ft["n"][0, 1, 0].tolist() == [1.0, 1.0, 1.0]
    assert ft["n"][0, 2, 0].tolist() == [9.0, 8.0, 7.0]
    # the unflipped sample keeps its signs, and a missing label stays missing
    assert ft["n"][1, 0, 0, :2].tolist() == pytest.approx([0.4, 0.5])
    assert math.isnan(ft["n"][1, 0, 0, 2].item())
    # a global label does not move
    assert ft["c"].tolist() == [1, 0]


def test_mirroring_twice_gives_the_batch_back():
    x, targets = _batch()
    flips = torch.tensor([True, True])
    fx, ft = flip_batch(*flip_batch(x, targets, SPECS, flips), SPECS, flips)
    assert torch.equal(fx, x)
    for name in ("s", "d", "c"):
        assert torch.equal(ft[name], targets[name])
    assert torch.allclose(ft["n"], targets["n"], equal_nan=True)


def test_nothing_flipped_returns_the_same_tensors():
    x, targets = _batch()
    fx, ft = flip_batch(x, targets, SPECS, torch.tensor([False, False]))
    assert fx is x and ft is targets


def test_flips_are_fair_coins_from_the_generator():
    a = draw_flips(10_000, torch.Generator().manual_seed(3))
    b = draw_flips(10_000, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert 0.48 < a.float().mean().item() < 0.52  # 5000 +- 50 (one sd): well inside


def test_non_image_inputs_are_refused():
    check_augment("flip", (3, 32, 32), "synthetic")
    check_augment("none", (8,), "tabular")
    with pytest.raises(InputError, match=r"train.augment: flip mirrors images.*'tabular'.*"
                                         r"\(8,\).*train.augment: none"):
        check_augment("flip", (8,), "tabular")


def _config(augment):
    return parse_config({
        "data": {"kind": "synthetic", "n_train": 32, "n_val": 16, "n_test": 16,
                 "resolution": 32, "cache": False},
        "tasks": ["s", "n"],
        "model": {"backbone": "shallow", "scale": 0.25},
        "train": {"epochs": 3, "batch_size": 8, "lr": 3e-3, "device": "cpu", "patience": 10,
                  "seed": 0, "augment": augment},
    })


class _Interrupt(Exception):
    pass


def test_trainer_flips_and_resumes_exactly(tmp_path):
    config = _config("flip")
    data = load_dataset(config.data, config.tasks)
    full = train(config, tmp_path / "full", data=data, progress=False, log=lambda m: None)
    plain = train(_config("none"), tmp_path / "plain", data=data, progress=False,
                  log=lambda m: None)
    assert full.test != plain.test  # the flips changed what was learned

    def stop_after_epoch_2(message: str) -> None:
        if message.startswith("epoch 2:"):
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(config, tmp_path / "cut", data=data, progress=False, log=stop_after_epoch_2)
    resumed = train(config, tmp_path / "cut", data=data, progress=False, log=lambda m: None)
    assert resumed.test == full.test  # the generator's state carried the remaining flips
