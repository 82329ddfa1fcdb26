"""Tiny multi-task models and fixed batches for the balancer tests."""

from __future__ import annotations

import torch
from torch import nn

from taskgrouper.models import Outputs, build_model
from taskgrouper.models.arch.base import MultiTaskModel
from taskgrouper.tasks import TaskSpec
from taskgrouper.train.losses import task_loss

#: Image-level tasks of every kind, for the MLP models (fast on CPU).
VECTOR_SPECS = {
    "reg": TaskSpec("reg", "regression", channels=1),
    "cls": TaskSpec("cls", "classification", channels=3),
    "bin": TaskSpec("bin", "binary", channels=1),
    "reg2": TaskSpec("reg2", "regression", channels=2),
    "cls2": TaskSpec("cls2", "classification", channels=4),
}
VECTOR_TASKS = {2: ["reg", "cls"], 5: list(VECTOR_SPECS)}
#: Dense tasks for the convolutional model.
DENSE_SPECS = {
    "seg": TaskSpec("seg", "segmentation", channels=4),
    "depth": TaskSpec("depth", "dense_regression", channels=1),
}


def vector_model(n_tasks: int, seed: int = 0) -> nn.Module:
    """Hard sharing on a small MLP encoder (inputs of 12 features)."""
    torch.manual_seed(seed)
    specs = {t: VECTOR_SPECS[t] for t in VECTOR_TASKS[n_tasks]}
    return build_model(specs, (12,), backbone="mlp", width=0.25)


def conv_model(seed: int = 0) -> nn.Module:
    """Hard sharing on the Xception encoder at width 0.1 (32x32 inputs)."""
    torch.manual_seed(seed)
    return build_model(DENSE_SPECS, (3, 32, 32), backbone="xception", width=0.1)


def batch(model: nn.Module, n: int = 8, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """A fixed batch of inputs and labels for ``model``'s tasks."""
    g = torch.Generator().manual_seed(seed)
    dense = any(spec.dense for spec in model.specs.values())
    x = torch.randn(n, 3, 32, 32, generator=g) if dense else torch.randn(n, 12, generator=g)
    targets = {}
    for t, spec in model.specs.items():
        if spec.kind == "segmentation":
            targets[t] = torch.randint(0, spec.channels, (n, 32, 32), generator=g)
        elif spec.kind == "dense_regression":
            targets[t] = torch.randn(n, spec.channels, 32, 32, generator=g)
        elif spec.kind == "classification":
            targets[t] = torch.randint(0, spec.channels, (n,), generator=g)
        elif spec.kind == "binary":
            targets[t] = torch.randint(0, 2, (n,), generator=g).float()
        elif spec.channels == 1:
            targets[t] = torch.randn(n, generator=g)
        else:
            targets[t] = torch.randn(n, spec.channels, generator=g)
    return x, targets


def step_losses(model: nn.Module, x: torch.Tensor, targets: dict) -> tuple[dict, Outputs]:
    """One forward pass: task name -> loss, and the outputs (for ``rep``)."""
    out = model(x)
    return {t: task_loss(model.specs[t], out[t], targets[t]) for t in model.tasks}, out


class TwoPathNet(MultiTaskModel):
    """A model whose second head reads the shallow representation directly (not only through
    the deeper one): the representation split is not clean.

    ``a = relu(W1 x)``, ``b = relu(W2 a)``; task "p" reads ``b``, task "q" reads ``b`` and ``a``.
    """

    def __init__(self) -> None:
        specs = {"p": TaskSpec("p", "regression"), "q": TaskSpec("q", "regression")}
        super().__init__(specs, None, "two_path")
        self.w1, self.w2 = nn.Linear(6, 8), nn.Linear(8, 8)
        self.heads = nn.ModuleDict({"p": nn.Linear(8, 1), "q": nn.Linear(16, 1)})

    def forward(self, x: torch.Tensor) -> Outputs:
        a = torch.relu(self.w1(x))  # (B, 8)
        b = torch.relu(self.w2(a))  # (B, 8)
        p = self.heads["p"](b).squeeze(1)
        q = self.heads["q"](torch.cat([b, a], dim=1)).squeeze(1)
        return Outputs({"p": p, "q": q}, rep=[a, b])

    def shared_parameters(self):
        return iter([*self.w1.parameters(), *self.w2.parameters()])

    def task_parameters(self, task: str):
        return self.heads[task].parameters()

    def last_shared_layer(self):
        return list(self.w2.parameters())
