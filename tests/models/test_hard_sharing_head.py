"""hard_sharing takes the survey's ASPP head as an option; a misspelt head names the choices."""

import pytest
import torch

from taskgrouper.models import build_model
from taskgrouper.models.heads import ASPPDecoder
from taskgrouper.tasks import TaskSpec

TASKS = {"s": TaskSpec("s", "segmentation", 3), "d": TaskSpec("d", "dense_regression")}


def test_aspp_head_on_a_shared_encoder():
    torch.manual_seed(0)
    model = build_model(TASKS, (3, 32, 32), backbone="resnet", width=0.25,
                        options={"head": "aspp"})
    assert any(isinstance(m, ASPPDecoder) for m in model.heads["s"].modules())
    out = model(torch.randn(2, 3, 32, 32))
    assert out["s"].shape == (2, 3, 32, 32) and out["d"].shape == (2, 1, 32, 32)
    light = build_model(TASKS, (3, 32, 32), backbone="resnet", width=0.25)
    assert not any(isinstance(m, ASPPDecoder) for m in light.heads["s"].modules())


def test_unknown_head_suggests_the_closest():
    with pytest.raises(ValueError, match="did you mean 'aspp'"):
        build_model(TASKS, (3, 32, 32), backbone="resnet", width=0.25, options={"head": "asp"})
