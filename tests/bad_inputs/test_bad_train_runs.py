"""Training runs the data or the folder cannot support: a validation split without samples or
without labels for a task, training labels without variance, and a second process training in
the same folder. Each is told what is wrong with which split, task or folder."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bad_input_helpers import (
    arrays_config,
    assert_kept,
    refused,
    run_cli,
    snapshot,
    write_arrays,
    write_yaml,
)

from taskgrouper.config import parse_config
from taskgrouper.data.base import DataError, MultiTaskData, Split
from taskgrouper.tasks import TaskSpec
from taskgrouper.train import train
from taskgrouper.train import trainer as trainer_mod
from taskgrouper.train.lock import LOCK_NAME, hold_run_folder

N = 24  # samples per split in write_arrays


def _config(tmp_path: Path, data: Path, **train) -> Path:
    return write_yaml(tmp_path / "exp.yaml", arrays_config(data, **train))


def _train(config: Path, run: Path, capsys):
    result = run_cli(["train", config, "--out", run, "--quiet"], capsys)
    assert result.code == 0, result.err
    return result


# -- validation splits the run cannot measure ---------------------------------------------------

def test_empty_val_split_is_named_before_training(tmp_path, capsys):
    data = write_arrays(tmp_path / "data")
    np.save(data / "val" / "x.npy", np.zeros((0, 4), np.float32))
    np.save(data / "val" / "r.npy", np.zeros(0, np.float32))
    np.save(data / "val" / "c.npy", np.zeros(0, np.int64))
    run = tmp_path / "run"
    result = refused(["train", _config(tmp_path, data), "--out", run], capsys, "val",
                     "no samples")
    assert "best.pt" not in result.err and not (run / "best.pt").exists()


@pytest.mark.parametrize("task, missing", [("r", np.nan), ("c", -1)],
                         ids=["regression NaN", "classification -1"])
def test_val_labels_all_missing_for_a_task(tmp_path, capsys, task, missing):
    data = write_arrays(tmp_path / "data")
    labels = np.load(data / "val" / f"{task}.npy")
    np.save(data / "val" / f"{task}.npy", np.full_like(labels, missing))
    run = tmp_path / "run"
    result = refused(["train", _config(tmp_path, data), "--out", run], capsys,
                     f"task '{task}'", "no label in split 'val'", f"all {N}", "tasks:")
    assert "best.pt" not in result.err
    assert "epoch 1" not in result.out  # refused before training


def _tabular(n_val: int = 8, val_labels: bool = True) -> MultiTaskData:
    rng = np.random.default_rng(0)

    def split(n, labelled=True):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        y = x[:, 0].copy() if labelled else np.full(n, np.nan, np.float32)
        c = (x[:, 1] > 0).astype(np.int64)
        return Split(x, {"y": y, "c": c})

    tasks = {"y": TaskSpec("y", "regression"), "c": TaskSpec("c", "classification", 2)}
    return MultiTaskData(tasks, split(32), split(n_val, val_labels), split(8), name="tabular")


def _api_config():
    return parse_config({"data": {"kind": "arrays", "path": "unused"},
                         "model": {"backbone": "mlp", "width": 0.25, "hidden": [8]},
                         "train": {"epochs": 2, "batch_size": 8, "device": "cpu"}})


def test_in_memory_dataset_with_empty_val_split_is_refused(tmp_path):
    """The check is the trainer's, whatever loader made the dataset."""
    with pytest.raises(DataError, match=r"tabular: split 'val' has no samples"):
        train(_api_config(), tmp_path, data=_tabular(n_val=0), progress=False,
              log=lambda m: None)
    assert not (tmp_path / "best.pt").exists()


def test_val_without_labels_is_also_caught_in_the_first_validation(tmp_path, monkeypatch):
    """Streamed splits are counted while validating: the same message, after epoch 1."""
    monkeypatch.setattr(trainer_mod, "check_splits", lambda data: None)
    with pytest.raises(DataError, match=r"task 'y' has no label in split 'val' \(all 8 "):
        train(_api_config(), tmp_path, data=_tabular(val_labels=False), progress=False,
              log=lambda m: None)


def test_validation_loss_never_finite_says_so(tmp_path, capsys, monkeypatch):
    original = trainer_mod.evaluate_split

    def nan_for_r(*args, **kwargs):
        result = original(*args, **kwargs)
        result["r"]["loss"] = math.nan
        return result

    monkeypatch.setattr(trainer_mod, "evaluate_split", nan_for_r)
    data = write_arrays(tmp_path / "data")
    result = refused(["train", _config(tmp_path, data), "--out", tmp_path / "run"], capsys,
                     "no epoch had a finite validation loss", "task(s) r")
    assert "best.pt" not in result.err


# -- training labels without variance ----------------------------------------------------------

def test_constant_training_labels_warn_and_do_not_blow_up(tmp_path, capsys):
    data = write_arrays(tmp_path / "data")
    np.save(data / "train" / "r.npy", np.full(N, 3.0, np.float32))
    run = tmp_path / "run"
    result = _train(_config(tmp_path, data), run, capsys)
    assert "task 'r'" in result.err and "zero variance" in result.err
    assert "cannot be normalised" in result.err and "task 'c'" not in result.err
    metrics = json.loads((run / "metrics.json").read_text())
    # labels minus 3 on the unit scale: a loss of the order of the labels' spread, not 1e8
    assert metrics["val"]["r"]["loss"] < 100


def test_varying_training_labels_do_not_warn(tmp_path, capsys):
    data = write_arrays(tmp_path / "data")
    result = _train(_config(tmp_path, data), tmp_path / "run", capsys)
    assert "zero variance" not in result.err


# -- one process per run folder ----------------------------------------------------------------

def test_second_train_on_a_held_folder_exits_at_once(tmp_path, capsys):
    data = write_arrays(tmp_path / "data")
    config, run = _config(tmp_path, data), tmp_path / "run"
    _train(config, run, capsys)
    (run / "metrics.json").unlink()  # as if the run were still training
    before = snapshot(run)
    with hold_run_folder(run):  # this process trains there
        refused(["train", config, "--out", run], capsys, str(run), "in use",
                "training there", "another --out")
    assert_kept(before, run)


_HOLDER = """
import sys, time
from taskgrouper.train.lock import hold_run_folder
with hold_run_folder(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_lock_of_another_process_and_of_a_killed_one(tmp_path, capsys):
    data = write_arrays(tmp_path / "data")
    config, run = _config(tmp_path, data), tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused(["train", config, "--out", run], capsys, str(run),
                f"process {holder.pid} is training there")
        assert not (run / "config.json").exists()  # nothing written
    finally:
        holder.kill()  # as a crash would: the lock file stays behind
        holder.wait()
    assert (run / LOCK_NAME).exists()
    _train(config, run, capsys)  # the stale lock does not block


def test_temp_files_of_a_killed_writer_are_removed(tmp_path, capsys):
    data = write_arrays(tmp_path / "data")
    run = tmp_path / "run"
    run.mkdir()
    stale = run / ".last.pt.x1y2.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = run / "notes.tmp"
    other.write_text("mine")
    _train(_config(tmp_path, data), run, capsys)
    assert not stale.exists() and other.read_text() == "mine"
    assert sorted(p.name for p in run.glob(".*.tmp")) == []
