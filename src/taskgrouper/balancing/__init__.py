"""Loss and gradient balancing for multi-task training: one interface, one explicit table.

To add a method: write its class (see :class:`~taskgrouper.balancing.base.Balancer`) and add a
row to :data:`BALANCERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taskgrouper.balancing.base import Balancer
from taskgrouper.balancing.dtp import DTP
from taskgrouper.balancing.dwa import DWA
from taskgrouper.balancing.famo import FAMO
from taskgrouper.balancing.gradnorm import GradNorm
from taskgrouper.balancing.imtl import IMTL
from taskgrouper.balancing.mgda import MGDA, MGDAUB
from taskgrouper.balancing.nash import NashMTL
from taskgrouper.balancing.pareto import ParetoMTL
from taskgrouper.balancing.projection import CAGrad, GradDrop, PCGrad
from taskgrouper.balancing.uncertainty import Uncertainty
from taskgrouper.balancing.weighting import Fixed, Uniform
from taskgrouper.errors import InputError
from taskgrouper.tasks import closest, table_row

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
    BalancerInfo("uncertainty", Uncertainty,
                 paper="Kendall et al. 2018, CVPR (homoscedastic uncertainty; survey Eq. 6)"),
    BalancerInfo("gradnorm", GradNorm, needs_task_grads=True,
                 params={"alpha": 1.5, "lr": 0.025},
                 paper="Chen et al. 2018, ICML (GradNorm; survey Eq. 7)"),
    BalancerInfo("dwa", DWA, params={"temperature": 2.0},
                 paper="Liu et al. 2019, CVPR (dynamic weight average; survey Eq. 8)"),
    BalancerInfo("dtp", DTP, params={"gamma": 2.0, "alpha": 0.9, "kpi": None},
                 paper="Guo et al. 2018, ECCV (dynamic task prioritization; survey Eq. 9)"),
    BalancerInfo("mgda", MGDA, needs_task_grads=True, supports_rep_grad=True,
                 params={"normalization": "none", "rep": False, "batched": False},
                 paper="Sener & Koltun 2018, NeurIPS (MGDA, Frank-Wolfe min-norm solver)"),
    BalancerInfo("mgda_ub", MGDAUB, needs_task_grads=True, supports_rep_grad=True,
                 rep_only=True, params={"normalization": "none", "batched": False},
                 paper="Sener & Koltun 2018, NeurIPS (MGDA-UB on the shared representation)"),
    BalancerInfo("pareto_mtl", ParetoMTL, needs_task_grads=True, supports_rep_grad=True,
                 params={"n_preferences": 5, "preference": None, "vector": None,
                         "init_steps": 100, "rep": False, "batched": False},
                 paper="Lin et al. 2019, NeurIPS (Pareto multi-task learning)"),
    BalancerInfo("graddrop", GradDrop, needs_task_grads=True, supports_rep_grad=True,
                 rep_only=True, params={"leak": 0.0, "seed": 0, "batched": False},
                 paper="Chen et al. 2020, NeurIPS (gradient sign dropout)"),
    BalancerInfo("pcgrad", PCGrad, needs_task_grads=True, supports_rep_grad=True,
                 params={"seed": 0, "rep": False, "batched": False},
                 paper="Yu et al. 2020, NeurIPS (gradient surgery)"),
    BalancerInfo("cagrad", CAGrad, needs_task_grads=True, supports_rep_grad=True,
                 params={"c": 0.5, "rep": False, "batched": False},
                 paper="Liu et al. 2021, NeurIPS (conflict-averse gradient descent)"),
    BalancerInfo("nash_mtl", NashMTL, needs_task_grads=True, supports_rep_grad=True,
                 params={"update_every": 1, "rep": False, "batched": False},
                 paper="Navon et al. 2022, ICML (Nash bargaining)"),
    BalancerInfo("imtl", IMTL, needs_task_grads=True, supports_rep_grad=True,
                 params={"learn_scales": False, "rep": False, "batched": False},
                 paper="Liu et al. 2021, ICLR (impartial MTL: IMTL-G, IMTL-L)"),
    BalancerInfo("famo", FAMO, params={"lr": 0.025, "gamma": 0.001},
                 paper="Liu et al. 2023, NeurIPS (fast adaptive multitask optimization)"),
)


def balancer_info(name: str) -> BalancerInfo:
    """The table row of ``name``.

    Raises:
        ValueError: an unknown name (suggests the closest).
    """
    return table_row(BALANCERS, name, "balancer")


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
            raise InputError(f"balancer.options: balancer '{spec}' has no option '{key}'; "
                             f"{hint}")
    return info.cls(**given)
