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

__all__ = ["BALANCERS", "Balancer", "BalancerInfo", "Fixed", "Uniform", "balancer_info",
           "build_balancer"]


@dataclass(frozen=True)
class BalancerInfo:
    """One row of the balancer table.

    Attributes:
        name: The name used in configs.
        cls: The class (or factory) that builds it.
        needs_task_grads: True when it needs per-task gradients of shared parameters (or of
            the shared representation): the architecture must have shared parameters.
        supports_rep_grad: True when it can work on gradients w.r.t. the shared representation.
        rep_only: True when it always works on the shared representation (``mgda_ub``): the
            architecture must set ``Outputs.rep``.
        params: Parameter names the config may pass, with their defaults.
        paper: Where it comes from.
    """

    name: str
    cls: Callable[..., Balancer]
    needs_task_grads: bool = False
    supports_rep_grad: bool = False
    rep_only: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    paper: str = ""


BALANCERS: tuple[BalancerInfo, ...] = (
    BalancerInfo("uniform", Uniform, paper="Standley et al. 2020 (unweighted mean)"),
    BalancerInfo("fixed", Fixed, params={"weights": None}, paper="hand-tuned weights"),
)


def balancer_info(name: str) -> BalancerInfo:
    """The table row of ``name``.

    Raises:
        ValueError: an unknown name (suggests the closest).
    """
    table = {info.name: info for info in BALANCERS}
    if name not in table:
        raise ValueError(f"unknown balancer '{name}'; {closest(name, table)}")
    return table[name]


def build_balancer(spec: str | Balancer, **params: Any) -> Balancer:
    """A balancer from a name in :data:`BALANCERS` (with its parameters) or an instance.

    Raises:
        ValueError: an unknown name (with the closest known one) or parameter.
    """
    if isinstance(spec, Balancer):
        return spec
    info = balancer_info(spec)
    given = {k: v for k, v in params.items() if v is not None}
    for key in given:
        if key not in info.params:
            hint = closest(key, list(info.params)) if info.params else "it takes no options"
            raise ValueError(f"balancer.options: balancer '{spec}' has no option '{key}'; "
                             f"{hint}")
    return info.cls(**given)
