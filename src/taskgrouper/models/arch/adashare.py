"""AdaShare: learning, per task, which residual blocks to execute (Sun et al., NeurIPS 2020).

One residual backbone serves every task; each task learns a policy that selects (executes) or
skips each residual block, so tasks share a block when they both select it and the network
gets more compact where tasks skip blocks (the review in seed 001 describes the method).

Policy learning
---------------
Per task ``k`` and residual block ``l`` there are two logits (execute, skip); ``alpha_{l,k}``
is the probability of executing, their softmax's first entry. In the training mode of the
search phase, each step draws one straight-through Gumbel-Softmax sample per task and block
(hard 0/1 forward, soft gradient; temperature ``tau_init * tau_decay ** (e - 1)`` in search
epoch ``e``), and the block's output is ``u_exec * block(h) + u_skip * skip(h)``. Skipping
keeps the residual shortcut: the identity, or the block's ``1 x 1`` projection where the block
changes shape (the downsampling blocks), so skipped and executed outputs have the same shape.

Losses added outside balancing (:meth:`AdaShareNet.regularization`), over the blocks whose
policies are being learned:

* sparsity: ``L_sp = sum_{l, k} log alpha_{l,k}`` (minimising it favours skipping);
* sharing: ``L_sh = sum_{k1, k2} sum_l (L - l) / L * |alpha_{l,k1} - alpha_{l,k2}|`` over
  ordered pairs of tasks and blocks ``l = 1..L`` (blocks nearer the input weigh more, so
  tasks are pushed to share the early blocks);

weighted by ``sparsity_weight`` and ``sharing_weight``.

Curriculum: in search epoch ``e`` only the policies of the last ``k = min(L, e * step)`` blocks
are learned; the others are executed by every task (and take no part in the losses above).
``curriculum_step = 0`` spreads the blocks evenly, ``step = ceil(L / S)`` for ``S`` search
epochs, so the last search epoch learns every block; ``curriculum_step = 1`` is the paper's
one block per epoch.

Phases
------
``on_epoch_start(epoch, epochs)`` drives them: epochs ``1..S`` search (``S`` from
``search_epochs``: below 1 a fraction of ``epochs``, else a count); at epoch ``S + 1`` the final
policy is drawn from the learned distribution (``final_policy``: ``argmax`` takes the likelier
choice, ``sample`` draws it; blocks the curriculum never reached stay executed), every weight
of the backbone and heads is re-initialised, the policy logits are frozen, and the method
returns ``True`` so the trainer rebuilds its optimiser and restarts early stopping: the
network is retrained from scratch with the fixed policy. With ``S >= epochs`` there is no
retraining and evaluation uses the likelier choice of each policy. Phase, temperature,
curriculum position and the final policy are buffers, so a checkpoint resumes correctly.

In eval mode the policy is deterministic: the fixed policy after the switch, the likelier
choice of each learned policy during search (read on the host once per forward pass; eval is
outside the gradient steps). Tasks whose inputs to a block are the same tensor and take the
same decision share one evaluation of it, so the FLOP count is the real cost of the policy.

Backbones: ``resnet`` (every basic block of its ``blocks`` stages) and ``xception`` (its
residual blocks: the three entry blocks, the middle blocks and the exit block; the stem and the
final separable convolution are always executed). Others raise a ``ValueError``.

Parameter groups: ``shared_parameters()`` is the whole backbone (any task may use any block);
a task's own parameters are its head and its policy logits. ``Outputs.rep`` is the output of
the stem, the last representation every task computes identically whatever the policies.

Cost: ``model.encoder`` is the gated backbone (:class:`AdaShareEncoder`), so the encoder cost
in standard network time is that of the current policy: less than the plain backbone's where
tasks skip blocks, more where tasks whose paths diverged run blocks on different inputs.

Departures and choices: network weights and policy logits are optimised jointly by the
trainer's one optimiser on the same batches (the paper alternates them on separate splits and
warms the network up with every block executed first; there is no separate warm-up here, only
the curriculum's executed blocks); one final policy is drawn (the paper draws several and
keeps the best on validation). The loss weights (0.05 each) and the equal initial logits
are taskgrouper's defaults; ``tau_init=5`` and ``tau_decay=0.965`` are the schedule we
understand the AdaShare authors used, not a value from the seed text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.arch.base import MultiTaskModel, Outputs
from taskgrouper.models.arch.hard_sharing import last_weight_layer
from taskgrouper.models.backbones import DilatedResNet, XceptionEncoder
from taskgrouper.models.heads import HEAD_KINDS, GlobalHead, TaskHead, build_head
from taskgrouper.models.layers import init_weights
from taskgrouper.tasks import TaskSpec, closest

__all__ = [
    "AdaShareEncoder",
    "AdaShareNet",
    "build_adashare",
    "reinitialise",
    "residual_layout",
    "sharing_depth_weights",
]

SEARCH, RETRAIN = 0, 1
FINAL_POLICIES = ("argmax", "sample")


def residual_layout(backbone: nn.Module) -> tuple[list[nn.Module], list[nn.Module],
                                                  list[nn.Module]]:
    """Split a backbone into (always-run prefix, gated residual blocks, always-run suffix).

    Every gated block has a ``shortcut`` module (the identity or a projection), which is what
    skipping it runs.

    Raises:
        ValueError: A backbone without residual blocks AdaShare knows.
    """
    if isinstance(backbone, DilatedResNet):
        return [backbone.stem], [b for stage in backbone.blocks for b in stage], []
    if isinstance(backbone, XceptionEncoder):
        blocks = [backbone.entry1, backbone.entry2, backbone.entry3, *backbone.middle,
                  backbone.exit[0]]
        return [backbone.stem], blocks, list(backbone.exit[1:])
    raise InputError(f"architecture 'adashare' gates residual blocks and works with the "
                     f"'resnet' and 'xception' backbones, not {type(backbone).__name__}; "
                     f"choose one of them")


def sharing_depth_weights(n_blocks: int) -> torch.Tensor:
    """``(L - l) / L`` for blocks ``l = 1..L`` (the sharing loss's depth weights).

    Example: ``L = 4`` -> ``[0.75, 0.5, 0.25, 0.0]``.
    """
    ell = torch.arange(1, n_blocks + 1, dtype=torch.float32)
    return (n_blocks - ell) / n_blocks


@dataclass(frozen=True)
class _Schedule:
    """Host copy of the schedule buffers (read without a device sync in ``forward``)."""

    phase: int
    tau: float
    n_learned: int
    policy: tuple[tuple[bool, ...], ...]


def _after_load(module: AdaShareEncoder, incompatible_keys) -> None:
    """``load_state_dict`` post hook: re-read the schedule from the loaded buffers."""
    module._schedule = None
    module._freeze_policy()


class AdaShareEncoder(nn.Module):
    """The gated residual backbone of AdaShare: per-task policies and their schedule.

    ``forward(x)`` returns each task's deepest features (after its own select/skip path) and
    the stem output. It holds the policy logits and the schedule buffers (phase, temperature,
    curriculum position, final policy). See the module docstring.

    Args:
        backbone: ``resnet`` or ``xception`` backbone.
        tasks: Task names.
        search_epochs: Policy-learning epochs: a fraction of ``train.epochs`` when below 1,
            else a count.
        tau_init: Gumbel-Softmax temperature in the first search epoch.
        tau_decay: Factor applied to the temperature every search epoch.
        curriculum_step: Blocks whose policies join the learning per search epoch (0: spread
            evenly over the search epochs).
        final_policy: ``argmax`` or ``sample``.
        sparsity_weight: Weight of the sparsity loss.
        sharing_weight: Weight of the sharing loss.
    """

    def __init__(self, backbone: nn.Module, tasks: Sequence[str], *, search_epochs: float = 0.5,
                 tau_init: float = 5.0, tau_decay: float = 0.965, curriculum_step: int = 0,
                 final_policy: str = "argmax", sparsity_weight: float = 0.05,
                 sharing_weight: float = 0.05) -> None:
        super().__init__()
        pre, blocks, post = residual_layout(backbone)
        if not search_epochs > 0 or (search_epochs >= 1 and search_epochs != int(search_epochs)):
            raise InputError(f"adashare option search_epochs must be a fraction in (0, 1) or a "
                             f"whole number of epochs, got {search_epochs}")
        if final_policy not in FINAL_POLICIES:
            raise InputError(f"adashare option final_policy must be one of {FINAL_POLICIES}, "
                             f"got '{final_policy}'")
        if not tau_init > 0 or not 0 < tau_decay <= 1 or curriculum_step < 0:
            raise InputError(f"adashare options: tau_init > 0, 0 < tau_decay <= 1 and "
                             f"curriculum_step >= 0 are needed, got tau_init={tau_init}, "
                             f"tau_decay={tau_decay}, curriculum_step={curriculum_step}")
        if sparsity_weight < 0 or sharing_weight < 0:
            raise InputError(f"adashare loss weights must be >= 0, got sparsity_weight="
                             f"{sparsity_weight}, sharing_weight={sharing_weight}")
        self.tasks = tuple(tasks)
        self.backbone = backbone
        # plain lists (not registered again): the modules live in self.backbone
        self._pre, self._blocks, self._post = pre, blocks, post
        self.search_epochs = float(search_epochs)
        self.tau_init, self.tau_decay = float(tau_init), float(tau_decay)
        self.curriculum_step = int(curriculum_step)
        self.final_policy = final_policy
        self.sparsity_weight, self.sharing_weight = float(sparsity_weight), float(sharing_weight)
        n = len(blocks)
        # logits[t][l] = (execute, skip); zeros: both equally likely at the start
        self.logits = nn.ParameterDict({t: nn.Parameter(torch.zeros(n, 2)) for t in self.tasks})
        self.register_buffer("phase", torch.tensor(SEARCH, dtype=torch.long))
        self.register_buffer("tau", torch.tensor(self.tau_init, dtype=torch.float64))
        self.register_buffer("n_learned", torch.tensor(n, dtype=torch.long))
        self.register_buffer("policy", torch.ones(len(self.tasks), n, dtype=torch.bool))
        self.register_buffer("depth_weights", sharing_depth_weights(n), persistent=False)
        self._schedule: _Schedule | None = None
        self._set_schedule(SEARCH, self.tau_init, n, None)
        self.register_load_state_dict_post_hook(_after_load)

    # ----------------------------------------------------------------- schedule and phases
    @property
    def n_blocks(self) -> int:
        """Number of gated residual blocks ``L``."""
        return len(self._blocks)

    def _state(self) -> _Schedule:
        if self._schedule is None:  # after a load: one host read of the buffers
            self._schedule = _Schedule(
                int(self.phase), float(self.tau), int(self.n_learned),
                tuple(tuple(bool(v) for v in row) for row in self.policy.tolist()))
        return self._schedule

    def _set_schedule(self, phase: int, tau: float, n_learned: int,
                      policy: torch.Tensor | None) -> None:
        """Write the schedule to the buffers (for checkpoints) and to the host copy."""
        self.phase.fill_(phase)
        self.tau.fill_(tau)
        self.n_learned.fill_(n_learned)
        if policy is not None:
            self.policy.copy_(policy)
            rows = policy.tolist()
        elif self._schedule is not None:
            rows = self._schedule.policy
        else:
            rows = self.policy.tolist()
        host = tuple(tuple(bool(v) for v in row) for row in rows)
        self._schedule = _Schedule(phase, tau, n_learned, host)

    def _freeze_policy(self) -> None:
        """Policy logits learn only in the search phase."""
        searching = self._state().phase == SEARCH
        for p in self.logits.values():
            p.requires_grad_(searching)

    @property
    def searching(self) -> bool:
        """True in the policy-search phase, False once retraining with the fixed policy."""
        return self._state().phase == SEARCH

    def search_epoch_count(self, epochs: int) -> int:
        """``S``, the number of policy-learning epochs out of ``epochs``.

        Example: ``search_epochs=0.5`` and 4 epochs -> 2; ``search_epochs=3`` -> 3.
        """
        if self.search_epochs < 1:
            return max(1, math.floor(self.search_epochs * epochs + 0.5))
        return int(self.search_epochs)

    def _curriculum(self, epoch: int, search: int) -> int:
        step = self.curriculum_step or math.ceil(self.n_blocks / search)
        return min(self.n_blocks, epoch * step)

    def on_epoch_start(self, epoch: int, epochs: int) -> bool:
        """Set the temperature and curriculum of search epoch ``epoch``, or, after the last
        search epoch, fix the final policy and re-initialise the backbone (returns ``True``)."""
        state = self._state()
        if state.phase == RETRAIN:
            self._freeze_policy()
            return False
        search = self.search_epoch_count(epochs)
        if epoch <= search:
            tau = self.tau_init * self.tau_decay ** (epoch - 1)
            self._set_schedule(SEARCH, tau, self._curriculum(epoch, search), None)
            return False
        self._finish_search()
        return True

    def _finish_search(self) -> None:
        """Fix the final policy, re-initialise the backbone, freeze the logits."""
        state = self._state()
        with torch.no_grad():
            logits = torch.stack([self.logits[t] for t in self.tasks])  # (T, L, 2)
            if self.final_policy == "argmax":
                execute = logits[..., 0] >= logits[..., 1]  # (T, L)
            else:
                execute = torch.bernoulli(torch.softmax(logits, dim=-1)[..., 0]).bool()
            execute[:, :self.n_blocks - state.n_learned] = True  # never learned: executed
        self._set_schedule(RETRAIN, state.tau, state.n_learned, execute)
        reinitialise(self.backbone)
        self._freeze_policy()

    def execute_probabilities(self) -> torch.Tensor:
        """``alpha``: ``(T, L)`` probability that task ``t`` executes block ``l``."""
        return torch.stack([torch.softmax(self.logits[t], dim=-1)[:, 0] for t in self.tasks])

    def final_policy_table(self) -> dict[str, list[bool]]:
        """Task -> per-block execute flags of the fixed policy (retraining phase)."""
        return {t: list(row) for t, row in zip(self.tasks, self._state().policy, strict=True)}

    # ------------------------------------------------------------------- forward pass
    def _decisions(self) -> dict[str, list]:
        """Per task and block: ``True`` (execute), ``False`` (skip) or a ``(2,)`` straight-
        through one-hot sample (execute, skip)."""
        state = self._state()
        if state.phase == RETRAIN:
            return {t: list(row) for t, row in zip(self.tasks, state.policy, strict=True)}
        first = self.n_blocks - state.n_learned  # blocks before it are always executed
        if self.training:
            out = {}
            for t in self.tasks:
                sample = F.gumbel_softmax(self.logits[t], tau=state.tau, hard=True)  # (L, 2)
                out[t] = [True if i < first else sample[i] for i in range(self.n_blocks)]
            return out
        with torch.no_grad():  # eval: the likelier choice, read on the host
            logits = torch.stack([self.logits[t] for t in self.tasks])  # (T, L, 2)
            likely = (logits[..., 0] >= logits[..., 1]).tolist()
        return {t: [True if i < first else bool(likely[k][i]) for i in range(self.n_blocks)]
                for k, t in enumerate(self.tasks)}

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Each task's deepest features ``(B, C, H/s, W/s)``, and the stem output (the same
        for every task)."""
        h = x  # (B, Cin, H, W)
        for module in self._pre:
            h = module(h)  # stem: (B, C0, H/s0, W/s0)
        stem = h
        decisions = self._decisions()
        states = dict.fromkeys(self.tasks, h)
        for i, block in enumerate(self._blocks):
            run: dict[int, torch.Tensor] = {}  # id(input) -> output: tasks with the same
            skip: dict[int, torch.Tensor] = {}  # input and decision share one evaluation

            def execute(inp: torch.Tensor, block=block, run=run) -> torch.Tensor:
                if id(inp) not in run:
                    run[id(inp)] = block(inp)  # (B, C_out, h', w')
                return run[id(inp)]

            def shortcut(inp: torch.Tensor, block=block, skip=skip) -> torch.Tensor:
                if id(inp) not in skip:
                    skip[id(inp)] = block.shortcut(inp)  # identity or projection
                return skip[id(inp)]

            new = {}
            for t in self.tasks:
                d = decisions[t][i]
                if d is True:
                    new[t] = execute(states[t])
                elif d is False:
                    new[t] = shortcut(states[t])
                else:  # straight-through sample: hard forward, soft gradient
                    new[t] = d[0] * execute(states[t]) + d[1] * shortcut(states[t])
            states = new
        for module in self._post:
            done: dict[int, torch.Tensor] = {}
            for t in self.tasks:
                key = id(states[t])
                if key not in done:
                    done[key] = module(states[t])
                states[t] = done[key]
        return states, stem

    def regularization(self) -> torch.Tensor | None:
        """``sparsity_weight * L_sp + sharing_weight * L_sh`` over the blocks being learned;
        None in the retraining phase."""
        state = self._state()
        if state.phase == RETRAIN or state.n_learned == 0:
            return None
        first = self.n_blocks - state.n_learned
        logits = torch.stack([self.logits[t] for t in self.tasks])[:, first:]  # (T, k, 2)
        log_alpha = torch.log_softmax(logits, dim=-1)[..., 0]  # (T, k)
        sparsity = log_alpha.sum()
        alpha = log_alpha.exp()
        gaps = (alpha.unsqueeze(0) - alpha.unsqueeze(1)).abs()  # (T, T, k) ordered pairs
        sharing = (gaps * self.depth_weights[first:]).sum()
        return self.sparsity_weight * sparsity + self.sharing_weight * sharing

    def last_shared_layer(self) -> list[nn.Parameter]:
        """The last weighted layer every task always runs: in the suffix after the gated
        blocks if there is one (Xception's final separable conv), else in the stem."""
        for part in (self._post, self._pre):
            for module in reversed(part):
                layer = last_weight_layer(module)
                if layer:
                    return layer
        return []


def reinitialise(module: nn.Module) -> None:
    """Re-draw every weight of a backbone or head as at construction: ``reset_parameters()``
    of every layer (BN running statistics included), then the kaiming initialisation
    backbones and decoders apply (global-pooling heads keep PyTorch's linear default)."""
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    if isinstance(module, TaskHead):
        if not isinstance(module.core, GlobalHead):
            init_weights(module.core)
    else:
        init_weights(module)


class AdaShareNet(MultiTaskModel):
    """Per-task select-or-skip policies over a residual backbone (Sun et al., 2020).

    See the module docstring for the method, its phases and the parameter groups.

    Args:
        backbone: ``resnet`` or ``xception`` backbone.
        tasks: Task name -> spec.
        backbone_name: The backbone's registry name.
        head: Dense heads, ``light`` or ``aspp``.
        **policy: The options of :class:`AdaShareEncoder`.

    Attributes:
        encoder: The :class:`AdaShareEncoder` (gated backbone, policies and schedule; its cost
            under the current policy is the encoder cost in standard network time).
        heads: ``nn.ModuleDict`` of task name -> head on the task's own deepest features.
    """

    def __init__(self, backbone: nn.Module, tasks: Mapping[str, TaskSpec], *,
                 backbone_name: str | None = None, head: str = "light", **policy) -> None:
        super().__init__(tasks, backbone_name, "adashare")
        if head not in HEAD_KINDS:
            raise InputError(f"model.options.head: unknown dense head '{head}'; "
                             f"{closest(head, HEAD_KINDS)}")
        self.encoder = AdaShareEncoder(backbone, list(tasks), **policy)
        self.heads = nn.ModuleDict({t: build_head(s, backbone, head) for t, s in tasks.items()})

    def forward(self, x: torch.Tensor) -> Outputs:
        input_hw = tuple(x.shape[-2:])
        feats, stem = self.encoder(x)  # task -> (B, C, H/s, W/s); (B, C0, H/s0, W/s0)
        final = {t: self.heads[t]([feats[t]], input_hw) for t in self.tasks}
        return Outputs(final, rep=[stem])

    def on_epoch_start(self, epoch: int, epochs: int) -> bool:
        """The encoder's schedule; at the switch to retraining the heads are re-initialised
        too and ``True`` is returned."""
        switched = self.encoder.on_epoch_start(epoch, epochs)
        if switched:
            for head in self.heads.values():
                reinitialise(head)
        return switched

    def regularization(self) -> torch.Tensor | None:
        """The sparsity and sharing losses (search phase), else None."""
        return self.encoder.regularization()

    def final_policy_table(self) -> dict[str, list[bool]]:
        """Task -> per-block execute flags of the fixed policy."""
        return self.encoder.final_policy_table()

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The whole backbone (every task may execute every block)."""
        return self.encoder.backbone.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's head and policy logits."""
        self._check_task(task)
        yield from self.heads[task].parameters()
        yield self.encoder.logits[task]

    def last_shared_layer(self) -> list[nn.Parameter]:
        return self.encoder.last_shared_layer()


def build_adashare(make_backbone: Callable[[], nn.Module], tasks: Mapping[str, TaskSpec], *,
                   backbone_name: str | None = None, search_epochs: float = 0.5,
                   tau_init: float = 5.0, tau_decay: float = 0.965, curriculum_step: int = 0,
                   final_policy: str = "argmax", sparsity_weight: float = 0.05,
                   sharing_weight: float = 0.05, head: str = "light") -> AdaShareNet:
    """AdaShare on one ``resnet`` or ``xception`` backbone (options: see
    :class:`AdaShareEncoder` and :class:`AdaShareNet`)."""
    return AdaShareNet(make_backbone(), tasks, backbone_name=backbone_name, head=str(head),
                       search_epochs=float(search_epochs), tau_init=float(tau_init),
                       tau_decay=float(tau_decay), curriculum_step=int(curriculum_step),
                       final_policy=str(final_policy), sparsity_weight=float(sparsity_weight),
                       sharing_weight=float(sharing_weight))
