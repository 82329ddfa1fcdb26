"""PAP-Net: pattern-affinitive propagation across tasks (Zhang et al., CVPR 2019).

The decoder-focused architecture of the survey (Vandenhende et al., 2021, Sec. 2.3.2, Eq. 3):

1. a shared backbone; per dense task, a small network turns the deepest backbone features
   into task features ``F_t`` and an *initial prediction* (deep supervision, ``Outputs.aux``);
2. per task, a pixel-affinity matrix over the ``N = h * w`` pixels of ``F_t``,
   ``A_t = softmax_rows(F_t F_t^T)`` (``N x N``, each row a distribution over pixels);
3. per target task ``k``, the cross-task matrix ``M_k = sum_t alpha_{k,t} A_t`` (Eq. 3) with
   learned weights normalised by a softmax over the source tasks ``t`` (so ``M_k`` stays
   row-stochastic);
4. task-specific propagation: the diffusion ``Z_{s+1} = beta M_k Z_s + (1 - beta) Z_0`` with
   ``Z_0 = F_k`` for ``diffusion_steps`` iterations, spreading the cross-task affinity patterns
   over the image;
5. final heads on the diffused features.

Image-level tasks take no part in the propagation (see :class:`PAPNet`).

Memory: every affinity matrix has ``N^2`` entries per sample (32 x 32 features: 1 M entries,
4 MB in float32), and there are ``2T`` of them (``A_t`` and ``M_k``) per sample, kept for the
backward pass. When ``h * w`` exceeds ``max_affinity_pixels`` the task features are average
pooled to the largest grid with at most that many pixels, affinities and diffusion run there,
and the *change* the diffusion made (``Z - F`` at the reduced scale) is upsampled bilinearly
and added to the full-resolution features; without reduction this equals ``Z`` exactly.
``bench/bench_papnet_memory.py`` measures the peak memory.

Affinities and diffusion are computed in float32 even under autocast (a softmax over up to
1024 logits in bfloat16 loses the small affinities).

Training: the initial predictions are deeply supervised like PAD-Net's (each ``Outputs.aux``
loss added to its task's loss with weight 1, the weight the survey gives the initial
predictions of PAD-Net and MTI-Net), and the survey benchmarks PAP-Net with the same optimiser
grid, poly schedule and fixed task weights as every other architecture, so nothing in its
training is the model's own: the ``train`` and ``balancer`` settings give it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.arch.hard_sharing import last_weight_layer
from taskgrouper.models.heads import (
    HEAD_KINDS,
    GlobalHead,
    TaskHead,
    build_head,
    decoder_scale,
    dense_decoder,
)
from taskgrouper.models.layers import init_weights, scale_channels
from taskgrouper.tasks import TaskSpec, closest

__all__ = [
    "PAPNet",
    "affinity",
    "build_papnet",
    "diffuse",
    "final_head",
    "initial_head",
    "reduced_grid",
]

#: Task-feature channels at width 1 when ``channels`` is not given (times the backbone's
#: channel multiplier).
BASE_CHANNELS = 64


def initial_head(spec: TaskSpec, channels: int) -> TaskHead:
    """A prediction at the features' own resolution (deep supervision).

    Dense kinds: a ``1 x 1`` convolution (the trainer upsamples it to the label size); image-
    level kinds: global pooling and a linear layer. The task's output conventions (unit normals,
    squeezed binary logits) are applied by :class:`~taskgrouper.models.heads.TaskHead`.
    """
    core: nn.Module = (nn.Conv2d(channels, spec.channels, 1) if spec.dense
                       else GlobalHead(channels, spec.channels))
    init_weights(core)
    return TaskHead(spec, core)


def final_head(spec: TaskSpec, channels: int, stride: int, kind: str = "light",
               scale: float = 1.0) -> TaskHead:
    """The final head on task features of ``channels`` at ``stride``: for dense kinds the
    decoder ``kind`` (``light``: :class:`~taskgrouper.models.heads.LightDecoder`, ``aspp``)
    upsampling by ``stride``, narrowed by the encoder's ``scale``, else a
    :class:`~taskgrouper.models.heads.GlobalHead`."""
    core: nn.Module = (dense_decoder(kind, channels, spec.channels, stride, scale=scale)
                       if spec.dense
                       else GlobalHead(channels, spec.channels))
    return TaskHead(spec, core)


def reduced_grid(h: int, w: int, max_pixels: int) -> tuple[int, int]:
    """The grid the affinities are computed on: ``(h, w)`` when ``h * w <= max_pixels``, else
    ``(ceil(h / f), ceil(w / f))`` for the smallest integer factor ``f`` that fits.

    Example: 64 x 64 features with ``max_pixels=1024``: ``f = 2``, a 32 x 32 grid.
    """
    if max_pixels < 1:
        raise InputError(f"max_affinity_pixels must be at least 1, got {max_pixels}")
    f = max(1, math.ceil(math.sqrt(h * w / max_pixels)))
    while math.ceil(h / f) * math.ceil(w / f) > max_pixels:
        f += 1
    return math.ceil(h / f), math.ceil(w / f)


def affinity(features: torch.Tensor) -> torch.Tensor:
    """Pixel affinities ``softmax_rows(F F^T)`` of ``(B, C, h, w)`` features.

    Returns:
        ``(B, N, N)`` with ``N = h * w``; row ``i`` is a distribution over pixels ``j``.
    """
    flat = features.flatten(2).transpose(1, 2).float()  # (B, N, C)
    logits = torch.bmm(flat, flat.transpose(1, 2))  # (B, N, N)
    return torch.softmax(logits, dim=-1)


def diffuse(matrix: torch.Tensor, features: torch.Tensor, steps: int,
            beta: float) -> torch.Tensor:
    """``steps`` iterations of ``Z <- beta M Z + (1 - beta) Z_0`` (PAP-Net's task-specific
    propagation).

    Args:
        matrix: ``(B, N, N)`` row-stochastic propagation matrix.
        features: ``(B, C, h, w)`` with ``h * w = N``; ``Z_0``.
        steps: Iterations (0 returns the features unchanged).
        beta: Weight of the propagated term.

    Returns:
        ``(B, C, h, w)`` float32.
    """
    b, c, h, w = features.shape
    z0 = features.flatten(2).transpose(1, 2).float()  # (B, N, C)
    z = z0
    for _ in range(steps):
        z = beta * torch.bmm(matrix, z) + (1.0 - beta) * z0  # (B, N, C)
    return z.transpose(1, 2).reshape(b, c, h, w)


def _no_autocast(device: torch.device):
    """A context that turns autocast off on ``device`` (a no-op on devices without one, such as
    the meta device the FLOP counter uses)."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


class _TaskFeatures(nn.Sequential):
    """Task-specific network: two 3x3 conv-BN-ReLU layers on the backbone features."""

    def __init__(self, cin: int, channels: int) -> None:
        super().__init__(
            nn.Conv2d(cin, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True))
        init_weights(self)


def _reach_group(dense: tuple[str, ...], tasks: tuple[str, ...]) -> str | None:
    """Who owns the dense tasks' feature networks, which every dense task's loss reaches
    through the propagation: the one dense task when there is one, ``"shared"`` when every
    task is dense, else None (reached by some tasks but not all: in neither group)."""
    if len(dense) == 1:
        return dense[0]
    if dense and len(dense) == len(tasks):
        return "shared"
    return None


class PAPNet(MultiTaskModel):
    """Pattern-affinitive propagation network (Zhang et al., 2019; survey Eq. 3).

    See the module docstring for the computation, which runs over the dense tasks. Image-level
    tasks (classification, binary, regression) have no pixels to relate: each reads the
    globally pooled deepest backbone features through a linear layer, as in hard sharing.

    Parameter groups: the backbone is shared. A dense task's feature network is reached by its
    own loss and, through the mixing weights ``alpha`` (all positive), by every other dense
    task's loss: it is shared when every task is dense, the task's own when it is the only
    dense task, and in neither group when image-level tasks are mixed with two or more dense
    ones. A task's own parameters are its initial head, its mixing weights ``alpha_k`` and its
    final head. ``Outputs.rep`` is the backbone's stage outputs.

    Args:
        backbone: An image backbone.
        tasks: Task name -> spec.
        backbone_name: The backbone's registry name.
        channels: Channels of the task features (None: 64 times the backbone's channel
            multiplier, a multiple of 4, at least 8).
        diffusion_steps: Diffusion iterations.
        beta: Weight of the propagated term in each iteration, in ``[0, 1]``.
        max_affinity_pixels: Largest ``N`` the affinities are computed at.
        head: Final dense head, ``light`` or ``aspp``.

    Attributes:
        encoder: The shared backbone (what standard network time counts).
    """

    def __init__(self, backbone: nn.Module, tasks: Mapping[str, TaskSpec], *,
                 backbone_name: str | None = None, channels: int | None = None,
                 diffusion_steps: int = 3, beta: float = 0.5,
                 max_affinity_pixels: int = 1024, head: str = "light") -> None:
        super().__init__(tasks, backbone_name, "papnet")
        if not getattr(backbone, "spatial", False):
            raise InputError("architecture 'papnet' needs an image backbone (xception, resnet "
                             "or hrnet); its pixel affinities need feature maps")
        if head not in HEAD_KINDS:
            raise InputError(f"model.options.head: unknown dense head '{head}'; "
                             f"{closest(head, HEAD_KINDS)}")
        if channels is None:
            channels = scale_channels(BASE_CHANNELS, getattr(backbone, "width", 1.0))
        if channels < 1 or diffusion_steps < 0 or not 0.0 <= beta <= 1.0:
            raise InputError(f"papnet options: channels >= 1, diffusion_steps >= 0 and "
                             f"0 <= beta <= 1 are needed, got channels={channels}, "
                             f"diffusion_steps={diffusion_steps}, beta={beta}")
        reduced_grid(1, 1, max_affinity_pixels)  # validates
        self.encoder = backbone
        self.dense = tuple(t for t, spec in tasks.items() if spec.dense)
        self.channels = int(channels)
        self.diffusion_steps = int(diffusion_steps)
        self.beta = float(beta)
        self.max_affinity_pixels = int(max_affinity_pixels)
        cin, stride = backbone.out_channels[-1], backbone.strides[-1]
        self.features = nn.ModuleDict({t: _TaskFeatures(cin, channels) for t in self.dense})
        self.initial = nn.ModuleDict({t: initial_head(tasks[t], channels) for t in self.dense})
        # alpha_{k, .} = softmax(mix[k]) over the dense tasks: equal weights at the start
        self.mix = nn.ParameterDict({t: nn.Parameter(torch.zeros(len(self.dense)))
                                     for t in self.dense})
        self.final = nn.ModuleDict({t: final_head(spec, channels, stride, head,
                                                  decoder_scale(backbone)) if spec.dense
                                    else build_head(spec, backbone)
                                    for t, spec in tasks.items()})

    def alpha(self) -> torch.Tensor:
        """The normalised mixing weights, ``(D, D)`` over the ``D`` dense tasks: row ``k``
        weighs the source tasks' affinities for target task ``k`` and sums to 1."""
        return torch.stack([torch.softmax(self.mix[t], dim=0) for t in self.dense])

    def propagate(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cross-task and task-specific propagation of the dense tasks' features
        ``(B, C, h, w)`` (keyed like :attr:`dense`)."""
        first = next(iter(features.values()))
        h, w = first.shape[-2:]
        grid = reduced_grid(h, w, self.max_affinity_pixels)
        reduce = grid != (h, w)
        with _no_autocast(first.device):
            low = {t: F.adaptive_avg_pool2d(features[t].float(), grid) if reduce
                   else features[t].float() for t in self.dense}  # (B, C, h', w')
            maps = torch.stack([affinity(low[t]) for t in self.dense])  # (D, B, N, N)
            alpha = self.alpha().float()  # (D, D)
            out = {}
            for k, t in enumerate(self.dense):
                matrix = torch.einsum("s,sbij->bij", alpha[k], maps)  # (B, N, N), Eq. 3
                z = diffuse(matrix, low[t], self.diffusion_steps, self.beta)  # (B, C, h', w')
                if reduce:  # add the upsampled change to the full-resolution features
                    delta = F.interpolate(z - low[t], size=(h, w), mode="bilinear",
                                          align_corners=False)
                    z = features[t].float() + delta  # (B, C, h, w)
                out[t] = z.to(features[t].dtype)
        return out

    def forward(self, x: torch.Tensor) -> Outputs:
        input_hw = tuple(x.shape[-2:])
        stages = self.encoder(x)  # [(B, C_i, H/s_i, W/s_i)]
        deep = stages[-1]  # (B, C, h, w)
        feats = {t: self.features[t](deep) for t in self.dense}  # (B, c, h, w)
        aux = {t: [self.initial[t]([feats[t]])] for t in self.dense}  # at (h, w)
        refined = self.propagate(feats) if feats else {}  # (B, c, h, w)
        final = {t: self.final[t]([refined[t]], input_hw) if t in refined
                 else self.final[t](stages) for t in self.tasks}
        return Outputs(final, aux=aux, rep=stages)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The backbone, and the feature networks when every task is dense (two or more)."""
        yield from self.encoder.parameters()
        if _reach_group(self.dense, self.tasks) == "shared":
            yield from self.features.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's initial head, mixing weights and final head (and its feature network
        when it is the only dense task)."""
        self._check_task(task)
        if task in self.dense:
            if _reach_group(self.dense, self.tasks) == task:
                yield from self.features[task].parameters()
            yield from self.initial[task].parameters()
            yield self.mix[task]
        yield from self.final[task].parameters()

    def last_shared_layer(self) -> list[nn.Parameter]:
        return last_weight_layer(self.encoder)


def build_papnet(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec], *,
                 backbone_name: str | None = None, channels: int | None = None,
                 diffusion_steps: int = 3, beta: float = 0.5,
                 max_affinity_pixels: int = 1024, head: str = "light") -> PAPNet:
    """PAP-Net on one shared backbone (options: see :class:`PAPNet`)."""
    return PAPNet(make_backbone(), tasks, backbone_name=backbone_name,
                  channels=None if channels is None else int(channels),
                  diffusion_steps=int(diffusion_steps), beta=float(beta),
                  max_affinity_pixels=int(max_affinity_pixels), head=str(head))
