"""Branched networks: one group is hard sharing, groups own their branches, cost grows by one
branch per group, grouping errors name the task, and selections deploy as one tree."""

import pytest
import torch

from taskgrouper.evaluate.cost import count_macs
from taskgrouper.models import build_model
from taskgrouper.models.arch.branched import BranchedNet, groups_from_selection
from taskgrouper.tasks import TaskSpec

SPECS = {"s": TaskSpec("s", "segmentation", channels=4),
         "d": TaskSpec("d", "dense_regression", channels=1),
         "n": TaskSpec("n", "normals", channels=3),
         "c": TaskSpec("c", "classification", channels=3)}
IN_SHAPE = (3, 32, 32)


def _model(architecture="branched", **options):
    torch.manual_seed(0)
    return build_model(SPECS, IN_SHAPE, backbone="xception", width=0.1,
                       architecture=architecture, options=options)


def test_one_group_is_hard_sharing():
    branched, hard = _model().eval(), _model("hard_sharing").eval()
    assert branched.groups == (("s", "d", "n", "c"),)
    x = torch.randn(2, *IN_SHAPE)
    with torch.no_grad():
        a, b = branched(x), hard(x)
    for t in SPECS:  # same seed, same weights: the same function
        torch.testing.assert_close(a[t], b[t])
    assert sum(p.numel() for p in branched.parameters()) == sum(
        p.numel() for p in hard.parameters())
    assert len(a.rep) == 4  # with one group every stage is shared
    assert {id(p) for p in branched.shared_parameters()} == {
        id(p) for p in branched.encoder.parameters()}


def test_groups_own_their_branches():
    model = _model(groups=[["s", "d"], ["n"], ["c"]], branch_stage=1).train()
    out = model(torch.randn(2, *IN_SHAPE))
    assert len(out.rep) == 2  # stages 0 and 1 are the trunk
    model.zero_grad()
    out["s"].square().mean().backward()

    def reached(params):
        return any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in params)

    assert reached(model.encoder.trunk.parameters())
    assert reached(model.group_parameters(0))
    assert not reached(model.group_parameters(1)) and not reached(model.group_parameters(2))
    shared = {id(p) for p in model.shared_parameters()}
    assert shared == {id(p) for p in model.encoder.trunk.parameters()}
    own = {t: {id(p) for p in model.task_parameters(t)} for t in model.tasks}
    # n is alone in its group: its branch is its own; s and d share theirs
    assert {id(p) for p in model.group_parameters(1)} <= own["n"]
    assert own["s"] == {id(p) for p in model.heads["s"].parameters()}
    last = {id(p) for p in model.last_shared_layer()}  # a layer of the trunk's last stage
    assert last and last <= {id(p) for p in model.encoder.trunk[1].parameters()}


def test_each_group_adds_one_copy_of_the_branched_stages():
    one = count_macs(_model().encoder, IN_SHAPE)
    two = count_macs(_model(groups=[["s", "d"], ["n", "c"]], branch_stage=1).encoder, IN_SHAPE)
    three = count_macs(_model(groups=[["s"], ["d"], ["n", "c"]], branch_stage=1).encoder,
                       IN_SHAPE)
    branch = two - one  # stages 2 and 3 of the backbone
    assert 0 < branch < one and three == one + 2 * branch
    late = count_macs(_model(groups=[["s", "d"], ["n", "c"]], branch_stage=2).encoder, IN_SHAPE)
    assert one < late < two  # branching later shares more


@pytest.mark.parametrize(("options", "message"), [
    ({"groups": [["s", "d"], ["n"]]}, "task 'c' is in no group"),
    ({"groups": [["s", "d"], ["d", "n", "c"]]}, "task 'd' is in groups 0 \\(s/d\\) and 1"),
    ({"groups": [["s", "depth"], ["n", "c"]]}, "names task 'depth', which the model does not "
                                                "predict; choices: c, d"),
    ({"groups": [["s", "d", "n", "c"]], "branch_stage": 4}, "branch_stage 4 is out of range"),
    ({"groups": [["s", "d"], ["n", "c"]], "branch_stage": 3}, "must be in 0..2"),
    ({"groups": [["s", "d"], ["n", "c"]], "branch_stage": -1}, "out of range"),
    ({"groups": "sdnc"}, "list of lists"),
])
def test_bad_groupings_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        _model(**options)


def test_a_single_stage_backbone_cannot_branch():
    specs = {"a": TaskSpec("a", "regression"), "b": TaskSpec("b", "binary")}
    model = build_model(specs, (10,), backbone="mlp", architecture="branched")
    assert tuple(model(torch.randn(3, 10))["b"].shape) == (3,)
    with pytest.raises(ValueError, match="backbone 'mlp' has 1 stage"):
        build_model(specs, (10,), backbone="mlp", architecture="branched",
                    options={"groups": [["a"], ["b"]]})


def test_selection_to_groups():
    chosen = [["s", "d"], ["d", "n"], ["c"]]
    with pytest.raises(ValueError, match="task 'd' is in networks \\[0, 1\\]"):
        groups_from_selection(chosen)
    assert groups_from_selection(chosen, {"d": 0}) == [["s", "d"], ["n"], ["c"]]
    # a network left serving nothing is dropped
    assert groups_from_selection([["s", "d"], ["d"]], {"d": 0}) == [["s", "d"]]
    with pytest.raises(ValueError, match="sends task 'n' to network 0"):
        groups_from_selection(chosen, {"d": 0, "n": 0})


def test_from_selection_builds_the_tree():
    torch.manual_seed(0)
    model = BranchedNet.from_selection([["s", "d"], ["d", "n"]], SPECS, IN_SHAPE,
                                       width=0.1, assignment={"d": 1}, branch_stage=0)
    assert model.groups == (("s",), ("d", "n")) and model.branch_stage == 0
    assert model.tasks == ("s", "d", "n")  # c is not served, so not built
    out = model(torch.randn(2, *IN_SHAPE))
    assert set(out) == {"s", "d", "n"} and len(out.rep) == 1
