"""An exponential moving average of a network's weights (Polyak averaging).

With ``train.ema: decay`` the trainer keeps, beside the weights the optimiser moves, their
average ``a <- decay * a + (1 - decay) * w`` after every step (floating-point parameters and
buffers, so batch-norm statistics are averaged alike). Validation, early stopping, ``best.pt``
and the test scores use the averaged weights; the optimiser goes on from its own. Averaging
smooths the last epochs' step-to-step noise, which makes the kept network depend less on the
seed (measured in the README's demo section).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The running average of ``model``'s floating-point state, started at its current value."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        self.decay = float(decay)
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()
                      if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards ``model``'s current weights."""
        current = model.state_dict()
        for k, a in self.state.items():
            a.lerp_(current[k].detach(), 1.0 - self.decay)

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

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = set(self.state) - set(state)
        if missing:
            raise KeyError(f"weight average lacks {sorted(missing)[:3]}")
        for k, a in self.state.items():
            a.copy_(state[k])
