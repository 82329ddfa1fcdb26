"""Cross-stitch networks: the unit's arithmetic, single-task initialisation from checkpoints,
parameter groups, cost, and vector features."""

import copy

import pytest
import torch

from taskgrouper.evaluate.cost import count_macs
from taskgrouper.models import build_backbone, build_model
from taskgrouper.models.arch.cross_stitch import CrossStitchNet, CrossStitchUnit, initial_alphas
from taskgrouper.models.checkpoint import save_checkpoint
from taskgrouper.tasks import TaskSpec

SPECS = {"seg": TaskSpec("seg", "segmentation", channels=4),
         "depth": TaskSpec("depth", "dense_regression", channels=1)}
IN_SHAPE = (3, 32, 32)


def _model(**options):
    torch.manual_seed(0)
    return build_model(SPECS, IN_SHAPE, backbone="xception", width=0.1,
                       architecture="cross_stitch", options=options)


def test_unit_mixes_tasks_channel_by_channel():
    unit = CrossStitchUnit(["a", "b"], channels=2)
    a = torch.tensor([[1.0, 2.0]])  # (B=1, C=2)
    b = torch.tensor([[3.0, 4.0]])
    out_a, out_b = unit([a, b])
    # initial alphas (0.9, 0.1): a~ = 0.9 [1, 2] + 0.1 [3, 4] = [1.2, 2.2]
    #                            b~ = 0.1 [1, 2] + 0.9 [3, 4] = [2.8, 3.8]
    torch.testing.assert_close(out_a, torch.tensor([[1.2, 2.2]]))
    torch.testing.assert_close(out_b, torch.tensor([[2.8, 3.8]]))
    with torch.no_grad():  # channel 0 keeps a, channel 1 averages a and b
        unit.alpha["a"].copy_(torch.tensor([[1.0, 0.0], [0.5, 0.5]]))  # (C, T)
    out_a, _ = unit([a, b])
    # a~ = [1*1 + 0*3, 0.5*2 + 0.5*4] = [1, 3]
    torch.testing.assert_close(out_a, torch.tensor([[1.0, 3.0]]))


def test_unit_on_feature_maps_matches_the_formula():
    torch.manual_seed(0)
    unit = CrossStitchUnit(["a", "b", "c"], channels=5, alpha_same=0.7)
    with torch.no_grad():
        for row in unit.alpha.values():
            row.add_(0.1 * torch.randn_like(row))
    xs = [torch.randn(2, 5, 3, 4) for _ in range(3)]
    out = unit(xs)
    for k, task in enumerate(unit.tasks):
        alpha = unit.alpha[task]  # (C, T)
        expected = sum(alpha[:, l].view(1, 5, 1, 1) * xs[l] for l in range(3))
        torch.testing.assert_close(out[k], expected)


def test_initial_alphas_rows_sum_to_one_by_default():
    assert initial_alphas(2, 0.9, None) == pytest.approx((0.9, 0.1))
    assert initial_alphas(5, 0.9, None) == pytest.approx((0.9, 0.025))  # 0.1 / 4
    assert initial_alphas(3, 0.8, 0.3) == (0.8, 0.3)
    unit = CrossStitchUnit(["a", "b", "c"], channels=2)
    m = unit.matrix().detach()  # (K, C, L)
    torch.testing.assert_close(m.sum(dim=2), torch.ones(3, 2))
    assert float(m[1, 0, 1]) == pytest.approx(0.9) and float(m[1, 0, 2]) == pytest.approx(0.05)


def test_parameter_groups_are_the_task_networks():
    model = _model()
    assert isinstance(model, CrossStitchNet)
    assert not list(model.shared_parameters()) and model.last_shared_layer() == []
    groups = {t: {id(p) for p in model.task_parameters(t)} for t in model.tasks}
    everything = {id(p) for p in model.parameters()}
    assert groups["seg"].isdisjoint(groups["depth"])
    assert groups["seg"] | groups["depth"] == everything  # the two networks are the model
    for unit in model.encoder.units:  # each task owns the row computing its activations
        assert id(unit.alpha["seg"]) in groups["seg"]
        assert id(unit.alpha["depth"]) in groups["depth"]
    assert model(torch.randn(2, *IN_SHAPE)).rep is None


def test_encoder_cost_is_one_backbone_per_task_plus_the_units():
    model = _model()
    backbone = build_backbone("xception", IN_SHAPE, 0.1)
    single = count_macs(backbone, IN_SHAPE)
    # a unit after stage j costs T * T * C_j * (32 / s_j)^2 multiply-adds (T = 2 tasks)
    units = sum(4 * c * (32 // s) ** 2
                for c, s in zip(backbone.out_channels, backbone.strides, strict=True))
    assert count_macs(model.encoder, IN_SHAPE) == 2 * single + units


def test_copies_do_not_share_stage_modules():
    model = _model().eval()
    x = torch.randn(2, *IN_SHAPE)
    with torch.no_grad():
        before = model(x)["depth"]
        twin = copy.deepcopy(model)
        for p in twin.encoder.backbones["depth"].parameters():
            p.zero_()
        assert torch.equal(model(x)["depth"], before)  # the original is untouched
        assert not torch.equal(twin(x)["depth"], before)  # and the copy runs its own stages


def _single_task_runs(root, width=0.1):
    """Single-task hard-sharing networks, as `taskgrouper train` leaves them in root/<task>."""
    nets = {}
    for seed, (task, spec) in enumerate(SPECS.items()):
        torch.manual_seed(10 + seed)
        net = build_model({task: spec}, IN_SHAPE, backbone="xception", width=width)
        with torch.no_grad():  # move the batch-norm statistics off their initial values
            net.train()(torch.randn(4, *IN_SHAPE))
        save_checkpoint({"model": net.state_dict(), "epoch": 3}, root / task / "best.pt")
        nets[task] = net.eval()
    return nets


def test_pretrained_with_identity_units_reproduces_the_single_task_networks(tmp_path):
    nets = _single_task_runs(tmp_path)
    model = _model(alpha_same=1.0, alpha_other=0.0, pretrained=str(tmp_path)).eval()
    x = torch.randn(2, *IN_SHAPE)
    with torch.no_grad():
        out = model(x)
        for task, net in nets.items():
            torch.testing.assert_close(out[task], net(x)[task])
    # a mapping task -> run folder or file works too
    paths = {"seg": str(tmp_path / "seg"), "depth": str(tmp_path / "depth" / "best.pt")}
    again = _model(alpha_same=1.0, alpha_other=0.0, pretrained=paths).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x)["seg"], out["seg"])


def test_pretrained_errors_name_the_task_and_the_fix(tmp_path):
    _single_task_runs(tmp_path)
    (tmp_path / "depth" / "best.pt").unlink()
    with pytest.raises(ValueError, match=r"no single-task checkpoint for task 'depth'.*"
                                         r"taskgrouper train"):
        _model(pretrained=str(tmp_path))
    wide = tmp_path / "wide"
    _single_task_runs(wide, width=0.5)
    with pytest.raises(ValueError, match=r"does not fit the encoder of task 'seg' \(shape: .*same "
                                         r"backbone \('xception'\) and model.width"):
        _model(pretrained=str(wide))
    with pytest.raises(ValueError, match="has no head for task 'depth' \\(heads: seg\\)"):
        _model(pretrained={"seg": str(tmp_path / "seg"), "depth": str(tmp_path / "seg")})
    with pytest.raises(ValueError, match="no checkpoint for task\\(s\\) depth"):
        _model(pretrained={"seg": str(tmp_path / "seg")})


def test_vector_features_with_the_mlp_backbone():
    specs = {"a": TaskSpec("a", "regression"), "b": TaskSpec("b", "classification", channels=3)}
    torch.manual_seed(0)
    model = build_model(specs, (10,), backbone="mlp", width=0.25, architecture="cross_stitch")
    out = model(torch.randn(4, 10))
    assert tuple(out["a"].shape) == (4,) and tuple(out["b"].shape) == (4, 3)
    # the MLP (10 -> 256 -> 256) at a quarter of its multiply-adds: m solves
    # 65536 m^2 + 2560 m = 0.25 * (65536 + 2560) = 17024, m = 0.4905, 256 m = 125.6 -> 126
    # features in one stage: one unit with a (C, T) row each
    assert [tuple(u.alpha["a"].shape) for u in model.encoder.units] == [(126, 2)]
