"""NDDR-CNN: per-task networks fused by neural discriminative dimensionality reduction.

Gao et al., "NDDR-CNN: Layerwise Feature Fusing in Multi-Task CNNs by Neural Discriminative
Dimensionality Reduction" (CVPR 2019); survey of Vandenhende et al. (2021), Sec. 2.2.2. As in a
cross-stitch network (:mod:`taskgrouper.models.arch.cross_stitch`) every task has its own
backbone, and after every stage the tasks' features are fused; the fusion is an *NDDR layer*:
the T stage outputs are concatenated along channels, and for each task a 1 x 1 convolution
reduces the T*C channels back to C, followed by batch normalisation and a ReLU:

    x~_k = ReLU(BN_k(W_k * concat(x_1, ..., x_T)))        W_k: (C, T*C, 1, 1)

Initialisation (Gao et al.'s "diagonal" initialisation): ``W_k`` is ``alpha_same`` times the
identity on task k's own channels and ``alpha_other`` times the identity on every other task's
channels, zero elsewhere. The convolution then computes exactly the cross-stitch combination
``sum_l alpha_{k,l} x_l`` channel by channel (the survey: "NDDR-CNN behaves as a cross-stitch
network when the non-diagonal elements in the weight matrix of the convolutional layer are
zero"); batch norm and ReLU follow it as in the paper. Training may then fuse across channels.

Vector features ``(B, C)`` (the ``mlp`` backbone) are fused the same way, as ``(B, T*C, 1, 1)``
maps. Parameter groups as for cross-stitch: nothing counts as shared, task ``t`` owns its
backbone, its head and its NDDR layers (the ones computing ``x~_t``); ``Outputs.rep`` is
``None``.

Training as the authors train it (their released code, ethanygao/NDDR-CNN, whose scripts
under ``experiments/`` reproduce the paper's Tables 1-4 and 6, ablations included):

* Start: both task networks are restored from single-task networks fine-tuned on each task
  (``--restore-from-1/2=models/nyu_v2/slim_finetune_seg`` / ``..._normal`` in
  ``experiments/VGG16/NDDR.sh``; the ablation ``experiments/ablation/pretrained_weights``
  compares this with the DeepLab-VGG16 weights the single-task networks started from). The
  ``pretrained`` option loads finished single-task ``hard_sharing`` runs, encoder and head,
  as for cross-stitch
  (:meth:`~taskgrouper.models.arch.cross_stitch.StitchedNetworks.load_single_task`).
* Layers: ``--init-method=constant --init-weights=0.9,0.1``, the diagonal initialisation
  above (``nets/nddr_layer.py``; ablations ``experiments/ablation/NDDR_initialization``:
  0/1, 0.1/0.9, 0.5/0.5, 0.9/0.1, 1/0 and Xavier). For more than two tasks ``alpha_other``
  spreads ``1 - alpha_same`` over the other tasks (the survey's five-task implementation,
  ``configs/pascal/resnet18/nddr_cnn.yml``: 0.8 and 0.05). The convolution has no bias and
  batch norm starts at weight 1, bias 0 with a running-average momentum of 0.05 (the authors'
  batch-norm decay 0.95, ``nets/model_arg_scopes.py``; the survey's implementation copies it).
* Rate of the layers: ``--nddr-mult=100`` in every script (and the default in
  ``util/input_arguments.py``): every variable of the NDDR layers, convolution and batch norm,
  trains at 100 times the base rate (``ops/create_train_ops.py``); the ablation scripts
  ``experiments/ablation/NDDR_lr`` try 1, 10, 100 and 1000. The survey's implementation
  uses 100 as well. The ``unit_lr_scale`` option (default 100) is that multiplier:
  :meth:`~taskgrouper.models.arch.cross_stitch.StitchedNetworks.lr_scales` puts every
  parameter under ``encoder.units`` (the NDDR layers) into an optimiser group whose rate every
  schedule keeps at ``unit_lr_scale`` times its own.
* Optimiser: SGD with momentum 0.9 and polynomial decay (power 0.9), base rate 0.001; see
  the cross-stitch module on the multiplier under Adam.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from taskgrouper.models.arch.cross_stitch import (
    UNIT_LR_SCALE,
    StitchedNetworks,
    initial_alphas,
    per_task_backbones,
    stage_channels,
)
from taskgrouper.tasks import TaskSpec

__all__ = ["NDDRNet", "NDDRUnit", "build_nddr"]


class NDDRUnit(nn.Module):
    """One NDDR layer per task at one stage: concat, 1x1 conv, BN, ReLU (Gao et al., 2019).

    Args:
        tasks: Task names, in the order of the activations ``forward`` takes.
        channels: Channels C of each task's activation.
        alpha_same: Initial weight of a task's own channels.
        alpha_other: Initial weight of the same channel of each other task (``None``:
            ``(1 - alpha_same) / (T - 1)``).

    Attributes:
        reduce: Task name -> ``Sequential(Conv2d(T*C, C, 1), BatchNorm2d(C), ReLU)``; the
            batch norm's running averages move by 0.05 a step, as Gao et al.'s (decay 0.95).
    """

    def __init__(self, tasks: Sequence[str], channels: int, alpha_same: float = 0.9,
                 alpha_other: float | None = None) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        n = len(self.tasks)
        same, other = initial_alphas(n, alpha_same, alpha_other)
        self.reduce = nn.ModuleDict()
        eye = torch.eye(channels)
        for k, task in enumerate(self.tasks):
            conv = nn.Conv2d(n * channels, channels, 1, bias=False)
            # weight[c, l*C + c] = alpha_{k,l}: block l of the input channels, its diagonal
            blocks = [eye * (same if l == k else other) for l in range(n)]
            with torch.no_grad():
                conv.weight.copy_(torch.cat(blocks, dim=1)[:, :, None, None])  # (C, T*C, 1, 1)
            self.reduce[task] = nn.Sequential(conv, nn.BatchNorm2d(channels, momentum=0.05),
                                              nn.ReLU(inplace=True))

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # xs: T x (B, C, H, W) or T x (B, C)
        vector = xs[0].dim() == 2
        x = torch.cat(list(xs), dim=1)  # (B, T*C, H, W) or (B, T*C)
        if vector:
            x = x[:, :, None, None]  # (B, T*C, 1, 1)
        outs = [self.reduce[t](x) for t in self.tasks]  # T x (B, C, H, W)
        return [o.flatten(1) for o in outs] if vector else outs

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The NDDR layer that computes ``task``'s output."""
        return list(self.reduce[task].parameters())


class NDDRNet(StitchedNetworks):
    """NDDR-CNN: per-task backbones with an NDDR layer per task after every stage.

    Gao et al. (CVPR 2019); survey Sec. 2.2.2. See the module docstring.

    Args:
        backbones: Task name -> that task's backbone (built separately, same architecture).
        tasks: Task name -> spec.
        alpha_same: Initial weight of a task's own channels.
        alpha_other: Initial weight of the other tasks' channels (``None``: rows sum to 1).
        backbone_name: The backbones' registry name.
        head: Dense decoder of the dense tasks (``light`` or ``aspp``).
        unit_lr_scale: The NDDR layers' learning rate over the network's.
    """

    def __init__(self, backbones: Mapping[str, nn.Module], tasks: Mapping[str, TaskSpec],
                 alpha_same: float = 0.9, alpha_other: float | None = None,
                 backbone_name: str | None = None, head: str = "light",
                 unit_lr_scale: float = UNIT_LR_SCALE) -> None:
        names = tuple(tasks)
        channels = stage_channels(backbones, names)
        units = [NDDRUnit(names, c, alpha_same, alpha_other) for c in channels]
        super().__init__(backbones, units, tasks, backbone_name, "nddr", head=head,
                         unit_lr_scale=unit_lr_scale)


def build_nddr(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec], *,
               backbone_name: str | None = None, alpha_same: float = 0.9,
               alpha_other: float | None = None, head: str = "light",
               unit_lr_scale: float = UNIT_LR_SCALE,
               pretrained: str | Mapping[str, str] | None = None) -> NDDRNet:
    """An NDDR-CNN with one backbone per task.

    Args:
        make_backbone: Returns a fresh backbone; called once per task.
        tasks: Task name -> spec.
        backbone_name: The backbone's registry name.
        alpha_same: Initial same-task weight of the NDDR convolutions (Gao et al.: 0.9).
        alpha_other: Initial cross-task weight; ``None``: ``(1 - alpha_same) / (T - 1)``.
        head: Dense decoder of the dense tasks, as ``hard_sharing``'s ``head``.
        unit_lr_scale: The NDDR layers' learning rate over the network's (Gao et al.: 100).
        pretrained: Single-task runs for the backbones and heads, as for cross-stitch
            (:meth:`~taskgrouper.models.arch.cross_stitch.StitchedNetworks.load_single_task`);
            ``None``: random initialisation.
    """
    model = NDDRNet(per_task_backbones(make_backbone, list(tasks)), tasks,
                    alpha_same=alpha_same, alpha_other=alpha_other, backbone_name=backbone_name,
                    head=head, unit_lr_scale=unit_lr_scale)
    if pretrained is not None:
        model.load_single_task(pretrained)
    return model
