"""AdaShare: learning, per task, which residual blocks to execute (Sun et al., NeurIPS 2020).

One residual backbone serves every task; each task learns a policy that selects (executes) or
skips each residual block, so tasks share a block when they both select it and the network
gets more compact where tasks skip blocks (the review in seed 001 describes the method).

Policy learning
---------------
Per task ``k`` and residual block ``l`` there are two logits (execute, skip); ``alpha_{l,k}``
is the probability of executing, their softmax's first entry. In the training mode of the
policy search, each step draws one straight-through Gumbel-Softmax sample per task and block
(hard 0/1 forward, soft gradient; temperature ``tau_init * tau_decay ** (a - 1)`` in
alternation epoch ``a``, see below), and the block's output is ``u_exec * block(h) +
u_skip * skip(h)``. Skipping keeps the residual shortcut: the identity, or the block's
``1 x 1`` projection where the block changes shape (the downsampling blocks), so skipped and
executed outputs have the same shape.

Losses added outside balancing (:meth:`AdaShareNet.regularization`), over the ``n`` blocks
whose policies are being learned:

* sparsity: ``L_sp = sum_k (1 / n) sum_l log alpha_{l,k}`` (minimising it favours skipping):
  the paper's ``sum_{l, k} log alpha_{l,k}`` averaged over each task's learned blocks, as the
  authors average their sparsity term, so that its weight does not depend on the depth of
  the network or the position of the curriculum;
* sharing: ``L_sh = sum_{k1, k2} sum_l (L - l) / L * |alpha_{l,k1} - alpha_{l,k2}|`` over
  ordered pairs of tasks and blocks ``l = 1..L`` (blocks nearer the input weigh more, so
  tasks are pushed to share the early blocks);

weighted by ``sparsity_weight`` (0.001, the authors' weight of their sparsity term) and
``sharing_weight`` (0.05). The sparsity term pushes every learned logit towards skipping with
a gradient of ``sparsity_weight * (1 - alpha) / n`` that never fades, while the task losses
reach the logits only through the straight-through samples (about 1e-5 to 1e-4 per logit on
the synthetic data at ``tau = 5``). A weight of 0.05 on the plain sum (0.025 per logit at
``alpha = 0.5``) outweighs them a hundredfold: every ``alpha`` then falls at the same pace in
every task (to 0.16-0.37 after 5 alternation epochs on the synthetic data), and the likelier
choice of every block is to skip it.

Curriculum: in alternation epoch ``a`` only the policies of the last
``n(a) = min(L, ceil(a / v))`` blocks are learned (``v``: alternation epochs per block); the
others are executed by every task and take no part in the losses above.
``curriculum_speed = v`` sets it (the authors' pace is ``v = 3``); ``0`` (the default) takes
``v = min(3, ceil(A / 2) / L)`` for ``A`` alternation epochs, the authors' pace when the run is
long enough for it to reach every block within the first half of the alternation epochs, and
the pace that does so otherwise. Example: ``A = 8``, ``L = 6``: ``v = 4 / 6`` and
``n(1..4) = 2, 3, 5, 6``.

Training procedure
------------------
Sun et al. train in three stages; here they are counted in the trainer's epochs, one epoch
being one pass over the training rows. ``on_epoch_start(epoch, epochs, validate=...)`` drives
them and :meth:`AdaShareNet.train_passes` tells the trainer what each epoch trains on:

1. *Warm-up*, epochs ``1..W``: every task executes every block; one pass over all training
   rows in which the network weights (backbone and heads) learn and the policy logits stay
   at their initial (equal) values.
2. *Policy search*, epochs ``W + 1..S`` (alternation epoch ``a = epoch - W``): two passes per
   epoch over a fixed split of the training rows into two disjoint halves (drawn from
   ``train.seed`` by the trainer; the validation split is no part of it). First the network
   weights learn on the first half with the logits fixed, then the logits learn on the second
   half with the weights fixed (batch-norm running statistics still follow the batches, as in
   any training-mode pass). Both passes draw Gumbel-Softmax policies at the epoch's
   temperature and under the curriculum; the temperature decays once per epoch, after its
   policy pass. The logits learn at ``policy_lr_scale`` times the schedule's rate
   (:meth:`AdaShareNet.lr_scales`). The first search epoch after a warm-up is a new phase:
   ``on_epoch_start`` returns ``True`` and the trainer starts a fresh optimiser and schedule.
3. *Choice and re-training*, from epoch ``S + 1``: ``final_policy="sample"`` draws
   ``policy_samples`` policies from the learned distribution (each block executed with
   probability ``alpha``, independently; blocks the curriculum never reached are executed),
   scores each on the validation split with the search's weights (``validate()``, the total
   validation loss) and keeps the lowest; ``final_policy="argmax"`` takes the likelier choice
   of every block instead. Then every weight of the backbone and heads is re-initialised, the
   logits are frozen, and ``on_epoch_start`` returns ``True``: the network is re-trained from
   scratch with the fixed policy, one pass over all training rows per epoch, and early
   stopping restarts. With ``S >= epochs`` there is no re-training and evaluation uses the
   likelier choice of each policy. Early stopping (and the plateau schedule's end) cannot end
   the run before re-training starts (:meth:`AdaShareNet.must_train`): during the search the
   validation loss follows the likelier choice of policies near 0.5, which flips from epoch to
   epoch.

``S`` comes from ``search_epochs`` (below 1 a fraction of ``train.epochs``, else a count),
``W`` from ``warmup_epochs`` (below 1 a fraction of ``S``, rounded half up, else a count; at
least 1 when ``S >= 2`` and the option is not 0, and at most ``S - 1``, so at least one epoch
alternates). Phase, temperature, curriculum position, the sampled policies with their
validation losses and the chosen one are buffers, so a checkpoint resumes exactly.

Defaults: the authors' schedule for NYU-v2 is 20,000 iterations of policy learning, the first
4,000 of them warm-up, then re-training for as many iterations: ``search_epochs=0.5`` and
``warmup_epochs=0.2``. One of their alternation rounds (a pass over one half for the weights,
a pass over the other for the policy) is one epoch here, so the per-round temperature decay
(``tau_init=5``, ``tau_decay=0.965``) and the curriculum's pace carry over unchanged; their
policy rate is 10 times the network's (``policy_lr_scale=10``) and they sample 8 policies
(``policy_samples=8``). Their runs alternate for hundreds of rounds where ours have tens,
hence the faster automatic curriculum.

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

Departures and choices: the logits use the trainer's optimiser (``train.optimizer``, at
``policy_lr_scale`` times its rate and under its schedule, which counts the steps of both
passes; the authors use Adam at a constant rate for the logits); the sampled policies are
compared by validation loss with the search's weights and only the best is re-trained (the
authors re-train every sampled policy and report the best); the policy samples of training
are hard (straight-through); a balancer's own parameters learn in both passes; the sharing
loss is the paper's, on the probabilities ``alpha``. The sharing weight and the equal initial
logits are taskgrouper's defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from taskgrouper.errors import InputError
from taskgrouper.models.arch.base import MultiTaskModel, Outputs, TrainPass
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

SEARCH, RETRAIN, WARMUP = 0, 1, 2  # the phase buffer's values
FINAL_POLICIES = ("argmax", "sample")
#: The authors' curriculum pace: alternation epochs per block joining the policy learning.
PAPER_CURRICULUM_SPEED = 3


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
    curriculum position, sampled policies and their validation losses, final policy). See the
    module docstring.

    Args:
        backbone: ``resnet`` or ``xception`` backbone.
        tasks: Task names.
        search_epochs: Warm-up and policy-search epochs ``S``: a fraction of ``train.epochs``
            when below 1, else a count.
        warmup_epochs: Warm-up epochs ``W`` (every block executed, weights only): a fraction
            of ``S`` when below 1, else a count; 0: none.
        tau_init: Gumbel-Softmax temperature in the first alternation epoch.
        tau_decay: Factor applied to the temperature after every alternation epoch.
        curriculum_speed: Alternation epochs per block joining the policy learning (0: the
            authors' 3, or faster so that every block has joined by the middle of the
            alternation epochs).
        policy_lr_scale: Learning rate of the policy logits over the schedule's rate.
        policy_samples: Policies sampled at the end of the search (``final_policy="sample"``);
            the one with the lowest validation loss is re-trained.
        final_policy: ``sample`` (several samples, the best on validation) or ``argmax`` (the
            likelier choice of every block).
        sparsity_weight: Weight of the sparsity loss (a mean over each task's learned blocks).
        sharing_weight: Weight of the sharing loss.
    """

    def __init__(self, backbone: nn.Module, tasks: Sequence[str], *, search_epochs: float = 0.5,
                 warmup_epochs: float = 0.2, tau_init: float = 5.0, tau_decay: float = 0.965,
                 curriculum_speed: int = 0, policy_lr_scale: float = 10.0,
                 policy_samples: int = 8, final_policy: str = "sample",
                 sparsity_weight: float = 0.001, sharing_weight: float = 0.05) -> None:
        super().__init__()
        pre, blocks, post = residual_layout(backbone)
        for name, value in (("search_epochs", search_epochs), ("warmup_epochs", warmup_epochs)):
            if value < 0 or (name == "search_epochs" and value == 0) or (
                    value >= 1 and value != int(value)):
                raise InputError(f"adashare option {name} must be a fraction in [0, 1) or a "
                                 f"whole number of epochs (search_epochs > 0), got {value}")
        if final_policy not in FINAL_POLICIES:
            raise InputError(f"adashare option final_policy must be one of {FINAL_POLICIES}, "
                             f"got '{final_policy}'")
        if (not tau_init > 0 or not 0 < tau_decay <= 1 or curriculum_speed < 0
                or not policy_lr_scale > 0 or policy_samples < 1):
            raise InputError(f"adashare options: tau_init > 0, 0 < tau_decay <= 1, "
                             f"curriculum_speed >= 0, policy_lr_scale > 0 and policy_samples "
                             f">= 1 are needed, got tau_init={tau_init}, tau_decay={tau_decay}, "
                             f"curriculum_speed={curriculum_speed}, policy_lr_scale="
                             f"{policy_lr_scale}, policy_samples={policy_samples}")
        if sparsity_weight < 0 or sharing_weight < 0:
            raise InputError(f"adashare loss weights must be >= 0, got sparsity_weight="
                             f"{sparsity_weight}, sharing_weight={sharing_weight}")
        self.tasks = tuple(tasks)
        self.backbone = backbone
        # plain lists (not registered again): the modules live in self.backbone
        self._pre, self._blocks, self._post = pre, blocks, post
        self.search_epochs, self.warmup_epochs = float(search_epochs), float(warmup_epochs)
        self.tau_init, self.tau_decay = float(tau_init), float(tau_decay)
        self.curriculum_speed = int(curriculum_speed)
        self.policy_lr_scale = float(policy_lr_scale)
        self.final_policy = final_policy
        self.policy_samples = int(policy_samples) if final_policy == "sample" else 1
        self.sparsity_weight, self.sharing_weight = float(sparsity_weight), float(sharing_weight)
        n, n_tasks = len(blocks), len(self.tasks)
        # logits[t][l] = (execute, skip); zeros: both equally likely at the start
        self.logits = nn.ParameterDict({t: nn.Parameter(torch.zeros(n, 2)) for t in self.tasks})
        # before the first epoch: the search with every policy learned (a model used outside
        # the trainer learns its policies at once); on_epoch_start sets the epoch's phase
        self.register_buffer("phase", torch.tensor(SEARCH, dtype=torch.long))
        self.register_buffer("tau", torch.tensor(self.tau_init, dtype=torch.float64))
        self.register_buffer("n_learned", torch.tensor(n, dtype=torch.long))
        self.register_buffer("policy", torch.ones(n_tasks, n, dtype=torch.bool))
        # the policies drawn at the end of the search, their total validation losses (NaN:
        # not scored) and the index of the kept one (-1: none yet)
        self.register_buffer("candidates",
                             torch.ones(self.policy_samples, n_tasks, n, dtype=torch.bool))
        self.register_buffer("candidate_losses",
                             torch.full((self.policy_samples,), math.nan, dtype=torch.float64))
        self.register_buffer("chosen", torch.tensor(-1, dtype=torch.long))
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
        """Policy logits learn only in the policy search (not in warm-up or re-training)."""
        searching = self._state().phase == SEARCH
        for p in self.logits.values():
            p.requires_grad_(searching)

    @property
    def searching(self) -> bool:
        """True in the policy search (alternation), False in warm-up and re-training."""
        return self._state().phase == SEARCH

    @property
    def retraining(self) -> bool:
        """True once the final policy is fixed (re-training)."""
        return self._state().phase == RETRAIN

    def search_epoch_count(self, epochs: int) -> int:
        """``S``, the number of warm-up and policy-search epochs out of ``epochs``.

        Example: ``search_epochs=0.5`` and 4 epochs -> 2; ``search_epochs=3`` -> 3.
        """
        if self.search_epochs < 1:
            return max(1, math.floor(self.search_epochs * epochs + 0.5))
        return int(self.search_epochs)

    def warmup_epoch_count(self, search: int) -> int:
        """``W``, the warm-up epochs among the ``search`` ones (at most ``search - 1``).

        Example: ``warmup_epochs=0.2``: ``S = 10`` -> 2, ``S = 2`` -> 1 (0.4, but at least 1),
        ``S = 1`` -> 0; ``warmup_epochs=0`` -> 0.
        """
        if self.warmup_epochs == 0 or search < 2:
            return 0
        if self.warmup_epochs < 1:
            return min(search - 1, max(1, math.floor(self.warmup_epochs * search + 0.5)))
        return min(search - 1, int(self.warmup_epochs))

    def curriculum(self, alternation_epoch: int, alternation_epochs: int) -> int:
        """``n(a)``: the number of last blocks whose policies learn in alternation epoch ``a``
        of ``A`` (see the module docstring).

        Example: ``L = 6``, automatic speed, ``A = 8``: ``v = min(3, 4 / 6) = 2 / 3``, so
        ``a = 1, 2, 3, 4`` -> ``ceil(1.5), ceil(3), ceil(4.5), ceil(6)`` = 2, 3, 5, 6;
        ``A = 40``: ``v = min(3, 20 / 6) = 3`` -> 1, 1, 1, 2, 2, 2, 3, ...
        """
        speed = (Fraction(self.curriculum_speed) if self.curriculum_speed else
                 min(Fraction(PAPER_CURRICULUM_SPEED),
                     Fraction(math.ceil(alternation_epochs / 2), self.n_blocks)))
        return min(self.n_blocks, math.ceil(alternation_epoch / speed))

    def on_epoch_start(self, epoch: int, epochs: int, *,
                       validate: Callable[[], float] | None = None) -> bool:
        """Set epoch ``epoch``'s phase: warm-up; policy search with its temperature and
        curriculum (``True`` at its first epoch after a warm-up); or, after the search, the
        choice of the final policy and the re-initialisation for re-training (``True``).

        Args:
            epoch: The coming epoch (1-based).
            epochs: ``train.epochs``.
            validate: The total validation loss of the model as it stands; needed to choose
                among several sampled policies.
        """
        state = self._state()
        if state.phase == RETRAIN:
            self._freeze_policy()
            return False
        search = self.search_epoch_count(epochs)
        warmup = self.warmup_epoch_count(search)
        if epoch <= warmup:
            self._set_schedule(WARMUP, self.tau_init, 0, None)
            self._freeze_policy()
            return False
        if epoch <= search:
            a = epoch - warmup  # alternation epoch, 1-based
            tau = self.tau_init * self.tau_decay ** (a - 1)
            self._set_schedule(SEARCH, tau, self.curriculum(a, search - warmup), None)
            self._freeze_policy()
            return a == 1 and warmup > 0  # weights alone before: a new optimiser
        self._finish_search(validate)
        return True

    def _draw_candidates(self) -> torch.Tensor:
        """``(P, T, L)`` execute flags: the likelier choice (``argmax``) or ``P`` samples from
        the learned distribution; blocks the curriculum never reached are executed."""
        with torch.no_grad():
            logits = torch.stack([self.logits[t] for t in self.tasks])  # (T, L, 2)
            if self.final_policy == "argmax":
                drawn = (logits[..., 0] >= logits[..., 1]).unsqueeze(0)  # (1, T, L)
            else:
                alpha = torch.softmax(logits, dim=-1)[..., 0]  # (T, L)
                drawn = torch.bernoulli(alpha.expand(self.policy_samples, *alpha.shape)).bool()
            drawn[..., :self.n_blocks - self._state().n_learned] = True
        return drawn

    def _finish_search(self, validate: Callable[[], float] | None) -> None:
        """Draw the candidate policies, keep the one with the lowest validation loss (scored
        with the search's weights, each candidate fixed in turn), re-initialise the backbone,
        freeze the logits."""
        state = self._state()
        drawn = self._draw_candidates()
        if validate is None and len(drawn) > 1:
            raise RuntimeError("adashare chooses among its sampled policies on the validation "
                               "split: on_epoch_start needs validate= at the end of the search")
        losses = torch.full((len(drawn),), math.nan, dtype=torch.float64)
        if validate is not None:
            for i, candidate in enumerate(drawn):
                self._set_schedule(RETRAIN, state.tau, state.n_learned, candidate)
                losses[i] = float(validate())
        # NaN never wins; all NaN: the first
        best = int(torch.nan_to_num(losses, nan=math.inf).argmin())
        self.candidates.copy_(drawn)
        self.candidate_losses.copy_(losses)
        self.chosen.fill_(best)
        self._set_schedule(RETRAIN, state.tau, state.n_learned, drawn[best])
        reinitialise(self.backbone)
        self._freeze_policy()

    def execute_probabilities(self) -> torch.Tensor:
        """``alpha``: ``(T, L)`` probability that task ``t`` executes block ``l``."""
        return torch.stack([torch.softmax(self.logits[t], dim=-1)[:, 0] for t in self.tasks])

    def final_policy_table(self) -> dict[str, list[bool]]:
        """Task -> per-block execute flags of the fixed policy (retraining phase)."""
        return {t: list(row) for t, row in zip(self.tasks, self._state().policy, strict=True)}

    def eval_policy(self) -> torch.Tensor:
        """``(T, L)`` execute flags that eval mode uses now: the fixed policy when re-training,
        else the likelier choice of the learned blocks (every block in warm-up)."""
        state = self._state()
        if state.phase == RETRAIN:
            return self.policy.clone()
        with torch.no_grad():
            logits = torch.stack([self.logits[t] for t in self.tasks])  # (T, L, 2)
            flags = logits[..., 0] >= logits[..., 1]
        flags[:, :self.n_blocks - state.n_learned] = True
        return flags

    def report(self) -> dict[str, Any]:
        """The policies as JSON-ready values: see :meth:`AdaShareNet.extra_results`."""
        def kept(flags: torch.Tensor) -> dict[str, float]:  # (T, L) -> task: fraction
            return {t: sum(row) / len(row) for t, row in zip(self.tasks, flags.tolist(),
                                                              strict=True)}

        policy = self.eval_policy()
        out: dict[str, Any] = {
            "phase": {SEARCH: "search", RETRAIN: "retrain", WARMUP: "warmup"}[
                self._state().phase],
            "blocks": self.n_blocks,
            "blocks_kept": kept(policy),
            "policy": {t: [bool(v) for v in row] for t, row in zip(self.tasks, policy.tolist(),
                                                                  strict=True)},
            "learned_blocks": int(self._state().n_learned),
            "execute_probability": {t: [round(float(v), 4) for v in row] for t, row in zip(
                self.tasks, self.execute_probabilities().detach().cpu(), strict=True)},
        }
        if int(self.chosen) >= 0:
            out["chosen"] = int(self.chosen)
            out["candidates"] = [
                {"val_loss": float(loss), "blocks_kept": kept(flags)}
                for flags, loss in zip(self.candidates, self.candidate_losses.tolist(),
                                       strict=True)]
        return out

    # ------------------------------------------------------------------- forward pass
    def _decisions(self) -> dict[str, list]:
        """Per task and block: ``True`` (execute), ``False`` (skip) or a ``(2,)`` straight-
        through one-hot sample (execute, skip)."""
        state = self._state()
        if state.phase == RETRAIN:
            return {t: list(row) for t, row in zip(self.tasks, state.policy, strict=True)}
        if state.phase == WARMUP:
            return {t: [True] * self.n_blocks for t in self.tasks}
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
        None outside the policy search."""
        state = self._state()
        if state.phase != SEARCH or state.n_learned == 0:
            return None
        first = self.n_blocks - state.n_learned
        logits = torch.stack([self.logits[t] for t in self.tasks])[:, first:]  # (T, k, 2)
        log_alpha = torch.log_softmax(logits, dim=-1)[..., 0]  # (T, k)
        sparsity = log_alpha.mean(dim=1).sum()  # per task over its k learned blocks
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

    def on_epoch_start(self, epoch: int, epochs: int, *,
                       validate: Callable[[], float] | None = None) -> bool:
        """The encoder's schedule (``True`` at a new phase); at the switch to re-training the
        heads are re-initialised too, after the candidates were scored with them."""
        was_retraining = self.encoder.retraining
        new_phase = self.encoder.on_epoch_start(epoch, epochs, validate=validate)
        if self.encoder.retraining and not was_retraining:
            for head in self.heads.values():
                reinitialise(head)
        return new_phase

    def must_train(self, epoch: int, epochs: int) -> bool:
        """The search (warm-up included) runs to its end and re-training starts, whatever
        early stopping says: its count restarts with the re-training (when there is one).

        Example: 20 epochs, ``S = 10``: epochs 1..11 run; from epoch 12 early stopping may end
        the run.
        """
        search = self.encoder.search_epoch_count(epochs)
        return search < epochs and epoch <= search + 1

    def train_passes(self) -> tuple[TrainPass, ...]:
        """Policy search: the network weights (backbone, heads) learn on the first half of the
        training rows, then the policy logits on the second; otherwise one pass over every
        row (the logits are frozen then)."""
        if not self.encoder.searching:
            return (TrainPass(),)
        return (TrainPass(half=0, learns=("encoder.backbone", "heads")),
                TrainPass(half=1, learns=("encoder.logits",)))

    def lr_scales(self) -> dict[str, float]:
        """The policy logits learn at ``policy_lr_scale`` times the schedule's rate."""
        return {"encoder.logits": self.encoder.policy_lr_scale}

    def extra_results(self) -> dict[str, Any]:
        """``{"adashare": ...}``: ``blocks_kept`` (task -> fraction of the ``blocks`` gated
        blocks its policy executes), ``policy`` (task -> execute flag per block), the
        ``phase`` they come from, ``learned_blocks`` (how many of the last blocks the
        curriculum reached), ``execute_probability`` (task -> learned ``alpha`` per block)
        and, after the search, ``candidates`` (each sampled policy's total validation loss and
        blocks kept) with the index of the ``chosen`` one."""
        return {"adashare": self.encoder.report()}

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
                   warmup_epochs: float = 0.2, tau_init: float = 5.0, tau_decay: float = 0.965,
                   curriculum_speed: int = 0, policy_lr_scale: float = 10.0,
                   policy_samples: int = 8, final_policy: str = "sample",
                   sparsity_weight: float = 0.001, sharing_weight: float = 0.05,
                   head: str = "light") -> AdaShareNet:
    """AdaShare on one ``resnet`` or ``xception`` backbone (options: see
    :class:`AdaShareEncoder` and :class:`AdaShareNet`)."""
    return AdaShareNet(make_backbone(), tasks, backbone_name=backbone_name, head=str(head),
                       search_epochs=float(search_epochs), warmup_epochs=float(warmup_epochs),
                       tau_init=float(tau_init), tau_decay=float(tau_decay),
                       curriculum_speed=int(curriculum_speed),
                       policy_lr_scale=float(policy_lr_scale),
                       policy_samples=int(policy_samples), final_policy=str(final_policy),
                       sparsity_weight=float(sparsity_weight),
                       sharing_weight=float(sharing_weight))
