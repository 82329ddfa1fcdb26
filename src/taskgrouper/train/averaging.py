"""An exponential moving average of a network's weights (Polyak averaging).

With ``train.ema: decay`` the trainer keeps, beside the weights the optimiser moves, their
average ``a <- d_k * a + (1 - d_k) * w`` after the k-th step (k = 1, 2, ...; floating-point
parameters and buffers, so batch-norm statistics are averaged alike), with the warm-up
``d_k = min(decay, (1 + k) / (10 + k))``: early on the average follows the fast-moving
weights closely instead of dragging their random initialisation along (without it, a run of
the demo's depth network with decay 0.98 stopped early at the constant predictor's loss,
0.91 against 0.27). Validation, early stopping, ``best.pt``
and the test scores use the averaged weights; the optimiser goes on from its own. Averaging
smooths the last epochs' step-to-step noise, which makes the kept network depend less on the
seed (measured in the README's demo section).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The running average of ``model``'s floating-point state, started at its current value."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()
                      if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards ``model``'s current weights."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        for k, a in self.state.items():
            a.lerp_(current[k].detach(), 1.0 - decay)

    @contextlib.contextmanager
    @torch.no_grad()
    def applied(self, model: nn.Module) -> Iterator[None]:
        """``model`` holds the averaged weights inside the block and its own after it."""
        current = model.state_dict()
        own = {k: current[k].detach().clone() for k in self.state}
        for k, a in self.state.items():
            current[k].copy_(a)
        try:
            yield
        finally:
            for k, v in own.items():
                current[k].copy_(v)

    def state_dict(self) -> dict:
        return {"weights": dict(self.state), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        weights = state["weights"]
        missing = set(self.state) - set(weights)
        if missing:
            raise KeyError(f"weight average lacks {sorted(missing)[:3]}")
        for k, a in self.state.items():
            a.copy_(weights[k])
        self.updates = int(state["updates"])
