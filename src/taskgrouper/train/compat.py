"""Which architectures, balancers and task sets go together: the one place for those rules.

The rules read the flags of the architecture table (:data:`taskgrouper.models.arch.ARCH_TABLE`)
and the balancer table (:data:`taskgrouper.balancing.BALANCERS`):

- a balancer that needs per-task gradients of shared parameters (``needs_task_grads``) needs an
  architecture with shared parameters (``shared_parameters``);
- a balancer that works on the shared representation (``rep_only``) needs an architecture that
  has one (``shared_representation``);
- an architecture takes at most ``max_tasks`` tasks, and one that needs multi-scale feature
  maps (``spatial_only``) needs image inputs (:func:`taskgrouper.models.builders.
  architecture_clashes`, which :func:`~taskgrouper.models.build_model` applies too).

:func:`incompatibility` says why a pair cannot train on a task set (a short reason, for lists of
skipped models); :func:`check_compatible` refuses a whole config before any data is loaded
(unknown names, the rules above, and the architecture's and balancer's options), with a message
that names what is wrong and what would fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskgrouper.config import ExperimentConfig
from taskgrouper.errors import InputError
from taskgrouper.models.builders import Clash, architecture_clashes, check_architecture

__all__ = ["Clash", "check_compatible", "clashes", "incompatibility"]


def _pairing(arch: Any, bal: Any) -> list[Clash]:
    """The rules on the balancer and the architecture alone."""
    found = []
    if getattr(bal, "needs_task_grads", False) and not getattr(arch, "shared_parameters", True):
        from taskgrouper import balancing

        weighting = ", ".join(b.name for b in balancing.BALANCERS if not b.needs_task_grads)
        found.append(Clash(
            "task_grads",
            f"balancer '{bal.name}' needs per-task gradients of shared parameters; "
            f"architecture '{arch.name}' shares none",
            f"balancer '{bal.name}' needs per-task gradients of shared parameters, but "
            f"architecture '{arch.name}' shares none (one network per task); use a "
            f"loss-weighting balancer ({weighting}) or an architecture with a shared encoder"))
    if getattr(bal, "rep_only", False) and not getattr(arch, "shared_representation", True):
        found.append(Clash(
            "representation",
            f"balancer '{bal.name}' works on the shared representation; architecture "
            f"'{arch.name}' has none",
            f"balancer '{bal.name}' works on the shared representation, which architecture "
            f"'{arch.name}' does not have; use hard_sharing, or a balancer on parameter "
            f"gradients (e.g. mgda)"))
    return found


def clashes(arch: Any, bal: Any, tasks: int | Sequence[str],
            spatial: bool | None) -> list[Clash]:
    """Every rule ``bal`` on ``arch`` breaks for these tasks and inputs, in the order
    :func:`incompatibility` reports them (balancer rules first).

    Args:
        arch: An :class:`~taskgrouper.models.arch.ArchInfo` row (a row without a flag counts
            as the permissive default).
        bal: A :class:`~taskgrouper.balancing.BalancerInfo` row (likewise).
        tasks: The task names, or their number.
        spatial: Whether the inputs are images; None: not known (the image rule is skipped).
    """
    return _pairing(arch, bal) + architecture_clashes(arch, tasks, spatial)


def incompatibility(arch: Any, bal: Any, n_tasks: int, spatial: bool | None) -> str | None:
    """Why the table flags forbid training ``bal`` on ``arch`` for these tasks, or None.

    Args:
        arch: An :class:`~taskgrouper.models.arch.ArchInfo` row.
        bal: A :class:`~taskgrouper.balancing.BalancerInfo` row.
        n_tasks: Number of tasks of the model.
        spatial: Whether the inputs are images (None: not known; that rule is skipped).
    """
    found = clashes(arch, bal, n_tasks, spatial)
    return found[0].reason if found else None


def check_compatible(config: ExperimentConfig, spatial: bool | None = None) -> None:
    """Fail fast, before any data is loaded, on a config that cannot train: an unknown
    backbone, architecture or balancer, an architecture that cannot take the listed tasks
    (or, when ``spatial`` is given, these inputs), an option the architecture or balancer does
    not have, or a balancer the architecture cannot run.

    Args:
        config: The experiment.
        spatial: Whether the inputs are images; None (the default): not known yet.

    Raises:
        ValueError: naming the config key or rule, the bad value and the fix (the closest
            known name for an unknown one).
    """
    from taskgrouper import balancing, models
    from taskgrouper.tasks import closest

    for key, value, known in (
            ("model.backbone", config.model.backbone, models.BACKBONES),
            ("model.architecture", config.model.architecture, models.ARCHITECTURES),
            ("balancer.name", config.balancer.name, [b.name for b in balancing.BALANCERS])):
        if value not in known:
            raise InputError(f"{key}: unknown name '{value}'; {closest(value, known)}")
    arch = models.arch_info(config.model.architecture)
    bal = balancing.balancer_info(config.balancer.name)
    check_architecture(arch.name, list(config.tasks or []), spatial, config.model.options)
    balancing.build_balancer(bal.name, weights=config.balancer.weights,
                             **config.balancer.options)  # refuses unknown options by name
    for clash in _pairing(arch, bal):
        raise InputError(clash.message)
