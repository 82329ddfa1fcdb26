"""Branched multi-task networks: a shared trunk, then one branch per group of tasks.

A tree-shaped encoder (survey of Vandenhende et al., 2021, Sec. 2.2.4; Vandenhende et al.,
"Branched Multi-Task Networks: Deciding What Layers To Share", BMVC 2020): every task shares
the backbone's stages up to and including ``branch_stage`` (the trunk); after it, each group of
tasks has its own copy of the remaining stages (its branch), and each task its own head on its
group's deepest features. One group holding every task is hard parameter sharing.

This is how a grouping chosen by :mod:`taskgrouper.grouping` is deployed as one network:
:meth:`BranchedNet.from_selection` (or :func:`groups_from_selection` for ``model.options``)
turns the selected networks into groups. Note the difference from the networks Standley et
al. (2020) select: those share nothing across groups (``branch_stage`` has no "no trunk" value
here, since then no parameter would be shared by all tasks).

Stages are those of ``backbone.stages()`` (xception and resnet: four; mlp: one, so on vector
inputs only a single group is possible). ``branch_stage`` counts from 0: with the xception
backbone, ``branch_stage=1`` shares the stem and the first entry block (stride 4) and branches
the rest.

Parameter groups: ``shared_parameters()`` is the trunk (and the branch too when there is one
group); ``task_parameters(t)`` is t's head, and its branch when t is alone in its group; the
branch of a group of several (but not all) tasks is in neither. ``Outputs.rep`` is the trunk's
stage outputs (with one group: all stage outputs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.arch.hard_sharing import last_weight_layer
from taskgrouper.models.backbones import backbone_factory
from taskgrouper.models.heads import build_head
from taskgrouper.tasks import TaskSpec, closest

__all__ = ["BranchedEncoder", "BranchedNet", "build_branched", "check_groups",
           "groups_from_selection"]


def check_groups(groups: Sequence[Sequence[str]] | None, tasks: Sequence[str]
                 ) -> list[list[str]]:
    """Validate a grouping of ``tasks``; ``None`` is one group of all tasks.

    Returns:
        The groups as lists, each in the order given.

    Raises:
        ValueError: an empty group, an unknown task, a task in two groups or in none (names
            the task).
    """
    if groups is None:
        return [list(tasks)]
    if isinstance(groups, str) or not all(
            isinstance(g, Sequence) and not isinstance(g, str) for g in groups):
        raise InputError(f"model.options.groups must be a list of lists of task names, got "
                         f"{groups!r}")
    out = [list(g) for g in groups]
    if not out:
        raise InputError("model.options.groups is empty; give at least one group of tasks")
    home: dict[str, int] = {}
    for i, group in enumerate(out):
        if not group:
            raise InputError(f"model.options.groups: group {i} is empty")
        for task in group:
            if task not in tasks:
                raise InputError(f"model.options.groups: group {i} names task '{task}', which "
                                 f"the model does not predict; {closest(str(task), tasks)}")
            if task in home:
                raise InputError(f"model.options.groups: task '{task}' is in groups "
                                 f"{home[task]} ({'/'.join(out[home[task]])}) and {i} "
                                 f"({'/'.join(group)}); put every task in exactly one group")
            home[task] = i
    missing = [t for t in tasks if t not in home]
    if missing:
        raise InputError(f"model.options.groups: task '{missing[0]}' is in no group"
                         f"{f' (nor are {missing[1:]})' if len(missing) > 1 else ''}; put "
                         "every task in exactly one group")
    return out


def groups_from_selection(networks: Sequence[Sequence[str]],
                          assignment: Mapping[str, int] | None = None) -> list[list[str]]:
    """Groups for :class:`BranchedNet` from the networks a selection chose.

    A selection (``taskgrouper select``) may choose networks that overlap, and then says which
    network serves each task. Each task goes to the group of the network that serves it;
    networks that serve no task are dropped.

    Args:
        networks: The chosen networks, each a list of task names.
        assignment: Task -> index into ``networks`` of the network serving it; needed only for
            tasks that appear in more than one network.

    Raises:
        ValueError: a task in several networks and not in ``assignment``, or an assignment to
            a network that does not predict the task.
    """
    assignment = dict(assignment or {})
    order: list[str] = []
    for net in networks:
        order += [t for t in net if t not in order]
    homes: dict[str, int] = {}
    for task in order:
        holders = [i for i, net in enumerate(networks) if task in net]
        if task in assignment:
            index = assignment[task]
            if not 0 <= index < len(networks) or task not in networks[index]:
                raise InputError(f"assignment sends task '{task}' to network {index}, which "
                                 f"does not predict it (networks predicting it: {holders})")
            homes[task] = index
        elif len(holders) > 1:
            raise InputError(f"task '{task}' is in networks {holders}; say which one serves it "
                             f"(assignment={{'{task}': {holders[0]}}})")
        else:
            homes[task] = holders[0]
    groups = [[t for t in net if homes.get(t) == i] for i, net in enumerate(networks)]
    return [g for g in groups if g]


class BranchedEncoder(nn.Module):
    """A trunk of stages shared by every group, then one branch of stages per group.

    Args:
        trunk: The shared stages, shallow to deep.
        branches: Per group, its own copy of the remaining stages (may be empty).

    Attributes:
        trunk: ``nn.ModuleList`` of stages.
        branches: ``nn.ModuleList`` of ``nn.ModuleList`` of stages.
    """

    def __init__(self, trunk: Sequence[nn.Module], branches: Sequence[Sequence[nn.Module]]
                 ) -> None:
        super().__init__()
        self.trunk = nn.ModuleList(trunk)
        self.branches = nn.ModuleList([nn.ModuleList(b) for b in branches])

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per group, the stage outputs along its path (trunk then branch), shallow to deep."""
        # x: (B, Cin, H, W) or (B, D)
        shared = []
        for stage in self.trunk:
            x = stage(x)  # (B, C_j, H/s_j, W/s_j)
            shared.append(x)
        paths = []
        for branch in self.branches:
            y, path = x, list(shared)
            for stage in branch:
                y = stage(y)  # (B, C_j, H/s_j, W/s_j)
                path.append(y)
            paths.append(path)
        return paths


class BranchedNet(MultiTaskModel):
    """A branched multi-task network: shared trunk, one branch per task group, one head per task.

    Survey Sec. 2.2.4; Vandenhende et al. (BMVC 2020). See the module docstring.

    Args:
        backbones: One backbone per group (same architecture). The first gives the trunk
            (its stages ``0..branch_stage``) and the first group's branch; backbone ``g``
            gives group ``g``'s branch (its stages after ``branch_stage``); stages that are not
            used are not registered.
        tasks: Task name -> spec.
        groups: The task groups (every task in exactly one).
        branch_stage: Index of the last shared stage.
        backbone_name: The backbones' registry name.

    Attributes:
        encoder: The :class:`BranchedEncoder` (trunk and branches; its cost is the encoder cost
            in standard network time).
        heads: ``nn.ModuleDict`` of task name -> head.
        groups: The groups, as tuples of task names.
        branch_stage: Index of the last shared stage.
    """

    def __init__(self, backbones: Sequence[nn.Module], tasks: Mapping[str, TaskSpec],
                 groups: Sequence[Sequence[str]] | None = None, branch_stage: int | None = None,
                 backbone_name: str | None = None) -> None:
        super().__init__(tasks, backbone_name, "branched")
        groups = check_groups(groups, list(tasks))
        if len(backbones) != len(groups):
            raise InputError(f"branched: {len(groups)} groups need {len(groups)} backbones, "
                             f"got {len(backbones)}")
        chains = [list(b.stages()) for b in backbones]
        n_stages = len(chains[0])
        branch_stage = _check_branch_stage(branch_stage, n_stages, len(groups), backbone_name)
        self.groups = tuple(tuple(g) for g in groups)
        self.branch_stage = branch_stage
        self.encoder = BranchedEncoder(chains[0][:branch_stage + 1],
                                       [c[branch_stage + 1:] for c in chains])
        self.group_of = {t: i for i, g in enumerate(self.groups) for t in g}
        self.heads = nn.ModuleDict({t: build_head(spec, backbones[0])
                                    for t, spec in tasks.items()})

    @classmethod
    def from_selection(cls, networks: Sequence[Sequence[str]], tasks: Mapping[str, TaskSpec],
                       in_shape: Sequence[int], *, backbone: str = "xception",
                       width: float = 1.0, branch_stage: int | None = None,
                       assignment: Mapping[str, int] | None = None) -> BranchedNet:
        """The branched network that deploys a selection of networks as one tree.

        Args:
            networks: The selected networks, each a list of task names (e.g. the ``networks``
                of ``taskgrouper select --json``, split into tasks).
            tasks: Task name -> spec, for every task the networks serve.
            in_shape: One sample's shape.
            backbone: Backbone name.
            width: Encoder size as a fraction of the full encoder's cost.
            branch_stage: Index of the last shared stage (default: all stages but the last).
            assignment: Task -> index of the network serving it, for tasks in several.
        """
        groups = groups_from_selection(networks, assignment)
        served = [t for g in groups for t in g]
        unknown = [t for t in served if t not in tasks]
        if unknown:
            raise InputError(f"the selection predicts task '{unknown[0]}' but no spec was "
                             f"given for it; {closest(unknown[0], tasks)}")
        specs = {t: tasks[t] for t in tasks if t in served}
        make_backbone = backbone_factory(backbone, in_shape, width=width)
        return build_branched(make_backbone, specs, backbone_name=backbone, groups=groups,
                              branch_stage=branch_stage)

    def forward(self, x: torch.Tensor) -> Outputs:
        input_hw = tuple(x.shape[-2:]) if x.dim() == 4 else None
        paths = self.encoder(x)  # per group: [(B, C_j, H/s_j, W/s_j)]
        out = {t: self.heads[t](paths[self.group_of[t]], input_hw) for t in self.tasks}
        n_shared = len(paths[0]) if len(self.groups) == 1 else self.branch_stage + 1
        return Outputs(out, rep=paths[0][:n_shared])

    def _shared_modules(self) -> list[nn.Module]:
        shared: list[nn.Module] = [self.encoder.trunk]
        if len(self.groups) == 1:
            shared.append(self.encoder.branches[0])
        return shared

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The trunk (and the branch when one group holds every task)."""
        for module in self._shared_modules():
            yield from module.parameters()

    def group_parameters(self, group: int) -> Iterator[nn.Parameter]:
        """The branch of group ``group`` (an index into :attr:`groups`)."""
        return self.encoder.branches[group].parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's head, and its group's branch when the task is alone in its group (and
        the group is not the only one)."""
        self._check_task(task)
        group = self.group_of[task]
        if len(self.groups) > 1 and len(self.groups[group]) == 1:
            yield from self.group_parameters(group)
        yield from self.heads[task].parameters()

    def last_shared_layer(self) -> list[nn.Parameter]:
        for module in reversed(self._shared_modules()):
            last = last_weight_layer(module)
            if last:
                return last
        return []


def _check_branch_stage(branch_stage: Any, n_stages: int, n_groups: int,
                        backbone_name: str | None) -> int:
    name = f"backbone '{backbone_name}'" if backbone_name else "the backbone"
    if branch_stage is None:
        branch_stage = max(n_stages - 2, 0)
    if isinstance(branch_stage, bool) or not isinstance(branch_stage, int):
        raise InputError(f"model.options.branch_stage must be a stage index (int), got "
                         f"{branch_stage!r}")
    last = n_stages - 1 if n_groups == 1 else n_stages - 2
    if last < 0:
        raise InputError(f"{name} has {n_stages} stage; {n_groups} groups need a stage after "
                         f"the branch point; use one group (hard sharing) or a backbone with "
                         "more stages (xception, resnet)")
    if not 0 <= branch_stage <= last:
        raise InputError(f"model.options.branch_stage {branch_stage} is out of range: {name} "
                         f"has {n_stages} stages (0..{n_stages - 1}) and with {n_groups} "
                         f"group(s) the last shared stage must be in 0..{last}")
    return branch_stage


def build_branched(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec], *,
                   backbone_name: str | None = None,
                   groups: Sequence[Sequence[str]] | None = None,
                   branch_stage: int | None = None) -> BranchedNet:
    """A branched network: ``make_backbone()`` is called once per group.

    Args:
        make_backbone: Returns a fresh backbone.
        tasks: Task name -> spec.
        backbone_name: The backbone's registry name.
        groups: Lists of task names, every task in exactly one; ``None``: one group (hard
            sharing).
        branch_stage: Index of the last stage shared by all groups; ``None``: all stages but
            the last (for one group, irrelevant: everything is shared).
    """
    groups = check_groups(groups, list(tasks))
    return BranchedNet([make_backbone() for _ in groups], tasks, groups, branch_stage,
                       backbone_name)
