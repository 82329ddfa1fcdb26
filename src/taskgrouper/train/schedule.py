"""The optimiser, its learning-rate schedule, and early stopping."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["EarlyStopping", "Schedule", "make_optimizer", "model_optimizer"]


def make_optimizer(params, cfg, lr_scales: Mapping[str, float] | None = None,
                   named: Iterable[tuple[str, nn.Parameter]] = ()) -> torch.optim.Optimizer:
    """SGD with momentum or Adam over ``params``, as the ``train`` section ``cfg`` says.

    ``named`` parameters whose name starts with a prefix of ``lr_scales`` go into their own
    group, which keeps ``lr_scale`` (its rate is ``lr_scale`` times the schedule's; the first
    matching prefix wins); every other parameter (and ``params``) trains at the schedule's rate.
    """
    groups: dict[float, list] = {1.0: []}
    for name, p in named:
        scale = next((float(v) for k, v in (lr_scales or {}).items()
                      if name == k or name.startswith(k + ".")), 1.0)
        groups.setdefault(scale, []).append(p)
    groups[1.0] += list(params)  # after the model's, in the order checkpoints hold them
    param_groups = [{"params": ps, "lr": cfg.lr * scale, "lr_scale": scale}
                    for scale, ps in groups.items() if ps]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def model_optimizer(model: nn.Module, extra: list, cfg) -> torch.optim.Optimizer:
    """:func:`make_optimizer` over a model (its :meth:`lr_scales` groups) and ``extra``
    parameters (a balancer's), which train at the schedule's rate."""
    scales = model.lr_scales() if hasattr(model, "lr_scales") else {}
    return make_optimizer(extra, cfg, scales, model.named_parameters())


class Schedule:
    """Learning-rate schedules.

    - ``plateau`` (Standley et al. 2020): halve the learning rate every time the epoch's
      training loss did not decrease below the best so far.
    - ``poly`` (the survey's): lr = lr0 * (1 - step / total_steps) ** power, every step.
    - ``none``: constant.
    """

    def __init__(self, optimizer, kind: str, lr0: float, total_steps: int, power: float):
        self.optimizer, self.kind, self.lr0 = optimizer, kind, lr0
        self.total_steps, self.power = max(total_steps, 1), power
        self.step_count = 0
        self.best_train = math.inf

    def _set(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    @property
    def lr(self) -> float:
        """The schedule's rate (that of the groups without an ``lr_scale``)."""
        group = self.optimizer.param_groups[0]
        return float(group["lr"]) / group.get("lr_scale", 1.0)

    def after_step(self) -> None:
        self.step_count += 1
        if self.kind == "poly":
            frac = min(self.step_count / self.total_steps, 1.0)
            self._set(self.lr0 * (1.0 - frac) ** self.power)

    def after_epoch(self, train_loss: float) -> None:
        if self.kind != "plateau":
            return
        if train_loss < self.best_train:
            self.best_train = train_loss
        else:
            self._set(self.lr * 0.5)

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "best_train": self.best_train}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = state["step_count"]
        self.best_train = state["best_train"]


@dataclass
class EarlyStopping:
    """Early stopping on the validation loss: the best epoch so far and the epochs since.

    Attributes:
        patience: Epochs without improvement after which training stops.
        best_val: The lowest validation loss so far (``inf``: none yet).
        best_epoch: Its epoch (1-based; 0: none yet).
        bad_epochs: Epochs since the last improvement.
    """

    patience: int
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    @property
    def stopped(self) -> bool:
        """True once ``patience`` epochs in a row did not improve."""
        return self.bad_epochs >= self.patience

    def update(self, val_total: float, epoch: int) -> bool:
        """Count ``epoch``'s validation loss; True when it is a new best (NaN never is)."""
        if val_total < self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = val_total, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    def new_phase(self) -> None:
        """Forget the best loss and the count (a re-initialised model must earn its own best
        epoch); ``best_epoch`` stays until the new phase has a finite validation loss."""
        self.best_val, self.bad_epochs = math.inf, 0

    def state_dict(self) -> dict:
        return {"best_val": float(self.best_val), "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best_val = float(state["best_val"])
        self.best_epoch, self.bad_epochs = int(state["best_epoch"]), int(state["bad_epochs"])
