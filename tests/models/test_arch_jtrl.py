"""JTRL: the scales of the recursion, the intertwined order of refinement (checked through
which losses reach which modules), per-scale deep supervision and the two-task limit."""

from __future__ import annotations

import pytest
import torch

from taskgrouper.models import build_model, check_architecture
from taskgrouper.models.arch.jtrl import TaskAttentiveModule, recursion_scales
from taskgrouper.tasks import TaskSpec

SPECS = {
    "seg": TaskSpec("seg", "segmentation", channels=4),
    "depth": TaskSpec("depth", "dense_regression", channels=1),
    "normal": TaskSpec("normal", "normals", channels=3),
}


def _model(tasks=("seg", "depth"), backbone="xception", **options):
    torch.manual_seed(0)
    return build_model({t: SPECS[t] for t in tasks}, (3, 32, 32), backbone=backbone,
                       width=0.1, architecture="jtrl", options=options)


def test_recursion_scales():
    assert recursion_scales([2, 4, 8, 16]) == [3, 2, 1, 0]  # xception: every stage
    assert recursion_scales([4, 4, 8, 8]) == [3, 1]  # dilated resnet: deepest of each stride
    assert recursion_scales([8]) == [0]


def test_more_than_two_tasks_is_a_clear_error():
    with pytest.raises(ValueError, match="at most 2 tasks"):
        check_architecture("jtrl", ["seg", "depth", "normal"])
    with pytest.raises(ValueError, match="at most 2 tasks"):
        _model(("seg", "depth", "normal"))
    check_architecture("jtrl", ["seg", "depth"])  # two are fine


@pytest.mark.parametrize(("backbone", "aux_sizes"), [("xception", [2, 4, 8]), ("resnet", [4])])
def test_per_scale_predictions(backbone, aux_sizes):
    # xception at 32x32: strides 16, 8, 4, 2 -> states at 2, 4, 8, 16 pixels; every scale but
    # the last predicts (aux), the last goes to the final head. resnet: strides 8, 4.
    model = _model(backbone=backbone).train()
    out = model(torch.randn(2, 3, 32, 32))
    for t, c in (("seg", 4), ("depth", 1)):
        assert [tuple(p.shape) for p in out.aux[t]] == [(2, c, s, s) for s in aux_sizes]
        assert tuple(out[t].shape) == (2, c, 32, 32)


def _reaches(loss, params):
    grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return any(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_intertwined_order_of_refinement():
    """At every scale seg (first) is refined with depth's previous state, then depth with seg's
    new state: seg's final output depends on depth's modules of the earlier scales only, and
    depth's final output on seg's modules of every scale."""
    model = _model().train()
    out = model(torch.randn(2, 3, 32, 32))
    seg, depth = out["seg"].sum(), out["depth"].sum()
    n = len(model.scales)
    for i in range(n):
        assert _reaches(depth, model.tam["seg"][i].parameters()), i
        assert _reaches(seg, model.tam["depth"][i].parameters()) == (i < n - 1), i


def test_parameter_groups_follow_gradient_reach():
    model = _model().train()
    out = model(torch.randn(2, 3, 32, 32))
    seg, depth = out["seg"].sum(), out["depth"].sum()
    shared = list(model.shared_parameters())
    assert _reaches(seg, model.tam["seg"][-1].parameters())
    assert _reaches(depth, model.tam["seg"][-1].parameters())  # so it is shared
    assert {id(p) for p in model.tam["seg"][-1].parameters()} <= {id(p) for p in shared}
    # depth's last module and heads: only depth's loss reaches them
    own = list(model.task_parameters("depth"))
    assert {id(p) for p in model.tam["depth"][-1].parameters()} <= {id(p) for p in own}
    assert not _reaches(seg, own)
    assert not _reaches(depth, model.task_parameters("seg"))


def test_single_task_refines_with_its_own_state():
    model = _model(("depth",)).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert len(out.aux["depth"]) == 3
    own = {id(p) for p in model.task_parameters("depth")}
    assert {id(p) for p in model.tam["depth"].parameters()} <= own


def test_task_attentive_module_balances_and_attends():
    torch.manual_seed(0)
    tam = TaskAttentiveModule(4).eval()
    own, other = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    with torch.no_grad():
        # balance weights zero, bias +inf-like: g = 1, the balanced features are `own`, so the
        # output cannot depend on `other`
        tam.balance.weight.zero_()
        tam.balance.bias.fill_(30.0)
        a = tam(own, other)
        b = tam(own, torch.randn(1, 4, 3, 3))
        torch.testing.assert_close(a, b)
        tam.balance.bias.fill_(-30.0)  # g = 0: the balanced features are `other`
        c = tam(own, other)
        d = tam(own, torch.randn(1, 4, 3, 3))
    assert not torch.allclose(c, d)
