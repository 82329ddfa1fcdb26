"""MTI-Net: initial predictions at every scale, propagation from low to high resolution,
distillation at every scale, aggregation, parameter groups."""

import pytest
import torch
import torch.nn.functional as F
from arch_helpers import assert_groups_truthful
from torch import nn

from taskgrouper.models import build_model
from taskgrouper.models.arch.mtinet import FeaturePropagation, MTINet
from taskgrouper.tasks import TaskSpec

SPECS = {
    "seg": TaskSpec("seg", "segmentation", channels=4),
    "depth": TaskSpec("depth", "dense_regression", channels=1),
    "normal": TaskSpec("normal", "normals", channels=3),
    "cls": TaskSpec("cls", "classification", channels=3),
}


def _model(tasks, backbone="hrnet", size=32, **options):
    torch.manual_seed(0)
    return build_model({t: SPECS[t] for t in tasks}, (3, size, size), backbone=backbone,
                       width=0.1, architecture="mtinet", options=options)


class _Independent(nn.Module):
    """A fake backbone whose four outputs depend on disjoint parameters: scale ``s`` is an
    average pool by its stride then its own 1x1 conv."""

    spatial = True
    width = 0.5

    def __init__(self) -> None:
        super().__init__()
        self.strides = [4, 8, 16, 32]
        self.out_channels = [4, 4, 4, 4]
        self.convs = nn.ModuleList(nn.Conv2d(3, 4, 1) for _ in range(4))

    def forward(self, x):
        return [conv(F.avg_pool2d(x, s)) for conv, s in zip(self.convs, self.strides,
                                                             strict=True)]


def _depends(output, params):
    grads = torch.autograd.grad(output.sum(), list(params), retain_graph=True, allow_unused=True)
    return any(g is not None for g in grads)


@pytest.mark.parametrize("backbone,sizes", [
    ("hrnet", [(16, 16), (8, 8), (4, 4), (2, 2)]),  # strides 4, 8, 16, 32 on 64x64
    ("xception", [(32, 32), (16, 16), (8, 8), (4, 4)]),  # strides 2, 4, 8, 16
])
def test_an_initial_prediction_per_scale(backbone, sizes):
    model = _model(["seg", "normal", "cls"], backbone=backbone, size=64).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert set(out.aux) == {"seg", "normal"}  # image-level tasks have none
    assert [tuple(p.shape) for p in out.aux["seg"]] == [(2, 4, *hw) for hw in sizes]
    assert [tuple(p.shape) for p in out.aux["normal"]] == [(2, 3, *hw) for hw in sizes]
    for p in out.aux["normal"]:
        torch.testing.assert_close(p.norm(dim=1), torch.ones(2, *p.shape[-2:]))
    assert tuple(out["seg"].shape) == (2, 4, 64, 64) and tuple(out["cls"].shape) == (2, 3)


def test_channels_halve_with_each_doubling_of_resolution():
    # c_s = channels * stride_s / 32, at least 8: 32 * (4, 8, 16, 32) / 32 = (4 -> 8, 8, 16, 32)
    assert _model(["seg"], channels=32).channels == [8, 8, 16, 32]
    # dilated resnet strides (4, 8, 8, 8): 32 * (4, 8, 8, 8) / 8 = (16, 32, 32, 32)
    assert _model(["seg"], backbone="resnet", channels=32).channels == [16, 32, 32, 32]
    # aggregation: the final head reads the concatenation of every scale, 8 + 8 + 16 + 32
    head = _model(["seg"], channels=32).heads["seg"].core
    assert head.layers[0].depthwise.in_channels == 64


def test_propagation_runs_from_low_to_high_resolution():
    model = MTINet(_Independent(), {t: SPECS[t] for t in ("seg", "depth")}).train()
    out = model(torch.randn(2, 3, 32, 32))
    convs = model.encoder.convs
    for t in ("seg", "depth"):
        for s, pred in enumerate(out.aux[t]):
            # the initial prediction at scale s sees scale s and, through the FPMs, every
            # lower-resolution scale j > s, but no higher-resolution one
            seen = [_depends(pred, convs[j].parameters()) for j in range(4)]
            assert seen == [j >= s for j in range(4)], (t, s, seen)
        assert all(_depends(out[t], convs[j].parameters()) for j in range(4))


def test_distillation_at_the_highest_resolution_mixes_tasks():
    model = _model(["seg", "depth"]).train()
    out = model(torch.randn(2, 3, 32, 32))
    other = list(model.branches[0]["depth"].parameters())
    # nothing propagates out of scale 0, so depth's scale-0 branch reaches seg's final
    # prediction only through the scale-0 distillation, and not seg's initial one
    assert not _depends(out.aux["seg"][0], other)
    assert _depends(out["seg"], other)
    # at the deepest scale the branch reaches seg's initial predictions above it (FPM)
    deep = list(model.branches[3]["depth"].parameters())
    assert _depends(out.aux["seg"][0], deep) and not _depends(out.aux["seg"][3], deep)


@pytest.mark.parametrize("tasks", [["seg", "depth"], ["seg", "depth", "cls"], ["depth", "cls"]])
def test_parameter_groups_are_what_each_loss_reaches(tasks):
    assert_groups_truthful(_model(tasks).train(), torch.randn(2, 3, 32, 32))


def test_image_level_tasks_only():
    model = _model(["cls"]).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.aux == {} and tuple(out["cls"].shape) == (2, 3)
    assert len(list(model.branches.parameters())) == 0


def test_aspp_head_option():
    model = _model(["depth"], head="aspp")
    assert model.heads["depth"].core.rates == (12, 24, 36)  # stride 4: 48, 96, 144 pixels
    assert tuple(model(torch.randn(2, 3, 32, 32))["depth"].shape) == (2, 1, 32, 32)


def _feats(seed=0, c=8):
    g = torch.Generator().manual_seed(seed)
    return {t: torch.randn(2, c, 4, 4, generator=g) for t in ("a", "b")}


@pytest.mark.parametrize("residual", [True, False])
def test_fpm_residual_by_hand(residual):
    fpm = FeaturePropagation(["a", "b"], 8, residual=residual).eval()
    bn = fpm.reduce[-1][1]  # the last BN of the reduction: scale 0 and shift 0 zero S
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.zero_()
    feats = _feats()
    out = fpm(feats)
    # S = 0, so P_t = SE_t(S) * S + F_t = F_t with the residual and 0 without
    for t in ("a", "b"):
        torch.testing.assert_close(out[t], feats[t] if residual else torch.zeros(2, 8, 4, 4))


def test_fpm_task_attention_is_a_softmax_over_tasks_by_hand():
    fpm = FeaturePropagation(["a", "b"], 8).eval()
    feats = _feats()
    mask = fpm.task_mask(feats)
    assert tuple(mask.shape) == (2, 2, 8, 4, 4)  # (B, N, c, h, w)
    torch.testing.assert_close(mask.sum(dim=1), torch.ones(2, 8, 4, 4))
    last = fpm.attention[-1]  # the 1x1 conv giving the N * c logits, task-major
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        # equal logits: softmax (1/2, 1/2), so S = reduce([F_a / 2 ; F_b / 2])
        expect = fpm.reduce(torch.cat([feats["a"] / 2, feats["b"] / 2], dim=1))
        torch.testing.assert_close(fpm.share(feats), expect)
        # logits +30 for every channel of task a, -30 for task b: softmax (1, e^-60 ~ 0),
        # so S = reduce([F_a ; 0]); a channel-interleaved layout would mix a and b here
        last.bias.copy_(torch.tensor([30.0] * 8 + [-30.0] * 8))
        expect = fpm.reduce(torch.cat([feats["a"], torch.zeros_like(feats["b"])], dim=1))
        torch.testing.assert_close(fpm.share(feats), expect)


def test_fpm_options():
    # defaults: the paper's task attention and residual
    fpm = _model(["seg", "depth"]).propagate[0]
    assert fpm.attention is not None and fpm.residual
    fpm = _model(["seg", "depth"], fpm_attention=False, fpm_residual=False).propagate[0]
    assert fpm.attention is None and not fpm.residual
    # one dense task: a softmax over one task is 1, so no attention layers are built
    assert _model(["depth", "cls"]).propagate[0].attention is None
