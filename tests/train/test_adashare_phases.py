"""AdaShare through the real trainer: the warm-up, the alternation of weight and policy passes on
the two halves of the training rows, the choice among sampled policies on validation, the
switch to retraining (fresh optimiser, early stopping restarted), the final policy in the
checkpoints and in the results, and an exact resume across every phase boundary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from taskgrouper.config import parse_config
from taskgrouper.data import load_dataset
from taskgrouper.data.base import MultiTaskData, Split
from taskgrouper.models.arch.adashare import RETRAIN, SEARCH, WARMUP
from taskgrouper.tasks import TaskSpec
from taskgrouper.train import train
from taskgrouper.train.trainer import _halves


class _Interrupt(Exception):
    pass


def test_halves_are_disjoint_and_fixed_by_the_seed():
    first, second = _halves(5, seed=0)  # ceil(5 / 2) = 3 and floor(5 / 2) = 2 rows
    assert len(first) == 3 and len(second) == 2
    assert sorted(first.tolist() + second.tolist()) == [0, 1, 2, 3, 4]
    again = _halves(5, seed=0)
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])
    a, b = _halves(32, seed=0), _halves(32, seed=1)
    assert not torch.equal(a[0], b[0])
    assert set(a[0].tolist()).isdisjoint(a[1].tolist()) and len(a[0]) == len(a[1]) == 16


def _tagged_data() -> MultiTaskData:
    """Random 32 x 32 images whose pixel (0, 0, 0) names the row: training rows 1..10,
    validation 101..104, test 201..204."""
    rng = np.random.default_rng(0)

    def split(first_id: int, n: int) -> Split:
        x = rng.normal(size=(n, 3, 32, 32)).astype(np.float32)
        x[:, 0, 0, 0] = np.arange(first_id, first_id + n)
        return Split(x, {"seg": rng.integers(0, 3, size=(n, 32, 32)).astype(np.int64),
                         "depth": rng.normal(size=(n, 1, 32, 32)).astype(np.float32)})

    tasks = {"seg": TaskSpec("seg", "segmentation", channels=3),
             "depth": TaskSpec("depth", "dense_regression", channels=1)}
    return MultiTaskData(tasks, split(1, 10), split(101, 4), split(201, 4), name="tagged")


def test_weights_and_policy_alternate_on_their_halves(tmp_path, monkeypatch):
    """Every forward pass of the trainer's model is recorded (rows, phase, parameters); the
    change of the parameters between a training forward and the next forward is that step's
    update."""
    import taskgrouper.models as models

    records: list[dict] = []
    build = models.build_model

    def recording_build(*args, **kwargs):
        model = build(*args, **kwargs)
        if records:  # only the trainer's network
            return model

        def hook(module, inputs):
            weights = [p for n, p in module.named_parameters() if "logits" not in n]
            records.append({
                "training": module.training, "phase": int(module.encoder.phase),
                "rows": set(inputs[0][:, 0, 0, 0].round().int().tolist()),
                "logits": torch.cat([p.detach().flatten().clone()
                                     for p in module.encoder.logits.values()]),
                "weights": torch.cat([p.detach().flatten().clone() for p in weights])})

        model.register_forward_pre_hook(hook)
        records.append({"training": None})  # marks the trainer's network as built
        return model

    monkeypatch.setattr(models, "build_model", recording_build)
    lr = 3e-3
    config = parse_config({
        "data": {"kind": "arrays", "path": "unused"},
        "model": {"backbone": "xception", "width": 0.1, "architecture": "adashare",
                  "options": {"search_epochs": 3, "warmup_epochs": 1}},
        "train": {"epochs": 5, "batch_size": 4, "lr": lr, "device": "cpu", "patience": 10,
                  "seed": 0},
    })
    result = train(config, tmp_path, data=_tagged_data(), progress=False, log=lambda m: None)
    forwards = records[1:]
    steps = []  # (phase, rows, change of the logits, change of the weights)
    for now, after in zip(forwards, forwards[1:], strict=False):
        if now["training"]:
            steps.append((now["phase"], now["rows"], after["logits"] - now["logits"],
                          after["weights"] - now["weights"]))
    assert forwards[-1]["training"] is False  # the last forward is an evaluation
    # epoch 1 warm-up, epochs 2-3 alternation (S = 3, W = 1), epochs 4-5 re-training.
    # 10 training rows in batches of 4: a pass over all of them is ceil(10 / 4) = 3 steps,
    # one over a half (5 rows) ceil(5 / 4) = 2 steps: 3 + 2 x (2 + 2) + 2 x 3 = 17 steps
    assert [phase for phase, *_ in steps] == [WARMUP] * 3 + [SEARCH] * 8 + [RETRAIN] * 6
    first, second = (set((h + 1).tolist()) for h in _halves(10, seed=0))  # rows are 1..10
    every = set(range(1, 11))
    moved = [(bool(dl.abs().max() > 0), bool(dw.abs().max() > 0)) for _, _, dl, dw in steps]

    # warm-up and re-training: every row, the weights learn and the logits stay
    for i in list(range(3)) + list(range(11, 14)) + list(range(14, 17)):
        assert moved[i] == (False, True), i
    assert set().union(*(steps[i][1] for i in range(3))) == every
    assert set().union(*(steps[i][1] for i in range(11, 14))) == every
    # each alternation epoch: 2 weight steps on the first half, then 2 policy steps on the
    # second; a weight step leaves the logits as they were and a policy step the weights
    for epoch_start in (3, 7):
        weight_steps, policy_steps = range(epoch_start, epoch_start + 2), \
            range(epoch_start + 2, epoch_start + 4)
        assert [moved[i] for i in weight_steps] == [(False, True)] * 2
        assert [moved[i] for i in policy_steps] == [(True, False)] * 2
        assert set().union(*(steps[i][1] for i in weight_steps)) == first
        assert set().union(*(steps[i][1] for i in policy_steps)) == second
    assert first.isdisjoint(second) and first | second == every
    # the optimiser is new at epoch 2 (after the warm-up), so Adam's first step on every
    # parameter is lr * g / |g| = +-lr: the weights' first step moves each weight with a
    # gradient by 0.003, the logits' first step by 10 x 0.003 = 0.03 (policy_lr_scale 10;
    # the curriculum of A = 2 epochs learns all 6 blocks at once: v = min(3, 1 / 6))
    first_weight_step, first_policy_step = steps[3][3], steps[5][2]
    assert float(first_weight_step.abs().max()) == pytest.approx(lr, rel=1e-3)
    torch.testing.assert_close(first_policy_step.abs(),
                               torch.full_like(first_policy_step, 10 * lr), rtol=1e-3, atol=0)
    # validation chose among the 8 sampled policies: the recorded losses, the lowest kept
    report = result.extra["adashare"]
    losses = [c["val_loss"] for c in report["candidates"]]
    assert len(losses) == 8 and report["chosen"] == losses.index(min(losses))
    assert sum(1 for f in forwards if f["training"] is False and f["rows"] == {101, 102, 103,
                                                                               104}) >= 8
    assert report["blocks_kept"] == {
        t: sum(flags) / len(flags) for t, flags in report["policy"].items()}


def test_early_stopping_waits_for_the_retraining(tmp_path, monkeypatch):
    """A validation loss that never improves stops a run after ``patience`` epochs, but not
    before AdaShare's re-training has started (and restarted the count)."""
    from taskgrouper.train import trainer as trainer_mod

    def flat(model, split, specs, device, batch_size=128, amp_dtype=None, quick=False,
             label_counts=None):
        if label_counts is not None:
            label_counts.update(dict.fromkeys(specs, 1.0))
        return {t: {"loss": 1.0} for t in specs}

    monkeypatch.setattr(trainer_mod, "evaluate_split", flat)
    config = parse_config({
        "data": {"kind": "arrays", "path": "unused"},
        "model": {"backbone": "xception", "width": 0.1, "architecture": "adashare",
                  "options": {"search_epochs": 3, "warmup_epochs": 1}},
        "train": {"epochs": 8, "batch_size": 4, "lr": 3e-3, "device": "cpu", "patience": 1,
                  "seed": 0},
    })
    messages: list[str] = []
    result = train(config, tmp_path, data=_tagged_data(), progress=False, log=messages.append)
    # patience 1: epoch 1 improves (inf -> 2.0), epoch 2 does not: a plain run stops there.
    # Here the search runs to epoch 3, re-training starts at epoch 4 (a new best, 2.0 against
    # inf), epoch 5 does not improve, and the run stops before epoch 6
    log = json.loads((tmp_path / "log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2, 3, 4, 5]
    assert [m for m in messages if m.startswith("early stop")] == [
        "early stop: validation loss has not improved for 1 epochs"]
    assert messages.index("early stop: validation loss has not improved for 1 epochs") > \
        next(i for i, m in enumerate(messages) if m.startswith("epoch 5:"))
    assert result.best_epoch == 4 and result.extra["stopped"] == "early_stopping"
    assert result.extra["adashare"]["phase"] == "retrain"


def _config():
    return parse_config({
        "data": {"kind": "synthetic", "n_train": 32, "n_val": 16, "n_test": 16,
                 "resolution": 32, "cache": False},
        "tasks": ["s", "d"],
        "model": {"backbone": "xception", "width": 0.1, "architecture": "adashare",
                  "options": {"search_epochs": 3, "warmup_epochs": 1}},
        "train": {"epochs": 5, "batch_size": 16, "lr": 3e-3, "device": "cpu",
                  "patience": 10, "seed": 0},
    })


def _stop_after(epoch: int):
    def log(message: str) -> None:
        if message.startswith(f"epoch {epoch}:"):
            raise _Interrupt
    return log


@pytest.mark.slow
def test_search_then_retrain_and_resume(tmp_path):
    config = _config()
    data = load_dataset(config.data, config.tasks)
    messages: list[str] = []
    full = train(config, tmp_path / "full", data=data, progress=False, log=messages.append)

    # epoch 1 warm-up, epochs 2-3 policy search, epochs 4-5 re-training: a new phase (fresh
    # optimiser and schedule) at epochs 2 and 4
    switches = [m for m in messages if "starts a new training phase" in m]
    assert len(switches) == 2 and "epoch 2 " in switches[0] and "epoch 4 " in switches[1]
    log = json.loads((tmp_path / "full" / "log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2, 3, 4, 5]

    # the kept weights come from the retraining phase (early stopping restarted at epoch 4)
    assert full.best_epoch in (4, 5)
    best = torch.load(tmp_path / "full" / "best.pt", weights_only=False)
    last = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    assert best["epoch"] == full.best_epoch
    assert int(best["model"]["encoder.phase"]) == 1
    policy = best["model"]["encoder.policy"]  # (tasks, blocks) execute flags of the fixed policy
    assert policy.dtype == torch.bool and tuple(policy.shape) == (2, 6)
    assert torch.equal(policy, last["model"]["encoder.policy"])

    # the results report the policy: per task the fraction of the 6 blocks it keeps
    report = full.extra["adashare"]
    saved = json.loads((tmp_path / "full" / "metrics.json").read_text())["extra"]["adashare"]
    assert saved == report and report["phase"] == "retrain"
    assert report["policy"] == {t: row for t, row in zip(("s", "d"), policy.tolist(),
                                                          strict=True)}
    assert report["blocks_kept"] == {t: sum(r) / 6 for t, r in report["policy"].items()}
    assert math.isfinite(report["candidates"][report["chosen"]]["val_loss"])

    # interrupted right after the warm-up (epoch 1), after the first alternation epoch (2),
    # after the last one (3, before the policies are sampled and scored) and after the first
    # re-training epoch (4), then resumed: the same numbers to the last bit
    for stop, new_phases in ((1, ["epoch 2 ", "epoch 4 "]), (2, ["epoch 4 "]),
                             (3, ["epoch 4 "]), (4, [])):
        out = tmp_path / f"resumed{stop}"
        with pytest.raises(_Interrupt):
            train(config, out, data=data, progress=False, log=_stop_after(stop))
        saved = torch.load(out / "last.pt", weights_only=False)
        assert saved["epoch"] == stop
        assert int(saved["model"]["encoder.phase"]) == {1: WARMUP, 4: RETRAIN}.get(stop, SEARCH)
        resumed_messages: list[str] = []
        resumed = train(config, out, data=data, progress=False, log=resumed_messages.append)
        assert any(f"resuming after epoch {stop}" in m for m in resumed_messages)
        switches = [m for m in resumed_messages if "starts a new training phase" in m]
        assert [s for s in new_phases if any(s in m for m in switches)] == new_phases
        assert len(switches) == len(new_phases)
        assert resumed.best_epoch == full.best_epoch
        assert resumed.val == full.val
        assert resumed.test == full.test
        assert resumed.extra == full.extra
        assert json.loads((out / "log.json").read_text())["epochs"][-1]["train"] == \
            log["epochs"][-1]["train"]
