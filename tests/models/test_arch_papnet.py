"""PAP-Net: pixel affinities, their cross-task combination (survey Eq. 3), the diffusion, the
reduced-scale affinities, deep supervision and the parameter groups."""

from __future__ import annotations

import math

import pytest
import torch

from taskgrouper.models import build_model
from taskgrouper.models.arch import papnet
from taskgrouper.models.arch.papnet import affinity, diffuse, reduced_grid
from taskgrouper.tasks import TaskSpec

SPECS = {
    "seg": TaskSpec("seg", "segmentation", channels=4),
    "depth": TaskSpec("depth", "dense_regression", channels=1),
    "cls": TaskSpec("cls", "classification", channels=3),
}


def _model(tasks=("seg", "depth"), **options):
    torch.manual_seed(0)
    return build_model({t: SPECS[t] for t in tasks}, (3, 32, 32), backbone="xception",
                       width=0.1, architecture="papnet", options=options)


def test_reduced_grid_hand_cases():
    assert reduced_grid(32, 32, 1024) == (32, 32)  # 1024 pixels fit
    assert reduced_grid(64, 64, 1024) == (32, 32)  # 4096 / 1024 -> factor 2
    assert reduced_grid(128, 128, 1024) == (32, 32)  # factor 4
    # 3 x 5 = 15 > 4: f = ceil(sqrt(15 / 4)) = 2 gives 2 x 3 = 6 > 4; f = 3 gives 1 x 2
    assert reduced_grid(3, 5, 4) == (1, 2)
    with pytest.raises(ValueError, match="max_affinity_pixels"):
        reduced_grid(4, 4, 0)


def test_affinity_is_a_row_softmax_of_feature_products():
    # one channel, pixels with values 0 and 1: F F^T = [[0, 0], [0, 1]]
    # row 0: softmax(0, 0) = (0.5, 0.5); row 1: softmax(0, 1) = (1, e) / (1 + e)
    f = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)
    e = math.e
    expected = torch.tensor([[[0.5, 0.5], [1 / (1 + e), e / (1 + e)]]])
    torch.testing.assert_close(affinity(f), expected)


def test_diffusion_hand_case():
    # M = all 0.5, Z0 = (2, 0), beta 0.5: M Z0 = (1, 1), Z1 = 0.5 (1, 1) + 0.5 (2, 0) = (1.5, 0.5)
    # M Z1 = (1, 1) again, so Z2 = Z1 (a fixed point)
    m = torch.full((1, 2, 2), 0.5)
    z0 = torch.tensor([2.0, 0.0]).view(1, 1, 1, 2)
    torch.testing.assert_close(diffuse(m, z0, 1, 0.5).flatten(), torch.tensor([1.5, 0.5]))
    torch.testing.assert_close(diffuse(m, z0, 2, 0.5).flatten(), torch.tensor([1.5, 0.5]))
    assert torch.equal(diffuse(m, z0, 0, 0.5), z0)


def test_cross_task_combination_eq3_by_hand():
    model = _model(diffusion_steps=1, beta=0.5)
    with torch.no_grad():  # alpha_seg = softmax(log 3, 0) = (0.75, 0.25)
        model.mix["seg"].copy_(torch.tensor([math.log(3.0), 0.0]))
    # one channel, two pixels: F_seg = (0, 1), F_depth = (0, 0)
    feats = {"seg": torch.tensor([0.0, 1.0]).view(1, 1, 1, 2),
             "depth": torch.zeros(1, 1, 1, 2)}
    out = model.propagate(feats)
    # A_seg = [[.5, .5], [1/(1+e), e/(1+e)]], A_depth = all .5
    # M_seg row 1 = 0.75 (0.268941, 0.731059) + 0.25 (0.5, 0.5) = (0.326706, 0.673294)
    # Z1 = 0.5 M_seg (0, 1) + 0.5 (0, 1) = (0.5 * 0.5, 0.5 * 0.673294 + 0.5) = (0.25, 0.836647)
    torch.testing.assert_close(out["seg"].flatten(), torch.tensor([0.25, 0.836647]),
                               atol=1e-6, rtol=0)
    # depth: alpha = (0.5, 0.5); M_depth row 1 = (0.384471, 0.615529), applied to (0, 0) -> 0
    torch.testing.assert_close(out["depth"], torch.zeros(1, 1, 1, 2))


def test_mixing_weights_start_equal_and_rows_sum_to_one():
    model = _model(("seg", "depth"))
    torch.testing.assert_close(model.alpha(), torch.full((2, 2), 0.5))


def test_zero_diffusion_steps_leave_the_features_unchanged():
    model = _model(diffusion_steps=0)
    feats = {"seg": torch.randn(2, 3, 4, 4), "depth": torch.randn(2, 3, 4, 4)}
    out = model.propagate(feats)
    for t in feats:
        torch.testing.assert_close(out[t], feats[t])


def test_affinities_at_reduced_scale_above_the_pixel_limit(monkeypatch):
    seen = []
    original = papnet.affinity

    def recording(f):
        seen.append(tuple(f.shape))
        return original(f)

    monkeypatch.setattr(papnet, "affinity", recording)
    model = _model(max_affinity_pixels=16)
    # 8 x 8 = 64 pixels > 16: factor 2, affinities on 4 x 4 = 16 pixels
    feats = {"seg": torch.randn(1, 5, 8, 8), "depth": torch.randn(1, 5, 8, 8)}
    out = model.propagate(feats)
    assert seen == [(1, 5, 4, 4), (1, 5, 4, 4)]
    assert out["seg"].shape == (1, 5, 8, 8)
    # constant features are a fixed point of the diffusion: nothing changes at any scale
    const = {"seg": torch.full((1, 5, 8, 8), 0.3), "depth": torch.full((1, 5, 8, 8), -1.0)}
    out = model.propagate(const)
    for t in const:
        torch.testing.assert_close(out[t], const[t])


def test_affinity_flops_grow_with_pixels_squared():
    """The two affinity bmm's per task (F F^T, then M Z per step) dominate the difference."""
    from taskgrouper.evaluate.cost import count_macs

    small = count_macs(_model(max_affinity_pixels=1).eval(), (3, 32, 32))
    full = count_macs(_model(max_affinity_pixels=1024).eval(), (3, 32, 32))
    # xception: 32x32 input -> 2x2 features, N = 4 (full) or 1 (reduced); c = 20 channels
    # (64 * sqrt(0.1) = 20.2 -> 20). Per task: F F^T = N^2 c, 3 steps of M Z = 3 N^2 c;
    # Eq. 3 with an einsum over 2 tasks: 2 N^2. Two tasks:
    # full - small = 2 * [(16 - 1) * 20 * 4 + 2 * (16 - 1)] = 2 * (1200 + 30) = 2460
    assert full - small == 2460


def test_aux_predictions_and_image_level_tasks():
    model = _model(("seg", "depth", "cls")).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert set(out.aux) == {"seg", "depth"}  # image-level tasks have no initial prediction
    assert tuple(out.aux["seg"][0].shape) == (2, 4, 2, 2)  # at the stride-16 features
    assert tuple(out["seg"].shape) == (2, 4, 32, 32)
    assert tuple(out["cls"].shape) == (2, 3)
    # groups: mixed kinds -> the feature networks are in neither group
    shared = {id(p) for p in model.shared_parameters()}
    assert shared == {id(p) for p in model.encoder.parameters()}
    assert id(model.mix["seg"]) in {id(p) for p in model.task_parameters("seg")}


def test_feature_networks_are_reached_by_every_dense_task():
    model = _model(("seg", "depth")).train()
    out = model(torch.randn(2, 3, 32, 32))
    params = list(model.features["seg"].parameters())
    grads = torch.autograd.grad(out["depth"].sum(), params, allow_unused=True)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    shared = {id(p) for p in model.shared_parameters()}
    assert {id(p) for p in params} <= shared  # so they are shared parameters


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="beta"):
        _model(beta=1.5)
    with pytest.raises(ValueError, match="no option 'diffusion'"):
        _model(diffusion=2)
