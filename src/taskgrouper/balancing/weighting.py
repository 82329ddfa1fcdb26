"""Loss-weighting balancers with weights that do not learn: uniform and fixed."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from taskgrouper.balancing.base import Balancer
from taskgrouper.errors import InputError
from taskgrouper.tasks import closest

__all__ = ["Fixed", "Uniform"]


class Uniform(Balancer):
    """The unweighted mean of the task losses, as Standley et al. (2020) train every network."""

    name = "uniform"

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, float]:
        return {t: 1.0 / len(self.tasks) for t in self.tasks}


class Fixed(Balancer):
    """Hand-set task weights: loss = (1/T) * sum_t w_t * L_t (weights of 1 give ``uniform``).

    Args:
        weights: Task name -> weight (>= 0); tasks not named get 1.
    """

    name = "fixed"

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.given = dict(weights or {})
        for task, w in self.given.items():
            if not w >= 0:
                raise InputError(f"balancer 'fixed': weight of task '{task}' is {w}; "
                                 f"weights must be finite and >= 0")

    def setup(self, tasks, model) -> None:
        super().setup(tasks, model)
        for task in self.given:
            if task not in self.tasks:
                raise InputError(f"balancer 'fixed': weight given for unknown task '{task}'; "
                                 + closest(task, self.tasks))

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, float]:
        return {t: self.given.get(t, 1.0) / len(self.tasks) for t in self.tasks}
