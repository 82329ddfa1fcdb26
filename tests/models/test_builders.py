"""Hard-sharing networks: heads, output conventions, gradients and errors."""

import pytest
import torch

from taskgrouper.evaluate.cost import count_params
from taskgrouper.models import ARCHITECTURES, HardSharingNet, LightDecoder, build_model
from taskgrouper.tasks import TaskSpec

MIXED = {
    "seg": TaskSpec("seg", "segmentation", channels=4),
    "depth": TaskSpec("depth", "dense_regression", channels=1),
    "normal": TaskSpec("normal", "normals", channels=3),
    "cls": TaskSpec("cls", "classification", channels=3),
    "bin": TaskSpec("bin", "binary"),
    "reg": TaskSpec("reg", "regression", channels=1),
    "reg2": TaskSpec("reg2", "regression", channels=2),
}
EXPECTED = {"seg": (2, 4, 64, 64), "depth": (2, 1, 64, 64), "normal": (2, 3, 64, 64),
            "cls": (2, 3), "bin": (2,), "reg": (2,), "reg2": (2, 2)}


@pytest.fixture(scope="module")
def mixed_model():
    torch.manual_seed(0)
    return build_model(MIXED, (3, 64, 64), backbone="xception", width=0.25)


def test_mixed_tasks_shapes_and_gradients(mixed_model):
    model = mixed_model.train()
    assert isinstance(model, HardSharingNet) and model.tasks == tuple(MIXED)
    out = model(torch.randn(2, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == EXPECTED
    norms = out["normal"].norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    model.zero_grad()
    sum(v.sum() for v in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_eval_is_deterministic_and_split_matches_forward(mixed_model):
    model = mixed_model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), model(x)
        c = model.decode(model.encode(x), x.shape[-2:], tasks=["seg", "cls"])
    for k in a:
        assert torch.equal(a[k], b[k])
    assert set(c) == {"seg", "cls"} and torch.equal(c["seg"], a["seg"])


def test_parameter_groups_partition_the_model(mixed_model):
    model = mixed_model
    shared = {id(p) for p in model.shared_parameters()}
    heads = [{id(p) for p in model.task_parameters(t)} for t in model.tasks]
    assert all(shared.isdisjoint(h) for h in heads)
    assert len(shared) + sum(map(len, heads)) == len(list(model.parameters()))
    with pytest.raises(KeyError, match="did you mean 'seg'"):
        model.task_parameters("segg")


def test_odd_input_size_resnet_resized():
    tasks = {k: MIXED[k] for k in ("seg", "normal", "bin")}
    model = build_model(tasks, (3, 33, 47), backbone="resnet", width=0.25).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 33, 47))
    assert out["seg"].shape == (2, 4, 33, 47)
    assert out["normal"].shape == (2, 3, 33, 47)
    assert out["bin"].shape == (2,)


def test_light_decoder_size():
    # Paper: "about 116,000 parameters" per decoder; ours on the width-1 Xception (512 ch).
    dec = LightDecoder(512, 1, stride=16)
    assert 105_000 <= count_params(dec) <= 125_000
    n_t = sum(isinstance(m, torch.nn.ConvTranspose2d) for m in dec.modules())
    assert n_t == 4
    assert dec(torch.randn(1, 512, 4, 4)).shape == (1, 1, 64, 64)
    dec8 = LightDecoder(64, 2, stride=8)
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in dec8.modules()) == 3
    assert dec8(torch.randn(1, 64, 4, 4)).shape == (1, 2, 32, 32)
    with pytest.raises(ValueError, match="power of two"):
        LightDecoder(8, 1, stride=12)


def test_mlp_backbone_global_tasks():
    tasks = {k: MIXED[k] for k in ("cls", "bin", "reg", "reg2")}
    model = build_model(tasks, (20,), backbone="mlp", width=0.5)
    out = model(torch.randn(5, 20))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "cls": (5, 3), "bin": (5,), "reg": (5,), "reg2": (5, 2)}


def test_errors():
    with pytest.raises(ValueError, match="dense"):
        build_model({"seg": MIXED["seg"]}, (20,), backbone="mlp")
    with pytest.raises(ValueError, match="did you mean 'resnet'"):
        build_model({"cls": MIXED["cls"]}, (3, 32, 32), backbone="resnt")
    with pytest.raises(ValueError, match="did you mean 'hard_sharing'"):
        build_model({"cls": MIXED["cls"]}, (3, 32, 32), architecture="hard_shared")
    assert ARCHITECTURES[0] == "hard_sharing"
