"""The conformance suite every architecture of ``ARCH_TABLE`` passes (one set of tests, no
per-architecture branches): forward for one, two and five tasks of mixed kinds, gradients reach
every parameter, the parameter groups partition the model, FLOPs are counted, eval mode is
deterministic, a few steps of training lower the loss, per-group learning rates reach the
optimiser, and too many tasks is a clear error.
"""

from __future__ import annotations

import pytest
import torch

from taskgrouper.config import TrainConfig
from taskgrouper.evaluate.cost import count_macs
from taskgrouper.models import ARCH_TABLE, Outputs, build_model
from taskgrouper.tasks import TaskSpec
from taskgrouper.train.losses import task_loss
from taskgrouper.train.schedule import model_optimizer

SPECS = {
    "seg": TaskSpec("seg", "segmentation", channels=4),
    "depth": TaskSpec("depth", "dense_regression", channels=1),
    "normal": TaskSpec("normal", "normals", channels=3),
    "edge": TaskSpec("edge", "dense_regression", channels=1),
    "cls": TaskSpec("cls", "classification", channels=3),
}
TASK_SETS = {1: ["depth"], 2: ["seg", "normal"], 5: list(SPECS)}
SHAPES = {"seg": (2, 4, 32, 32), "depth": (2, 1, 32, 32), "normal": (2, 3, 32, 32),
          "edge": (2, 1, 32, 32), "cls": (2, 3)}
IN_SHAPE = (3, 32, 32)
ARCHS = [info.name for info in ARCH_TABLE]


def _targets(tasks, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for t in tasks:
        if t == "seg":
            out[t] = torch.randint(0, 4, (n, 32, 32), generator=g)
        elif t == "cls":
            out[t] = torch.randint(0, 3, (n,), generator=g)
        elif t == "normal":
            v = torch.randn(n, 3, 32, 32, generator=g)
            out[t] = v / v.norm(dim=1, keepdim=True)
        else:
            out[t] = torch.randn(n, 1, 32, 32, generator=g)
    return out


def _coarse_targets(tasks, n=2, seed=0, block=16):
    """Labels constant on ``block`` x ``block`` squares: learnable by every prediction at a
    stride up to ``block``, so that deeply supervised initial predictions (``Outputs.aux``, at
    the encoder's stride) can lower their loss too; on pixel-wise random labels a 2x2 initial
    prediction starts near its floor (the label entropy) and cannot."""
    fine = _targets(tasks, n, seed)
    out = {}
    for t, y in fine.items():
        if y.dim() == 1:
            out[t] = y
            continue
        small = y[..., ::block, ::block]  # (n, [C,] 32 / block, 32 / block)
        out[t] = small.repeat_interleave(block, -1).repeat_interleave(block, -2)
    return out


def _total_loss(model, out, targets):
    total = sum(task_loss(SPECS[t], out[t], targets[t]) for t in model.tasks)
    for t, preds in out.aux.items():
        total = total + sum(task_loss(SPECS[t], p, targets[t]) for p in preds)
    reg = model.regularization()
    return total if reg is None else total + reg


def _build(name, n_tasks, seed=0):
    info = next(i for i in ARCH_TABLE if i.name == name)
    if info.max_tasks is not None and n_tasks > info.max_tasks:
        pytest.skip(f"{name} takes at most {info.max_tasks} tasks (tested below)")
    torch.manual_seed(seed)
    tasks = {t: SPECS[t] for t in TASK_SETS[n_tasks]}
    return build_model(tasks, IN_SHAPE, backbone="xception", width=0.1, architecture=name)


@pytest.mark.parametrize("n_tasks", [1, 2, 5])
@pytest.mark.parametrize("name", ARCHS)
def test_forward_shapes_and_gradients(name, n_tasks):
    model = _build(name, n_tasks).train()
    model.on_epoch_start(1, 4)
    x = torch.randn(2, *IN_SHAPE)
    out = model(x)
    assert isinstance(out, Outputs)
    assert set(out) == set(TASK_SETS[n_tasks]) == set(model.tasks)
    for t, y in out.items():
        assert tuple(y.shape) == SHAPES[t], (t, tuple(y.shape))
        assert torch.isfinite(y).all()
    if "normal" in out:
        norms = out["normal"].norm(dim=1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    assert set(out.aux) <= set(model.tasks)
    model.zero_grad()
    _total_loss(model, out, _targets(model.tasks)).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: no gradient reaches {missing[:5]}"
    for t in model.tasks:  # every task's own parameters learn from its loss
        assert any(float(p.grad.abs().sum()) > 0 for p in model.task_parameters(t)), t


@pytest.mark.parametrize("name", ARCHS)
def test_parameter_groups_partition_the_model(name):
    model = _build(name, 2)
    info = next(i for i in ARCH_TABLE if i.name == name)
    shared = {id(p) for p in model.shared_parameters()}
    own = [{id(p) for p in model.task_parameters(t)} for t in model.tasks]
    everything = {id(p) for p in model.parameters()}
    assert all(shared.isdisjoint(o) for o in own)
    assert own[0].isdisjoint(own[1])
    assert shared | own[0] | own[1] <= everything
    assert bool(shared) == info.shared_parameters
    last = {id(p) for p in model.last_shared_layer()}
    assert last <= shared and (bool(last) or not info.shared_parameters)


@pytest.mark.parametrize("name", ARCHS)
def test_representation_reaches_every_task(name):
    model = _build(name, 2).train()
    info = next(i for i in ARCH_TABLE if i.name == name)
    out = model(torch.randn(2, *IN_SHAPE))
    assert (out.rep is not None) == info.shared_representation
    if out.rep is not None:
        for t in model.tasks:  # every task's prediction depends on the representation
            grads = torch.autograd.grad(out[t].float().sum(), out.rep, retain_graph=True,
                                        allow_unused=True)
            assert any(g is not None and float(g.abs().sum()) > 0 for g in grads), t


@pytest.mark.parametrize("name", ARCHS)
def test_flops_counted_and_eval_deterministic(name):
    model = _build(name, 2).eval()
    macs = count_macs(model, IN_SHAPE)
    assert macs > 0
    x = torch.randn(2, *IN_SHAPE)
    with torch.no_grad():
        a, b = model(x), model(x)
    for t in a:
        assert torch.equal(a[t], b[t]), t


@pytest.mark.parametrize("name", ARCHS)
def test_a_few_steps_lower_the_training_loss(name):
    """The same batch, 15 Adam steps: the loss falls by at least a fifth (labels constant on
    16x16 blocks, see :func:`_coarse_targets`)."""
    model = _build(name, 2, seed=1).train()
    x = torch.randn(4, *IN_SHAPE, generator=torch.Generator().manual_seed(3))
    targets = _coarse_targets(model.tasks, n=4, seed=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(15):
        if step == 0:
            model.on_epoch_start(1, 1)
        out = model(x)
        loss = _total_loss(model, out, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(map(lambda v: v == v, losses))
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("name", ARCHS)
def test_lr_scales_name_parameters_and_reach_the_trainers_optimiser(name):
    """Every prefix of ``lr_scales()`` covers a parameter, and the optimiser the trainer builds
    (``model_optimizer``) runs each group at the schedule's rate times its scale."""
    model = _build(name, 2)
    scales = model.lr_scales()
    names = [n for n, _ in model.named_parameters()]
    for prefix, scale in scales.items():
        assert scale > 0 and any(n == prefix or n.startswith(prefix + ".") for n in names), prefix
    opt = model_optimizer(model, [], TrainConfig(lr=0.01))
    for group in opt.param_groups:
        assert group["lr"] == pytest.approx(0.01 * group["lr_scale"])
    assert {g["lr_scale"] for g in opt.param_groups} - {1.0} == set(scales.values()) - {1.0}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(names)


@pytest.mark.parametrize("name", [i.name for i in ARCH_TABLE if i.max_tasks is not None])
def test_too_many_tasks_is_a_clear_error(name):
    info = next(i for i in ARCH_TABLE if i.name == name)
    tasks = {t: SPECS[t] for t in list(SPECS)[:info.max_tasks + 1]}
    with pytest.raises(ValueError, match=f"at most {info.max_tasks} tasks"):
        build_model(tasks, IN_SHAPE, architecture=name)


def test_unknown_architecture_and_option_suggest_the_closest():
    with pytest.raises(ValueError, match="did you mean 'hard_sharing'"):
        build_model({"depth": SPECS["depth"]}, IN_SHAPE, architecture="hard_sharng")
    with pytest.raises(ValueError, match="model.options.*no option 'depthh'"):
        build_model({"depth": SPECS["depth"]}, IN_SHAPE, options={"depthh": 1})
