"""Dynamic Weight Average (Liu et al., CVPR 2019; survey Eq. 8).

``w_i(t) = T exp(r_i(t-1) / Temp) / sum_n exp(r_n(t-1) / Temp)`` with
``r_n(t-1) = L_n(t-1) / L_n(t-2)``, the ratio of a task's epoch-average training losses over
the two previous epochs: a task whose loss falls more slowly gets more weight. The weights sum
to T (so 1 each is the unweighted sum); they are 1 during the first two epochs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from torch import Tensor

from taskgrouper.balancing.base import Balancer
from taskgrouper.errors import InputError

__all__ = ["DWA", "dwa_weights"]


def dwa_weights(previous: Sequence[float], before: Sequence[float],
                temperature: float) -> list[float]:
    """DWA's weights from the epoch-average losses of epochs t-1 (``previous``) and t-2."""
    ratios = [p / max(b, 1e-12) for p, b in zip(previous, before, strict=True)]
    top = max(r / temperature for r in ratios)  # subtract the max for a stable softmax
    exps = [math.exp(r / temperature - top) for r in ratios]
    total = sum(exps)
    return [len(ratios) * e / total for e in exps]


class DWA(Balancer):
    """Dynamic Weight Average (Liu et al., CVPR 2019): loss ``sum_i w_i L_i`` with weights
    from the descent rates of the epoch-average training losses (updated in ``epoch_end``).

    Args:
        temperature: The softmax temperature (paper: 2).
    """

    name = "dwa"

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        if (not isinstance(temperature, (int, float)) or isinstance(temperature, bool)
                or not temperature > 0):
            raise InputError(f"balancer 'dwa': option 'temperature' must be a number > 0, "
                             f"not {temperature!r}")
        self.temperature = float(temperature)
        self.history: list[dict[str, float]] = []  # the last two epochs' average losses

    def weights(self, losses: Mapping[str, Tensor] | None = None) -> dict[str, float]:
        if len(self.history) < 2:
            return dict.fromkeys(self.tasks, 1.0)
        before, previous = self.history[-2], self.history[-1]
        w = dwa_weights([previous[t] for t in self.tasks], [before[t] for t in self.tasks],
                        self.temperature)
        return dict(zip(self.tasks, w, strict=True))

    def epoch_end(self, train_losses, val_losses=None, val_metrics=None) -> None:
        self.history = [*self.history, {t: float(train_losses[t]) for t in self.tasks}][-2:]

    def state_dict(self) -> dict:
        return {"history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: Mapping) -> None:
        self.history = [dict(h) for h in state["history"]]
