"""Cost accounting: MAC counter against hand counts, parameters, SNT, latency."""

import pytest
import torch
from torch import nn

from taskgrouper.evaluate.cost import (
    NetworkCost,
    count_macs,
    count_params,
    encoder_cost,
    measure_latency,
    network_cost,
    snt,
    width_for_cost,
)
from taskgrouper.models import SeparableConv2d, build_model
from taskgrouper.tasks import TaskSpec


def test_width_for_cost_half():
    full = (3, 256, 256)
    w = width_for_cost(0.5, full)
    assert 0.6 < w < 0.8  # a half-cost encoder is about 0.7 wide, not 0.5
    # w is a channel multiplier; encoder_cost takes a size, the square of it
    frac = encoder_cost("xception", full, w * w) / encoder_cost("xception", full, 1.0)
    assert frac == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("device", ["meta", None])
def test_separable_conv_macs_match_hand_count(device):
    # Depthwise 3x3 on 8 channels at 10x10 (padding keeps 10x10): 8 * 9 * 100 = 7200 MACs.
    # Pointwise 8 -> 16 at 10x10: 8 * 16 * 100 = 12800 MACs. Total 20000.
    layer = SeparableConv2d(8, 16)
    assert count_macs(layer, (8, 10, 10), device=device) == 20000


@pytest.mark.parametrize("device", ["meta", None])
def test_transposed_conv_macs_match_hand_count(device):
    # ConvTranspose2d(4, 2, kernel 2, stride 2) on 5x5: each input pixel is multiplied into
    # Cin * Cout * k * k = 4 * 2 * 2 * 2 = 32 outputs; 25 pixels -> 800 MACs.
    layer = nn.ConvTranspose2d(4, 2, 2, stride=2)
    assert count_macs(layer, (4, 5, 5), device=device) == 800


def test_linear_and_dense_conv_macs():
    # Linear 10 -> 7: 70 MACs. Conv 3 -> 5, 3x3, stride 2, padding 1 on 8x8 -> 4x4 output:
    # 3 * 5 * 9 * 16 = 2160 MACs.
    assert count_macs(nn.Linear(10, 7), (10,)) == 70
    assert count_macs(nn.Conv2d(3, 5, 3, stride=2, padding=1), (3, 8, 8)) == 2160


def test_count_macs_restores_mode_and_leaves_weights():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    before = model[0].weight.detach().clone()
    model.train()
    count_macs(model, (3, 6, 6), device=None)
    assert model.training
    model.eval()
    count_macs(model, (3, 6, 6))
    assert not model.training
    assert model[0].weight.device.type == "cpu"
    assert torch.equal(model[0].weight, before)


def test_count_params_hand_built():
    # Linear 5 -> 3: 15 weights + 3 biases = 18; Conv2d 2 -> 4, 3x3, no bias: 72;
    # BatchNorm2d(4): 8 (running stats are buffers); a frozen Linear(2, 2) adds nothing.
    frozen = nn.Linear(2, 2)
    frozen.requires_grad_(False)
    m = nn.ModuleList([nn.Linear(5, 3), nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4),
                       frozen])
    assert count_params(m) == 18 + 72 + 8


def test_snt_and_network_cost():
    assert snt(50, 200) == 0.25
    with pytest.raises(ValueError):
        snt(1, 0)
    shape = (3, 64, 64)
    tasks = {"s": TaskSpec("s", "segmentation", channels=4),
             "c": TaskSpec("c", "classification", channels=3)}
    model = build_model(tasks, shape, width=0.5)
    ref = encoder_cost("xception", shape, 1.0)
    enc = count_macs(model.encoder, shape)
    cost = network_cost(model, shape, ref)
    assert isinstance(cost, NetworkCost)
    assert cost.snt == pytest.approx(enc / ref)
    assert cost.snt == pytest.approx(0.5, abs=0.02)  # width 0.5: the half-sized encoder
    assert cost.macs > enc  # heads are included in total MACs but not in SNT
    assert cost.params == count_params(model)
    assert cost.latency_s is None
    # reference computed from the model's backbone name when omitted
    assert network_cost(model, shape).snt == pytest.approx(cost.snt)


def test_measure_latency_positive_and_restores_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model.train()
    t = measure_latency(model, (3, 16, 16), "cpu", batch_size=2, warmup=1, iters=3)
    assert t > 0
    assert model.training


def test_count_macs_meta_module_without_meta_attempt():
    # A module already on meta, counted through the real-forward path: 3 * 5 * 9 * 36 = 4860.
    with torch.device("meta"):
        layer = nn.Conv2d(3, 5, 3, padding=1)
    assert count_macs(layer, (3, 6, 6), device=None) == 4860
    assert layer.training
