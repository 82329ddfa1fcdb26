"""AdaShare: the residual layout of the backbones, the sparsity and sharing losses by hand, the
warm-up, the curriculum and temperature, the passes of each phase, select/skip semantics and
their cost, the choice among sampled policies on validation, the switch to retraining and
resuming it from a state dict. (The alternation through the real trainer: tests/train/
test_adashare_phases.py.)"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from taskgrouper.config import TrainConfig
from taskgrouper.evaluate.cost import count_macs
from taskgrouper.models import HardSharingNet, build_model
from taskgrouper.models.arch.adashare import (
    RETRAIN,
    SEARCH,
    WARMUP,
    residual_layout,
    sharing_depth_weights,
)
from taskgrouper.models.arch.base import TrainPass
from taskgrouper.models.backbones import MLPEncoder
from taskgrouper.tasks import TaskSpec
from taskgrouper.train.schedule import model_optimizer

SPECS = {
    "seg": TaskSpec("seg", "segmentation", channels=4),
    "depth": TaskSpec("depth", "dense_regression", channels=1),
}
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _model(backbone="xception", **options):
    torch.manual_seed(0)
    return build_model(SPECS, (3, 32, 32), backbone=backbone, width=0.1,
                       architecture="adashare", options=options)


def _set_logits(model, task, execute, skip):
    with torch.no_grad():
        model.encoder.logits[task][:, 0] = execute
        model.encoder.logits[task][:, 1] = skip


def test_sharing_depth_weights():
    # (L - l) / L for l = 1..4
    torch.testing.assert_close(sharing_depth_weights(4), torch.tensor([0.75, 0.5, 0.25, 0.0]))


def test_residual_layout_of_the_backbones():
    assert _model("xception").encoder.n_blocks == 6  # 3 entry + 2 middle + 1 exit block
    assert _model("resnet").encoder.n_blocks == 8  # 4 stages of 2 basic blocks
    with pytest.raises(ValueError, match="'resnet' and 'xception'"):
        residual_layout(MLPEncoder(8))


def test_regularization_by_hand():
    model = _model()  # sparsity_weight 0.001, sharing_weight 0.05
    _set_logits(model, "seg", 0.0, 0.0)  # alpha = 0.5 on every block
    _set_logits(model, "depth", math.log(3.0), 0.0)  # alpha = 3 / (3 + 1) = 0.75
    # all 6 blocks learned (before any epoch):
    # L_sp = mean_l ln 0.5 + mean_l ln 0.75 = -0.693147 - 0.287682 = -0.980829
    # L_sh = 2 ordered pairs * |0.5 - 0.75| * (5 + 4 + 3 + 2 + 1 + 0) / 6 = 0.5 * 2.5 = 1.25
    # 0.001 * (-0.980829) + 0.05 * 1.25 = -0.000981 + 0.0625 = 0.061519
    torch.testing.assert_close(model.regularization(), torch.tensor(0.061519171))
    # warm-up (epoch 1 of 8: S = 4, W = round(0.2 * 4) = 1): no policy is learned, no loss
    model.on_epoch_start(1, 8)
    assert int(model.encoder.phase) == WARMUP and model.regularization() is None
    # alternation epoch 2 of 3 (epoch 3), one block per epoch: the last 2 blocks (l = 5, 6)
    # L_sp = mean of 2 x ln 0.5 + mean of 2 x ln 0.75 = -0.980829 (a mean: the same)
    # L_sh = 0.5 * (1 + 0) / 6 = 0.083333
    # 0.001 * (-0.980829) + 0.05 * 0.083333 = -0.000981 + 0.004167 = 0.003186
    model = _model(curriculum_speed=1)
    _set_logits(model, "seg", 0.0, 0.0)
    _set_logits(model, "depth", math.log(3.0), 0.0)
    model.on_epoch_start(3, 8)
    assert int(model.encoder.n_learned) == 2
    torch.testing.assert_close(model.regularization(), torch.tensor(0.0031858377))


def test_warmup_then_search_then_retraining_epochs():
    # 20 epochs: S = 0.5 * 20 = 10 search epochs, W = round(0.2 * 10) = 2 of them warm-up,
    # A = 8 alternation epochs (3..10), re-training from epoch 11
    model = _model()
    assert model.encoder.search_epoch_count(20) == 10
    assert model.encoder.warmup_epoch_count(10) == 2
    phases, new_phase = [], []
    for epoch in range(1, 11):
        new_phase.append(model.on_epoch_start(epoch, 20))
        phases.append(int(model.encoder.phase))
    assert phases == [WARMUP] * 2 + [SEARCH] * 8
    assert new_phase == [False, False, True] + [False] * 7  # a fresh optimiser after warm-up
    assert model.on_epoch_start(11, 20, validate=lambda: 0.0) is True
    assert int(model.encoder.phase) == RETRAIN
    # warm-up counts: 0.2 of S rounded half up, at least 1 when S >= 2, at most S - 1
    counts = [model.encoder.warmup_epoch_count(s) for s in (1, 2, 3, 7, 8, 10)]
    assert counts == [0, 1, 1, 1, 2, 2]  # 1.4 -> 1, 1.6 -> 2
    assert _model(warmup_epochs=0).encoder.warmup_epoch_count(10) == 0
    assert _model(warmup_epochs=4).encoder.warmup_epoch_count(10) == 4
    assert _model(warmup_epochs=4).encoder.warmup_epoch_count(3) == 2
    # the search and the first re-training epoch run whatever early stopping says: S = 10 of
    # 20 epochs -> epochs 1..11; with S >= epochs there is no re-training to wait for
    assert [model.must_train(e, 20) for e in (1, 10, 11, 12)] == [True, True, True, False]
    assert not _model(search_epochs=4).must_train(1, 4)


def test_curriculum_and_temperature():
    model = _model()  # 6 blocks
    # A = 8: v = min(3, ceil(8 / 2) / 6) = 2 / 3; n(a) = ceil(3a / 2) -> 2, 3, 5, 6, 6, ...
    assert [model.encoder.curriculum(a, 8) for a in range(1, 9)] == [2, 3, 5, 6, 6, 6, 6, 6]
    # A = 40: v = min(3, 20 / 6) = 3, the authors' pace: n(a) = ceil(a / 3)
    assert [model.encoder.curriculum(a, 40) for a in range(1, 8)] == [1, 1, 1, 2, 2, 2, 3]
    assert model.encoder.curriculum(18, 40) == 6
    # A = 1: v = 1 / 6, every block at once
    assert model.encoder.curriculum(1, 1) == 6
    fixed = _model(curriculum_speed=2).encoder  # n(a) = ceil(a / 2)
    assert [fixed.curriculum(a, 8) for a in range(1, 9)] == [1, 1, 2, 2, 3, 3, 4, 4]
    # 20 epochs: alternation epochs 1 and 2 are epochs 3 and 4 (after 2 warm-up epochs)
    for epoch in (1, 2, 3):
        model.on_epoch_start(epoch, 20)
    assert int(model.encoder.n_learned) == 2 and float(model.encoder.tau) == 5.0
    model.train()
    out = model(X)
    (out["seg"].sum() + out["depth"].sum() + model.regularization()).backward()
    for t in SPECS:  # the first 4 blocks are executed and learn nothing
        grad = model.encoder.logits[t].grad
        assert float(grad[:4].abs().sum()) == 0.0
        assert float(grad[4:].abs().sum()) > 0.0
    model.on_epoch_start(4, 20)
    assert int(model.encoder.n_learned) == 3
    assert float(model.encoder.tau) == pytest.approx(5.0 * 0.965)
    # alternation epoch 8: 5 * 0.965 ** 7 = 5 * exp(7 * ln 0.965) = 5 * exp(-0.249389) = 3.8964
    model.on_epoch_start(10, 20)
    assert float(model.encoder.tau) == pytest.approx(3.8964, abs=1e-4)


@pytest.mark.parametrize("backbone", ["xception", "resnet"])
def test_warmup_executes_every_block_and_learns_no_policy(backbone):
    model = _model(backbone)
    _set_logits(model, "seg", -20.0, 20.0)  # the policies say: skip everything
    _set_logits(model, "depth", -20.0, 20.0)
    model.on_epoch_start(1, 20)  # warm-up
    assert model.train_passes() == (TrainPass(),)  # one pass over every row
    assert not any(p.requires_grad for p in model.encoder.logits.values())
    reference = HardSharingNet(model.encoder.backbone, SPECS)
    reference.heads = model.heads
    for mode in (True, False):  # training and eval mode: every block, as hard sharing
        model.train(mode)
        reference.train(mode)
        rng = torch.get_rng_state()
        out = model(X)
        assert torch.equal(rng, torch.get_rng_state())  # no Gumbel draw either
        expected = reference(X)
        for t in SPECS:
            torch.testing.assert_close(out[t], expected[t])


def test_passes_of_each_phase_and_policy_rate():
    model = _model()
    weights_then_policy = (TrainPass(half=0, learns=("encoder.backbone", "heads")),
                           TrainPass(half=1, learns=("encoder.logits",)))
    model.on_epoch_start(1, 20)
    assert model.train_passes() == (TrainPass(),)
    model.on_epoch_start(3, 20)
    assert model.train_passes() == weights_then_policy
    # the weight pass freezes exactly the logits, the policy pass everything else
    names = {id(p): n for n, p in model.named_parameters()}
    frozen_w = {names[id(p)] for p in weights_then_policy[0].frozen(model)}
    frozen_p = {names[id(p)] for p in weights_then_policy[1].frozen(model)}
    assert frozen_w == {"encoder.logits.seg", "encoder.logits.depth"}
    assert frozen_p == set(names.values()) - frozen_w
    model.on_epoch_start(11, 20, validate=lambda: 0.0)
    assert model.train_passes() == (TrainPass(),)
    # the logits train at 10 x the schedule's rate: lr 0.001 -> 0.01
    assert model.lr_scales() == {"encoder.logits": 10.0}
    opt = model_optimizer(model, [], TrainConfig(lr=0.001))
    plain, fast = opt.param_groups
    assert plain["lr"] == 0.001 and fast["lr"] == pytest.approx(0.01)
    assert {id(p) for p in fast["params"]} == {id(p) for p in model.encoder.logits.values()}


def _skip_path(model, x):
    """Task features when every block is skipped: the stem, then every block's shortcut."""
    pre, blocks, post = residual_layout(model.encoder.backbone)
    h = x
    for m in pre:
        h = m(h)
    for b in blocks:
        h = b.shortcut(h)
    for m in post:
        h = m(h)
    return h


@pytest.mark.parametrize("backbone", ["xception", "resnet"])
def test_skipped_blocks_run_their_shortcut_in_eval(backbone):
    model = _model(backbone)
    _set_logits(model, "seg", 1.0, 0.0)  # execute every block
    _set_logits(model, "depth", 0.0, 1.0)  # skip every block
    model.eval()
    with torch.no_grad():
        out = model(X)  # search phase, eval: the likelier choice
        expected = model.heads["depth"]([_skip_path(model, X)], (32, 32))
        torch.testing.assert_close(out["depth"], expected)
        reference = HardSharingNet(model.encoder.backbone, SPECS)
        reference.heads = model.heads
        torch.testing.assert_close(out["seg"], reference.eval()(X)["seg"])


def _macs(fn, *args):
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn(*args)
    return counter.get_total_flops() // 2


def _switch(model, validate=None):
    # 4 epochs: S = 2, W = 1: epoch 1 warm-up, epoch 2 alternation, epoch 3 re-training
    model.on_epoch_start(1, 4)
    model.on_epoch_start(2, 4)
    assert model.on_epoch_start(3, 4, validate=validate) is True


@pytest.mark.parametrize("backbone", ["xception", "resnet"])
def test_cost_follows_the_policy(backbone):
    # every task executes every block: exactly hard sharing's cost (blocks run once)
    model = _model(backbone, final_policy="argmax")
    _set_logits(model, "seg", 1.0, 0.0)
    _set_logits(model, "depth", 1.0, 0.0)
    _switch(model)
    hard = HardSharingNet(model.encoder.backbone, SPECS)
    hard.heads = model.heads
    shared = count_macs(model.eval(), (3, 32, 32))
    assert shared == count_macs(hard.eval(), (3, 32, 32))
    # depth skips every block: its path adds its shortcut projections and the suffix again,
    # nothing else (seg's path is unchanged and still runs once)
    model = _model(backbone, final_policy="argmax")
    _set_logits(model, "seg", 1.0, 0.0)
    _set_logits(model, "depth", 0.0, 1.0)
    _switch(model)
    pre, blocks, post = residual_layout(model.encoder.backbone)
    x1 = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        h = x1
        for m in pre:
            h = m(h)
        extra = 0
        for b in blocks:
            extra += _macs(b.shortcut, h)
            h = b.shortcut(h)
        for m in post:
            extra += _macs(m, h)
    assert extra > 0
    assert count_macs(model.eval(), (3, 32, 32)) == shared + extra


def test_switch_to_retraining():
    model = _model(final_policy="argmax")
    _set_logits(model, "seg", 2.0, 0.0)
    with torch.no_grad():  # depth: skip the last two blocks, execute the others
        model.encoder.logits["depth"].copy_(torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 2))
    before = [p.detach().clone() for p in model.encoder.backbone.parameters()]
    assert model.on_epoch_start(1, 4) is False  # warm-up
    assert model.on_epoch_start(2, 4) is True  # policy search after the warm-up
    assert model.on_epoch_start(3, 4) is True  # the switch: re-initialised
    assert int(model.encoder.phase) == RETRAIN
    assert model.encoder.policy.tolist() == [[True] * 6, [True] * 4 + [False] * 2]
    assert model.final_policy_table()["depth"] == [True] * 4 + [False] * 2
    after = list(model.encoder.backbone.parameters())
    changed = [not torch.equal(a, b) for a, b in zip(before, after, strict=True)
               if a.dim() > 1]  # conv weights are redrawn
    assert all(changed)
    assert not any(p.requires_grad for p in model.encoder.logits.values())
    assert model.regularization() is None
    state = [p.detach().clone() for p in model.parameters()]
    assert model.on_epoch_start(4, 4) is False  # no second switch
    assert all(torch.equal(a, b) for a, b in zip(state, model.parameters(), strict=True))


def test_policies_the_curriculum_never_reached_stay_executed():
    model = _model(curriculum_speed=1, search_epochs=3, warmup_epochs=1)
    _set_logits(model, "seg", -5.0, 5.0)  # every policy says skip
    _set_logits(model, "depth", -5.0, 5.0)
    for epoch in (1, 2, 3):  # warm-up, then 2 alternation epochs: the last 2 blocks learned
        model.on_epoch_start(epoch, 4)
    assert model.on_epoch_start(4, 4, validate=lambda: 0.0) is True
    # alpha = e^-10 / (1 + e^-10) = 4.5e-5: every sample skips the learned blocks
    assert model.encoder.policy.tolist() == [[True] * 4 + [False] * 2] * 2
    assert model.encoder.candidates.tolist() == [[[True] * 4 + [False] * 2] * 2] * 8


def test_sampled_final_policy():
    model = _model(final_policy="sample")
    _set_logits(model, "seg", 20.0, -20.0)  # sure to execute
    _set_logits(model, "depth", -20.0, 20.0)  # sure to skip
    _switch(model, validate=lambda: 1.0)
    assert model.encoder.policy.tolist() == [[True] * 6, [False] * 6]


def test_the_sampled_policy_with_the_best_validation_loss_is_kept():
    # seg executes every block for sure; depth executes blocks 1 and 2 with alpha = 0.5 and
    # no other: 4 possible policies; the validation loss charges each executed depth block 1
    # and block 2 another 10, so the winner is the one executing neither (loss 0) when drawn
    model = _model(policy_samples=8)
    _set_logits(model, "seg", 20.0, -20.0)
    with torch.no_grad():
        model.encoder.logits["depth"].copy_(torch.tensor([[0.0, 0.0]] * 2 + [[-20.0, 20.0]] * 4))
    seen = []

    def validate() -> float:
        assert not model.training  # scored in eval mode, each candidate's path in turn
        depth = model.final_policy_table()["depth"]
        seen.append(depth)
        # the heads are the search's, not yet re-initialised
        assert torch.equal(model.heads["depth"].state_dict()["core.layers.0.weight"], head_before)
        return float(depth[0]) + 11.0 * float(depth[1])

    head_before = model.heads["depth"].state_dict()["core.layers.0.weight"].clone()
    model.eval()
    torch.manual_seed(3)
    _switch(model, validate)
    assert len(seen) == 8
    drawn = model.encoder.candidates[:, 1, :2].tolist()  # depth, blocks 1 and 2
    assert [list(d[:2]) for d in seen] == drawn and all(d[2:] == [False] * 4 for d in seen)
    losses = [a + 11.0 * b for a, b in drawn]
    assert model.encoder.candidate_losses.tolist() == losses
    best = losses.index(min(losses))  # the first of the lowest
    assert int(model.encoder.chosen) == best
    assert model.final_policy_table()["depth"] == seen[best]
    assert model.final_policy_table()["seg"] == [True] * 6
    # with this seed the 8 draws hold [False, False], the policy we know must win
    assert [False, False] in drawn and seen[best][:2] == [False, False]
    # the report: depth keeps 0 of 6 blocks, seg all; the candidates' losses as scored
    report = model.extra_results()["adashare"]
    assert report["phase"] == "retrain" and report["chosen"] == best
    assert report["blocks_kept"] == {"seg": 1.0, "depth": 0.0}
    assert [c["val_loss"] for c in report["candidates"]] == losses
    assert report["candidates"][best]["blocks_kept"] == {"seg": 1.0, "depth": 0.0}
    assert report["policy"]["depth"] == [False] * 6


def test_nan_losses_never_win_and_choosing_needs_validation():
    model = _model(policy_samples=3)
    calls = iter([math.nan, 2.0, 1.0])
    _switch(model, lambda: next(calls))
    assert int(model.encoder.chosen) == 2
    model = _model(policy_samples=3)
    calls = iter([math.nan, math.nan, math.nan])
    _switch(model, lambda: next(calls))
    assert int(model.encoder.chosen) == 0  # all NaN: the first
    model = _model()  # 8 samples and no validation to choose with
    model.on_epoch_start(1, 4)
    model.on_epoch_start(2, 4)
    with pytest.raises(RuntimeError, match="validate"):
        model.on_epoch_start(3, 4)


def test_retraining_phase_resumes_from_a_state_dict():
    model = _model()
    _set_logits(model, "depth", 0.0, 1.0)
    _set_logits(model, "seg", 1.0, 0.0)
    losses = iter(range(8, 0, -1))  # 8, 7, ..., 1: the last sample wins
    _switch(model, lambda: float(next(losses)))
    model.eval()
    with torch.no_grad():
        expected = model(X)
    fresh = _model()
    assert int(fresh.encoder.phase) == SEARCH
    fresh.load_state_dict(model.state_dict())
    assert int(fresh.encoder.phase) == RETRAIN
    assert fresh.final_policy_table() == model.final_policy_table()
    assert int(fresh.encoder.chosen) == 7
    assert fresh.extra_results() == model.extra_results()
    assert not any(p.requires_grad for p in fresh.encoder.logits.values())
    assert fresh.on_epoch_start(4, 4) is False
    fresh.eval()
    with torch.no_grad():
        out = fresh(X)
    for t in SPECS:
        torch.testing.assert_close(out[t], expected[t])


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="search_epochs"):
        _model(search_epochs=1.5)
    with pytest.raises(ValueError, match="warmup_epochs"):
        _model(warmup_epochs=2.5)
    with pytest.raises(ValueError, match="policy_samples"):
        _model(policy_samples=0)
    with pytest.raises(ValueError, match="final_policy"):
        _model(final_policy="best")
    with pytest.raises(ValueError, match="no option 'tau'"):
        _model(tau=1.0)
