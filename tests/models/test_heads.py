"""Dense heads: the ASPP decoder's rates, receptive field and shapes; ``build_head``'s kinds."""

import pytest
import torch

from taskgrouper.models import LightDecoder, build_backbone, build_head
from taskgrouper.models.heads import ASPPDecoder
from taskgrouper.tasks import TaskSpec

SEG = TaskSpec("seg", "segmentation", channels=4)
NORMAL = TaskSpec("normal", "normals", channels=3)


@pytest.mark.parametrize("stride,rates", [(16, (3, 6, 9)), (8, (6, 12, 18)), (4, (12, 24, 36)),
                                          (32, (2, 3, 5))])
def test_aspp_default_rates_span_48_96_144_pixels(stride, rates):
    # rate = round(span / stride), half up: 48/32 = 1.5 -> 2, 144/32 = 4.5 -> 5
    head = ASPPDecoder(8, 2, stride=stride)
    assert head.rates == rates
    dilations = [b[0].depthwise.dilation for b in list(head.branches)[1:]]
    assert dilations == [(r, r) for r in rates]


def test_aspp_dilated_branch_sees_taps_rate_apart():
    # the rate-3 branch's depthwise 3x3 conv reads the centre and the 8 pixels 3 steps away
    head = ASPPDecoder(1, 1, stride=16, rates=(3,))
    conv = head.branches[1][0].depthwise
    x = torch.randn(1, 1, 9, 9, requires_grad=True)
    conv(x)[0, 0, 4, 4].backward()
    touched = {tuple(i) for i in (x.grad[0, 0] != 0).nonzero().tolist()}
    assert touched == {(r, c) for r in (1, 4, 7) for c in (1, 4, 7)}


def test_aspp_output_shape_and_global_context():
    head = ASPPDecoder(8, 3, stride=16).eval()
    x = torch.randn(2, 8, 4, 4)
    y = head(x)
    assert tuple(y.shape) == (2, 3, 64, 64)
    # the image-pooling branch: changing one far-away pixel changes every output pixel's
    # logits even where no 3x3 tap of any rate reaches (rates 3, 6, 9 on a 4x4 map)
    x2 = x.clone()
    x2[:, :, 3, 3] += 5.0
    with torch.no_grad():
        delta = (head(x2) - y).abs()
    assert float(delta[:, :, :16, :16].amin()) > 0  # the upsampled (0, 0) cell changed too


def test_build_head_aspp_kind_on_a_backbone():
    bb = build_backbone("xception", (3, 32, 32), width=0.1)
    head = build_head(NORMAL, bb, kind="aspp")
    assert isinstance(head.core, ASPPDecoder) and head.core.rates == (3, 6, 9)
    out = head(bb(torch.randn(2, 3, 32, 32)), (32, 32))
    assert tuple(out.shape) == (2, 3, 32, 32)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 32, 32))


def test_build_head_default_is_the_light_decoder_unchanged():
    bb = build_backbone("xception", (3, 32, 32), width=0.1)
    torch.manual_seed(0)
    default = build_head(SEG, bb)
    torch.manual_seed(0)
    reference = LightDecoder(bb.out_channels[-1], 4, stride=16)
    assert isinstance(default.core, LightDecoder)
    ref = reference.state_dict()
    for name, value in default.core.state_dict().items():
        assert torch.equal(value, ref[name]), name


def test_unknown_head_kind_suggests_the_closest():
    bb = build_backbone("xception", (3, 32, 32), width=0.1)
    with pytest.raises(ValueError, match="did you mean 'aspp'"):
        build_head(SEG, bb, kind="asp")
