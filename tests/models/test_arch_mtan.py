"""MTAN: the attention mask's arithmetic, stage shapes on both image backbones, the shared
representation, parameter groups, and the cost of the attention modules."""

import math

import pytest
import torch

from taskgrouper.evaluate.cost import count_macs
from taskgrouper.models import build_backbone, build_model
from taskgrouper.models.arch.mtan import AttentionMask, MTANNet
from taskgrouper.tasks import TaskSpec

SPECS = {"seg": TaskSpec("seg", "segmentation", channels=4),
         "depth": TaskSpec("depth", "dense_regression", channels=1),
         "cls": TaskSpec("cls", "classification", channels=3)}
IN_SHAPE = (3, 32, 32)


def _model(backbone="xception"):
    torch.manual_seed(0)
    return build_model(SPECS, IN_SHAPE, backbone=backbone, width=0.1, architecture="mtan")


def test_mask_is_a_sigmoid_gate_on_the_shared_features():
    att = AttentionMask(in_channels=4, channels=2).eval()
    with torch.no_grad():
        att.h[0].weight.zero_()  # last 1x1 conv outputs 0; BN (eval: mean 0, var 1) adds beta
        att.h[1].bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    shared = torch.tensor([[[[2.0]], [[-4.0]]]])  # (B=1, C=2, 1, 1)
    previous = torch.randn(1, 2, 1, 1)
    # mask = sigmoid(beta) = [1/2, 3/4]: output = [2 * 0.5, -4 * 0.75] = [1, -3]
    torch.testing.assert_close(att(shared, previous).flatten(), torch.tensor([1.0, -3.0]))
    torch.testing.assert_close(att.mask(shared, previous).flatten(), torch.tensor([0.5, 0.75]))


@pytest.mark.parametrize("backbone", ["xception", "resnet"])
def test_attended_features_have_the_stage_shapes(backbone):
    model = _model(backbone).eval()
    x = torch.randn(2, *IN_SHAPE)
    with torch.no_grad():
        shared, attended = model.encoder(x)
        out = model(x)
        direct = model.encoder.backbone(x)
    for task in SPECS:
        assert [a.shape for a in attended[task]] == [s.shape for s in shared]
        # the mask is in (0, 1) and the stage outputs are ReLU outputs, so 0 <= a^ <= p
        assert all(bool(((a >= 0) & (a <= s)).all())
                   for a, s in zip(attended[task], shared, strict=True))
    for rep, feature in zip(out.rep, direct, strict=True):  # rep = the backbone's outputs
        assert torch.equal(rep, feature)
    assert tuple(out["seg"].shape) == (2, 4, 32, 32) and tuple(out["cls"].shape) == (2, 3)


def test_parameter_groups_partition_the_model():
    model = _model()
    assert isinstance(model, MTANNet)
    shared = {id(p) for p in model.shared_parameters()}
    assert shared == {id(p) for p in model.encoder.backbone.parameters()}
    own = [{id(p) for p in model.task_parameters(t)} for t in model.tasks]
    assert all(shared.isdisjoint(o) for o in own)
    assert sum(map(len, own)) + len(shared) == len(list(model.parameters()))
    last = model.last_shared_layer()
    assert last and {id(p) for p in last} <= shared


def test_attention_cost_matches_a_hand_count():
    model = _model()
    backbone = build_backbone("xception", IN_SHAPE, 0.1)
    c, n = backbone.out_channels, [(32 // s) ** 2 for s in backbone.strides]
    # per task: stage 1 mask: two C_1 -> C_1 1x1 convs; stage j > 1 mask: 2C_j -> C_j and
    # C_j -> C_j 1x1 convs; bridge: a 3x3 C_{j-1} -> C_j conv at stage j's resolution
    per_task = 2 * c[0] ** 2 * n[0] + sum(3 * c[j] ** 2 * n[j] + 9 * c[j - 1] * c[j] * n[j]
                                          for j in range(1, 4))
    assert count_macs(model.encoder, IN_SHAPE) == count_macs(backbone, IN_SHAPE) + 3 * per_task


def test_vector_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match="'mtan' needs image inputs"):
        build_model({"a": TaskSpec("a", "regression")}, (10,), backbone="mlp",
                    architecture="mtan")


def test_sizes_that_do_not_halve_exactly():
    """36 x 36 through the resnet gives stage maps of 9 and then 5 pixels: the bridge pools
    9 -> 5 adaptively, and the heads resize to the input."""
    torch.manual_seed(0)
    model = build_model(SPECS, (3, 36, 36), backbone="resnet", width=0.1, architecture="mtan")
    out = model(torch.randn(2, 3, 36, 36))
    assert [tuple(r.shape[-2:]) for r in out.rep] == [(9, 9), (5, 5), (5, 5), (5, 5)]
    assert tuple(out["seg"].shape) == (2, 4, 36, 36)
