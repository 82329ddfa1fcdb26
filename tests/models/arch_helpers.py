"""Helpers for architecture tests: which task losses reach which parameters."""

from __future__ import annotations

import torch

from taskgrouper.tasks import TaskSpec
from taskgrouper.train.losses import task_loss


def targets_for(specs: dict[str, TaskSpec], n: int, hw: tuple[int, int], seed: int = 0):
    """Random labels in each task's convention: (n, H, W) class ids, (n, C, H, W) maps, unit
    normals, (n,) class ids or values."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for t, spec in specs.items():
        if spec.kind == "segmentation":
            out[t] = torch.randint(0, spec.channels, (n, *hw), generator=g)
        elif spec.kind == "classification":
            out[t] = torch.randint(0, spec.channels, (n,), generator=g)
        elif spec.kind == "normals":
            v = torch.randn(n, 3, *hw, generator=g)
            out[t] = v / v.norm(dim=1, keepdim=True)
        elif spec.kind == "dense_regression":
            out[t] = torch.randn(n, spec.channels, *hw, generator=g)
        elif spec.kind == "dense_binary":
            out[t] = (torch.rand(n, 1, *hw, generator=g) > 0.5).float()
        else:
            out[t] = torch.randn(n, generator=g)
    return out


def reach(model, x: torch.Tensor) -> dict[int, set[str]]:
    """Parameter id -> the tasks whose loss (final prediction plus its ``aux`` predictions,
    as the trainer adds them) has a gradient path to it."""
    out = model(x)
    targets = targets_for(model.specs, x.shape[0], tuple(x.shape[-2:]))
    params = [p for p in model.parameters() if p.requires_grad]
    result: dict[int, set[str]] = {id(p): set() for p in params}
    for t in model.tasks:
        loss = task_loss(model.specs[t], out[t], targets[t])
        for pred in out.aux.get(t, ()):
            loss = loss + task_loss(model.specs[t], pred, targets[t])
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        for p, g in zip(params, grads, strict=True):
            if g is not None:
                result[id(p)].add(t)
    return result


def assert_groups_truthful(model, x: torch.Tensor) -> None:
    """``shared_parameters()`` are exactly those every task's loss reaches and
    ``task_parameters(t)`` exactly those only ``t``'s loss reaches (two or more tasks)."""
    assert len(model.tasks) >= 2
    reached = reach(model, x)
    everyone = set(model.tasks)
    shared = {id(p) for p in model.shared_parameters()}
    assert shared == {i for i, ts in reached.items() if ts == everyone}
    for t in model.tasks:
        own = {id(p) for p in model.task_parameters(t)}
        assert own == {i for i, ts in reached.items() if ts == {t}}, t
