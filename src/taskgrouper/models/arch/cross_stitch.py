"""Cross-stitch networks: one network per task, fused after every stage (Misra et al., 2016).

Each task has its own backbone. After every backbone stage a *cross-stitch unit* replaces each
task's activation by a learned linear combination of all tasks' activations at that stage,
channel by channel (Vandenhende et al., 2021, Sec. 2.2.1, Eq. 1, written for T tasks):

    x~_k[c] = sum_l alpha_{k,l}[c] * x_l[c]        k, l = 1..T, c = channel

The mixed activations feed the next stage of each task's network; the heads read each task's
mixed features.

Training as the paper trains it (Misra et al. 2016, Sec. 5, ablations on NYU-v2):

* Start: the networks start from single-task networks ("in practice, we are required to
  pre-train the single-task networks, before stitching them together", survey Sec. 2.2.1).
  Misra et al. Sec. 5.3, Table 3: one-task networks fine-tuned on each task beat ImageNet
  networks as the starting point, for both tasks. The ``pretrained`` option loads them from
  finished single-task ``hard_sharing`` runs of ``taskgrouper train``, encoder and head
  (:meth:`StitchedNetworks.load_single_task`).
* Units: Sec. 5.1, Table 1 initialises every unit as a convex combination, the same-task
  weight ``alpha_S`` and the other-task weight ``alpha_D`` summing to one, and compares
  (0.1, 0.9), (0.5, 0.5), (0.7, 0.3) and (0.9, 0.1); (0.9, 0.1) is the best and the default
  here (``alpha_same``; ``alpha_other`` spreads ``1 - alpha_same`` over the other tasks, so
  every row sums to one for any number of tasks). The survey's released implementation
  (SimonVandenhende/Multi-Task-Learning-PyTorch) uses ``alpha: 0.9, beta: 0.1`` for two
  tasks (``configs/nyud/resnet50/cross_stitch.yml``) and ``0.8, 0.05`` for five
  (``configs/pascal/resnet18/cross_stitch.yml``), rows summing to one as well.
* Rate of the units: Sec. 5.2, Table 2 trains the units at 1, 10, 10^2 and 10^3 times the
  network's learning rate (Caffe's ``lr_mult``): the units' values are one to two orders of
  magnitude larger than the layers' weights and their gradient steps too small at the
  network's rate; 10^2 to 10^3 is the best range, and higher made the loss diverge. The
  survey's implementation trains them at 100 times the rate (``get_optimizer`` in
  ``utils/common_config.py``). The ``unit_lr_scale`` option (default 100, the low end of the
  best range, which also keeps away from the divergence above it) is that multiplier:
  :meth:`StitchedNetworks.lr_scales` puts every parameter under ``encoder.units`` into an
  optimiser group whose rate every schedule keeps at ``unit_lr_scale`` times its own.
* Optimiser: both papers train with SGD and momentum, and the survey's implementation accepts
  only SGD for these two architectures. Under Adam a parameter's step is about the learning
  rate whatever the size of its gradient, so a scale of 100 moves a unit's weights by up to
  100 times the rate per step; ``unit_lr_scale: 1`` switches the scaling off. Measured once on
  the synthetic scenes (tasks s, d, n, e at 32 x 32, ``shallow`` backbone, Adam at 0.004, one
  seed): from single-task runs, 100 gave lower summed test losses than 1 for both
  architectures (cross-stitch 0.913 against 0.954, NDDR 0.889 against 0.926), and both beat
  starting from scratch (1.052 and 1.026 at 1).

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

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

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
    "UNIT_LR_SCALE",
    "build_cross_stitch",
    "check_unit_lr_scale",
    "initial_alphas",
    "per_task_backbones",
    "stage_channels",
]

#: The units' learning-rate multiplier (Misra et al. Sec. 5.2: 10^2 to 10^3 best; the survey's
#: implementation: 100; Gao et al.'s NDDR-CNN scripts: ``--nddr-mult=100``).
UNIT_LR_SCALE = 100.0


def check_unit_lr_scale(value: Any) -> float:
    """``value`` as a float, or an InputError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value > 0):
        raise InputError(f"model.options.unit_lr_scale must be a positive number (the fusion "
                         f"units' learning rate over the network's; the papers use 100), got "
                         f"{value!r}")
    return float(value)


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
        head: Dense decoder of every dense task, as ``hard_sharing``'s option of that name
            (``light`` or ``aspp``): a single-task run's head loads only into the same kind.
        unit_lr_scale: The units' learning rate over the network's (:meth:`lr_scales`).

    Attributes:
        encoder: The :class:`StitchedEncoder` (everything before the heads; its cost is the
            encoder cost in standard network time, about T single-task encoders).
        heads: ``nn.ModuleDict`` of task name -> head on that task's fused features.
        head: The kind of dense head.
        unit_lr_scale: The units' learning-rate multiplier.
    """

    def __init__(self, backbones: Mapping[str, nn.Module], units: Sequence[nn.Module],
                 tasks: Mapping[str, TaskSpec], backbone_name: str | None = None,
                 architecture: str = "cross_stitch", head: str = "light",
                 unit_lr_scale: float = UNIT_LR_SCALE) -> None:
        super().__init__(tasks, backbone_name, architecture)
        if set(backbones) != set(tasks):
            raise InputError(f"{architecture}: one backbone per task is needed, got backbones "
                             f"for {sorted(backbones)} and tasks {sorted(tasks)}")
        self.architecture = architecture
        self.head = head
        self.unit_lr_scale = check_unit_lr_scale(unit_lr_scale)
        self.encoder = StitchedEncoder({t: backbones[t] for t in tasks}, units)
        self.heads = nn.ModuleDict({t: build_head(spec, backbones[t], head)
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

    def lr_scales(self) -> dict[str, float]:
        """Every parameter of the fusion units (cross-stitch weights; NDDR convolutions and
        their batch norms) trains at ``unit_lr_scale`` times the schedule's rate."""
        return {"encoder.units": self.unit_lr_scale}

    def load_single_task(self, source: str | Path | Mapping[str, str | Path]) -> None:
        """Initialise every task's backbone and head from a single-task checkpoint.

        The checkpoints are the ``best.pt`` files that ``taskgrouper train`` writes for a
        ``hard_sharing`` network of that one task with the same backbone, ``model.width``,
        ``model.scale`` and ``model.options.head`` (the head option's default is the same,
        ``light``, in both architectures). Task ``t``'s backbone gets the checkpoint's
        ``encoder.*`` weights and its head the checkpoint's ``heads.t.*`` weights, batch-norm
        statistics included, exactly (the whole single-task network, as the papers start);
        a head of another layout is an error, not skipped. The fusion units keep their initial
        values. Heads of other tasks in the checkpoint are ignored.

        When a run folder is given (or a ``best.pt`` inside one), its ``config.json`` is
        checked too: the run must have finished (``metrics.json``; until then ``best.pt``
        holds the best epoch so far), trained ``hard_sharing`` with its own encoder (no
        ``frozen_encoder``), on this backbone and with this head.

        Args:
            source: A mapping task -> that task's run folder (holding ``best.pt``) or the
                ``best.pt`` file itself, one entry per task of the model; or one folder
                holding a run folder per task, named by the task (``source/<task>/best.pt``).

        Raises:
            InputError: a task without a checkpoint, an unfinished or unsuitable run, a file
                that is not a checkpoint (or holds Python objects: it is not unpickled), or
                weights that do not fit (names the task, the file and the fix).
        """
        from taskgrouper.models.checkpoint import CheckpointError, load_checkpoint

        for task, path in _checkpoint_paths(source, self.tasks, self.architecture).items():
            _check_source_run(path, task, self.architecture, self.backbone_name,
                              self.head if self.specs[task].dense else None)
            # plain data only: a crafted file is refused before any of it is unpickled
            try:
                state = load_checkpoint(path, "cpu", fix=(
                    f"delete it and train task '{task}' alone again to rewrite it (`taskgrouper "
                    f"train CONFIG --out {path.parent}` with that run's config: architecture "
                    f"hard_sharing, same backbone and width)"))
            except CheckpointError as err:
                raise InputError(f"model.options.pretrained, task '{task}': {err}") from None
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
        bad = [t for t in tasks if not isinstance(source[t], str | Path)]
        if bad:
            raise InputError(f"model.options.pretrained: the entry of task '{bad[0]}' is "
                             f"{source[bad[0]]!r}; give a run folder or a best.pt path")
        paths = {t: Path(source[t]) for t in tasks}
    elif isinstance(source, str | Path):
        paths = {t: Path(source) / t for t in tasks}
    else:
        raise InputError(f"model.options.pretrained is {source!r}; give a mapping task -> "
                         f"single-task run folder (or its best.pt), or a folder holding one "
                         f"run folder per task")
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
    from taskgrouper.models.checkpoint import state_mismatch

    details = state_mismatch(module.state_dict(), weights)
    if details:
        raise InputError(f"checkpoint '{path}' does not fit the {part} of task '{task}' "
                         f"({details}); it must come from a hard_sharing run with the same "
                         f"backbone ('{backbone_name}') and model.width, model.scale and "
                         f"model.options.head as this model")
    module.load_state_dict(dict(weights))


def _check_source_run(file: Path, task: str, architecture: str, backbone_name: str | None,
                      head: str | None) -> None:
    """Refuse a ``best.pt`` whose run folder (its ``config.json``) says it is not a finished
    single-task network this model can start from (``head``: this model's kind of dense head,
    None for an image-level task, whose head is the same whatever the option). A file outside
    a run folder is only checked when loaded."""
    run = file.parent
    config_file = run / "config.json"
    if file.name != "best.pt" or not config_file.is_file():
        return
    where = f"model.options.pretrained, task '{task}': run '{run}'"
    if not (run / "metrics.json").is_file():
        raise InputError(f"{where} has not finished (no metrics.json): its best.pt holds the "
                         f"best epoch so far, not the trained network; let it finish "
                         f"(`taskgrouper train CONFIG --out {run}` resumes it) before "
                         f"{architecture} starts from it")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{where}: its config.json cannot be read ({err}); train that task "
                         f"alone again into a new folder") from None
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        return  # not a config this check understands; the weights are still checked
    options = model.get("options") if isinstance(model.get("options"), dict) else {}
    arch = model.get("architecture", "hard_sharing")
    if arch != "hard_sharing":
        raise InputError(f"{where} trained architecture '{arch}'; {architecture} starts from "
                         f"single-task hard_sharing runs: point it at task '{task}''s "
                         f"single-task run")
    if options.get("frozen_encoder") is not None:
        raise InputError(f"{where} is a transfer readout (its encoder was read from "
                         f"'{options['frozen_encoder']}' and frozen), not task '{task}''s own "
                         f"network; point it at task '{task}''s single-task run")
    backbone = model.get("backbone")
    if backbone_name is not None and backbone is not None and backbone != backbone_name:
        raise InputError(f"{where} trained backbone '{backbone}', this model has "
                         f"'{backbone_name}'; use single-task runs of the same backbone, "
                         f"model.width and model.scale")
    from taskgrouper.models.arch import arch_info

    theirs = options.get("head", arch_info("hard_sharing").options["head"])
    if head is not None and theirs != head:
        raise InputError(f"{where} trained '{theirs}' heads and this model has '{head}' "
                         f"heads; set model.options.head: {theirs} for {architecture} (or "
                         f"train the single-task runs with head '{head}')")


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
        head: Dense decoder of the dense tasks (``light`` or ``aspp``).
        unit_lr_scale: The units' learning rate over the network's.
    """

    def __init__(self, backbones: Mapping[str, nn.Module], tasks: Mapping[str, TaskSpec],
                 alpha_same: float = 0.9, alpha_other: float | None = None,
                 backbone_name: str | None = None, head: str = "light",
                 unit_lr_scale: float = UNIT_LR_SCALE) -> None:
        names = tuple(tasks)
        channels = stage_channels(backbones, names)
        units = [CrossStitchUnit(names, c, alpha_same, alpha_other) for c in channels]
        super().__init__(backbones, units, tasks, backbone_name, "cross_stitch", head=head,
                         unit_lr_scale=unit_lr_scale)


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
                       alpha_other: float | None = None, head: str = "light",
                       unit_lr_scale: float = UNIT_LR_SCALE,
                       pretrained: str | Mapping[str, str] | None = None) -> CrossStitchNet:
    """A cross-stitch network with one backbone per task.

    Args:
        make_backbone: Returns a fresh backbone; called once per task.
        tasks: Task name -> spec.
        backbone_name: The backbone's registry name.
        alpha_same: Initial same-task weight of every unit (Misra et al.: 0.9).
        alpha_other: Initial cross-task weight; ``None``: ``(1 - alpha_same) / (T - 1)``.
        head: Dense decoder of the dense tasks, as ``hard_sharing``'s ``head``.
        unit_lr_scale: The units' learning rate over the network's (Misra et al. Sec. 5.2:
            10^2 to 10^3; default 100, as the survey's implementation).
        pretrained: Where the single-task runs are (see
            :meth:`StitchedNetworks.load_single_task`); ``None``: random initialisation.
    """
    model = CrossStitchNet(per_task_backbones(make_backbone, list(tasks)), tasks,
                           alpha_same=alpha_same, alpha_other=alpha_other,
                           backbone_name=backbone_name, head=head, unit_lr_scale=unit_lr_scale)
    if pretrained is not None:
        model.load_single_task(pretrained)
    return model

