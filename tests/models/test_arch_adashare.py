"""AdaShare: the residual layout of the backbones, the sparsity and sharing losses by hand, the
curriculum and temperature, select/skip semantics and their cost, the switch to retraining and
resuming it from a state dict."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from taskgrouper.evaluate.cost import count_macs
from taskgrouper.models import HardSharingNet, build_model
from taskgrouper.models.arch.adashare import (
    RETRAIN,
    SEARCH,
    residual_layout,
    sharing_depth_weights,
)
from taskgrouper.models.backbones import MLPEncoder
from taskgrouper.tasks import TaskSpec

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
    model = _model()
    _set_logits(model, "seg", 0.0, 0.0)  # alpha = 0.5 on every block
    _set_logits(model, "depth", math.log(3.0), 0.0)  # alpha = 3 / (3 + 1) = 0.75
    # all 6 blocks learned (before any epoch):
    # L_sp = 6 ln 0.5 + 6 ln 0.75 = -4.158883 - 1.726092 = -5.884975
    # L_sh = 2 ordered pairs * |0.5 - 0.75| * (5 + 4 + 3 + 2 + 1 + 0) / 6 = 0.5 * 2.5 = 1.25
    # 0.05 * (-5.884975) + 0.05 * 1.25 = -0.231749
    torch.testing.assert_close(model.regularization(), torch.tensor(-0.23174875))
    # epoch 1 of 2 search epochs: the last ceil(6 / 2) = 3 blocks (l = 4, 5, 6) are learned
    # L_sp = 3 (ln 0.5 + ln 0.75) = -2.942488; L_sh = 0.5 * (2 + 1 + 0) / 6 = 0.25
    # 0.05 * (-2.942488 + 0.25) = -0.134624
    model.on_epoch_start(1, 4)
    torch.testing.assert_close(model.regularization(), torch.tensor(-0.134624375))


def test_curriculum_and_temperature():
    model = _model()
    model.on_epoch_start(1, 4)  # search_epochs 0.5 of 4 = 2; 3 blocks per epoch
    assert int(model.encoder.n_learned) == 3 and float(model.encoder.tau) == 5.0
    model.train()
    out = model(X)
    (out["seg"].sum() + out["depth"].sum() + model.regularization()).backward()
    for t in SPECS:  # the first 3 blocks are executed and learn nothing
        grad = model.encoder.logits[t].grad
        assert float(grad[:3].abs().sum()) == 0.0
        assert float(grad[3:].abs().sum()) > 0.0
    model.on_epoch_start(2, 4)
    assert int(model.encoder.n_learned) == 6
    assert float(model.encoder.tau) == pytest.approx(5.0 * 0.965)


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


def _switch(model):
    model.on_epoch_start(1, 4)
    model.on_epoch_start(2, 4)
    assert model.on_epoch_start(3, 4) is True


@pytest.mark.parametrize("backbone", ["xception", "resnet"])
def test_cost_follows_the_policy(backbone):
    # every task executes every block: exactly hard sharing's cost (blocks run once)
    model = _model(backbone)
    _set_logits(model, "seg", 1.0, 0.0)
    _set_logits(model, "depth", 1.0, 0.0)
    _switch(model)
    hard = HardSharingNet(model.encoder.backbone, SPECS)
    hard.heads = model.heads
    shared = count_macs(model.eval(), (3, 32, 32))
    assert shared == count_macs(hard.eval(), (3, 32, 32))
    # depth skips every block: its path adds its shortcut projections and the suffix again,
    # nothing else (seg's path is unchanged and still runs once)
    model = _model(backbone)
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
    model = _model()
    _set_logits(model, "seg", 2.0, 0.0)
    with torch.no_grad():  # depth: skip the last two blocks, execute the others
        model.encoder.logits["depth"].copy_(torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 2))
    before = [p.detach().clone() for p in model.encoder.backbone.parameters()]
    assert model.on_epoch_start(1, 4) is False
    assert model.on_epoch_start(2, 4) is False
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
    model = _model(curriculum_step=1, search_epochs=2)
    _set_logits(model, "seg", -5.0, 5.0)  # every policy says skip
    _set_logits(model, "depth", -5.0, 5.0)
    _switch(model)  # after 2 search epochs only the last 2 blocks were learned
    assert model.encoder.policy.tolist() == [[True] * 4 + [False] * 2] * 2


def test_sampled_final_policy():
    model = _model(final_policy="sample")
    _set_logits(model, "seg", 20.0, -20.0)  # sure to execute
    _set_logits(model, "depth", -20.0, 20.0)  # sure to skip
    _switch(model)
    assert model.encoder.policy.tolist() == [[True] * 6, [False] * 6]


def test_retraining_phase_resumes_from_a_state_dict():
    model = _model()
    _set_logits(model, "depth", 0.0, 1.0)
    _set_logits(model, "seg", 1.0, 0.0)
    _switch(model)
    model.eval()
    with torch.no_grad():
        expected = model(X)
    fresh = _model()
    assert int(fresh.encoder.phase) == SEARCH
    fresh.load_state_dict(model.state_dict())
    assert int(fresh.encoder.phase) == RETRAIN
    assert fresh.final_policy_table() == model.final_policy_table()
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
    with pytest.raises(ValueError, match="final_policy"):
        _model(final_policy="best")
    with pytest.raises(ValueError, match="no option 'tau'"):
        _model(tau=1.0)
