"""JTRL: joint task-recursive learning of two tasks (Zhang et al., ECCV 2018).

The decoder-focused architecture of the survey (Vandenhende et al., 2021, Sec. 2.3.3): two
tasks are predicted recursively at increasing scales, each refined from the latest state of the
other, in an intertwined order. At every scale ``i`` (from the deepest backbone features up to
the highest resolution among the backbone's stage outputs, one scale per distinct stride):

1. both task states are upsampled to the scale and receive the backbone features of that
   stride (a shared lateral ``1 x 1`` projection, added);
2. ``A_i = TAM^A_i(A_{i-1}, B_{i-1})``: task A is refined with task B's latest state;
3. ``B_i = TAM^B_i(B_{i-1}, A_i)``: task B is refined with task A's newest state;
4. every scale but the last gives a prediction per task (``Outputs.aux``, deep supervision);
   the last scale's states go to the final heads.

A task-attentive module ``TAM(own, other)`` (the paper's module: a balance unit weighing the
two inputs, an attention map over the balanced features, a refinement; the layer sizes are
taskgrouper's): ``g = sigmoid(conv1x1([own, other]))``, ``m = g * own + (1 - g) * other``,
``a = sigmoid(conv3x3(ReLU(BN(conv3x3(m)))))``, output ``ReLU(BN(conv3x3(own + a * m)))``.

The recursion is defined for exactly two tasks; the table row's ``max_tasks=2`` makes
:func:`~taskgrouper.models.builders.check_architecture` reject more, and the builder does too.
With a single task, the task is refined with its own previous state (a recursive single-task
decoder), so one-task candidate networks of a grouping search can still be trained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.arch.hard_sharing import last_weight_layer
from taskgrouper.models.arch.papnet import final_head, initial_head
from taskgrouper.models.heads import HEAD_KINDS, decoder_scale
from taskgrouper.models.layers import init_weights, scale_channels
from taskgrouper.tasks import TaskSpec, closest

__all__ = ["JTRLNet", "TaskAttentiveModule", "build_jtrl", "recursion_scales"]

#: Task-state channels at width 1 when ``channels`` is not given (times the backbone's channel
#: multiplier).
BASE_CHANNELS = 48


def _conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TaskAttentiveModule(nn.Module):
    """Refines one task's state with another state (JTRL's task-attentive module).

    Args:
        channels: Channels of both states and of the output.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.balance = nn.Conv2d(2 * channels, channels, 1)
        self.attention = nn.Sequential(_conv_bn_relu(channels, channels, 3),
                                       nn.Conv2d(channels, channels, 3, padding=1))
        self.refine = _conv_bn_relu(channels, channels, 3)
        init_weights(self)

    def forward(self, own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        # own, other: (B, D, h, w)
        g = torch.sigmoid(self.balance(torch.cat([own, other], dim=1)))  # (B, D, h, w)
        m = g * own + (1.0 - g) * other  # balanced features
        a = torch.sigmoid(self.attention(m))  # (B, D, h, w) attention
        return self.refine(own + a * m)  # (B, D, h, w)


def recursion_scales(strides: list[int]) -> list[int]:
    """Indices of the stage outputs the recursion visits, deepest first: for each distinct
    stride, the deepest stage output with it, ordered from the largest stride to the smallest.

    Example: Xception strides ``[2, 4, 8, 16]`` -> ``[3, 2, 1, 0]``; the dilated ResNet's
    ``[4, 4, 8, 8]`` -> ``[3, 1]``.
    """
    deepest: dict[int, int] = {}
    for i, s in enumerate(strides):
        deepest[s] = i  # later (deeper) outputs win
    return [deepest[s] for s in sorted(deepest, reverse=True)]


class JTRLNet(MultiTaskModel):
    """Joint task-recursive learning of one or two tasks (see the module docstring).

    Parameter groups: with two tasks, the modules of the recursion feed the other task's later
    states, so they are reached by both losses and belong to ``shared_parameters()`` with the
    backbone; a task's own parameters are its per-scale prediction heads and its final head,
    and for the second task also its last task-attentive module (nothing of the first task
    follows it). ``Outputs.rep`` is the backbone's stage outputs.

    Args:
        backbone: An image backbone.
        tasks: One or two tasks; the first is refined first at every scale.
        backbone_name: The backbone's registry name.
        channels: Channels of the task states (None: 48 times the backbone's channel
            multiplier, a multiple of 4, at least 8).
        head: Final dense head, ``light`` or ``aspp``.

    Attributes:
        encoder: The shared backbone (what standard network time counts).

    Raises:
        ValueError: More than two tasks, or a vector backbone.
    """

    def __init__(self, backbone: nn.Module, tasks: Mapping[str, TaskSpec], *,
                 backbone_name: str | None = None, channels: int | None = None,
                 head: str = "light") -> None:
        super().__init__(tasks, backbone_name, "jtrl")
        if len(tasks) > 2:
            raise InputError(f"architecture 'jtrl' takes at most 2 tasks, got {len(tasks)} "
                             f"({', '.join(tasks)}): its recursion alternates between two "
                             f"tasks; choose two tasks, or another architecture")
        if not getattr(backbone, "spatial", False):
            raise InputError("architecture 'jtrl' needs an image backbone (xception or resnet)")
        if head not in HEAD_KINDS:
            raise InputError(f"model.options.head: unknown dense head '{head}'; "
                             f"{closest(head, HEAD_KINDS)}")
        if channels is None:
            channels = scale_channels(BASE_CHANNELS, getattr(backbone, "width", 1.0))
        if channels < 1:
            raise InputError(f"jtrl option channels must be at least 1, got {channels}")
        self.encoder = backbone
        self.scales = recursion_scales(list(backbone.strides))
        cin = backbone.out_channels
        self.lateral = nn.ModuleList([_conv_bn_relu(cin[i], channels, 1) for i in self.scales])
        init_weights(self.lateral)
        self.start = nn.ModuleDict({t: _conv_bn_relu(channels, channels, 3) for t in tasks})
        init_weights(self.start)
        self.tam = nn.ModuleDict({t: nn.ModuleList([TaskAttentiveModule(channels)
                                                    for _ in self.scales]) for t in tasks})
        self.aux_heads = nn.ModuleDict({
            t: nn.ModuleList([initial_head(s, channels) for _ in self.scales[:-1]])
            for t, s in tasks.items()})
        last_stride = backbone.strides[self.scales[-1]]
        self.final = nn.ModuleDict({t: final_head(s, channels, last_stride, head,
                                                  decoder_scale(backbone))
                                    for t, s in tasks.items()})

    def forward(self, x: torch.Tensor) -> Outputs:
        input_hw = tuple(x.shape[-2:])
        stages = self.encoder(x)  # [(B, C_i, H/s_i, W/s_i)] shallow -> deep
        first, last = self.tasks[0], self.tasks[-1]  # the same task when there is one
        lat = self.lateral[0](stages[self.scales[0]])  # (B, D, H/s, W/s) deepest
        state = {t: self.start[t](lat) for t in self.tasks}
        aux: dict[str, list[torch.Tensor]] = {t: [] for t in self.tasks}
        for i, stage_index in enumerate(self.scales):
            if i > 0:  # up to this scale, and inject the backbone features of this stride
                lat = self.lateral[i](stages[stage_index])  # (B, D, h_i, w_i)
                state = {t: F.interpolate(s, size=lat.shape[-2:], mode="bilinear",
                                          align_corners=False) + lat
                         for t, s in state.items()}
            state[first] = self.tam[first][i](state[first], state[last] if last != first
                                              else state[first])
            if last != first:
                state[last] = self.tam[last][i](state[last], state[first])
            if i < len(self.scales) - 1:
                for t in self.tasks:
                    aux[t].append(self.aux_heads[t][i]([state[t]]))
        final = {t: self.final[t]([state[t]], input_hw) for t in self.tasks}
        return Outputs(final, aux=aux, rep=stages)

    def _own_modules(self, task: str) -> list[nn.Module]:
        """Modules only ``task``'s loss reaches: its heads; with one task also its recursion;
        for the second of two tasks also its last module (refined after the first task's
        final state)."""
        own: list[nn.Module] = [self.aux_heads[task], self.final[task]]
        if len(self.tasks) == 1:
            own += [self.start[task], self.tam[task]]
        elif task == self.tasks[-1]:
            own.append(self.tam[task][-1])
        return own

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The backbone and the recursion modules reached by both tasks' losses."""
        own = {id(p) for t in self.tasks for m in self._own_modules(t) for p in m.parameters()}
        return (p for p in self.parameters() if id(p) not in own)

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's prediction heads (plus recursion modules no other task reaches)."""
        self._check_task(task)
        return (p for m in self._own_modules(task) for p in m.parameters())

    def last_shared_layer(self) -> list[nn.Parameter]:
        return last_weight_layer(self.encoder)


def build_jtrl(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec], *,
               backbone_name: str | None = None, channels: int | None = None,
               head: str = "light") -> JTRLNet:
    """JTRL on one shared backbone, for one or two tasks (options: see :class:`JTRLNet`)."""
    if len(tasks) > 2:  # fail before building a backbone
        raise InputError(f"architecture 'jtrl' takes at most 2 tasks, got {len(tasks)} "
                         f"({', '.join(tasks)}); choose two tasks, or another architecture")
    return JTRLNet(make_backbone(), tasks, backbone_name=backbone_name,
                   channels=None if channels is None else int(channels), head=str(head))
