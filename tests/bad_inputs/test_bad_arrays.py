"""Array datasets that must be refused when they load, before any training: every .npy file is
checked for its dtype, its shape, finite inputs, agreement between the splits and label ranges,
and tasks.yaml for its class and channel counts. Each case runs ``taskgrouper train`` on a
dataset broken in one place, next to an unfinished run of the same config, and checks the exit
status, that the message names the file, the task and the fix, and that neither the dataset nor
the run folder changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from bad_input_helpers import (
    arrays_config,
    assert_kept,
    refused,
    run_cli,
    snapshot,
    write_arrays,
    write_yaml,
)

N = 24  # samples per split in write_arrays


def _prior_run(tmp_path: Path, capsys, config: dict | None = None,
               data: Path | None = None) -> tuple[Path, Path, Path]:
    """A valid dataset, its config, and a run of it that stopped before the end (no
    metrics.json), so the next ``train`` resumes it and reads the dataset again."""
    data = data or write_arrays(tmp_path / "data")
    path = write_yaml(tmp_path / "exp.yaml", config or arrays_config(data))
    run = tmp_path / "run"
    result = run_cli(["train", path, "--out", run, "--quiet"], capsys)
    assert result.code == 0, result.err
    (run / "metrics.json").unlink()
    return data, path, run


def _tasks(data: Path, **tasks) -> None:
    """Rewrite tasks.yaml with the given task entries."""
    write_yaml(data / "tasks.yaml", {"tasks": tasks})


def _refused_kept(tmp_path, capsys, break_data, *words, config=None, data=None):
    """Break the dataset of a prior run with ``break_data(data)``; train again; check the
    refusal and that nothing stored changed."""
    data, path, run = _prior_run(tmp_path, capsys, config, data)
    break_data(data)
    before_data, before_run = snapshot(data), snapshot(run)
    result = refused(["train", path, "--out", run], capsys, *words)
    assert_kept(before_data, data)
    assert_kept(before_run, run)
    assert not (run / "metrics.json").exists()
    return result


# -- inputs ------------------------------------------------------------------------------------


def test_nan_in_inputs(tmp_path, capsys):
    def brk(data):
        x = np.load(data / "train" / "x.npy")
        x[5, 2] = np.nan
        np.save(data / "train" / "x.npy", x)

    _refused_kept(tmp_path, capsys, brk, "train/x.npy", "1 nan", "sample 5", "finite",
                  "fill them in")


def test_inf_in_inputs_and_float32_overflow(tmp_path, capsys):
    def brk(data):
        x = np.load(data / "test" / "x.npy").astype(np.float64)
        x[0, 0] = np.inf
        x[3, 1] = 1e300  # finite in float64, inf once cast to float32
        np.save(data / "test" / "x.npy", x)

    _refused_kept(tmp_path, capsys, brk, "test/x.npy", "2 infinite", "float32 range",
                  "inputs must be finite")


def test_input_width_differs_between_splits(tmp_path, capsys):
    def brk(data):
        np.save(data / "val" / "x.npy", np.zeros((N, 5), np.float32))

    _refused_kept(tmp_path, capsys, brk, "val/x.npy", "(5,)", "train/x.npy", "(4,)",
                  "same input shape")


def test_one_dimensional_inputs(tmp_path, capsys):
    def brk(data):
        np.save(data / "train" / "x.npy", np.zeros(N, np.float32))

    _refused_kept(tmp_path, capsys, brk, "train/x.npy", f"({N},)", "(N, F)", "(N, C, H, W)",
                  "reshape(-1, 1)")


def test_split_with_zero_samples(tmp_path, capsys):
    def brk(data):
        for name, shape in (("x", (0, 4)), ("r", (0,)), ("c", (0,))):
            np.save(data / "val" / f"{name}.npy", np.zeros(shape, np.float32))

    _refused_kept(tmp_path, capsys, brk, "val/x.npy", "no samples", "move some samples")


@pytest.mark.parametrize("value, words", [
    (np.array([["a", "b", "c", "d"]] * N), ("text", "encode text")),
    (np.ones((N, 4), dtype=bool), ("booleans",)),
    (np.ones((N, 4), dtype=np.complex64), ("complex", "real and imaginary")),
], ids=["text", "bool", "complex"])
def test_inputs_that_are_not_numbers(tmp_path, capsys, value, words):
    def brk(data):
        np.save(data / "val" / "x.npy", value)

    _refused_kept(tmp_path, capsys, brk, "val/x.npy", *words, "astype(np.float32)")


# -- targets -----------------------------------------------------------------------------------


def test_regression_target_wider_than_its_channels(tmp_path, capsys):
    def brk(data):
        np.save(data / "train" / "r.npy", np.zeros((N, 2), np.float32))

    _refused_kept(tmp_path, capsys, brk, "train/r.npy", "task 'r'", f"({N}, 2)",
                  "channels: 1 (the default)", "set 'channels: 2'")


def test_target_shape_differs_between_splits(tmp_path, capsys):
    def brk(data):
        _tasks(data, r={"kind": "regression", "channels": 2},
               c={"kind": "classification", "classes": 3})
        for split in ("train", "val", "test"):
            np.save(data / split / "r.npy", np.zeros((N, 2), np.float32))
        np.save(data / "test" / "r.npy", np.zeros((N, 3), np.float32))

    _refused_kept(tmp_path, capsys, brk, "test/r.npy", "task 'r'", "expects shape (n, 2)",
                  f"({N}, 3)")


@pytest.mark.parametrize("value, words", [
    (np.array([1, "a", None] * (N // 3), dtype=object), ("python objects", "int64")),
    (np.arange(N) % 2 == 0, ("booleans", "int64")),
    (np.array(["cat", "dog", "cow"] * (N // 3)), ("text", "int64")),
], ids=["object", "bool", "text"])
def test_class_targets_that_are_not_integers(tmp_path, capsys, value, words):
    def brk(data):
        np.save(data / "val" / "c.npy", value, allow_pickle=True)

    _refused_kept(tmp_path, capsys, brk, "val/c.npy", "task 'c'", *words)


def test_complex_regression_target(tmp_path, capsys):
    def brk(data):
        np.save(data / "train" / "r.npy", np.ones(N, np.complex128))

    _refused_kept(tmp_path, capsys, brk, "train/r.npy", "task 'r'", "complex",
                  "astype(np.float32)")


def test_binary_target_with_a_value_other_than_0_1(tmp_path, capsys):
    def brk(data):
        _tasks(data, r={"kind": "regression"}, c={"kind": "binary"})
        for split in ("train", "val", "test"):
            np.save(data / split / "c.npy", (np.arange(N) % 2).astype(np.float32))
        labels = (np.arange(N) % 2).astype(np.float32)
        labels[4] = 2
        np.save(data / "val" / "c.npy", labels)

    _refused_kept(tmp_path, capsys, brk, "val/c.npy", "binary task 'c'", "label 2",
                  "use 0, 1, and -1 or nan")


def test_train_split_without_any_label(tmp_path, capsys):
    def brk(data):
        np.save(data / "train" / "c.npy", np.full(N, -1, np.int64))

    _refused_kept(tmp_path, capsys, brk, "train/c.npy", "task 'c'", "no label in the train",
                  "add labels")


def test_truncated_file(tmp_path, capsys):
    def brk(data):
        file = data / "test" / "c.npy"
        file.write_bytes(file.read_bytes()[:-16])

    _refused_kept(tmp_path, capsys, brk, "test/c.npy", "cut short", "re-save")


# -- tasks.yaml --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", 3.9, True, 1])
def test_bad_class_count(tmp_path, capsys, value):
    def brk(data):
        _tasks(data, r={"kind": "regression"}, c={"kind": "classification", "classes": value})

    shown = "true" if value is True else repr(value)
    _refused_kept(tmp_path, capsys, brk, "tasks.yaml", "task 'c'", f"classes: {shown};",
                  "whole number >= 2", "largest class id + 1")


@pytest.mark.parametrize("value", [0, -1, 2.5, "two"])
def test_bad_channel_count(tmp_path, capsys, value):
    def brk(data):
        _tasks(data, r={"kind": "regression", "channels": value},
               c={"kind": "classification", "classes": 3})

    _refused_kept(tmp_path, capsys, brk, "tasks.yaml", "task 'r'",
                  f"channels: {value!r};", "whole number >= 1", "width of the target")


def test_absurd_class_count(tmp_path, capsys):
    def brk(data):
        _tasks(data, r={"kind": "regression"},
               c={"kind": "classification", "classes": 100_000_000})

    _refused_kept(tmp_path, capsys, brk, "tasks.yaml", "task 'c'", "classes: 100000000",
                  "ids 0..2 only", "more than 10,000 classes", "typo", "set 'classes: 3'")


# -- dense targets -----------------------------------------------------------------------------


def _write_images(root: Path, n: int = 4, size: int = 8) -> Path:
    """A valid image dataset: a one-channel depth-like map ``m`` stored as (N, H, W) and a
    three-class segmentation ``s`` stored as (N, 1, H, W)."""
    rng = np.random.default_rng(0)
    write_yaml(root / "tasks.yaml", {"tasks": {"m": {"kind": "dense_regression"},
                                               "s": {"kind": "segmentation", "classes": 3}}})
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        np.save(root / split / "x.npy", rng.normal(size=(n, 1, size, size)).astype(np.float32))
        np.save(root / split / "m.npy", rng.normal(size=(n, size, size)).astype(np.float32))
        np.save(root / split / "s.npy", rng.integers(0, 3, size=(n, 1, size, size)))
    return root


def test_dense_target_size_differs_from_the_images_in_val(tmp_path, capsys):
    data = _write_images(tmp_path / "data")
    config = {**arrays_config(data), "model": {"backbone": "resnet", "width": 0.25}}

    def brk(data):
        np.save(data / "val" / "m.npy", np.zeros((4, 6, 6), np.float32))

    _refused_kept(tmp_path, capsys, brk, "val/m.npy", "task 'm'", "(6, 6)", "val/x.npy",
                  "(8, 8)", "resize the labels", config=config, data=data)


def test_dense_task_on_vector_inputs(tmp_path, capsys):
    def brk(data):
        _tasks(data, r={"kind": "dense_regression"}, c={"kind": "classification", "classes": 3})

    _refused_kept(tmp_path, capsys, brk, "train/r.npy", "task 'r'", "needs image inputs",
                  "train/x.npy")


# -- what still trains -------------------------------------------------------------------------


def test_valid_variants_still_train(tmp_path, capsys):
    """Positive control: float64 inputs, a regression target stored (N, 1), class ids stored
    as floats with NaN for a missing label, and ``classes: 3.0`` all load and train."""
    data = write_arrays(tmp_path / "data")
    _tasks(data, r={"kind": "regression"}, c={"kind": "classification", "classes": 3.0})
    for split in ("train", "val", "test"):
        x = np.load(data / split / "x.npy")
        np.save(data / split / "x.npy", x.astype(np.float64))
        np.save(data / split / "r.npy", np.load(data / split / "r.npy")[:, None])
        c = np.load(data / split / "c.npy").astype(np.float32)
        c[0] = np.nan
        np.save(data / split / "c.npy", c)
    before = snapshot(data)
    path = write_yaml(tmp_path / "exp.yaml", arrays_config(data))
    result = run_cli(["train", path, "--out", tmp_path / "run", "--quiet"], capsys)
    assert result.code == 0, result.err
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert yaml.safe_load((data / "tasks.yaml").read_text())["tasks"]["c"]["classes"] == 3.0
    assert_kept(before, data)
