"""PAD-Net: the distillation formula by hand, initial predictions, heads, parameter groups."""

import math

import pytest
import torch
from arch_helpers import assert_groups_truthful

from taskgrouper.models import build_model
from taskgrouper.models.arch.padnet import Distillation, PADNet
from taskgrouper.models.heads import ASPPDecoder, LightDecoder
from taskgrouper.tasks import TaskSpec

SPECS = {
    "seg": TaskSpec("seg", "segmentation", channels=4),
    "depth": TaskSpec("depth", "dense_regression", channels=1),
    "normal": TaskSpec("normal", "normals", channels=3),
    "cls": TaskSpec("cls", "classification", channels=3),
}


def _model(tasks, backbone="xception", **options):
    torch.manual_seed(0)
    return build_model({t: SPECS[t] for t in tasks}, (3, 32, 32), backbone=backbone,
                       width=0.1, architecture="padnet", options=options)


def _const(value):
    return torch.full((1, 1, 3, 3), float(value))


def test_distillation_eq2_by_hand():
    # survey Eq. 2 (W' = identity): F_a^o = F_a + sigmoid(W_ab F_b) F_b + sigmoid(W_ac F_c) F_c
    unit = Distillation(["a", "b", "c"], channels=1, message_conv=False)
    with torch.no_grad():
        for convs in unit.attention.values():
            for conv in convs.values():
                conv.weight.zero_()
        unit.attention["a"]["b"].bias.fill_(0.0)  # mask sigmoid(0) = 0.5
        unit.attention["a"]["c"].bias.fill_(math.log(3.0))  # mask sigmoid(log 3) = 3/4
    out = unit({"a": _const(1), "b": _const(2), "c": _const(4)})
    # 1 + 0.5 * 2 + 0.75 * 4 = 5
    torch.testing.assert_close(out["a"], _const(5))


def test_distillation_with_message_convs_by_hand():
    # F_a^o = F_a + sigmoid(W_ab F_b) * (W'_ab F_b): mask 0.5, message 3 * F_b - 1
    unit = Distillation(["a", "b"], channels=1, message_conv=True)
    with torch.no_grad():
        unit.attention["a"]["b"].weight.zero_()
        unit.attention["a"]["b"].bias.zero_()
        msg = unit.message["a"]["b"]
        msg.weight.zero_()
        msg.weight[0, 0, 1, 1] = 3.0  # centre tap only
        msg.bias.fill_(-1.0)
    out = unit({"a": _const(1), "b": _const(2)})
    # 1 + 0.5 * (3 * 2 - 1) = 3.5
    torch.testing.assert_close(out["a"], _const(3.5))


def test_distillation_at_initialisation():
    # as documented: zero biases, so zero features of the other tasks pass nothing
    # (message W' 0 = 0) and a task alone is left unchanged
    unit = Distillation(["a", "b"], channels=4)
    assert all(not conv.bias.detach().any() for k in unit.attention.values()
               for conv in k.values())
    fa = torch.randn(2, 4, 5, 5)
    out = unit({"a": fa, "b": torch.zeros(2, 4, 5, 5)})
    torch.testing.assert_close(out["a"], fa)
    # with non-zero features the masks are strictly between 0 and 1 and the output moves
    fb = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        mask = torch.sigmoid(unit.attention["a"]["b"](fb))
    assert 0 < float(mask.min()) and float(mask.max()) < 1
    assert not torch.allclose(unit({"a": fa, "b": fb})["a"], fa)
    alone = Distillation(["a"], channels=4)
    torch.testing.assert_close(alone({"a": fa})["a"], fa)


def test_one_initial_prediction_per_dense_task_at_the_deepest_stride():
    model = _model(["seg", "normal", "cls"]).train()
    out = model(torch.randn(2, 3, 32, 32))
    # xception: deepest stride 16 -> 2x2 initial predictions; cls has none
    assert {t: [tuple(p.shape) for p in v] for t, v in out.aux.items()} == {
        "seg": [(2, 4, 2, 2)], "normal": [(2, 3, 2, 2)]}
    norms = out.aux["normal"][0].norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    assert tuple(out["cls"].shape) == (2, 3)


def test_hrnet_backbone_and_aspp_head():
    model = _model(["seg", "depth"], backbone="hrnet", head="aspp", channels=12)
    assert isinstance(model, PADNet) and model.channels == 12
    assert all(isinstance(model.heads[t].core, ASPPDecoder) for t in ("seg", "depth"))
    assert model.heads["seg"].core.rates == (2, 3, 5)  # stride 32
    out = model(torch.randn(2, 3, 32, 32))
    assert tuple(out["seg"].shape) == (2, 4, 32, 32)
    assert tuple(out.aux["depth"][0].shape) == (2, 1, 1, 1)  # 32 / 32
    assert len(out.rep) == 4


def test_defaults_light_heads_and_width_scaled_channels():
    model = _model(["seg", "depth"])
    # width 0.1 -> channel multiplier 0.316; 32 * 0.316 = 10.1 -> 12 (multiple of 4)
    assert model.channels == 12
    assert isinstance(model.heads["seg"].core, LightDecoder)


@pytest.mark.parametrize("tasks", [["seg", "depth"], ["seg", "depth", "cls"], ["depth", "cls"],
                                   ["seg", "normal", "depth"]])
def test_parameter_groups_are_what_each_loss_reaches(tasks):
    # all dense: the branches are shared (distillation); mixed: they are in neither group
    assert_groups_truthful(_model(tasks).train(), torch.randn(2, 3, 32, 32))


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="did you mean 'aspp'"):
        _model(["seg"], head="asp")
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        _model(["seg"], channels=0)
    with pytest.raises(ValueError, match="needs image inputs"):
        build_model({"r": TaskSpec("r", "regression")}, (10,), backbone="mlp",
                    architecture="padnet")
