"""Hard parameter sharing: one shared encoder, one head per task (Caruana, 1997).

The network Standley et al. (2020) train for every candidate group of tasks, and the survey's
baseline multi-task network (Vandenhende et al., 2021, Sec. 2.1).

With the ``frozen_encoder`` option the encoder is read from another run's ``best.pt`` and
frozen: no gradient reaches it and its batch-norm layers stay in eval mode, so their running
statistics do not move while the heads train. That is a transfer readout (Standley et al.
2020, Sec. 5; Taskonomy): how well task ``j`` is predicted from task ``i``'s encoder
(:mod:`taskgrouper.train.transfer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.heads import build_head
from taskgrouper.tasks import TaskSpec

__all__ = ["HardSharingNet", "build_hard_sharing", "encoder_checkpoint", "last_weight_layer"]


def last_weight_layer(module: nn.Module) -> list[nn.Parameter]:
    """Parameters of the last convolution or linear layer of ``module`` (in registration
    order: the deepest layer of a sequential encoder)."""
    last = None
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            last = m
    return [] if last is None else [p for p in last.parameters() if p.requires_grad]


class HardSharingNet(MultiTaskModel):
    """One shared encoder and one head per task.

    ``forward`` is ``decode(encode(x), x.shape[-2:])``; the two halves are exposed separately so
    that gradient-balancing methods can act on the shared representation (``Outputs.rep`` is
    the encoder's stage outputs).

    Args:
        encoder: A backbone (see :mod:`taskgrouper.models.backbones`).
        tasks: Task name -> spec; one head is built per task.
        backbone_name: The backbone's registry name.
        head: Dense decoder of every dense task: ``light`` (the paper's) or ``aspp`` (the
            survey's DeepLab-v3 head).

    Attributes:
        encoder: The shared backbone.
        heads: ``nn.ModuleDict`` of task name -> head.
        encoder_frozen: True after :meth:`freeze_encoder`.
    """

    def __init__(self, encoder: nn.Module, tasks: Mapping[str, TaskSpec],
                 backbone_name: str | None = None, head: str = "light") -> None:
        super().__init__(tasks, backbone_name, "hard_sharing")
        self.encoder = encoder
        self.heads = nn.ModuleDict({name: build_head(spec, encoder, head)
                                    for name, spec in tasks.items()})
        self.encoder_frozen = False

    def freeze_encoder(self) -> None:
        """Stop training the encoder: no gradient for its parameters, and its normalisation
        layers kept in eval mode by :meth:`train` (running statistics fixed)."""
        self.encoder.requires_grad_(False)
        self.encoder_frozen = True
        self.encoder.eval()

    def train(self, mode: bool = True) -> HardSharingNet:
        """As :meth:`torch.nn.Module.train`, but a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def load_encoder(self, source: str | Path) -> Path:
        """Load the encoder's weights from a run's ``best.pt`` (or a run folder holding one).

        Only the ``encoder.*`` weights are read; the heads keep their own. The checkpoint is
        read as plain data (:func:`taskgrouper.models.checkpoint.load_checkpoint`): a file that
        holds anything else is refused before any of it is built.

        Returns:
            The checkpoint file read.

        Raises:
            InputError: no such file, no encoder weights in it, or weights that do not fit
                this encoder (another backbone, width or ``model.scale``, or another input).
        """
        from taskgrouper.models.checkpoint import load_checkpoint, state_mismatch

        path = encoder_checkpoint(source)
        fix = (f"train the source run again to rewrite it (`taskgrouper train CONFIG --out "
               f"{path.parent}` with that run's config)")
        state = load_checkpoint(path, "cpu", fix=fix)
        weights = state.get("model")
        if not isinstance(weights, Mapping) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
            raise InputError(f"checkpoint '{path}' has no 'model' weights; use a best.pt "
                             f"written by `taskgrouper train`")
        encoder = {k[len("encoder."):]: v for k, v in weights.items()
                   if k.startswith("encoder.")}
        details = state_mismatch(self.encoder.state_dict(), encoder)
        if details:
            raise InputError(f"checkpoint '{path}' does not fit this network's encoder "
                             f"({details}); the source must be a hard_sharing run with the same "
                             f"backbone ('{self.backbone_name}'), model.width, model.scale and "
                             f"input size")
        self.encoder.load_state_dict(encoder)
        return path

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone stage outputs, shallow to deep."""
        # (B, C, H, W) or (B, D) -> [(B, C_i, H/s_i, W/s_i)] or [(B, F)]
        return self.encoder(x)

    def decode(self, features: Sequence[torch.Tensor], input_hw: Sequence[int] | None = None,
               tasks: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Run the heads on shared features.

        Args:
            features: Output of :meth:`encode`.
            input_hw: Spatial size of the input; dense outputs are resized to it when they
                differ (``None`` for vector inputs).
            tasks: Heads to run (default: all).
        """
        names = self.tasks if tasks is None else tuple(tasks)
        return {name: self.heads[name](features, input_hw) for name in names}

    def forward(self, x: torch.Tensor) -> Outputs:
        input_hw = tuple(x.shape[-2:]) if x.dim() == 4 else None
        features = self.encode(x)
        return Outputs(self.decode(features, input_hw), rep=features)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the shared encoder (none once it is frozen)."""
        return (p for p in self.encoder.parameters() if p.requires_grad)

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """Parameters of one task's head."""
        self._check_task(task)
        return self.heads[task].parameters()

    def last_shared_layer(self) -> list[nn.Parameter]:
        return last_weight_layer(self.encoder)


def encoder_checkpoint(source: str | Path) -> Path:
    """The ``best.pt`` of ``source`` (a run folder, or the file itself).

    Raises:
        InputError: it does not exist (names the file and how to write it).
    """
    path = Path(source)
    file = path / "best.pt" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"model.options.frozen_encoder: '{file}' does not exist; point it at "
                         f"a finished run folder (or its best.pt), trained with "
                         f"`taskgrouper train CONFIG --out FOLDER` (hard_sharing, same "
                         f"backbone, width and model.scale)")
    return file


def build_hard_sharing(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec],
                       *, backbone_name: str | None = None, head: str = "light",
                       frozen_encoder: str | None = None) -> HardSharingNet:
    """The hard-sharing network on one backbone.

    Args:
        make_backbone: Returns the backbone.
        tasks: Task name -> spec.
        backbone_name: The backbone's registry name.
        head: The dense decoder: ``light`` or ``aspp``.
        frozen_encoder: A hard_sharing run folder (or its ``best.pt``) whose encoder is
            loaded and frozen (:meth:`HardSharingNet.freeze_encoder`); only the heads train.
            None: a fresh, trainable encoder.
    """
    model = HardSharingNet(make_backbone(), tasks, backbone_name=backbone_name, head=head)
    if frozen_encoder is not None:
        model.load_encoder(frozen_encoder)
        model.freeze_encoder()
    return model
