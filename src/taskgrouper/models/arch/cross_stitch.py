"""Cross-stitch networks: one network per task, fused after every stage (Misra et al., 2016).

Each task has its own backbone. After every backbone stage a *cross-stitch unit* replaces each
task's activation by a learned linear combination of all tasks' activations at that stage,
channel by channel (Vandenhende et al., 2021, Sec. 2.2.1, Eq. 1, written for T tasks):

    x~_k[c] = sum_l alpha_{k,l}[c] * x_l[c]        k, l = 1..T, c = channel

The mixed activations feed the next stage of each task's network; the heads read each task's
mixed features. Misra et al. initialise the units near the identity, ``alpha_same`` on the task
itself and ``alpha_other`` on the others (0.9 / 0.1 for two tasks), and start from pre-trained
single-task networks ("in practice, we are required to pre-train the single-task networks,
before stitching them together", survey Sec. 2.2.1): the ``pretrained`` option loads them from
runs of ``taskgrouper train``.

Parameter groups: the survey calls this *soft* parameter sharing (one network per task), and
this module follows the contract of :mod:`taskgrouper.models.arch.base`: no parameter counts as
shared (``shared_parameters()`` is empty, so balancers that need per-task gradients of shared
parameters are refused up front) and ``Outputs.rep`` is ``None``. ``task_parameters(t)`` is
task ``t``'s network: its backbone, its head and its row ``alpha_{t,.}`` of every unit (the
weights that compute ``x~_t``). Through the units, other tasks' losses reach these parameters
too; that coupling is the point of the method.

:class:`StitchedNetworks` (per-task networks, a fusion unit after every stage, per-task heads)
is shared with NDDR-CNN (:mod:`taskgrouper.models.arch.nddr`), which differs only in the unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.heads import build_head
from taskgrouper.tasks import TaskSpec

__all__ = [
    "CrossStitchNet",
    "CrossStitchUnit",
    "StitchedEncoder",
    "StitchedNetworks",
    "build_cross_stitch",
    "initial_alphas",
    "per_task_backbones",
    "stage_channels",
]


def initial_alphas(n_tasks: int, alpha_same: float, alpha_other: float | None
                   ) -> tuple[float, float]:
    """The (same-task, other-task) initial mixing weights.

    ``alpha_other=None`` spreads what ``alpha_same`` leaves over the other tasks,
    ``(1 - alpha_same) / (T - 1)``, so every row of the mixing matrix sums to one (0.9 and 0.1
    for two tasks, as Misra et al.; 0.9 and 0.025 for five).
    """
    if alpha_other is None:
        alpha_other = (1.0 - alpha_same) / (n_tasks - 1) if n_tasks > 1 else 0.0
    return float(alpha_same), float(alpha_other)


class CrossStitchUnit(nn.Module):
    """A cross-stitch unit: per channel, a T x T matrix mixing the tasks' activations.

    Misra et al. (2016), Eq. 1 of the survey with a separate ``alpha`` per channel. The weights
    are stored as one row per task, ``alpha[k]`` of shape ``(C, T)`` (row ``k`` computes task
    ``k``'s output), so each row belongs to its task's parameter group.

    Args:
        tasks: Task names, in the order of the activations ``forward`` takes.
        channels: Channels of the activations.
        alpha_same: Initial weight of a task's own activation.
        alpha_other: Initial weight of every other task's activation (see
            :func:`initial_alphas` for ``None``).
    """

    def __init__(self, tasks: Sequence[str], channels: int, alpha_same: float = 0.9,
                 alpha_other: float | None = None) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        same, other = initial_alphas(len(self.tasks), alpha_same, alpha_other)
        rows = {}
        for k, task in enumerate(self.tasks):
            row = torch.full((channels, len(self.tasks)), other)  # (C, T)
            row[:, k] = same
            rows[task] = nn.Parameter(row)
        self.alpha = nn.ParameterDict(rows)

    def matrix(self) -> torch.Tensor:
        """The mixing weights as one tensor ``(T_out, C, T_in)``."""
        return torch.stack([self.alpha[t] for t in self.tasks])

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # xs: T x (B, C, H, W) or T x (B, C)
        x = torch.stack(list(xs))  # (L, B, C, *S)
        flat = x.reshape(*x.shape[:3], -1)  # (L, B, C, N), N = H * W (1 for vectors)
        mixed = torch.einsum("kcl,lbcn->kbcn", self.matrix().to(flat.dtype), flat)  # (K, B, C, N)
        return list(mixed.reshape(x.shape).unbind(0))  # K x (B, C, *S)

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The row of weights that computes ``task``'s output."""
        return [self.alpha[task]]


class StitchedEncoder(nn.Module):
    """One backbone per task with a fusion unit after every stage.

    Stage ``j`` of every task's backbone runs on that task's input, the unit after stage ``j``
    maps the T stage outputs to T new activations, and those are both task ``t``'s stage-``j``
    features and the input of its stage ``j + 1``.

    Args:
        backbones: Task name -> that task's backbone (all with the same stages).
        units: One unit per stage: ``unit(list of T tensors) -> list of T tensors`` with a
            ``task_parameters(task)`` method.

    Attributes:
        backbones: ``nn.ModuleDict`` of task name -> backbone (its ``state_dict`` keys are
            those of a single-task network's ``encoder``).
        units: ``nn.ModuleList`` of the fusion units, shallow to deep.
    """

    def __init__(self, backbones: Mapping[str, nn.Module], units: Sequence[nn.Module]) -> None:
        super().__init__()
        self.tasks = tuple(backbones)
        self.backbones = nn.ModuleDict(dict(backbones))
        # The stage chains reuse the backbones' registered submodules (stages() only wraps
        # them), so they are kept as a plain attribute: parameters are registered once, under
        # the backbones' own names.
        self._chains = {t: tuple(b.stages()) for t, b in backbones.items()}
        depths = {t: len(c) for t, c in self._chains.items()}
        if len(set(depths.values())) != 1:
            raise InputError(f"task backbones have different numbers of stages: {depths}")
        if len(units) != len(next(iter(self._chains.values()))):
            raise InputError(f"{len(units)} fusion units for {next(iter(depths.values()))} "
                             "stages; give one unit per stage")
        self.units = nn.ModuleList(units)

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        # x: (B, Cin, H, W) or (B, D)
        inputs = [x] * len(self.tasks)
        features: dict[str, list[torch.Tensor]] = {t: [] for t in self.tasks}
        for j, unit in enumerate(self.units):
            outs = [self._chains[t][j](inp) for t, inp in zip(self.tasks, inputs, strict=True)]
            inputs = unit(outs)  # T x (B, C_j, H/s_j, W/s_j) or T x (B, C_j)
            for t, y in zip(self.tasks, inputs, strict=True):
                features[t].append(y)
        return features

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """Task ``task``'s backbone and its part of every unit."""
        yield from self.backbones[task].parameters()
        for unit in self.units:
            yield from unit.task_parameters(task)


class StitchedNetworks(MultiTaskModel):
    """Per-task networks fused after every stage, one head per task (cross-stitch, NDDR).

    Args:
        backbones: Task name -> that task's backbone.
        units: One fusion unit per stage (see :class:`StitchedEncoder`).
        tasks: Task name -> spec.
        backbone_name: The backbones' registry name.
        architecture: The architecture's name (for messages).

    Attributes:
        encoder: The :class:`StitchedEncoder` (everything before the heads; its cost is the
            encoder cost in standard network time, about T single-task encoders).
        heads: ``nn.ModuleDict`` of task name -> head on that task's fused features.
    """

    def __init__(self, backbones: Mapping[str, nn.Module], units: Sequence[nn.Module],
                 tasks: Mapping[str, TaskSpec], backbone_name: str | None = None,
                 architecture: str = "cross_stitch") -> None:
        super().__init__(tasks, backbone_name, architecture)
        if set(backbones) != set(tasks):
            raise InputError(f"{architecture}: one backbone per task is needed, got backbones "
                             f"for {sorted(backbones)} and tasks {sorted(tasks)}")
        self.architecture = architecture
        self.encoder = StitchedEncoder({t: backbones[t] for t in tasks}, units)
        self.heads = nn.ModuleDict({t: build_head(spec, backbones[t])
                                    for t, spec in tasks.items()})

    def forward(self, x: torch.Tensor) -> Outputs:
        input_hw = tuple(x.shape[-2:]) if x.dim() == 4 else None
        features = self.encoder(x)  # task -> [(B, C_j, H/s_j, W/s_j)]
        return Outputs({t: self.heads[t](features[t], input_hw) for t in self.tasks})

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """Task ``task``'s backbone, its rows of the fusion units and its head."""
        self._check_task(task)
        yield from self.encoder.task_parameters(task)
        yield from self.heads[task].parameters()

    def load_single_task(self, source: str | Path | Mapping[str, str | Path]) -> None:
        """Initialise every task's backbone and head from a single-task checkpoint.

        The checkpoints are the ``best.pt`` files that ``taskgrouper train`` writes for a
        hard-sharing network of that one task with the same backbone and ``model.width``
        (the survey: cross-stitch starts from pre-trained single-task networks). Only the
        encoder and that task's head are read; the fusion units keep their initial values.

        Args:
            source: A folder with one run folder per task (``source/<task>/best.pt``, e.g. the
                ``runs/`` folder of a search, whose single-task runs are named by their task),
                or a mapping task -> run folder or checkpoint file.

        Raises:
            ValueError: a task without a checkpoint, an unreadable file, or weights that do
                not fit (names the task, the file and the mismatching keys).
        """
        from taskgrouper.models.checkpoint import load_checkpoint

        for task, path in _checkpoint_paths(source, self.tasks, self.architecture).items():
            # plain data only: a crafted file is refused before any of it is unpickled
            state = load_checkpoint(path, "cpu", fix=(
                f"delete it and train task '{task}' alone again to rewrite it (`taskgrouper "
                f"train CONFIG --out {path.parent}` with that run's config: architecture "
                f"hard_sharing, same backbone and width)"))
            weights = state.get("model") if isinstance(state, dict) else None
            if not isinstance(weights, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, torch.Tensor)
                    for k, v in weights.items()):
                raise InputError(f"checkpoint '{path}' (task '{task}') has no 'model' weights; "
                                 "use a best.pt written by `taskgrouper train`")
            encoder = {k[len("encoder."):]: v for k, v in weights.items()
                       if k.startswith("encoder.")}
            prefix = f"heads.{task}."
            head = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            if not head:
                heads = sorted({k.split(".")[1] for k in weights if k.startswith("heads.")})
                raise InputError(f"checkpoint '{path}' has no head for task '{task}' (heads: "
                                 f"{', '.join(heads) or 'none'}); it must come from a "
                                 f"hard_sharing run that predicts '{task}'")
            _load_matching(self.encoder.backbones[task], encoder, path, task, "encoder",
                           self.backbone_name)
            _load_matching(self.heads[task], head, path, task, "head", self.backbone_name)


def _checkpoint_paths(source: str | Path | Mapping[str, str | Path], tasks: Sequence[str],
                      architecture: str) -> dict[str, Path]:
    if isinstance(source, Mapping):
        unknown = sorted(set(source) - set(tasks))
        if unknown:
            raise InputError(f"model.options.pretrained names task(s) {', '.join(unknown)} "
                             f"that the model does not predict ({', '.join(tasks)})")
        missing = [t for t in tasks if t not in source]
        if missing:
            raise InputError(f"model.options.pretrained has no checkpoint for task(s) "
                             f"{', '.join(missing)}; {architecture} starts every task's network "
                             "from its single-task run")
        paths = {t: Path(source[t]) for t in tasks}
    else:
        paths = {t: Path(source) / t for t in tasks}
    found = {}
    for task, path in paths.items():
        file = path / "best.pt" if path.is_dir() else path
        if not file.is_file():
            raise InputError(f"no single-task checkpoint for task '{task}': '{file}' does not "
                             f"exist; train that task alone (architecture hard_sharing, same "
                             f"backbone and width) with `taskgrouper train CONFIG --out {path}`")
        found[task] = file
    return found


def _load_matching(module: nn.Module, weights: Mapping[str, torch.Tensor], path: Path,
                   task: str, part: str, backbone_name: str | None) -> None:
    """``module.load_state_dict(weights)`` with an error that says what does not match."""
    own = module.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = [f"{k} {tuple(weights[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
              if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        details = "; ".join(f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                            for what, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("shape", shapes)) if keys)
        raise InputError(f"checkpoint '{path}' does not fit the {part} of task '{task}' "
                         f"({details}); it must come from a hard_sharing run with the same "
                         f"backbone ('{backbone_name}') and model.width as this model")
    module.load_state_dict(dict(weights))


class CrossStitchNet(StitchedNetworks):
    """Cross-stitch network: per-task backbones and a cross-stitch unit after every stage.

    Misra et al., "Cross-stitch Networks for Multi-task Learning" (CVPR 2016); survey
    Sec. 2.2.1, Eq. 1. See the module docstring for the parameter groups.

    Args:
        backbones: Task name -> that task's backbone (built separately, same architecture).
        tasks: Task name -> spec.
        alpha_same: Initial weight of a task's own activation.
        alpha_other: Initial weight of each other task's activation (``None``: rows sum to 1).
        backbone_name: The backbones' registry name.
    """

    def __init__(self, backbones: Mapping[str, nn.Module], tasks: Mapping[str, TaskSpec],
                 alpha_same: float = 0.9, alpha_other: float | None = None,
                 backbone_name: str | None = None) -> None:
        names = tuple(tasks)
        channels = stage_channels(backbones, names)
        units = [CrossStitchUnit(names, c, alpha_same, alpha_other) for c in channels]
        super().__init__(backbones, units, tasks, backbone_name, "cross_stitch")


def stage_channels(backbones: Mapping[str, nn.Module], tasks: Sequence[str]) -> list[int]:
    """The stage output channels, the same for every task's backbone."""
    if not tasks:
        raise InputError("a network per task needs at least one task")
    channels = list(backbones[tasks[0]].out_channels)
    for t in tasks:
        if list(backbones[t].out_channels) != channels:
            raise InputError(f"the backbone of task '{t}' has stage channels "
                             f"{list(backbones[t].out_channels)}, not {channels}")
    return channels


def per_task_backbones(make_backbone: Callable[[], nn.Module], tasks: Sequence[str]
                       ) -> dict[str, nn.Module]:
    """One fresh backbone per task (``make_backbone()`` called once per task)."""
    return {t: make_backbone() for t in tasks}


def build_cross_stitch(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec],
                       *, backbone_name: str | None = None, alpha_same: float = 0.9,
                       alpha_other: float | None = None,
                       pretrained: str | Mapping[str, str] | None = None) -> CrossStitchNet:
    """A cross-stitch network with one backbone per task.

    Args:
        make_backbone: Returns a fresh backbone; called once per task.
        tasks: Task name -> spec.
        backbone_name: The backbone's registry name.
        alpha_same: Initial same-task weight of every unit (Misra et al.: 0.9).
        alpha_other: Initial cross-task weight; ``None``: ``(1 - alpha_same) / (T - 1)``.
        pretrained: Where the single-task checkpoints are (see
            :meth:`StitchedNetworks.load_single_task`); ``None``: random initialisation.
    """
    model = CrossStitchNet(per_task_backbones(make_backbone, list(tasks)), tasks,
                           alpha_same=alpha_same, alpha_other=alpha_other,
                           backbone_name=backbone_name)
    if pretrained is not None:
        model.load_single_task(pretrained)
    return model

