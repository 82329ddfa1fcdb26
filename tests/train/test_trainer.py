"""The training loop: learns, writes its files, resumes exactly, stops on NaN."""

import json

import numpy as np
import pytest
import torch

from taskgrouper.config import parse_config
from taskgrouper.data.base import MultiTaskData, Split
from taskgrouper.tasks import TaskSpec
from taskgrouper.train import TrainingDiverged, train
from taskgrouper.train import trainer as trainer_mod


def tabular(seed=0, n=(256, 64, 64)) -> MultiTaskData:
    """Two learnable tasks over 8 features: y = x0 + 2 x1 (regression) and c = [x2 > 0]."""
    rng = np.random.default_rng(seed)

    def split(size):
        x = rng.normal(size=(size, 8)).astype(np.float32)
        y = (x[:, 0] + 2 * x[:, 1]).astype(np.float32)
        y[::7] = np.nan  # missing labels are masked, never imputed
        c = (x[:, 2] > 0).astype(np.int64)
        c[::5] = -1
        return Split(x, {"y": y, "c": c})

    tasks = {"y": TaskSpec("y", "regression"), "c": TaskSpec("c", "classification", 2)}
    return MultiTaskData(tasks, split(n[0]), split(n[1]), split(n[2]), name="tabular")


def config(**train):
    base = {"epochs": 4, "batch_size": 32, "lr": 3e-3, "device": "cpu", "patience": 10}
    base.update(train)
    return parse_config({"data": {"kind": "arrays", "path": "unused"},
                         "model": {"backbone": "mlp", "width": 0.5}, "train": base})


def test_learns_and_writes_its_files(tmp_path):
    result = train(config(epochs=6), tmp_path, data=tabular(), progress=False, log=lambda m: None)
    for name in ("config.json", "last.pt", "best.pt", "log.json", "metrics.json"):
        assert (tmp_path / name).exists(), name
    log = json.loads((tmp_path / "log.json").read_text())
    assert len(log["epochs"]) == 6
    first, last = log["epochs"][0]["train"], log["epochs"][-1]["train"]
    assert last["y"] < 0.5 * first["y"]
    # far better than predicting the training mean / majority class
    assert result.test["y"]["l1"] < 0.5 * result.constant_test["y"]["l1"]
    assert result.test["c"]["accuracy"] > result.constant_test["c"]["accuracy"] + 0.25
    assert result.train_samples == 6 * 256
    assert result.cost["params"] > 0 and result.cost["latency_s"] > 0


def test_same_seed_same_numbers(tmp_path):
    a = train(config(), tmp_path / "a", data=tabular(), progress=False, log=lambda m: None)
    b = train(config(), tmp_path / "b", data=tabular(), progress=False, log=lambda m: None)
    assert a.val == b.val and a.test == b.test


def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    reference = train(config(), tmp_path / "ref", data=tabular(), progress=False,
                      log=lambda m: None)
    calls = {"n": 0}
    original = trainer_mod.evaluate_split

    def interrupt_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "evaluate_split", interrupt_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(config(), tmp_path / "run", data=tabular(), progress=False, log=lambda m: None)
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert saved["epoch"] == 2
    monkeypatch.setattr(trainer_mod, "evaluate_split", original)
    messages = []
    resumed = train(config(), tmp_path / "run", data=tabular(), progress=False,
                    log=messages.append)
    assert any("resuming after epoch 2" in m for m in messages)
    assert resumed.val == reference.val and resumed.test == reference.test
    assert resumed.epochs_run == 4
    # a finished run is not trained again
    again = train(config(), tmp_path / "run", data=tabular(), progress=False, log=messages.append)
    assert again.test == reference.test and "nothing to train" in messages[-1]


def test_nan_loss_stops_naming_task_and_epoch(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = trainer_mod.task_loss
    steps_per_epoch = 256 // 32

    def nan_for_c_in_epoch_2(spec, pred, target):
        loss = original(spec, pred, target)
        if pred.requires_grad and spec.name == "c":
            calls["n"] += 1
            if calls["n"] > steps_per_epoch + 3:
                loss = loss * float("nan")
        return loss

    monkeypatch.setattr(trainer_mod, "task_loss", nan_for_c_in_epoch_2)
    with pytest.raises(TrainingDiverged, match=r"task\(s\) c became NaN/inf in epoch 2"):
        train(config(), tmp_path, data=tabular(), progress=False, log=lambda m: None)
    kept = torch.load(tmp_path / "last.pt", weights_only=False)
    assert kept["epoch"] == 1 and (tmp_path / "best.pt").exists()
    assert not (tmp_path / "metrics.json").exists()


def test_output_folder_of_another_config_is_refused(tmp_path):
    train(config(epochs=1), tmp_path, data=tabular(), progress=False, log=lambda m: None)
    with pytest.raises(ValueError, match=r"holds a run of a different config"):
        train(config(epochs=2, lr=1e-2), tmp_path, data=tabular(), progress=False)


@pytest.mark.parametrize("schedule", ["plateau", "poly"])
def test_schedules_change_the_learning_rate(tmp_path, schedule):
    cfg = config(epochs=3, schedule=schedule, optimizer="sgd", lr=0.1)
    train(cfg, tmp_path, data=tabular(), progress=False, log=lambda m: None)
    lrs = [e["lr"] for e in json.loads((tmp_path / "log.json").read_text())["epochs"]]
    if schedule == "poly":
        # lr at the start of epoch e: 0.1 * (1 - (e-1)/3) ** 0.9
        assert lrs == pytest.approx([0.1 * (1 - k / 3) ** 0.9 for k in range(3)], rel=1e-6)
    else:
        assert all(b in (a, a / 2) for a, b in zip(lrs, lrs[1:], strict=False))


def test_unknown_options_are_named_before_any_data_is_loaded():
    from taskgrouper.train.compat import check_compatible as check_names

    cfg = config()
    bad_balancer = cfg.model_copy(update={"balancer": cfg.balancer.model_copy(
        update={"options": {"alpha": 1.5}})})
    with pytest.raises(ValueError, match="balancer 'uniform' has no option 'alpha'"):
        check_names(bad_balancer)
    bad_model = cfg.model_copy(update={"model": cfg.model.model_copy(
        update={"options": {"groups": [["a"]]}})})
    with pytest.raises(ValueError, match="architecture 'hard_sharing' has no option 'groups'"):
        check_names(bad_model)


def test_gradient_balancer_needs_shared_parameters():
    from taskgrouper.train.compat import check_compatible as check_names

    cfg = config()
    cfg = cfg.model_copy(update={
        "model": cfg.model.model_copy(update={"architecture": "cross_stitch"}),
        "balancer": cfg.balancer.model_copy(update={"name": "pcgrad"})})
    with pytest.raises(ValueError, match=r"balancer 'pcgrad' needs per-task gradients of "
                                         r"shared parameters.*'cross_stitch' shares none"):
        check_names(cfg)


def test_why_a_run_stopped_is_recorded(tmp_path):
    """Early stopping, the plateau schedule's end (train.min_lr) and the epoch cap, each on a
    run that must end that way."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bad_inputs"))
    from bad_input_helpers import arrays_config, write_arrays

    from taskgrouper.config import parse_config
    from taskgrouper.train import train

    data = write_arrays(tmp_path / "data", n=32)

    def run(name, **train_options):
        cfg = arrays_config(data, **train_options)
        return train(parse_config(cfg), tmp_path / name, progress=False, log=lambda *_: None)

    capped = run("cap", epochs=2)
    assert capped.extra["stopped"] == "epoch_cap" and len(capped.extra["val_curve"]) == 2
    # lr 10 on a tiny MLP: the validation loss cannot keep improving; patience 1 stops it
    early = run("early", epochs=30, lr=10.0, patience=1, schedule="none")
    assert early.extra["stopped"] == "early_stopping" and early.epochs_run < 30
    # min_lr above the starting rate's first halving: the schedule ends at the first plateau
    sched = run("schedule", epochs=50, lr=0.5, min_lr=0.3, patience=50)
    assert sched.extra["stopped"] == "schedule" and sched.epochs_run < 50
    assert len(sched.extra["val_curve"]) == sched.epochs_run
