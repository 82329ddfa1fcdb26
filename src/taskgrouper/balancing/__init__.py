"""Loss and gradient balancing for multi-task training: one interface, one explicit table.

To add a method: write its class (see :class:`~taskgrouper.balancing.base.Balancer`) and add a
row to :data:`BALANCERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taskgrouper.balancing.base import Balancer
from taskgrouper.balancing.weighting import Fixed, Uniform
from taskgrouper.tasks import closest

__all__ = ["BALANCERS", "Balancer", "BalancerInfo", "Fixed", "Uniform", "build_balancer"]


@dataclass(frozen=True)
class BalancerInfo:
    """One row of the balancer table.

    Attributes:
        name: The name used in configs.
        cls: The class (or factory) that builds it.
        needs_task_grads: True when it needs per-task gradients of the shared parameters.
        supports_rep_grad: True when it can work on gradients w.r.t. the shared representation.
        params: Parameter names the config may pass, with their defaults.
        paper: Where it comes from.
    """

    name: str
    cls: Callable[..., Balancer]
    needs_task_grads: bool = False
    supports_rep_grad: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    paper: str = ""


BALANCERS: tuple[BalancerInfo, ...] = (
    BalancerInfo("uniform", Uniform, paper="Standley et al. 2020 (unweighted mean)"),
    BalancerInfo("fixed", Fixed, params={"weights": None}, paper="hand-tuned weights"),
)


def build_balancer(spec: str | Balancer, **params: Any) -> Balancer:
    """A balancer from a name in :data:`BALANCERS` (with its parameters) or an instance.

    Raises:
        ValueError: an unknown name (with the closest known one) or parameter.
    """
    if isinstance(spec, Balancer):
        return spec
    table = {info.name: info for info in BALANCERS}
    if spec not in table:
        raise ValueError(f"unknown balancer '{spec}'; {closest(spec, table)}")
    info = table[spec]
    given = {k: v for k, v in params.items() if v is not None}
    for key in given:
        if key not in info.params:
            allowed = ", ".join(info.params) or "none"
            raise ValueError(f"balancer '{spec}' takes no parameter '{key}' "
                             f"(parameters: {allowed})")
    return info.cls(**given)
