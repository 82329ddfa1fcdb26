"""NDDR-CNN: the layer starts as a cross-stitch unit followed by BN and ReLU, fuses across
channels once trained, and runs on feature maps and vectors."""

import pytest
import torch

from taskgrouper.evaluate.cost import count_macs
from taskgrouper.models import build_backbone, build_model
from taskgrouper.models.arch.cross_stitch import CrossStitchUnit
from taskgrouper.models.arch.nddr import NDDRNet, NDDRUnit
from taskgrouper.tasks import TaskSpec

SPECS = {"seg": TaskSpec("seg", "segmentation", channels=4),
         "depth": TaskSpec("depth", "dense_regression", channels=1)}
IN_SHAPE = (3, 32, 32)


def test_initial_weights_are_scaled_identities():
    unit = NDDRUnit(["a", "b"], channels=2)
    w_a = unit.reduce["a"][0].weight[:, :, 0, 0]  # (C, T*C): [own channels | other task's]
    w_b = unit.reduce["b"][0].weight[:, :, 0, 0]
    torch.testing.assert_close(w_a, torch.tensor([[0.9, 0.0, 0.1, 0.0], [0.0, 0.9, 0.0, 0.1]]))
    torch.testing.assert_close(w_b, torch.tensor([[0.1, 0.0, 0.9, 0.0], [0.0, 0.1, 0.0, 0.9]]))
    three = NDDRUnit(["a", "b", "c"], channels=1, alpha_same=0.8, alpha_other=0.3)
    torch.testing.assert_close(three.reduce["c"][0].weight.flatten(), torch.tensor([.3, .3, .8]))


def test_at_initialisation_it_is_cross_stitch_then_batch_norm_and_relu():
    nddr = NDDRUnit(["a", "b"], channels=2).eval()  # fresh BN: mean 0, variance 1, eps 1e-5
    a = torch.tensor([[-1.0, 2.0]])
    b = torch.tensor([[3.0, -4.0]])
    out_a, out_b = nddr([a, b])
    # cross-stitch: a~ = 0.9 [-1, 2] + 0.1 [3, -4] = [-0.6, 1.4]; b~ = [2.6, -3.4]
    # BN divides by sqrt(1 + 1e-5), ReLU clips the negatives
    scale = (1 + 1e-5) ** -0.5
    torch.testing.assert_close(out_a, torch.tensor([[0.0, 1.4 * scale]]))
    torch.testing.assert_close(out_b, torch.tensor([[2.6 * scale, 0.0]]))
    # the same on feature maps, against the cross-stitch unit
    torch.manual_seed(0)
    xs = [torch.randn(2, 2, 3, 3) for _ in range(2)]
    stitched = CrossStitchUnit(["a", "b"], channels=2)(xs)
    for got, want in zip(nddr(xs), stitched, strict=True):
        torch.testing.assert_close(got, torch.relu(want) * scale)


def test_training_fuses_across_channels():
    """Unlike a cross-stitch unit, an NDDR layer learns weights between different channels."""
    unit = NDDRUnit(["a", "b"], channels=2).train()
    torch.manual_seed(0)
    xs = [torch.randn(8, 2, 4, 4) for _ in range(2)]
    (unit(xs)[0] * torch.randn(8, 2, 4, 4)).sum().backward()
    grad = unit.reduce["a"][0].weight.grad[:, :, 0, 0]  # (C, T*C)
    assert float(grad[0, 1].abs()) > 0  # channel 1 of task a -> output channel 0
    assert float(grad[0, 3].abs()) > 0  # channel 1 of task b -> output channel 0


def test_network_groups_and_cost():
    torch.manual_seed(0)
    model = build_model(SPECS, IN_SHAPE, backbone="xception", width=0.1, architecture="nddr")
    assert isinstance(model, NDDRNet)
    assert not list(model.shared_parameters())
    groups = {t: {id(p) for p in model.task_parameters(t)} for t in model.tasks}
    assert groups["seg"].isdisjoint(groups["depth"])
    assert groups["seg"] | groups["depth"] == {id(p) for p in model.parameters()}
    backbone = build_backbone("xception", IN_SHAPE, 0.1)
    # per stage, T = 2 layers of T*C -> C 1x1 convs: 2 * 2C * C * (32 / s)^2 multiply-adds
    fusion = sum(4 * c * c * (32 // s) ** 2
                 for c, s in zip(backbone.out_channels, backbone.strides, strict=True))
    assert count_macs(model.encoder, IN_SHAPE) == 2 * count_macs(backbone, IN_SHAPE) + fusion


def test_vector_features_with_the_mlp_backbone():
    specs = {"a": TaskSpec("a", "regression"), "b": TaskSpec("b", "binary")}
    torch.manual_seed(0)
    model = build_model(specs, (10,), backbone="mlp", width=0.25, architecture="nddr").train()
    out = model(torch.randn(4, 10))
    assert tuple(out["a"].shape) == (4,) and tuple(out["b"].shape) == (4,)
    (out["a"].sum() + out["b"].sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_alpha_options_reach_the_layers():
    torch.manual_seed(0)
    model = build_model(SPECS, IN_SHAPE, backbone="xception", width=0.1, architecture="nddr",
                        options={"alpha_same": 0.6, "alpha_other": 0.4})
    w = model.encoder.units[0].reduce["depth"][0].weight.detach()[:, :, 0, 0]  # (C, 2C)
    c = w.shape[0]
    assert float(w[0, 0]) == pytest.approx(0.4) and float(w[0, c]) == pytest.approx(0.6)
    assert float(w.sum()) == pytest.approx(c * (0.4 + 0.6))  # nothing off the diagonals
