"""Dynamic Task Prioritization (Guo et al., ECCV 2018; survey Eq. 9).

Each task's weight is a focal term of a key performance indicator (KPI) ``kappa_t`` in (0, 1]:
``w_t = -(1 - kappa_t)^gamma log(kappa_t)``, so tasks that perform badly (small KPI) get large
weights and tasks near perfect get weights near 0. The KPI is a moving average of a validation
metric, ``kappa <- a * kappa_new + (1 - a) * kappa`` (the first value is taken as it is).

KPI of each task kind (a metric higher-is-better in [0, 1], from ``epoch_end``'s validation
metrics; see :data:`KPI_METRICS`):

==================  ==========================================================================
kind                KPI
==================  ==========================================================================
segmentation        ``miou``
classification      ``accuracy``
binary              ``accuracy``
dense_regression    ``delta1`` (fraction of pixels with max(pred/gt, gt/pred) < 1.25)
normals             ``within_11.25`` (fraction of pixels with angular error below 11.25 deg)
dense_binary        the task's headline metric (``spec.metrics[0]``: ``f1``, ``odsf``,
                    ``maxf``, ...; every dense_binary metric is an F-score, IoU or accuracy
                    in [0, 1], higher is better)
regression          ``exp(-loss)``: the validation loss (on standardised labels) mapped into
                    (0, 1]; no metric of the kind is bounded
==================  ==========================================================================

A task whose metric is missing from the validation metrics (custom metric lists) uses
``exp(-loss)`` as well. KPIs are clamped to [1e-4, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch import Tensor

from taskgrouper.balancing.base import Balancer
from taskgrouper.errors import InputError

__all__ = ["DTP", "HEADLINE_KPI_KINDS", "KPI_METRICS", "dtp_weight"]

#: Task kind -> the validation metric used as its KPI (kinds not listed use exp(-loss)).
KPI_METRICS: dict[str, str] = {
    "segmentation": "miou",
    "classification": "accuracy",
    "binary": "accuracy",
    "dense_regression": "delta1",
    "normals": "within_11.25",
    "dense_binary": "f1",
}
#: Kinds whose KPI is the task's own headline metric (``spec.metrics[0]``) when it has one.
HEADLINE_KPI_KINDS = frozenset({"dense_binary"})


def dtp_weight(kpi: float, gamma: float) -> float:
    """``-(1 - kappa)^gamma log(kappa)`` for a KPI clamped to [1e-4, 1]."""
    k = min(max(kpi, 1e-4), 1.0)
    return -((1.0 - k) ** gamma) * math.log(k)


class DTP(Balancer):
    """Dynamic Task Prioritization (Guo et al., ECCV 2018): loss ``sum_t w_t L_t`` with the
    focal weights of each task's KPI; weights are 1 until the first validation.

    Args:
        gamma: The focusing parameter (the focal-loss value 2 the paper's weighting takes
            from Lin et al.; 0 gives ``-log kappa``).
        alpha: Weight of the newest KPI in the moving average (1: no smoothing).
        kpi: Task name -> metric to use as its KPI instead of the kind's default (a
            higher-is-better metric in [0, 1], or ``"loss"`` for ``exp(-loss)``).
    """

    name = "dtp"

    def __init__(self, gamma: float = 2.0, alpha: float = 0.9,
                 kpi: Mapping[str, str] | None = None) -> None:
        super().__init__()
        if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or not gamma >= 0:
            raise InputError(f"balancer 'dtp': option 'gamma' must be a number >= 0, not "
                             f"{gamma!r}")
        if (not isinstance(alpha, (int, float)) or isinstance(alpha, bool)
                or not 0 < alpha <= 1):
            raise InputError(f"balancer 'dtp': option 'alpha' must be in (0, 1], not {alpha!r}")
        if kpi is not None and (not isinstance(kpi, Mapping)
                                or not all(isinstance(v, str) for v in kpi.values())):
            raise InputError(f"balancer 'dtp': option 'kpi' must map task names to metric "
                             f"names, not {kpi!r}")
        self.gamma = float(gamma)
        self.alpha = float(alpha)
        self.kpi_override = dict(kpi or {})
        self.kpis: dict[str, float] | None = None

    def setup(self, tasks, model) -> None:
        super().setup(tasks, model)
        from taskgrouper.tasks import closest

        for task in self.kpi_override:
            if task not in self.tasks:
                raise InputError(f"balancer 'dtp': kpi given for unknown task '{task}'; "
                                 + closest(task, self.tasks))

    def kpi_metric(self, task: str) -> str:
        """The metric name used as ``task``'s KPI (``"loss"`` for ``exp(-loss)``)."""
        if task in self.kpi_override:
            return self.kpi_override[task]
        spec = getattr(self.model, "specs", {}).get(task)
        kind = getattr(spec, "kind", "")
        if kind in HEADLINE_KPI_KINDS and getattr(spec, "metrics", ()):
            return spec.metrics[0]
        return KPI_METRICS.get(kind, "loss")

    def _kpi(self, task: str, metrics: Mapping[str, float], loss: float | None) -> float:
        name = self.kpi_metric(task)
        value = metrics.get(name) if name != "loss" else None
        if value is None or not math.isfinite(value):
            loss = metrics.get("loss", loss)
            value = math.exp(-loss) if loss is not None and math.isfinite(loss) else 1e-4
        return min(max(float(value), 1e-4), 1.0)

    def weights(self, losses: Mapping[str, Tensor] | None = None) -> dict[str, float]:
        if self.kpis is None:
            return dict.fromkeys(self.tasks, 1.0)
        return {t: dtp_weight(self.kpis[t], self.gamma) for t in self.tasks}

    def epoch_end(self, train_losses, val_losses=None, val_metrics=None) -> None:
        if val_metrics is None and val_losses is None:
            return
        new = {t: self._kpi(t, (val_metrics or {}).get(t, {}),
                            None if val_losses is None else val_losses.get(t))
               for t in self.tasks}
        if self.kpis is None:
            self.kpis = new
        else:
            self.kpis = {t: self.alpha * new[t] + (1.0 - self.alpha) * self.kpis[t]
                         for t in self.tasks}

    def state_dict(self) -> dict:
        return {"kpis": None if self.kpis is None else dict(self.kpis)}

    def load_state_dict(self, state: Mapping) -> None:
        self.kpis = None if state["kpis"] is None else dict(state["kpis"])
