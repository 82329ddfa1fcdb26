"""The small HRNet backbone: strides, channels, the exchange unit's arithmetic, width as cost."""

import pytest
import torch

from taskgrouper.evaluate.cost import count_params, encoder_cost
from taskgrouper.models import BACKBONES, build_backbone
from taskgrouper.models.hrnet import HRNetEncoder, _Exchange


def test_four_branches_at_strides_4_to_32():
    enc = build_backbone("hrnet", (3, 64, 64), width=0.25)  # channel multiplier 0.5
    assert "hrnet" in BACKBONES and isinstance(enc, HRNetEncoder)
    assert enc.width == 0.5 and enc.spatial is True
    assert enc.strides == [4, 8, 16, 32]
    # (16, 32, 64, 128) * 0.5 = (8, 16, 32, 64)
    assert enc.out_channels == [8, 16, 32, 64]
    out = enc(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in out] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4),
                                             (2, 64, 2, 2)]


def test_odd_input_sizes_follow_the_stride_two_convs():
    # every downsampling is a 3x3 stride-2 conv with padding 1: ceil(h / 2) each time
    # 30 -> 15 -> 8 (stride 4) -> 4 -> 2 -> 1
    enc = HRNetEncoder(width=0.3)
    out = enc(torch.randn(2, 3, 30, 30))
    assert [tuple(o.shape[-2:]) for o in out] == [(8, 8), (4, 4), (2, 2), (1, 1)]


def test_stages_is_a_clear_error():
    enc = HRNetEncoder(width=0.3)
    with pytest.raises(NotImplementedError, match="cross_stitch, nddr, adashare"):
        enc.stages()


def test_deepest_output_reaches_every_parameter():
    # the final exchange unit aggregates every branch into the stride-32 output, so a head on
    # the deepest output alone (hard sharing) trains the whole network
    enc = HRNetEncoder(width=0.3).train()
    enc(torch.randn(2, 3, 32, 32))[-1].sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_exchange_unit_arithmetic():
    ex = _Exchange([1, 1], targets=[0, 1]).eval()
    with torch.no_grad():
        up = ex.paths[0][1][0]  # 1x1 conv of branch 1 into branch 0
        up.weight.fill_(2.0)
        down = ex.paths[1][0][0][0]  # 3x3 stride-2 conv of branch 0 into branch 1
        down.weight.fill_(1.0)
    bn_scale = 1 / (1 + 1e-5) ** 0.5  # eval BN with fresh statistics: x / sqrt(1 + eps)
    x0 = torch.ones(1, 1, 4, 4)
    x1 = torch.full((1, 1, 2, 2), 3.0)
    y0, y1 = ex([x0, x1])
    # output 0: x0 + upsample(2 * x1) = 1 + 6 = 7 everywhere (bilinear keeps constants)
    torch.testing.assert_close(y0, 1 + 6 * bn_scale * torch.ones(1, 1, 4, 4))
    # output 1: x1 + 3x3 box sum of ones at stride 2, padding 1, on a 4x4 map:
    # windows cover 2x2, 2x3, 3x2, 3x3 valid pixels -> [[4, 6], [6, 9]]
    box = torch.tensor([[4.0, 6.0], [6.0, 9.0]]).view(1, 1, 2, 2)
    torch.testing.assert_close(y1, 3 + bn_scale * box)


def test_size():
    with torch.device("meta"):
        full = HRNetEncoder()
    params = count_params(full)
    assert 1.0e6 <= params <= 2.0e6  # a small HRNet: HRNet-W18 has 9.6 M


@pytest.mark.slow
def test_width_is_a_cost_fraction():
    # width is a cost fraction: channels scale by sqrt(width), MACs by about width; the narrow
    # branches round up (16 * sqrt(0.5) = 11.3 -> 12 channels), so 0.5 costs 0.55
    macs = [encoder_cost("hrnet", (3, 256, 256), w) for w in (1.0, 0.5, 0.25)]
    assert macs[1] / macs[0] == pytest.approx(0.55, abs=0.01)
    assert macs[2] / macs[0] == pytest.approx(0.25, abs=0.01)
